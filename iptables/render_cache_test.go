package iptables

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// TestPartialRendersMatchFullRenders drives one Renderer through random
// partial renders (services added, removed, edited; endpoints churned) and
// checks each against a fresh full render of the same snapshot: every chain
// a partial render writes, top-level ones included, must be byte-identical,
// and so must the rule counts and the set of active chains.
func TestPartialRendersMatchFullRenders(t *testing.T) {
	for _, threshold := range []int{DefaultLargeClusterEndpointsThreshold, 1} {
		t.Run(fmt.Sprintf("largeClusterThreshold=%d", threshold), func(t *testing.T) {
			opts := testOptions()
			opts.LargeClusterEndpointsThreshold = threshold
			rng := rand.New(rand.NewPCG(7, uint64(threshold)))
			w := newWorld()
			for i := range 30 {
				w.add(randomService(rng, i), randomEndpoints(rng, i))
			}
			r := NewRenderer(opts)
			r.Render(w.snap)
			next := 30
			for step := range 300 {
				snap := mutate(rng, w, &next)
				partial := r.Render(snap)
				full := NewRenderer(opts).Render(fullCopy(snap))
				if err := samePartial(partial, full); err != nil {
					t.Fatalf("step %d (changed %v): %v", step, changedNames(snap), err)
				}
			}
		})
	}
}

// mutate applies 1-3 random changes to w and returns a partial snapshot naming them.
func mutate(rng *rand.Rand, w *world, next *int) *proxier.Snapshot {
	w.snap.Full = false
	w.snap.Changed = map[proxier.ServicePortName]struct{}{}
	for range 1 + rng.IntN(3) {
		names := serviceNames(w.snap)
		switch op := rng.IntN(10); {
		case op < 2 || len(names) < 5: // add
			w.add(randomService(rng, *next), randomEndpoints(rng, *next))
			*next++
		case op < 4: // remove
			n := names[rng.IntN(len(names))]
			delete(w.snap.Services, n)
			delete(w.snap.Endpoints, n)
			w.snap.Changed[n] = struct{}{}
		case op < 6: // edit the service, keep its name
			n := names[rng.IntN(len(names))]
			sp := randomService(rng, rng.IntN(1000))
			sp.Name, sp.Protocol, sp.ClusterIP = n, n.Protocol, w.snap.Services[n].ClusterIP
			w.snap.Services[n] = sp
			w.snap.Changed[n] = struct{}{}
		default: // churn endpoints
			n := names[rng.IntN(len(names))]
			w.snap.Endpoints[n] = randomEndpoints(rng, rng.IntN(1000))
			w.snap.Changed[n] = struct{}{}
		}
	}
	return w.snap
}

func randomService(rng *rand.Rand, i int) *proxier.ServicePort {
	var opts []svcOpt
	ip := fmt.Sprintf("172.30.%d.%d", i/250, i%250+1)
	opts = append(opts, clusterIP(ip))
	if rng.IntN(4) == 0 {
		opts = append(opts, withProtocol(v1.ProtocolUDP))
	}
	if rng.IntN(2) == 0 {
		opts = append(opts, withNodePort(int32(30000+i%2000)))
	}
	if rng.IntN(4) == 0 {
		opts = append(opts, withExternalIPs(fmt.Sprintf("192.168.99.%d", i%250+1)))
	}
	if rng.IntN(4) == 0 {
		opts = append(opts, withLB(fmt.Sprintf("5.6.%d.%d", i/250, i%250+1)))
		if rng.IntN(2) == 0 {
			opts = append(opts, withSourceRanges("203.0.113.0/25"))
		}
	}
	if rng.IntN(4) == 0 {
		opts = append(opts, withETPLocal(), withHealthCheckNodePort(int32(31000+i%1000)))
	}
	if rng.IntN(5) == 0 {
		opts = append(opts, withITPLocal())
	}
	if rng.IntN(5) == 0 {
		opts = append(opts, withAffinity(10800))
	}
	return svc(fmt.Sprintf("ns%d", i%7), fmt.Sprintf("svc%d", i), opts...)
}

func randomEndpoints(rng *rand.Rand, i int) *proxier.EndpointSet {
	var all []proxier.Endpoint
	for j := range rng.IntN(5) {
		var o []epOpt
		if rng.IntN(3) == 0 {
			o = append(o, local())
		}
		if rng.IntN(5) == 0 {
			o = append(o, terminatingServing())
		}
		all = append(all, ep(fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), 8080, o...))
	}
	return eps(all...)
}

func serviceNames(s *proxier.Snapshot) []proxier.ServicePortName {
	var out []proxier.ServicePortName
	for n := range s.Services {
		out = append(out, n)
	}
	// Map order is random; sort so the rng alone decides the sequence.
	slices.SortFunc(out, func(a, b proxier.ServicePortName) int { return strings.Compare(a.String(), b.String()) })
	return out
}

func fullCopy(s *proxier.Snapshot) *proxier.Snapshot {
	c := *s
	c.Full = true
	return &c
}

func changedNames(s *proxier.Snapshot) []string {
	var out []string
	for n := range s.Changed {
		out = append(out, n.String())
	}
	return out
}

// samePartial checks a partial rendering against the full one.
func samePartial(partial, full *Rendering) error {
	want := chainsOf(full)
	for name, rules := range chainsOf(partial) {
		if w, ok := want[name]; !ok {
			return fmt.Errorf("partial writes chain %s, which the full render has not", name)
		} else if w != rules {
			return fmt.Errorf("chain %s differs:\npartial:\n%s\nfull:\n%s", name, rules, w)
		}
	}
	for _, top := range []string{"filter/" + netfilter.ServicesChain, "nat/" + netfilter.ServicesChain, "nat/" + netfilter.NodePortsChain, "filter/" + netfilter.ExternalServicesChain} {
		if _, ok := chainsOf(partial)[top]; !ok {
			return fmt.Errorf("partial lacks top-level chain %s", top)
		}
	}
	if p, f := partial.RuleCounts(), full.RuleCounts(); p["nat"] != f["nat"] || p["filter"] != f["filter"] {
		return fmt.Errorf("rule counts: partial %v, full %v", p, f)
	}
	if p, f := strings.Join(partial.ServiceChains(), ","), strings.Join(full.ServiceChains(), ","); p != f {
		return fmt.Errorf("active chains: partial %s, full %s", p, f)
	}
	return nil
}

func chainsOf(g *Rendering) map[string]string {
	out := map[string]string{}
	for _, t := range g.tables {
		for _, c := range t.chains {
			out[t.name+"/"+c.name] = string(c.rules)
		}
	}
	return out
}
