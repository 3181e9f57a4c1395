package vm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options describe one guest run.
type Options struct {
	// Binary is a static host binary (CGO_ENABLED=0) run as /kpx/bin/<name>.
	Binary string
	// Then are more static host binaries, run one after the other after
	// Binary in the same boot, with the same Args and Env; the exit code is
	// then 0 when every one exited 0, else 1.
	Then []string
	// Args are its arguments; Env its extra environment ("K=V").
	Args []string
	Env  []string
	// Extra files to put in the guest.
	Extra []File
	// Timeout bounds the whole run, boot included; default 5 minutes.
	Timeout time.Duration
	// Memory is qemu's -m; default "1G". CPUs is -smp; default 1.
	Memory string
	CPUs   int
	// Assets to boot; nil means PrepareAssets.
	Assets *Assets
	// Console, when set, receives the serial console as it arrives.
	Console io.Writer
}

// Result is what the guest reported.
type Result struct {
	// Output is the serial console up to the exit marker, without '\r'.
	Output string
	// ExitCode is the binary's exit status in the guest.
	ExitCode int
	// Duration is the wall time from starting qemu to its exit.
	Duration time.Duration
}

const guestBinDir = "/kpx/bin"

var errNoMarker = errors.New("guest stopped without printing the exit marker")

// Run boots a guest that runs opts.Binary and returns its output and exit
// code. An error means no exit code came back: qemu failed, the guest
// stopped without the marker, the timeout expired or ctx was cancelled (qemu
// is then killed).
func Run(ctx context.Context, opts Options) (Result, error) {
	opts = withDefaults(opts)
	if opts.Binary == "" {
		return Result{}, fmt.Errorf("vm: Options.Binary is empty")
	}
	assets := opts.Assets
	if assets == nil {
		a, err := PrepareAssets(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("vm: prepare assets: %w", err)
		}
		assets = &a
	}
	dir, err := os.MkdirTemp("", "kpx-vm-")
	if err != nil {
		return Result{}, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(dir)
	marker, err := newMarker()
	if err != nil {
		return Result{}, err
	}
	initrd := filepath.Join(dir, "initrd")
	if err := writeInitrd(initrd, assets.Initrd, opts, marker); err != nil {
		return Result{}, fmt.Errorf("vm: initrd: %w", err)
	}
	kvm := assets.Accel == "kvm"
	if assets.Accel == "" {
		kvm = kvmUsable(ctx, assets.Kernel)
	}
	args := qemuArgs(*assets, initrd, opts, kvm)
	start := time.Now()
	out, err := runQEMU(ctx, args, opts.Timeout, opts.Console)
	res := Result{Duration: time.Since(start)}
	before, code, found := parseMarker(out, marker)
	res.Output, res.ExitCode = before, code
	if found {
		return res, nil
	}
	if err == nil {
		err = errNoMarker
	}
	return res, fmt.Errorf("vm: %w; console tail:\n%s", err, tail(res.Output, 40))
}

func withDefaults(o Options) Options {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Memory == "" {
		o.Memory = "1G"
	}
	if o.CPUs <= 0 {
		o.CPUs = 1
	}
	return o
}

func newMarker() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("vm: marker: %w", err)
	}
	return "KPX-VM-EXIT-" + hex.EncodeToString(b), nil
}

// parseMarker finds "<marker>:<code>" in the console output and returns the
// output before it. found is false when the marker is missing.
func parseMarker(out, marker string) (before string, code int, found bool) {
	out = strings.ReplaceAll(out, "\r", "")
	i := strings.Index(out, marker+":")
	if i < 0 {
		return out, -1, false
	}
	rest := out[i+len(marker)+1:]
	if _, err := fmt.Sscanf(rest, "%d", &code); err != nil {
		return out, -1, false
	}
	return out[:i], code, true
}

// guestCommand is the /kpx/cmd script /init runs with sh.
func guestCommand(opts Options) string {
	var b strings.Builder
	b.WriteString("export KPROXY_IN_VM=1\n")
	for _, kv := range opts.Env {
		fmt.Fprintf(&b, "export %s\n", shellQuote(kv))
	}
	if len(opts.Then) == 0 {
		b.WriteString("exec " + guestInvocation(opts.Binary, opts.Args) + "\n")
		return b.String()
	}
	b.WriteString("rc=0\n")
	for _, bin := range append([]string{opts.Binary}, opts.Then...) {
		b.WriteString(guestInvocation(bin, opts.Args) + " || rc=1\n")
	}
	b.WriteString("exit $rc\n")
	return b.String()
}

// guestInvocation is the quoted command line running a host binary in the guest.
func guestInvocation(bin string, args []string) string {
	s := shellQuote(guestBinDir + "/" + filepath.Base(bin))
	for _, a := range args {
		s += " " + shellQuote(a)
	}
	return s
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
