package command

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestTimeoutsFor(t *testing.T) {
	tests := []struct {
		t     Timeouts
		bytes int
		want  time.Duration
	}{
		{Timeouts{Base: time.Minute, PerMB: 5 * time.Second}, 0, time.Minute},
		{Timeouts{Base: time.Minute, PerMB: 5 * time.Second}, 1 << 19, time.Minute + 2500*time.Millisecond},
		{Timeouts{Base: time.Minute, PerMB: 5 * time.Second}, 1 << 20, time.Minute + 5*time.Second},
		{Timeouts{Base: time.Minute, PerMB: 5 * time.Second}, 31 << 20, time.Minute + 155*time.Second},
		{Timeouts{}.WithDefaults(), 93 << 20, DefaultBase + 93*DefaultPerMB},
		{Timeouts{Base: time.Second}.WithDefaults(), 0, time.Second},
	}
	for _, tt := range tests {
		if got := tt.t.For(tt.bytes); got != tt.want {
			t.Errorf("%+v.For(%d) = %v, want %v", tt.t, tt.bytes, got, tt.want)
		}
	}
	if err := (Timeouts{Base: -1}).Validate(); err == nil {
		t.Error("negative base accepted")
	}
}

func TestRunOutputAndExitStatus(t *testing.T) {
	res, err := Run(context.Background(), time.Minute, []byte("in\n"), []string{"sh", "-c", "cat; echo err >&2"})
	if err != nil || string(res.Stdout) != "in\n" || res.Stderr != "err\n" {
		t.Fatalf("Run = %q, %q, %v", res.Stdout, res.Stderr, err)
	}
	_, err = Run(context.Background(), time.Minute, nil, []string{"sh", "-c", "exit 3"})
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("exit 3: err = %v", err)
	}
	var te *TimeoutError
	if errors.As(err, &te) {
		t.Error("a plain failure reported as a timeout")
	}
}

// TestRunKillsTheWholeGroup runs a shell whose child sleeps holding the
// output pipe, as a hung wrapper script would: Run must return soon after
// the deadline, report a timeout, and leave no process behind.
func TestRunKillsTheWholeGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	start := time.Now()
	_, err := Run(context.Background(), 300*time.Millisecond, nil,
		[]string{"sh", "-c", "sleep 60 & echo $! > " + pidFile + "; wait"})
	elapsed := time.Since(start)
	var te *TimeoutError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a *TimeoutError", err)
	}
	if !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Errorf("error %q does not say how long it waited", err)
	}
	if elapsed > 300*time.Millisecond+WaitDelay {
		t.Errorf("Run returned after %v", elapsed)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(data))
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the wrapper's child %s survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func processAlive(t *testing.T, pid string) bool {
	t.Helper()
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return false
	}
	// A killed child not yet reaped by init is a zombie ("Z"): dead.
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}

func TestRunCallerCancelIsNotATimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Run(ctx, time.Minute, nil, []string{"sleep", "60"})
	var te *TimeoutError
	if !errors.Is(err, context.Canceled) || errors.As(err, &te) {
		t.Errorf("err = %v, want context.Canceled and no *TimeoutError", err)
	}
}

func TestRunMissingBinary(t *testing.T) {
	_, err := Run(context.Background(), time.Second, nil, []string{"/nonexistent/kpx-binary"})
	if !errors.Is(err, syscall.ENOENT) {
		t.Errorf("err = %v, want ENOENT", err)
	}
}
