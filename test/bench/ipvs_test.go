package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
)

// acceptingRestorer accepts every restore and saves empty tables (the
// ruleset fake does not model the ipset matches IPVS mode writes).
type acceptingRestorer struct{}

func (acceptingRestorer) Restore(context.Context, []byte) error        { return nil }
func (acceptingRestorer) Save(context.Context, string) ([]byte, error) { return nil, nil }

// fakeKit is an ipvsKit over the ipvs package's fakes.
func fakeKit() *ipvsKit {
	return &ipvsKit{meters: ipvsMeters{
		handle: &HandleMeter{Handle: vs.NewFake(vs.FakeOptions{})},
		addrs:  &AddressMeter{Manager: addresses.NewFake()},
		sets:   &IPSetMeter{Interface: ipset.NewFake()},
	}}
}

// syncCounts runs one metered sync focused on the services focus.
func syncCounts(t *testing.T, k *ipvsKit, w *World, p proxier.Backend, tr *proxier.Tracker, full bool, focus ...int) *IPVSCounts {
	t.Helper()
	k.meters.reset()
	k.focusOn(w, focus...)
	snap := tr.Snapshot()
	snap.Full = full
	if _, err := p.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	return k.counts()
}

func TestIPVSMetersCountFullAndPartialSyncs(t *testing.T) {
	w, err := NewWorld(WorldOptions{Services: 5, Endpoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	k := fakeKit()
	p, err := k.newProxier(&Meter{Inner: acceptingRestorer{}})
	if err != nil {
		t.Fatal(err)
	}
	tr := w.NewTracker()
	full := syncCounts(t, k, w, p, tr, true)
	if full.Handle.List != 1 || full.Servers != 5 || full.Handle.NewServer != 5 || full.Handle.NewDest != 15 ||
		full.Address.Bind != 5 || full.Address.Reads == 0 || full.IPSetRestores != 1 {
		t.Errorf("full sync counts = %+v, want 1 listing, 5 servers and 15 destinations created, 5 binds, address reads, 1 ipset restore", full)
	}
	if full.Reconcile.Created != 5 || full.Reconcile.DestsAdded != 15 {
		t.Errorf("full sync LastStats = %+v, want 5 created, 15 destinations added", full.Reconcile)
	}

	tr.OnEndpointSliceUpdate(w.Slices[1], w.ChangeEndpoint(1))
	part := syncCounts(t, k, w, p, tr, false, 1)
	want := HandleCalls{Get: 1, ListDests: 1, NewDest: 1, DelDest: 1}
	if part.Handle != want || part.Servers != 1 || part.Outside != 0 || part.Address != (AddressCalls{}) {
		t.Errorf("partial sync counts = %+v, want handle %+v on 1 server, nothing outside, no address calls", part, want)
	}
	if err := CheckIPVSPartial([]Sample{{Mode: ModeIPVS, Scenario: ScenarioEndpoint, IPVS: part}}); err != nil {
		t.Errorf("CheckIPVSPartial: %v", err)
	}

	// The same kind of change measured against another service's focus
	// is reported as outside: the check can fail.
	tr.OnEndpointSliceDelete(w.Slices[2])
	if other := syncCounts(t, k, w, p, tr, false, 0); other.Outside != 1 {
		t.Errorf("partial sync of service 2 focused on service 0: outside = %d, want 1", other.Outside)
	}
}

func TestCheckIPVSPartial(t *testing.T) {
	clean := &IPVSCounts{Handle: HandleCalls{Get: 1, ListDests: 1}, Servers: 1}
	tests := []struct {
		name    string
		sample  Sample
		wantErr string
	}{
		{"clean partial", Sample{Mode: ModeIPVS, Scenario: ScenarioEndpoint, IPVS: clean}, ""},
		{"table listing", Sample{Mode: ModeIPVS, Scenario: ScenarioEndpoint, IPVS: &IPVSCounts{Handle: HandleCalls{List: 1}}}, "1 table listings"},
		{"address rescan", Sample{Mode: ModeIPVS, Scenario: ScenarioSliceDelete, IPVS: &IPVSCounts{Address: AddressCalls{Reads: 2}}}, "2 address reads"},
		{"outside the change", Sample{Mode: ModeIPVS, Scenario: ScenarioEndpoint, IPVS: &IPVSCounts{Outside: 3}}, "3 virtual servers/addresses outside"},
		{"full syncs may rescan", Sample{Mode: ModeIPVS, Scenario: ScenarioFull, Full: true, IPVS: &IPVSCounts{Handle: HandleCalls{List: 1}}}, ""},
		{"iptables samples are ignored", Sample{Mode: ModeIPTables, Scenario: ScenarioEndpoint}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckIPVSPartial([]Sample{tt.sample})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckIPVSPartial = %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckIPVSPartial = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestCompareDividesIPVSByIPTablesPerScenario(t *testing.T) {
	samples := []Sample{
		{Mode: ModeIPTables, Scenario: ScenarioFull, Sync: 4 * time.Second},
		{Mode: ModeIPVS, Scenario: ScenarioFull, Sync: time.Second, IPVS: &IPVSCounts{}},
		{Mode: ModeIPTables, Scenario: ScenarioEndpoint, Sync: time.Second},
		{Mode: ModeIPVS, Scenario: ScenarioEndpoint, Sync: 2 * time.Second, IPVS: &IPVSCounts{}},
		{Mode: ModeIPVS, Scenario: ScenarioResync, Sync: time.Second, IPVS: &IPVSCounts{}},
	}
	got := Compare(SummarizeMode(samples, ModeIPTables), SummarizeMode(samples, ModeIPVS))
	want := []Comparison{
		{Scenario: ScenarioFull, IPTables: 4 * time.Second, IPVS: time.Second, Ratio: 0.25},
		{Scenario: ScenarioEndpoint, IPTables: time.Second, IPVS: 2 * time.Second, Ratio: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("Compare = %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Compare[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestIPVSTableShowsOutsideOnlyForPartialScenarios(t *testing.T) {
	samples := []Sample{
		{Mode: ModeIPVS, Scenario: ScenarioFull, Full: true, IPVS: &IPVSCounts{Servers: 7, Outside: 7}},
		{Mode: ModeIPVS, Scenario: ScenarioEndpoint, IPVS: &IPVSCounts{Servers: 1}},
	}
	var b strings.Builder
	if err := WriteIPVSTable(&b, "t", SummarizeMode(samples, ModeIPVS)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if len(lines) < 4 || !strings.Contains(lines[2], " - ") || strings.Contains(lines[3], " - ") {
		t.Errorf("table:\n%s\nwant '-' for outside on the full row only", b.String())
	}
}

// BenchmarkIPVSPartialSyncOverFakes is the CPU side of an IPVS partial sync
// (one endpoint of one service changed) with every kernel seam faked: what
// grows with the number of services when the kernel calls do not.
func BenchmarkIPVSPartialSyncOverFakes(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			w, err := NewWorld(WorldOptions{Services: n, Endpoints: 10})
			if err != nil {
				b.Fatal(err)
			}
			k := fakeKit()
			p, err := k.newProxier(&Meter{Inner: acceptingRestorer{}})
			if err != nil {
				b.Fatal(err)
			}
			tr := w.NewTracker()
			snap := tr.Snapshot()
			snap.Full = true
			ctx := context.Background()
			if _, err := p.Sync(ctx, snap); err != nil {
				b.Fatal(err)
			}
			old, changed := w.Slices[1], w.ChangeEndpoint(1)
			var syncTime time.Duration
			b.ResetTimer()
			for i := range b.N {
				if i%2 == 0 {
					tr.OnEndpointSliceUpdate(old, changed)
				} else {
					tr.OnEndpointSliceUpdate(changed, old)
				}
				snap := tr.Snapshot()
				start := time.Now()
				if _, err := p.Sync(ctx, snap); err != nil {
					b.Fatal(err)
				}
				syncTime += time.Since(start)
			}
			// The backend's share, without the tracker's snapshot.
			b.ReportMetric(float64(syncTime.Nanoseconds())/float64(b.N), "sync-ns/op")
		})
	}
}
