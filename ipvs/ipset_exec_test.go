package ipvs_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs"
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

// TestHungIPSetFailsTheSyncInsteadOfHangingIt runs IPVS mode's ipset step
// through a real process that hangs: the sync must fail with a timeout
// within the deadline, and the sync after the command recovers must
// succeed and be full.
func TestHungIPSetFailsTheSyncInsteadOfHangingIt(t *testing.T) {
	cmd, hang := newFakeIPSetCommand(t)
	timeouts := command.Timeouts{Base: 300 * time.Millisecond, PerMB: time.Second}
	sets := ipvs.NewExecIPSet(ipvs.ExecIPSetOptions{Command: cmd, Timeouts: timeouts})
	w := newWorld(t, func(o *ipvs.Options) {
		o.Netfilter = &ipvs.NetfilterOptions{IPSet: sets, Restorer: &recordingRestorer{saved: map[string]string{}},
			Rules: ipvs.RulesOptions{MasqueradeMark: mark}}
	})
	a := e(svc("a", "172.30.0.1", withNodePort(30080)))
	w.sync(snapshot(a))

	if err := os.WriteFile(hang, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := w.p.Sync(context.Background(), partial(snapshot(a, e(svc("b", "172.30.0.2"))), "b"))
	elapsed := time.Since(start)
	var te *command.TimeoutError
	if !errors.As(err, &te) {
		t.Fatalf("Sync with a hung ipset: err = %v, want a *command.TimeoutError", err)
	}
	if elapsed > timeouts.Base+timeouts.PerMB+command.WaitDelay {
		t.Errorf("Sync returned after %v", elapsed)
	}
	if !strings.Contains(err.Error(), "ipset") {
		t.Errorf("error %q does not name the command", err)
	}

	if err := os.Remove(hang); err != nil {
		t.Fatal(err)
	}
	res := w.sync(partial(snapshot(a, e(svc("b", "172.30.0.2"))), "b"))
	if !res.Full {
		t.Error("the sync after the timeout was not full")
	}
	list, err := sets.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := list["KUBE-CLUSTER-IP"]; got == nil || !strings.Contains(strings.Join(got.Members, " "), "172.30.0.2,tcp:80") {
		t.Errorf("KUBE-CLUSTER-IP after recovery = %+v, want 172.30.0.2,tcp:80 in it", got)
	}
}
