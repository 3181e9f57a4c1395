package netfilter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// writeFullSync writes what every mode's full sync leaves for the tamper
// checks: the canaries and the nat jumps to KUBE-SERVICES.
func writeFullSync(t *testing.T, fake *ruleset.Fake) {
	t.Helper()
	in := string(netfilter.CanaryRestoreInput()) + "*nat\n:KUBE-SERVICES - [0:0]\n"
	for _, j := range netfilter.IPVSJumpRules() {
		if j.Table == "nat" && j.To == netfilter.ServicesChain {
			in += j.InsertLine() + "\n"
		}
	}
	if err := fake.Restore(context.Background(), []byte(in+"COMMIT\n")); err != nil {
		t.Fatal(err)
	}
}

// countingLister counts listings and can fail them; safe for a monitor
// goroutine and the test to share.
type countingLister struct {
	inner netfilter.ChainLister
	mu    sync.Mutex
	calls int
	err   error
}

func (l *countingLister) ListChain(ctx context.Context, table, chain string) ([]byte, error) {
	l.mu.Lock()
	l.calls++
	err := l.err
	l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return l.inner.ListChain(ctx, table, chain)
}

func (l *countingLister) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err = err
}

func TestMonitorChecksOnlyAfterAFullSyncAndReportsOncePerSync(t *testing.T) {
	ctx := context.Background()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	lister := &countingLister{inner: fake}
	var syncs uint64
	m, err := netfilter.NewMonitor(netfilter.MonitorOptions{Lister: lister, Interval: time.Hour,
		FullSyncs: func() uint64 { return syncs }, OnTampered: func([]netfilter.TamperCheck) {}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing written yet: every check would fail, none may run.
	if failed, err := m.Check(ctx); len(failed) > 0 || err != nil || lister.calls != 0 {
		t.Fatalf("before the first full sync: failed %q, err %v, %d listings; want nothing run", failed, err, lister.calls)
	}
	writeFullSync(t, fake)
	syncs = 1
	if failed, err := m.Check(ctx); len(failed) > 0 || err != nil {
		t.Fatalf("after a full sync: failed %q, err %v", failed, err)
	}
	if lister.calls != 5 {
		t.Errorf("%d listings for the five checks, want 5 (one per chain)", lister.calls)
	}
	if err := fake.Restore(ctx, []byte("*nat\n-F\n-X\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if failed, _ := m.Check(ctx); len(failed) != 3 {
		t.Fatalf("after the nat flush: failed %q, want the nat canary and both jumps", failed)
	}
	calls := lister.calls
	if failed, _ := m.Check(ctx); len(failed) > 0 || lister.calls != calls {
		t.Errorf("reported again before a full sync ran: %q", failed)
	}
	syncs = 2 // a full sync ran, yet the tables are still broken (someone flushed again)
	if failed, _ := m.Check(ctx); len(failed) != 3 {
		t.Errorf("after another full sync: failed %q, want the same three again", failed)
	}
	lister.fail(errors.New("xtables lock held"))
	syncs = 3
	if failed, err := m.Check(ctx); len(failed) > 0 || err == nil {
		t.Errorf("a failing listing gave failed %q, err %v; want only the error", failed, err)
	}
}

func TestMonitorRunReportsTamperingAndErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	writeFullSync(t, fake)
	lister := &countingLister{inner: fake, err: errors.New("xtables lock held")}
	tampered, errs := make(chan []netfilter.TamperCheck, 10), make(chan error, 10)
	m, err := netfilter.NewMonitor(netfilter.MonitorOptions{Lister: lister, Interval: 5 * time.Millisecond,
		FullSyncs:  func() uint64 { return 1 },
		OnTampered: func(f []netfilter.TamperCheck) { tampered <- f },
		OnError:    func(err error) { errs <- err }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { m.Run(ctx); close(done) }()
	select {
	case err := <-errs:
		if !strings.Contains(err.Error(), "xtables lock held") {
			t.Errorf("OnError got %v", err)
		}
	case f := <-tampered:
		t.Fatalf("a failed listing was reported as tampering: %q", f)
	case <-time.After(5 * time.Second):
		t.Fatal("OnError not called for a failing listing")
	}
	if err := fake.Restore(ctx, []byte("*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	lister.fail(nil)
	select {
	case f := <-tampered:
		if got := fmt.Sprint(f); got != "[mangle/KUBE-PROXY-CANARY]" {
			t.Errorf("OnTampered got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnTampered not called after the mangle canary was deleted")
	}
	cancel()
	<-done
}

func TestCanaryRestoreInputCreatesTheCanaries(t *testing.T) {
	ctx := context.Background()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	if err := fake.Restore(ctx, netfilter.CanaryRestoreInput()); err != nil {
		t.Fatal(err)
	}
	failed, err := netfilter.CheckTampering(ctx, fake, netfilter.TamperChecks()[:3])
	if err != nil || len(failed) > 0 {
		t.Errorf("canary checks after CanaryRestoreInput: failed %q, err %v", failed, err)
	}
}

func TestNewMonitorValidatesOptions(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	ok := netfilter.MonitorOptions{Lister: fake, Interval: time.Second, FullSyncs: func() uint64 { return 0 },
		OnTampered: func([]netfilter.TamperCheck) {}}
	for name, mutate := range map[string]func(*netfilter.MonitorOptions){
		"no lister":     func(o *netfilter.MonitorOptions) { o.Lister = nil },
		"zero interval": func(o *netfilter.MonitorOptions) { o.Interval = 0 },
		"no FullSyncs":  func(o *netfilter.MonitorOptions) { o.FullSyncs = nil },
		"no OnTampered": func(o *netfilter.MonitorOptions) { o.OnTampered = nil },
	} {
		o := ok
		mutate(&o)
		if _, err := netfilter.NewMonitor(o); err == nil {
			t.Errorf("%s: NewMonitor accepted it", name)
		}
	}
	if _, err := netfilter.NewMonitor(ok); err != nil {
		t.Errorf("valid options: %v", err)
	}
}
