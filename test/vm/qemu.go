package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const qemuBinary = "qemu-system-x86_64"

// kernelCmdline: serial console, little kernel chatter, and a panic (such as
// /init exiting) reboots at once, which -no-reboot turns into qemu exiting.
const kernelCmdline = "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off"

func qemuArgs(a Assets, initrd string, opts Options, kvm bool) []string {
	args := []string{
		"-nographic", "-nic", "none", "-no-reboot",
		"-m", opts.Memory, "-smp", strconv.Itoa(opts.CPUs),
		"-kernel", a.Kernel, "-initrd", initrd,
		"-append", kernelCmdline,
	}
	if kvm {
		return append(args, "-accel", "kvm", "-cpu", "host")
	}
	return append(args, "-accel", "tcg", "-cpu", "max")
}

// kvmProbeTimeout bounds the KVM probe boot (under a working KVM the guest
// kernel panics for lack of a root file system in well under a second).
const kvmProbeTimeout = 5 * time.Second

// kvmUsable reports whether qemu can run the guest with KVM. KPROXY_VM_ACCEL
// (kvm or tcg) decides when set. Otherwise /dev/kvm must open and the guest
// kernel, booted with KVM and no initramfs, must reach its "cannot mount
// root" panic, which panic=-1 and -no-reboot turn into qemu exiting, within
// kvmProbeTimeout. A mere start is no proof: under nested virtualization
// qemu can abort at vCPU setup, and on this machine's host (December 2026)
// qemu with KVM shows SeaBIOS and then never runs the kernel, while
// software emulation boots it in 8-10 s.
func kvmUsable(ctx context.Context, kernel string) bool {
	if accel := os.Getenv("KPROXY_VM_ACCEL"); accel != "" {
		return accel == "kvm"
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	probe := []string{"-accel", "kvm", "-cpu", "host", "-display", "none", "-nic", "none", "-serial", "none",
		"-monitor", "none", "-no-reboot", "-m", "128M", "-kernel", kernel, "-append", "panic=-1 loglevel=0"}
	_, err = runQEMU(ctx, probe, kvmProbeTimeout, nil)
	return err == nil
}

var errTimeout = errors.New("qemu timed out")

// runQEMU runs qemu and returns its console (stdout). qemu is killed by pid
// when timeout expires (errTimeout) or ctx ends (ctx.Err()).
func runQEMU(ctx context.Context, args []string, timeout time.Duration, console io.Writer) (string, error) {
	var out syncBuffer
	var stderr bytes.Buffer
	cmd := exec.Command(qemuBinary, args...)
	cmd.Stdout = &out
	if console != nil {
		cmd.Stdout = io.MultiWriter(&out, console)
	}
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start %s: %w", qemuBinary, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		if err != nil {
			return out.String(), fmt.Errorf("%s: %w: %s", qemuBinary, err, strings.TrimSpace(stderr.String()))
		}
		return out.String(), nil
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		return out.String(), errTimeout
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		return out.String(), ctx.Err()
	}
}

// syncBuffer is a bytes.Buffer safe for the copying goroutine and readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
