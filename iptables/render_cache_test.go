package iptables

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
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
			m := &churn{w: newWorld(t), rng: rng}
			for range 30 {
				m.add()
			}
			r := NewRenderer(opts)
			r.Render(m.w.Snapshot())
			for step := range 300 {
				for range 1 + rng.IntN(3) {
					m.mutate()
				}
				snap := m.w.Snapshot()
				if snap.Len() != len(m.live) {
					t.Fatalf("step %d: %d service ports for %d Services (one port each): a random Service was invalid", step, snap.Len(), len(m.live))
				}
				changed := changedNames(snap)
				partial := r.Render(snap)
				full := NewRenderer(opts).Render(m.w.Full())
				if err := samePartial(partial, full); err != nil {
					t.Fatalf("step %d (changed %v): %v", step, changed, err)
				}
			}
		})
	}
}

// churn adds, removes and edits random Services of a world, and churns
// their endpoints.
type churn struct {
	w    *pt.World
	rng  *rand.Rand
	live []*v1.Service // in the order added
	next int
}

func (c *churn) add() {
	s := randomService(c.rng, c.next, fmt.Sprintf("ns%d", c.next%7), fmt.Sprintf("svc%d", c.next), fmt.Sprintf("172.30.%d.%d", c.next/250, c.next%250+1))
	c.w.ApplyService(s, randomEndpoints(c.rng, c.next)...)
	c.live = append(c.live, s)
	c.next++
}

// mutate makes one random change.
func (c *churn) mutate() {
	op := c.rng.IntN(10)
	if op < 2 || len(c.live) < 5 {
		c.add()
		return
	}
	i := c.rng.IntN(len(c.live))
	s := c.live[i]
	switch {
	case op < 4: // remove
		c.w.Delete(s)
		c.live = slices.Delete(c.live, i, i+1)
	case op < 6: // edit the Service, keep its name and cluster IP
		c.live[i] = randomService(c.rng, c.rng.IntN(1000), s.Namespace, s.Name, s.Spec.ClusterIP)
		c.w.Apply(c.live[i])
	default: // churn endpoints
		c.w.Apply(pt.SliceFor(s, randomEndpoints(c.rng, c.rng.IntN(1000))...))
	}
}

// randomService is a valid Service with one port "p80" (80 → 8080) and
// random features; i picks its node ports and external addresses.
func randomService(rng *rand.Rand, i int, ns, name, clusterIP string) *v1.Service {
	proto := v1.ProtocolTCP
	if rng.IntN(4) == 0 {
		proto = v1.ProtocolUDP
	}
	opts := []pt.ServiceOption{pt.ClusterIP(clusterIP), pt.PortTo("p80", proto, 80, 8080)}
	accessible, lb := false, false
	if rng.IntN(2) == 0 {
		opts, accessible = append(opts, pt.NodePort(int32(30000+i%2000))), true
	}
	if rng.IntN(4) == 0 {
		opts, accessible = append(opts, pt.ExternalIPs(fmt.Sprintf("192.168.99.%d", i%250+1))), true
	}
	if rng.IntN(4) == 0 {
		opts, accessible, lb = append(opts, pt.LoadBalancer(fmt.Sprintf("5.6.%d.%d", i/250, i%250+1))), true, true
		if rng.IntN(2) == 0 {
			opts = append(opts, pt.SourceRanges("203.0.113.0/25"))
		}
	}
	if rng.IntN(4) == 0 && accessible {
		opts = append(opts, pt.ExternalLocal())
		if lb {
			opts = append(opts, pt.HealthCheckNodePort(int32(31000+i%1000)))
		}
	}
	if rng.IntN(5) == 0 {
		opts = append(opts, pt.InternalLocal())
	}
	if rng.IntN(5) == 0 {
		opts = append(opts, pt.Affinity(10800))
	}
	return pt.Service(ns, name, opts...)
}

func randomEndpoints(rng *rand.Rand, i int) []discovery.Endpoint {
	var all []discovery.Endpoint
	for j := range rng.IntN(5) {
		var o []pt.EndpointOption
		if rng.IntN(3) == 0 {
			o = append(o, local())
		}
		if rng.IntN(5) == 0 {
			o = append(o, pt.Terminating(true))
		}
		all = append(all, pt.Endpoint(fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), o...))
	}
	return all
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
	for _, t := range g.view().tables {
		for _, c := range t.chains {
			out[t.name+"/"+c.name] = string(c.rules)
		}
	}
	return out
}
