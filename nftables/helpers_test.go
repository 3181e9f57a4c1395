package nftables

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/nftlisting"
)

// Upstream's test fixture (pkg/proxy/nftables/proxier_test.go NewFakeProxier).
const (
	testNodeName = "test-node"
	testNodeIP   = "192.168.0.2"
	testNodeIPv6 = "2001:db8::1"
)

// fakeClock is a settable clock for stale chain deletion.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// recordingNFT wraps the Fake: it records every transaction run and can
// make the next ones fail as nft would (the Fake is then left untouched).
type recordingNFT struct {
	*knftables.Fake
	txs  []string
	fail int // fail the next fail transactions
	pass int // ... after letting pass transactions through
}

func (r *recordingNFT) Run(ctx context.Context, tx *knftables.Transaction) error {
	r.txs = append(r.txs, tx.String())
	if r.fail > 0 && r.pass > 0 {
		r.pass--
	} else if r.fail > 0 {
		r.fail--
		return errors.New("nft: Error: Could not process rule: injected failure")
	}
	return r.Fake.Run(ctx, tx)
}

// last returns the last transaction's text.
func (r *recordingNFT) last() string {
	if len(r.txs) == 0 {
		return ""
	}
	return r.txs[len(r.txs)-1]
}

type testEnv struct {
	t     *testing.T
	world *proxiertest.World
	nft   *recordingNFT
	p     *Proxier
	clock *fakeClock
}

func newTestEnv(t *testing.T, fam v1.IPFamily, mod ...func(*Options)) *testEnv {
	t.Helper()
	kf, nodeIP, podCIDR, svcCIDR := knftables.IPv4Family, testNodeIP, "10.0.0.0/8", "172.30.0.0/16"
	if fam == v1.IPv6Protocol {
		kf, nodeIP, podCIDR, svcCIDR = knftables.IPv6Family, testNodeIPv6, "fd00:10::/64", "fd00:10:96::/112"
	}
	nft := &recordingNFT{Fake: knftables.NewFake(kf, TableName)}
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	opts := Options{NFT: nft, Family: fam, MasqueradeMark: "0x4000", Now: clock.now,
		LocalDetector: netfilter.LocalDetector{IfLocal: []string{"-s", podCIDR}, IfNotLocal: []string{"!", "-s", podCIDR}},
		NodePortIPs:   []netip.Addr{netip.MustParseAddr(nodeIP)}, NodeIP: netip.MustParseAddr(nodeIP),
		ServiceCIDRs: []netip.Prefix{netip.MustParsePrefix(svcCIDR)}}
	for _, m := range mod {
		m(&opts)
	}
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	w := proxiertest.NewWorld(t, proxiertest.WorldOptions{Family: fam, NodeName: testNodeName, NodeIPs: []string{nodeIP}})
	return &testEnv{t: t, world: w, nft: nft, p: p, clock: clock}
}

// sync syncs the world's pending changes and fails the test on error.
func (e *testEnv) sync() proxier.SyncResult {
	e.t.Helper()
	res, err := e.p.Sync(context.Background(), e.world.Snapshot())
	if err != nil {
		e.t.Fatalf("sync: %v", err)
	}
	return res
}

// normalizeDump sorts nft commands as upstream's tests compare them:
// blank lines and comments dropped, object declarations and elements
// sorted, rules grouped by chain in their order.
func normalizeDump(s string) string {
	var decls []string
	rules := map[string][]string{}
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		w := strings.SplitN(line, " ", 6)
		if len(w) >= 5 && w[1] == "rule" {
			rules[w[4]] = append(rules[w[4]], line)
			continue
		}
		decls = append(decls, line)
	}
	slices.Sort(decls)
	chains := make([]string, 0, len(rules))
	for c := range rules {
		chains = append(chains, c)
	}
	slices.Sort(chains)
	out := decls
	for _, c := range chains {
		out = append(out, rules[c]...)
	}
	return strings.Join(out, "\n")
}

func assertTable(t *testing.T, want, got string) {
	t.Helper()
	nw, ng := normalizeDump(want), normalizeDump(got)
	if nw != ng {
		t.Errorf("table differs:\n%s\n(order-only differences if empty)\nfull:\n%s", nftlisting.LineDiff(nw, ng), got)
	}
}

type netfilterDetector = netfilter.LocalDetector

func localDetectorFor(fam v1.IPFamily) netfilter.LocalDetector {
	c := "10.0.0.0/8"
	if fam == v1.IPv6Protocol {
		c = "fd00:10::/64"
	}
	return netfilter.LocalDetector{IfLocal: []string{"-s", c}, IfNotLocal: []string{"!", "-s", c}}
}

func counterValue(t *testing.T, c *prometheus.CounterVec, labels ...string) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.WithLabelValues(labels...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// Endpoint_ is an EndpointSlice endpoint (proxiertest.Endpoint's result).
type Endpoint_ = discovery.Endpoint

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
