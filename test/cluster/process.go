package cluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Stop timing: a graceful stop first (etcd and kube-apiserver exit within
// a second or two on SIGTERM), then SIGKILL and a bounded wait for the reap.
const (
	stopGrace = 5 * time.Second
	killWait  = 5 * time.Second
)

// process is a program running inside the namespace in its own process
// group, its output going to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	done    chan struct{}
	err     error // valid once done is closed
}

// startProcess runs argv inside ns ("ip netns exec"), with env added to the
// environment and output to <logDir>/<name>.log. Pdeathsig kills it when the
// test binary dies without cleanup (a test timeout).
func startProcess(ns, name, logDir string, env []string, argv ...string) (*process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, ns, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// signal sends sig to the process group (the pid is the group id).
func (p *process) signal(sig syscall.Signal) error {
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %v to %s (%d): %w", sig, p.name, p.cmd.Process.Pid, err)
	}
	return nil
}

// stop terminates the process group: SIGTERM, then SIGKILL after stopGrace.
// It returns nil once the process has been reaped.
func (p *process) stop() error {
	if done, _ := p.exited(); done {
		return p.signal(syscall.SIGKILL) // descendants left in the group, if any
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("%s (%d) not reaped %v after SIGKILL", p.name, p.cmd.Process.Pid, killWait)
	}
}

// tail returns the last n lines of the process's log.
func (p *process) tail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log %s unreadable: %v)", p.logPath, err)
	}
	return fmt.Sprintf("--- %s (%s), last %d lines:\n%s", p.name, p.logPath, n,
		strings.TrimRight(lastLines(string(data), n), "\n"))
}
