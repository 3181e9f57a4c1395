package iptables_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Tamper detection against the in-memory Fake: a full sync writes the
// canaries and jumps, a tampering (as an operator or a firewall reload
// does it) removes some, CheckTampering must name exactly those, and the
// full sync it leads to must restore the tables as they were.

// tampering is one way someone else changes the tables, as restore input.
type tampering struct {
	name  string
	input string
	// want are the failing checks, by TamperCheck.String.
	want []string
}

const servicePortalsJump = `-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`

func tamperings() []tampering {
	bothJumps := []string{"nat/PREROUTING -j KUBE-SERVICES", "nat/OUTPUT -j KUBE-SERVICES"}
	return []tampering{
		{name: "untouched", input: ""},
		{name: "nat flushed and its chains deleted (iptables -t nat -F; -X)", input: "*nat\n-F\n-X\nCOMMIT\n",
			want: append([]string{"nat/KUBE-PROXY-CANARY"}, bothJumps...)},
		{name: "nat flushed only (-F leaves the empty canary)", input: "*nat\n-F\nCOMMIT\n", want: bothJumps},
		{name: "KUBE-SERVICES deleted as a firewalld reload does", input: "*nat\n-D PREROUTING " + servicePortalsJump +
			"\n-D OUTPUT " + servicePortalsJump + "\n-F KUBE-SERVICES\n-X KUBE-SERVICES\nCOMMIT\n", want: bothJumps},
		{name: "only the OUTPUT jump deleted", input: "*nat\n-D OUTPUT " + servicePortalsJump + "\nCOMMIT\n",
			want: []string{"nat/OUTPUT -j KUBE-SERVICES"}},
		{name: "mangle canary deleted", input: "*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n", want: []string{"mangle/KUBE-PROXY-CANARY"}},
		{name: "filter flushed and its chains deleted", input: "*filter\n-F\n-X\nCOMMIT\n", want: []string{"filter/KUBE-PROXY-CANARY"}},
	}
}

func checkNames(checks []iptables.TamperCheck) []string {
	var out []string
	for _, c := range checks {
		out = append(out, c.String())
	}
	return out
}

// tablesOf is every table of the fake as iptables-save prints it.
func tablesOf(f *ruleset.Fake) string {
	var b strings.Builder
	for _, name := range []string{"mangle", "nat", "filter"} {
		b.WriteString(ruleset.FormatSave(f.Table(name)))
	}
	return b.String()
}

