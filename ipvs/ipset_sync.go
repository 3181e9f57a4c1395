package ipvs

import (
	"context"
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// SetSyncerOptions configure a SetSyncer.
type SetSyncerOptions struct {
	IPSet  IPSet // required
	Family v1.IPFamily
}

// SetSyncer brings kproxy's sets to a DesiredSets with one `ipset restore`
// per sync: create -exist for every set, then the adds and dels of the diff.
// It lists the kernel only on a full sync or after a failure; otherwise it
// diffs against what its last successful sync wrote. Sets it does not own
// are never touched, and nothing is flushed.
type SetSyncer struct {
	ipset IPSet
	specs []SetSpec
	// known is each set's members after the last successful sync, keyed by
	// the real (family) name; nil means "list the kernel first".
	known map[string][]string
}

// NewSetSyncer returns a SetSyncer whose first Sync lists the kernel.
func NewSetSyncer(opts SetSyncerOptions) *SetSyncer {
	return &SetSyncer{ipset: opts.IPSet, specs: SetSpecs(opts.Family)}
}

// Specs are the sets this syncer owns.
func (s *SetSyncer) Specs() []SetSpec { return slices.Clone(s.specs) }

// Sync applies want. full forces a kernel listing first. It returns the
// number of entries added and deleted.
func (s *SetSyncer) Sync(ctx context.Context, want *DesiredSets, full bool) (added, deleted int, err error) {
	current := s.known
	if full || current == nil {
		if current, err = s.list(ctx); err != nil {
			s.known = nil
			return 0, 0, err
		}
	}
	b := &SetBatch{}
	next := make(map[string][]string, len(s.specs))
	bases := SetSpecs(v1.IPv4Protocol)
	for i, spec := range s.specs {
		b.Create(spec)
		members := want.Members[bases[i].Name]
		have := current[spec.Name]
		for _, e := range members {
			if _, ok := slices.BinarySearch(have, e); !ok {
				b.Add(spec.Name, e)
				added++
			}
		}
		for _, e := range have {
			if _, ok := slices.BinarySearch(members, e); !ok {
				b.Del(spec.Name, e)
				deleted++
			}
		}
		next[spec.Name] = slices.Clone(members)
	}
	if err := s.ipset.Restore(ctx, b); err != nil {
		s.known = nil
		return 0, 0, fmt.Errorf("sync ipsets: %w", err)
	}
	s.known = next
	return added, deleted, nil
}

// applyDelta adds and deletes the given members (by upstream IPv4 set
// name) in one `ipset restore`, without listing the kernel or re-stating
// the sets: the sets exist since the last full Sync, and if someone
// destroyed one the restore fails and the caller's next sync is full. Sync
// then lists the kernel again (Known is forgotten).
func (s *SetSyncer) applyDelta(ctx context.Context, add, del []setMember) error {
	s.known = nil
	if len(add)+len(del) == 0 {
		return nil
	}
	names := make(map[string]string, len(s.specs))
	for i, base := range SetSpecs(v1.IPv4Protocol) {
		names[base.Name] = s.specs[i].Name
	}
	b := &SetBatch{}
	for _, m := range del {
		b.Del(names[m.set], m.entry)
	}
	for _, m := range add {
		b.Add(names[m.set], m.entry)
	}
	if err := s.ipset.Restore(ctx, b); err != nil {
		return fmt.Errorf("update ipsets: %w", err)
	}
	return nil
}

// list reads the owned sets' members from the kernel; a missing set has
// none, and a set of the wrong type or family is reported (create -exist
// would fail on it anyway).
func (s *SetSyncer) list(ctx context.Context) (map[string][]string, error) {
	all, err := s.ipset.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list ipsets: %w", err)
	}
	out := map[string][]string{}
	for _, spec := range s.specs {
		c, ok := all[spec.Name]
		if !ok {
			continue
		}
		if c.Spec.Type != spec.Type {
			return nil, fmt.Errorf("ipset %s exists with type %s, want %s", spec.Name, c.Spec.Type, spec.Type)
		}
		out[spec.Name] = slices.Sorted(slices.Values(c.Members))
	}
	return out, nil
}

// Known returns a copy of the members written by the last successful sync.
func (s *SetSyncer) Known() map[string][]string { return maps.Clone(s.known) }

// DestroySets destroys every set of SetSpecs(family) that exists (after the
// iptables rules referencing them are gone: the kernel refuses to destroy a
// referenced set). Used by cleanup.
func DestroySets(ctx context.Context, ipset IPSet, family v1.IPFamily) error {
	b := &SetBatch{}
	for _, spec := range SetSpecs(family) {
		b.Destroy(spec.Name)
	}
	if err := ipset.Restore(ctx, b); err != nil {
		return fmt.Errorf("destroy ipsets: %w", err)
	}
	return nil
}
