package ipset

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	v1 "k8s.io/api/core/v1"
)

// Fake is an in-memory Interface that rejects what ipset rejects: a
// create that conflicts with an existing set of another type or family, a
// name over 31 characters, an entry whose format does not fit the set's
// type or whose addresses are of the other family, a command on an unknown
// set, a swap of sets of different types. It stores entries in ipset's
// canonical form. Unlike `ipset restore`, a failing batch changes nothing.
type Fake struct {
	mu   sync.Mutex
	sets map[string]*fakeSet
	// Restores and Lists count the calls (each is one exec for Exec).
	Restores, Lists int
	// FailRestore, when set, is returned by the next Restore (which then
	// changes nothing) and cleared.
	FailRestore error
}

type fakeSet struct {
	spec    Spec
	members map[string]struct{}
}

var _ Interface = (*Fake)(nil)

// NewFake returns an empty fake.
func NewFake() *Fake { return &Fake{sets: map[string]*fakeSet{}} }

// Restore applies the batch atomically.
func (f *Fake) Restore(_ context.Context, b *Batch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Restores++
	if err := f.FailRestore; err != nil {
		f.FailRestore = nil
		return err
	}
	next := make(map[string]*fakeSet, len(f.sets))
	for n, s := range f.sets {
		next[n] = &fakeSet{spec: s.spec, members: maps.Clone(s.members)}
	}
	for i, op := range b.ops {
		if err := applySetOp(next, op); err != nil {
			return fmt.Errorf("ipset restore: line %d (%s): %w", i+1, b.lines[i], err)
		}
	}
	f.sets = next
	return nil
}

func applySetOp(sets map[string]*fakeSet, op setOp) error {
	if op.verb == "create" {
		return createFakeSet(sets, op.spec)
	}
	s, ok := sets[op.set]
	if op.verb == "destroy" {
		delete(sets, op.set) // a missing set is fine with -exist
		return nil
	}
	if !ok {
		return fmt.Errorf("the set with the given name %q does not exist", op.set)
	}
	switch op.verb {
	case "add", "del":
		e, err := CanonicalEntry(s.spec.Type, s.spec.Family, op.entry)
		if err != nil {
			return err
		}
		if op.verb == "add" {
			s.members[e] = struct{}{}
		} else {
			delete(s.members, e)
		}
		return nil
	case "swap":
		o, ok := sets[op.other]
		if !ok {
			return fmt.Errorf("the set with the given name %q does not exist", op.other)
		}
		if o.spec.Type != s.spec.Type || !sameFamily(o.spec, s.spec) {
			return fmt.Errorf("the sets %s and %s cannot be swapped: their type does not match", op.set, op.other)
		}
		s.members, o.members = o.members, s.members
		return nil
	}
	return fmt.Errorf("unknown command %q", op.verb)
}

func createFakeSet(sets map[string]*fakeSet, spec Spec) error {
	if spec.Name == "" || len(spec.Name) > maxSetNameLen {
		return fmt.Errorf("set name %q: length must be 1..%d", spec.Name, maxSetNameLen)
	}
	if !knownSetType(spec.Type) {
		return fmt.Errorf("unknown set type %q", spec.Type)
	}
	if spec.Type == BitmapPort {
		spec.Family = ""
	} else if spec.Family == "" {
		spec.Family = v1.IPv4Protocol
	}
	if old, ok := sets[spec.Name]; ok {
		if old.spec.Type != spec.Type || !sameFamily(old.spec, spec) {
			return fmt.Errorf("set %s cannot be created: set with the same name already exists", spec.Name)
		}
		return nil
	}
	sets[spec.Name] = &fakeSet{spec: spec, members: map[string]struct{}{}}
	return nil
}

func knownSetType(t Type) bool {
	return slices.Contains([]Type{HashIP, HashIPPort, HashIPPortIP, HashIPPortNet, BitmapPort}, t)
}

func sameFamily(a, b Spec) bool {
	if a.Type == BitmapPort {
		return true
	}
	fa, fb := a.Family, b.Family
	if fa == "" {
		fa = v1.IPv4Protocol
	}
	if fb == "" {
		fb = v1.IPv4Protocol
	}
	return fa == fb
}

// List returns a copy of every set.
func (f *Fake) List(context.Context) (map[string]*Contents, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Lists++
	out := make(map[string]*Contents, len(f.sets))
	for n, s := range f.sets {
		out[n] = &Contents{Spec: s.spec, Members: slices.Sorted(maps.Keys(s.members))}
	}
	return out, nil
}

// Members returns one set's sorted members and whether the set exists.
func (f *Fake) Members(name string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sets[name]
	if !ok {
		return nil, false
	}
	return slices.Sorted(maps.Keys(s.members)), true
}
