package ipvs

import (
	"cmp"
	"maps"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier"
)

// setIndex holds, per service port, its share of the sets, and per member
// how many ports want it. A partial sync replaces the shares of the changed
// ports and reads the members that appeared or disappeared off the
// reference counts: its cost follows the changed ports, not the sets'
// sizes. KUBE-IPVS-IPS is not indexed (it follows kube-ipvs0's addresses).
type setIndex struct {
	// nodeIP and nodePortIPs are what the shares were computed with; when
	// they change every share must be recomputed.
	family      v1.IPFamily
	nodeIP      netip.Addr
	nodePortIPs []netip.Addr
	ports       map[proxier.ServicePortName]portSets
	refs        refCount[ipset.Member]
	// sizes counts the distinct members of each set.
	sizes map[string]int
	// noAccess is the concatenation of the ports' noAccess in name order,
	// rebuilt only when a port with some changes.
	noAccess      []rules.LBNoNodeAccess
	noAccessPorts map[proxier.ServicePortName]struct{}
	noAccessDirty bool
}

// newSetIndex indexes every service port of snap.
func newSetIndex(snap *proxier.Snapshot, nodeIP netip.Addr, nodePortIPs []netip.Addr) *setIndex {
	family := snap.Family
	if family == "" {
		family = v1.IPv4Protocol
	}
	x := &setIndex{family: family, nodeIP: nodeIP, nodePortIPs: slices.Clone(nodePortIPs),
		ports: make(map[proxier.ServicePortName]portSets, snap.Len()), refs: newRefCount[ipset.Member](),
		sizes: map[string]int{}, noAccessPorts: map[proxier.ServicePortName]struct{}{}}
	for name := range snap.All() {
		x.update(snap, name)
	}
	x.settle()
	return x
}

// update recomputes one port's share from snap (a port snap lacks has none).
func (x *setIndex) update(snap *proxier.Snapshot, name proxier.ServicePortName) {
	var next portSets
	if sp, ok := snap.Service(name); ok {
		next = portSetMembers(sp, snap.Endpoints(name), x.nodeIP, x.nodePortIPs)
	}
	prev := x.ports[name]
	for _, m := range prev.members {
		x.refs.dec(m)
	}
	for _, m := range next.members {
		x.refs.inc(m)
	}
	if len(prev.noAccess) > 0 || len(next.noAccess) > 0 {
		x.noAccessDirty = true
	}
	if len(next.noAccess) > 0 {
		x.noAccessPorts[name] = struct{}{}
	} else {
		delete(x.noAccessPorts, name)
	}
	if len(next.members) == 0 && len(next.noAccess) == 0 {
		delete(x.ports, name)
	} else {
		x.ports[name] = next
	}
}

// settle accounts the updates since the last settle and returns the
// members that appeared and disappeared, each sorted by set and entry.
func (x *setIndex) settle() (added, deleted []ipset.Member) {
	added, deleted = x.refs.transitions()
	x.refs.commit()
	for _, m := range added {
		x.sizes[m.Set]++
	}
	for _, m := range deleted {
		x.sizes[m.Set]--
	}
	slices.SortFunc(added, compareSetMembers)
	slices.SortFunc(deleted, compareSetMembers)
	if x.noAccessDirty {
		x.noAccess = nil
		for _, name := range slices.SortedFunc(maps.Keys(x.noAccessPorts), proxier.ServicePortName.Compare) {
			x.noAccess = append(x.noAccess, x.ports[name].noAccess...)
		}
		x.noAccessDirty = false
	}
	return added, deleted
}

func compareSetMembers(a, b ipset.Member) int {
	return cmp.Or(cmp.Compare(a.Set, b.Set), cmp.Compare(a.Entry, b.Entry))
}

// empty reports whether a set (by upstream IPv4 name) has no member.
func (x *setIndex) empty(set string) bool { return x.sizes[set] == 0 }

// rulesInput is what the rules depend on: which sets are empty and the
// VIPs the node may not reach.
func (x *setIndex) rulesInput() rules.Sets {
	return rules.Sets{Family: x.family, Empty: x.empty, NoAccess: x.noAccess}
}

// desired lists every set's members; bound fills KUBE-IPVS-IPS.
func (x *setIndex) desired(bound []netip.Addr) *DesiredSets {
	members := map[string][]string{}
	for m := range x.refs.m {
		members[m.Set] = append(members[m.Set], m.Entry)
	}
	for _, a := range bound {
		members[ipset.IPVSIPs] = append(members[ipset.IPVSIPs], a.String())
	}
	d := &DesiredSets{Family: x.family, Members: map[string][]string{}, NoAccess: slices.Clone(x.noAccess)}
	for _, s := range ipset.Specs(v1.IPv4Protocol) {
		d.Members[s.Name] = members[s.Name]
		if d.Members[s.Name] == nil {
			d.Members[s.Name] = []string{}
		}
		slices.Sort(d.Members[s.Name])
	}
	return d
}
