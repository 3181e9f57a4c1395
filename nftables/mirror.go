package nftables

import (
	"time"

	"github.com/kproxy/kproxy/proxier"
)

// contrib is one service port's value for an element key.
type contrib struct {
	name proxier.ServicePortName
	val  elemValue
}

// contribs are the service ports contributing one element key. The kernel
// holds the value of the smallest name (deterministic where upstream's
// last-writer-wins follows map order); the key is deleted when none is left.
type contribs []contrib

func (cs contribs) winner() (elemValue, bool) {
	if len(cs) == 0 {
		return elemValue{}, false
	}
	best := 0
	for i := 1; i < len(cs); i++ {
		if cs[i].name.Compare(cs[best].name) < 0 {
			best = i
		}
	}
	return cs[best].val, true
}

// without returns a copy of cs without name's contribution.
func (cs contribs) without(name proxier.ServicePortName) contribs {
	out := make(contribs, 0, len(cs))
	for _, c := range cs {
		if c.name != name {
			out = append(out, c)
		}
	}
	return out
}

// mirror is what kproxy knows the kernel's table holds after its last
// successful transaction: every service port's rendering, the element
// contributions, and the flushed service chains waiting to be deleted.
// Partial syncs diff against it and never list the table.
type mirror struct {
	services map[proxier.ServicePortName]*rendered
	elems    [numContainers]map[string]contribs
	// stale are flushed service chains and when they became stale; they are
	// deleted by a later sync, at least a second later (before kernel 6.2 a
	// chain stays referenced for a moment after the map element pointing at
	// it is deleted).
	stale map[string]time.Time
}

func newMirror() *mirror {
	m := &mirror{services: map[proxier.ServicePortName]*rendered{}, stale: map[string]time.Time{}}
	for c := range m.elems {
		m.elems[c] = map[string]contribs{}
	}
	return m
}

// addService records r as name's rendering, with its contributions.
func (m *mirror) addService(name proxier.ServicePortName, r *rendered) {
	m.services[name] = r
	for _, e := range r.elems {
		m.elems[e.c][e.key] = append(m.elems[e.c][e.key], contrib{name: name, val: e.val()})
	}
}

// chainCount is the number of per-service chains the mirror holds.
func (m *mirror) chainCount() int {
	n := 0
	for _, r := range m.services {
		n += len(r.chains)
	}
	return n
}
