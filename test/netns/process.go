package netns

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// killWait bounds how long Close waits for a killed process to be reaped.
const killWait = 5 * time.Second

// outputGrace is how long output is still collected after a process exits:
// a descendant that outlives it (a daemon that forked away) may hold the
// output pipe open forever, and must not keep the process from counting
// as exited.
const outputGrace = 500 * time.Millisecond

func runCommand(name string, args ...string) ([]byte, error) {
	return exec.Command(name, args...).CombinedOutput()
}

// Exec runs argv inside namespace ns ("ip netns exec") and returns its
// combined output. A non-zero exit is an error that includes the output.
func (w *World) Exec(ns string, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("exec: empty argv")
	}
	out, err := runCommand("ip", append([]string{"netns", "exec", ns}, argv...)...)
	if err != nil {
		return out, fmt.Errorf("in %s: %s: %w: %s", ns, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Process is a background program running inside a world namespace, in its
// own process group. Its combined output is kept in memory (and copied to the
// world's LogDir when set). Output written by descendants that outlive it is
// collected for outputGrace after it exits, then dropped.
type Process struct {
	Netns string
	Argv  []string

	cmd  *exec.Cmd
	out  *outputBuffer
	log  *os.File
	done chan struct{}
	err  error // valid after done is closed
}

// Start runs argv inside ns in the background. The process is killed by
// Close (or by Stop). Pdeathsig also kills it if the test binary dies first
// (e.g. on a test timeout, when no cleanup runs); note that Linux delivers it
// when the OS thread that forked exits, which in Go only happens if a
// goroutine exits while locked to that thread.
func (w *World) Start(ns string, argv ...string) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, errors.New("start: world is closed")
	}
	p := &Process{Netns: ns, Argv: argv, out: newOutputBuffer(), done: make(chan struct{})}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = outputGrace
	var sink io.Writer = p.out
	cmd.Stdout, cmd.Stderr = sink, sink
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", strings.Join(argv, " "), ns, err)
	}
	p.cmd = cmd
	if w.logDir != "" {
		p.openLog(w.logDir)
	}
	w.procs = append(w.procs, p)
	go p.wait()
	return p, nil
}

// openLog mirrors output to a file; a failure to open it only loses the copy.
func (p *Process) openLog(dir string) {
	name := fmt.Sprintf("%s-%s-%d.log", p.Netns, filepath.Base(p.Argv[0]), p.cmd.Process.Pid)
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		fmt.Fprintf(p.out, "netns: cannot open log copy: %v\n", err)
		return
	}
	p.log = f
	p.out.setMirror(f)
}

func (p *Process) wait() {
	p.err = p.cmd.Wait()
	if errors.Is(p.err, exec.ErrWaitDelay) {
		p.err = nil // exited cleanly; only a descendant kept the pipe open
	}
	if p.log != nil {
		p.out.setMirror(nil)
		p.log.Close()
	}
	close(p.done)
}

// Pid is the process id (also its process group id).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Output returns everything the process has written so far.
func (p *Process) Output() string { return p.out.String() }

// Done is closed when the process has exited and been reaped (and its
// output collected, for at most outputGrace).
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the exit error (nil for a clean exit); valid once Done is closed.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return errors.New("process still running")
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.Pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %d: %w", sig, p.Pid(), err)
	}
	return nil
}

// Stop sends SIGTERM to the group, waits up to grace, then kills it. It
// returns nil once the process is gone; Err tells how it exited.
func (p *Process) Stop(grace time.Duration) error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	return p.kill()
}

// kill SIGKILLs the whole process group and waits for the reap.
func (p *Process) kill() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("process %d (%s) not reaped %v after SIGKILL", p.Pid(), p.Argv[0], killWait)
	}
}

// WaitOutput waits until the output contains substr, the process exits, or
// timeout passes. It wakes on each write instead of polling.
func (p *Process) WaitOutput(substr string, timeout time.Duration) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		text, changed := p.out.snapshot()
		if strings.Contains(text, substr) {
			return nil
		}
		select {
		case <-changed:
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited (%v) before printing %q; output:\n%s", p.Argv[0], p.err, substr, p.Output())
		case <-timer.C:
			return fmt.Errorf("%s did not print %q within %v; output:\n%s", p.Argv[0], substr, timeout, p.Output())
		}
	}
}

// outputBuffer is a goroutine-safe buffer that tells waiters about writes.
type outputBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	mirror  io.Writer
}

func newOutputBuffer() *outputBuffer {
	return &outputBuffer{changed: make(chan struct{})}
}

func (b *outputBuffer) Write(data []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(data)
	if b.mirror != nil {
		b.mirror.Write(data) // best effort: the in-memory copy is authoritative
	}
	close(b.changed)
	b.changed = make(chan struct{})
	return len(data), nil
}

// setMirror starts copying output to w, beginning with what is already
// buffered, so a mirror attached just after start misses nothing.
func (b *outputBuffer) setMirror(w io.Writer) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w != nil {
		w.Write(b.buf.Bytes())
	}
	b.mirror = w
}

func (b *outputBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// snapshot returns the text and a channel closed by the next write.
func (b *outputBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}
