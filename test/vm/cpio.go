package vm

import (
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// File is an extra file to put in the guest.
type File struct {
	// Path is the absolute path inside the guest, such as /kpx/testdata/x.
	Path string
	// Source is a host file to copy; when empty, Data is the content.
	Source string
	Data   []byte
	// Mode defaults to 0644.
	Mode fs.FileMode
}

// cpioEntry is one member of a newc archive.
type cpioEntry struct {
	name string // without leading slash
	mode uint32 // including the file type bits
	data []byte
}

const (
	cpioModeDir  = 0o040000
	cpioModeFile = 0o100000
)

// cpioWriter writes the newc ("070701") format the kernel's initramfs
// unpacker reads.
type cpioWriter struct {
	w    io.Writer
	ino  uint32
	dirs map[string]bool
	err  error
}

func newCPIOWriter(w io.Writer) *cpioWriter {
	return &cpioWriter{w: w, ino: 1, dirs: map[string]bool{}}
}

// addFile writes a regular file after the directories leading to it.
func (c *cpioWriter) addFile(guestPath string, mode fs.FileMode, data []byte) {
	name := strings.TrimPrefix(path.Clean("/"+guestPath), "/")
	c.addParents(name)
	c.write(cpioEntry{name: name, mode: cpioModeFile | uint32(mode.Perm()), data: data})
}

func (c *cpioWriter) addParents(name string) {
	var parents []string
	for d := path.Dir(name); d != "." && d != "/" && !c.dirs[d]; d = path.Dir(d) {
		parents = append(parents, d)
	}
	sort.Strings(parents) // shortest (outermost) first
	for _, d := range parents {
		c.dirs[d] = true
		c.write(cpioEntry{name: d, mode: cpioModeDir | 0o755})
	}
}

// close writes the trailer.
func (c *cpioWriter) close() error {
	c.write(cpioEntry{name: "TRAILER!!!"})
	return c.err
}

func (c *cpioWriter) write(e cpioEntry) {
	if c.err != nil {
		return
	}
	nlink := 1
	if e.mode&cpioModeDir != 0 {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, 0, 0, len(e.name)+1, 0)
	c.ino++
	c.put([]byte(hdr + e.name + "\x00"))
	c.put(e.data)
}

// put writes b followed by zero padding to a multiple of four bytes.
func (c *cpioWriter) put(b []byte) {
	if c.err != nil {
		return
	}
	if _, c.err = c.w.Write(b); c.err != nil {
		return
	}
	if pad := (4 - len(b)%4) % 4; pad > 0 {
		_, c.err = c.w.Write(make([]byte, pad))
	}
}
