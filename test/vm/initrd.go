package vm

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// writeInitrd writes the base initramfs followed by an uncompressed cpio
// archive with the binary, /kpx/cmd, /kpx/marker and the extra files. The
// kernel unpacks concatenated archives in order; zero bytes between them are
// skipped, and an uncompressed archive must start at a multiple of four.
func writeInitrd(dst, base string, opts Options, marker string) error {
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	n, err := copyFile(bw, base)
	if err != nil {
		return err
	}
	if pad := (4 - n%4) % 4; pad > 0 {
		if _, err := bw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if err := writeRunArchive(bw, opts, marker); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return f.Close()
}

func copyFile(w io.Writer, src string) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}

func writeRunArchive(w io.Writer, opts Options, marker string) error {
	cw := newCPIOWriter(w)
	for _, b := range append([]string{opts.Binary}, opts.Then...) {
		bin, err := os.ReadFile(b)
		if err != nil {
			return fmt.Errorf("binary: %w", err)
		}
		cw.addFile(guestBinDir+"/"+filepath.Base(b), 0o755, bin)
	}
	cw.addFile("/kpx/cmd", 0o644, []byte(guestCommand(opts)))
	cw.addFile("/kpx/marker", 0o644, []byte(marker+"\n"))
	for _, x := range opts.Extra {
		data, mode, err := fileContent(x)
		if err != nil {
			return err
		}
		cw.addFile(x.Path, mode, data)
	}
	return cw.close()
}

func fileContent(x File) ([]byte, os.FileMode, error) {
	mode := x.Mode
	data := x.Data
	if x.Source != "" {
		b, err := os.ReadFile(x.Source)
		if err != nil {
			return nil, 0, fmt.Errorf("extra file %s: %w", x.Path, err)
		}
		data = b
		if mode == 0 {
			if st, err := os.Stat(x.Source); err == nil {
				mode = st.Mode().Perm()
			}
		}
	}
	if mode == 0 {
		mode = 0o644
	}
	return data, mode, nil
}
