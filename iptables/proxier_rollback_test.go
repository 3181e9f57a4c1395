package iptables_test

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

func newProxierOn(t *testing.T, r netfilter.Restorer) *iptables.Proxier {
	t.Helper()
	p, err := iptables.New(iptables.Options{Restorer: r, Render: iptables.RenderOptions{
		MasqueradeMark: "0x00004000",
		LocalDetector:  netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
		NodeIPs:        []netip.Addr{netip.MustParseAddr("192.168.0.2")},
		RandomFully:    true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// inputRecorder keeps every restore input given to a Fake.
type inputRecorder struct {
	*ruleset.Fake
	inputs [][]byte
}

func (r *inputRecorder) Restore(ctx context.Context, data []byte) error {
	r.inputs = append(r.inputs, bytes.Clone(data))
	return r.Fake.Restore(ctx, data)
}

// TestSyncFailingInNATLeavesEveryTableAsItWas: the kernel (the fake commits
// each table block on its own, as iptables-restore does) refuses the nat
// half of syncs that change filter too. Without the rollback the filter
// block would stay applied: the REJECT for a service that lost its
// endpoints (partial sync), or the whole rewrite of a full sync.
func TestSyncFailingInNATLeavesEveryTableAsItWas(t *testing.T) {
	noEndpoints := svc2
	noEndpoints.endpoints = nil
	tests := []struct {
		name string
		// full makes the failing sync full (ForceFull); reads says whether
		// it may read the kernel: a partial sync's view of the kernel is
		// the proxier's memory of what it wrote.
		full, reads bool
	}{
		{name: "partial sync"},
		{name: "full sync", full: true, reads: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &inputRecorder{Fake: ruleset.NewFake(ruleset.FakeOptions{})}
			w := newWorld(t).set(svc1, svc2)
			r := newViaRunner(t, newProxierOn(t, f), w)
			r.mustSync(t)
			before := tablesOf(f.Fake)

			f.FailNextBlock("nat", 1)
			saves, lists := f.Reads()
			w.set(svc1, noEndpoints)
			if tt.full {
				r.runner.ForceFull()
			}
			_, err := r.sync()
			if err == nil {
				t.Fatal("sync succeeded although nat failed")
			}
			last := string(f.inputs[len(f.inputs)-2])
			if !strings.Contains(last, "*filter\n") || !strings.Contains(last, "has no endpoints") {
				t.Fatalf("the failed sync did not change filter; the test proves nothing:\n%s", last)
			}
			// nat, the table too large to snapshot at scale, commits last.
			if i := strings.LastIndex(last, "\n*"); !strings.HasPrefix(last[i:], "\n*nat\n") {
				t.Errorf("the last block of the input is not nat:\n%s", last)
			}
			if nowSaves, nowLists := f.Reads(); !tt.reads && nowSaves+nowLists > saves+lists {
				t.Errorf("the partial sync ran %d Saves and %d chain listings, want none", nowSaves-saves, nowLists-lists)
			}
			if after := tablesOf(f.Fake); after != before {
				t.Errorf("tables after the failed sync:\n%s\nbefore:\n%s", after, before)
			}

			// The runner owns the retry: the sync after a failure is full.
			res := r.mustSync(t)
			if !res.Full {
				t.Error("the sync after the failure was not full")
			}
			filter := tablesOf(f.Fake)
			if !strings.Contains(filter, `"ns2/svc2:p80 has no endpoints"`) || hasChain(f.Fake, "nat", svc2Chain) {
				t.Errorf("the retry did not converge:\n%s", filter)
			}
		})
	}
}
