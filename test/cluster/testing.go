package cluster

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// binariesTimeout bounds the first build of kube-apiserver (about ten
// minutes on 2 shared cores) plus the cluster's startup.
const binariesTimeout = 25 * time.Minute

// SkipReason says why the cluster tier cannot run here, or "".
func SkipReason() string {
	if os.Geteuid() != 0 {
		return "cluster test: needs root to create a network namespace (run the README's test command as root)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "cluster test: iproute2 'ip' not found in PATH"
	}
	return ""
}

// StartForTest starts a cluster for t (see Start): it skips or fails when
// the tier cannot run, fails t when startup fails, and closes the cluster on
// cleanup. A failing test keeps the logs (their directory is printed with
// their tails); a passing one removes them.
func StartForTest(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if reason := SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	keepOnFailure := opts.LogDir == ""
	if keepOnFailure {
		dir, err := os.MkdirTemp("", "kpx-cluster-logs-")
		if err != nil {
			t.Fatalf("cluster log directory: %v", err)
		}
		opts.LogDir = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), binariesTimeout)
	defer cancel()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("%v\n(logs kept in %s)", err, opts.LogDir)
	}
	t.Cleanup(func() {
		failed := t.Failed()
		if failed {
			t.Logf("cluster logs kept in %s\n%s", c.LogDir, c.Logs(30))
		}
		if err := c.Close(); err != nil {
			t.Errorf("close cluster %s: %v", c.Netns, err)
		}
		if keepOnFailure && !failed {
			os.RemoveAll(c.LogDir)
		}
	})
	return c
}