func TestCheckTamperingNamesWhatWasRemoved(t *testing.T) {
	for _, tt := range tamperings() {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := ruleset.NewFake(ruleset.FakeOptions{})
			mustSync(t, newProxier(t, fake), snapOf(true, nil, svc1, svc2))
			if tt.input != "" {
				if err := fake.Restore(ctx, []byte(tt.input)); err != nil {
					t.Fatalf("tamper: %v", err)
				}
			}
			failed, err := iptables.CheckTampering(ctx, fake, iptables.TamperChecks())
			if err != nil {
				t.Fatal(err)
			}
			if got := checkNames(failed); !slices.Equal(got, tt.want) {
				t.Errorf("failed checks = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTamperedTablesAreRewrittenWhole runs the full sync the monitor asks
// for after each tampering, also when iptables-save fails (as it does on a
// 10k-service nat table) so that the proxier must choose between memory and
// listings: memory says every service chain is in place, which after a
// "-F" is a lie, so ForgetKernelState must make it list and rewrite.
func TestTamperedTablesAreRewrittenWhole(t *testing.T) {
	for _, saveFails := range []bool{false, true} {
		for _, tt := range tamperings()[1:] {
			name := tt.name
			if saveFails {
				name += ", iptables-save failing"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				fake := ruleset.NewFake(ruleset.FakeOptions{})
				p := newProxier(t, fake)
				mustSync(t, p, snapOf(true, nil, svc1, svc2))
				mustSync(t, p, snapOf(false, []string{"ns2/svc2"}, svc1, svc2)) // memory of a partial sync too
				want := tablesOf(fake)
				if err := fake.Restore(ctx, []byte(tt.input)); err != nil {
					t.Fatalf("tamper: %v", err)
				}
				if saveFails {
					fake.FailSaves(errors.New("iptables-save: killed"))
				}
				p.ForgetKernelState()
				if res := mustSync(t, p, snapOf(false, nil, svc1, svc2)); !res.Full {
					t.Error("the sync after ForgetKernelState was partial")
				}
				fake.FailSaves(nil)
				if got := tablesOf(fake); got != want {
					t.Errorf("tables after the rewrite differ from before the tampering:\n%s\nwant:\n%s", got, want)
				}
				if failed, err := iptables.CheckTampering(ctx, fake, iptables.TamperChecks()); err != nil || len(failed) > 0 {
					t.Errorf("after the rewrite: failed checks %q, err %v", checkNames(failed), err)
				}
			})
		}
	}
}

// countingLister counts listings and can fail them; safe for a monitor
// goroutine and the test to share.
type countingLister struct {
	inner iptables.ChainLister
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
	m, err := iptables.NewMonitor(iptables.MonitorOptions{Lister: lister, Interval: time.Hour,
		FullSyncs: func() uint64 { return syncs }, OnTampered: func([]iptables.TamperCheck) {}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing written yet: every check would fail, none may run.
	if failed, err := m.Check(ctx); len(failed) > 0 || err != nil || lister.calls != 0 {
		t.Fatalf("before the first full sync: failed %q, err %v, %d listings; want nothing run", checkNames(failed), err, lister.calls)
	}
	p := newProxier(t, fake)
	mustSync(t, p, snapOf(true, nil, svc1))
	syncs = 1
	if failed, err := m.Check(ctx); len(failed) > 0 || err != nil {
		t.Fatalf("after a full sync: failed %q, err %v", checkNames(failed), err)
	}
	if lister.calls != 5 {
		t.Errorf("%d listings for the five checks, want 5 (one per chain)", lister.calls)
	}
	if err := fake.Restore(ctx, []byte("*nat\n-F\n-X\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if failed, _ := m.Check(ctx); len(failed) != 3 {
		t.Fatalf("after the nat flush: failed %q, want the nat canary and both jumps", checkNames(failed))
	}
	calls := lister.calls
	if failed, _ := m.Check(ctx); len(failed) > 0 || lister.calls != calls {
		t.Errorf("reported again before a full sync ran: %q", checkNames(failed))
	}
	syncs = 2 // a full sync ran, yet the tables are still broken (someone flushed again)
	if failed, _ := m.Check(ctx); len(failed) != 3 {
		t.Errorf("after another full sync: failed %q, want the same three again", checkNames(failed))
	}
	lister.fail(errors.New("xtables lock held"))
	syncs = 3
	if failed, err := m.Check(ctx); len(failed) > 0 || err == nil {
		t.Errorf("a failing listing gave failed %q, err %v; want only the error", checkNames(failed), err)
	}
}

func TestMonitorRunReportsTamperingAndErrors(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	mustSync(t, newProxier(t, fake), snapOf(true, nil, svc1))
	lister := &countingLister{inner: fake, err: errors.New("xtables lock held")}
	tampered, errs := make(chan []iptables.TamperCheck, 10), make(chan error, 10)
	m, err := iptables.NewMonitor(iptables.MonitorOptions{Lister: lister, Interval: 5 * time.Millisecond,
		FullSyncs:  func() uint64 { return 1 },
		OnTampered: func(f []iptables.TamperCheck) { tampered <- f },
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
		t.Fatalf("a failed listing was reported as tampering: %q", checkNames(f))
	case <-time.After(5 * time.Second):
		t.Fatal("OnError not called for a failing listing")
	}
	if err := fake.Restore(ctx, []byte("*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	lister.fail(nil)
	select {
	case f := <-tampered:
		if got := checkNames(f); !slices.Equal(got, []string{"mangle/KUBE-PROXY-CANARY"}) {
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
	if err := fake.Restore(ctx, iptables.CanaryRestoreInput()); err != nil {
		t.Fatal(err)
	}
	failed, err := iptables.CheckTampering(ctx, fake, iptables.TamperChecks()[:3])
	if err != nil || len(failed) > 0 {
		t.Errorf("canary checks after CanaryRestoreInput: failed %q, err %v", checkNames(failed), err)
	}
}

func TestNewMonitorValidatesOptions(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	ok := iptables.MonitorOptions{Lister: fake, Interval: time.Second, FullSyncs: func() uint64 { return 0 },
		OnTampered: func([]iptables.TamperCheck) {}}
	for name, mutate := range map[string]func(*iptables.MonitorOptions){
		"no lister":     func(o *iptables.MonitorOptions) { o.Lister = nil },
		"zero interval": func(o *iptables.MonitorOptions) { o.Interval = 0 },
		"no FullSyncs":  func(o *iptables.MonitorOptions) { o.FullSyncs = nil },
		"no OnTampered": func(o *iptables.MonitorOptions) { o.OnTampered = nil },
	} {
		o := ok
		mutate(&o)
		if _, err := iptables.NewMonitor(o); err == nil {
			t.Errorf("%s: NewMonitor accepted it", name)
		}
	}
	if _, err := iptables.NewMonitor(ok); err != nil {
		t.Errorf("valid options: %v", err)
	}
}
