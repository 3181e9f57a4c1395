package nftables

import (
	"fmt"
	"math/rand/v2"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	. "github.com/kproxy/kproxy/proxier/proxiertest"
)

// randomService is a Service of the random world: index i keeps its
// ClusterIP and node ports; everything else is drawn from small pools so
// that services share external IPs, LB IPs and endpoints.
func randomService(r *rand.Rand, fam v1.IPFamily, i int) *v1.Service {
	pick := func(pool ...string) string { return pool[r.IntN(len(pool))] }
	ip := func(v4, v6 string) string {
		if fam == v1.IPv6Protocol {
			return v6
		}
		return v4
	}
	opts := []ServiceOption{ClusterIP(ip(fmt.Sprintf("172.30.0.%d", 10+i), fmt.Sprintf("fd00:10:96::%x", 0x10+i)))}
	nPorts := 1 + r.IntN(2)
	kind := r.IntN(3) // ClusterIP, NodePort, LoadBalancer
	for p := 0; p < nPorts; p++ {
		proto := []v1.Protocol{v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP}[r.IntN(3)]
		opts = append(opts, PortTo(fmt.Sprintf("p%d", p), proto, int32(80+p), int32(8080+r.IntN(2))))
		if kind > 0 {
			opts = append(opts, NodePort(int32(30000+10*i+p)))
		}
	}
	if kind == 2 {
		opts = append(opts, LoadBalancer(pick(ip("1.2.3.4", "2001:db8:4::4"), ip("1.2.3.5", "2001:db8:4::5"))))
		if r.IntN(2) == 0 {
			opts = append(opts, SourceRanges(pick(ip("203.0.113.0/25", "2001:db8:9::/64"), ip("192.168.0.0/16", "2001:db8::/32"))))
		}
		if r.IntN(2) == 0 {
			opts = append(opts, ExternalLocal(), HealthCheckNodePort(int32(31000+i)))
		}
	}
	if r.IntN(3) == 0 {
		opts = append(opts, ExternalIPs(pick(ip("192.168.99.1", "2001:db8:99::1"), ip("192.168.99.2", "2001:db8:99::2"))))
	}
	if r.IntN(4) == 0 {
		opts = append(opts, InternalLocal())
	}
	if r.IntN(3) == 0 {
		opts = append(opts, Affinity(int32(10+r.IntN(3))))
	}
	return Service("r", fmt.Sprintf("s%d", i), opts...)
}

func randomSlice(r *rand.Rand, fam v1.IPFamily, svc *v1.Service) *discovery.EndpointSlice {
	var eps []discovery.Endpoint
	for _, j := range r.Perm(6)[:r.IntN(5)] {
		addr := fmt.Sprintf("10.180.0.%d", j+1)
		if fam == v1.IPv6Protocol {
			addr = fmt.Sprintf("fd00:10::%d", j+1)
		}
		opts := []EndpointOption{OnNode([]string{testNodeName, "other-node"}[r.IntN(2)])}
		switch r.IntN(6) {
		case 0:
			opts = append(opts, Terminating(true))
		case 1:
			opts = append(opts, NotReady())
		}
		eps = append(eps, Endpoint(addr, opts...))
	}
	return SliceFor(svc, eps...)
}

// Any sequence of partial syncs leaves the table one full sync of the final
// state writes (after the stale chains' deletion).
func TestRandomPartialSyncsEqualFullSync(t *testing.T) {
	for _, fam := range []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol} {
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("%s/seed%d", fam, seed), func(t *testing.T) {
				runRandomSyncs(t, newTestEnv(t, fam), fam, seed)
			})
			// The same through netlink batches (partial syncs and stale
			// chain deletions), applied to the Fake as nft -f would.
			t.Run(fmt.Sprintf("%s/netlink/seed%d", fam, seed), func(t *testing.T) {
				e, _ := newNetlinkEnv(t, fam)
				runRandomSyncs(t, e, fam, seed)
			})
		}
	}
}

func runRandomSyncs(t *testing.T, e *testEnv, fam v1.IPFamily, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	const n = 8
	live := map[int]*v1.Service{}
	e.sync()
	for step := 0; step < 30; step++ {
		for k := 0; k <= r.IntN(3); k++ {
			i := r.IntN(n)
			switch op := r.IntN(4); {
			case op == 0 && live[i] != nil:
				e.world.Delete(live[i], randomSlice(r, fam, live[i]))
				delete(live, i)
			case op == 1 || live[i] == nil:
				live[i] = randomService(r, fam, i)
				e.world.Apply(live[i], randomSlice(r, fam, live[i]))
			default:
				e.world.Apply(randomSlice(r, fam, live[i]))
			}
		}
		if r.IntN(3) == 0 {
			e.clock.advance(1500 * 1e6)
		}
		e.sync()
		if step%5 == 4 {
			assertSameAsFullSync(t, e)
		}
	}
	assertSameAsFullSync(t, e)
}
