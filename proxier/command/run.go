package command

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Default deadline policy (see the package documentation for why).
const (
	DefaultBase  = 60 * time.Second
	DefaultPerMB = 5 * time.Second
)

// WaitDelay bounds how long Run waits, after the process exited or was
// killed, for descendants that still hold its output pipes.
const WaitDelay = 2 * time.Second

// Timeouts is a deadline policy: Base for every command plus PerMB for each
// MiB of its standard input, in proportion.
type Timeouts struct {
	Base  time.Duration
	PerMB time.Duration
}

// WithDefaults replaces zero or negative fields by DefaultBase and DefaultPerMB.
func (t Timeouts) WithDefaults() Timeouts {
	if t.Base <= 0 {
		t.Base = DefaultBase
	}
	if t.PerMB <= 0 {
		t.PerMB = DefaultPerMB
	}
	return t
}

// Validate rejects negative durations.
func (t Timeouts) Validate() error {
	if t.Base < 0 || t.PerMB < 0 {
		return fmt.Errorf("negative command timeout (base %v, per MB %v)", t.Base, t.PerMB)
	}
	return nil
}

// For is the deadline of a command reading inputBytes on stdin.
func (t Timeouts) For(inputBytes int) time.Duration {
	const mib = 1 << 20
	return t.Base + time.Duration(float64(t.PerMB)*float64(inputBytes)/mib)
}

// TimeoutError is a command killed because its deadline passed.
type TimeoutError struct {
	Command string
	After   time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%s timed out after %v and was killed", e.Command, e.After.Round(time.Millisecond))
}

// Unwrap makes errors.Is(err, context.DeadlineExceeded) true.
func (e *TimeoutError) Unwrap() error { return context.DeadlineExceeded }

// Result is what a command printed.
type Result struct {
	Stdout []byte
	Stderr string
}

// Run runs argv with stdin (nil for none) and returns its output. It fails
// with a *TimeoutError when timeout (> 0) passes, with ctx's error when ctx
// ends first, and with the *exec.ExitError or *exec.Error otherwise.
func Run(ctx context.Context, timeout time.Duration, stdin []byte, argv []string) (Result, error) {
	if len(argv) == 0 {
		return Result{}, errors.New("run: empty command")
	}
	parent := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = WaitDelay
	err := cmd.Run()
	res := Result{Stdout: out.Bytes(), Stderr: errOut.String()}
	switch {
	case err == nil:
		return res, nil
	case parent.Err() != nil:
		return res, fmt.Errorf("%w (%w)", parent.Err(), err)
	case ctx.Err() != nil:
		return res, &TimeoutError{Command: strings.Join(argv, " "), After: timeout}
	}
	return res, err
}

// killGroup SIGKILLs the command's process group (Setpgid made its pid the
// group id), so a wrapper script's children die with it.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}
