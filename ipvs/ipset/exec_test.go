package ipset_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/proxier/command"
)

// fakeIPSetScript is a stand-in for the ipset binary: "list" prints the
// sets restored so far, "restore" appends its batch to them, and while the
// file "hang" exists every run blocks in a child process holding the output
// pipe, as an ipset stuck on a kernel lock would.
const fakeIPSetScript = `#!/bin/sh
dir=$(dirname "$0")
if [ -e "$dir/hang" ]; then
	sleep 600
	exit 1
fi
case "$*" in
*restore*) cat >> "$dir/state" ;;
*list*) touch "$dir/state"; awk '!seen[$0]++' "$dir/state" ;;
*) exit 2 ;;
esac
`

func newFakeIPSetCommand(t *testing.T) (cmd []string, hang string) {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "ipset")
	if err := os.WriteFile(bin, []byte(fakeIPSetScript), 0o755); err != nil {
		t.Fatal(err)
	}
	return []string{bin}, filepath.Join(dir, "hang")
}

// TestHungIPSetTimesOutInsteadOfHanging runs Exec over a real process that
// hangs: Restore and List must fail with a *command.TimeoutError naming
// ipset within the deadline, and work again once the command recovers.
func TestHungIPSetTimesOutInsteadOfHanging(t *testing.T) {
	ctx := context.Background()
	cmd, hang := newFakeIPSetCommand(t)
	timeouts := command.Timeouts{Base: 300 * time.Millisecond, PerMB: time.Second}
	sets := ipset.NewExec(ipset.ExecOptions{Command: cmd, Timeouts: timeouts})
	b := &ipset.Batch{}
	b.Create(clusterIPSpec())
	b.Add("KUBE-CLUSTER-IP", "172.30.0.1,tcp:80")
	if err := sets.Restore(ctx, b); err != nil {
		t.Fatal(err)
	}

	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func() error{
		"restore": func() error { return sets.Restore(ctx, b) },
		"list":    func() error { _, err := sets.List(ctx); return err },
	} {
		start := time.Now()
		err := run()
		elapsed := time.Since(start)
		var te *command.TimeoutError
		if !errors.As(err, &te) {
			t.Fatalf("%s with a hung ipset: err = %v, want a *command.TimeoutError", name, err)
		}
		if elapsed > timeouts.Base+timeouts.PerMB+command.WaitDelay {
			t.Errorf("%s returned after %v", name, elapsed)
		}
		if !strings.Contains(err.Error(), "ipset") {
			t.Errorf("%s error %q does not name the command", name, err)
		}
	}

	if err := os.Remove(hang); err != nil {
		t.Fatal(err)
	}
	list, err := sets.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := list["KUBE-CLUSTER-IP"]; got == nil || !strings.Contains(strings.Join(got.Members, " "), "172.30.0.1,tcp:80") {
		t.Errorf("KUBE-CLUSTER-IP after recovery = %+v, want 172.30.0.1,tcp:80 in it", got)
	}
}
