package ipset

import (
	"context"
	"fmt"
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// SyncerOptions configure a Syncer.
type SyncerOptions struct {
	IPSet  Interface // required
	Family v1.IPFamily
}

// Syncer brings kproxy's sets (Specs) to wanted members with one `ipset
// restore` per sync: create -exist for every set, then the adds and dels of the diff.
// It lists the kernel only on a full sync or after a failure; otherwise it
// diffs against what its last successful sync wrote. Sets it does not own
// are never touched, and nothing is flushed.
type Syncer struct {
	ipset Interface
	specs []Spec
	// known is each set's members after the last successful sync, keyed by
	// the real (family) name; nil means "list the kernel first".
	known map[string][]string
}

// NewSyncer returns a Syncer whose first Sync lists the kernel.
func NewSyncer(opts SyncerOptions) *Syncer {
	return &Syncer{ipset: opts.IPSet, specs: Specs(opts.Family)}
}

// Sync brings every set to want, keyed by upstream's (IPv4) set name and
// sorted; a set want lacks is emptied. full forces a kernel listing first.
// It returns the number of entries added and deleted.
func (s *Syncer) Sync(ctx context.Context, want map[string][]string, full bool) (added, deleted int, err error) {
	current := s.known
	if full || current == nil {
		if current, err = s.list(ctx); err != nil {
			s.known = nil
			return 0, 0, err
		}
	}
	b := &Batch{}
	next := make(map[string][]string, len(s.specs))
	bases := Specs(v1.IPv4Protocol)
	for i, spec := range s.specs {
		b.Create(spec)
		members := want[bases[i].Name]
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

// ApplyDelta adds and deletes the given members (by upstream IPv4 set
// name) in one `ipset restore`, without listing the kernel or re-stating
// the sets: the sets exist since the last full Sync, and if someone
// destroyed one the restore fails and the caller's next sync is full. Sync
// then lists the kernel again (Known is forgotten).
func (s *Syncer) ApplyDelta(ctx context.Context, add, del []Member) error {
	s.known = nil
	if len(add)+len(del) == 0 {
		return nil
	}
	names := make(map[string]string, len(s.specs))
	for i, base := range Specs(v1.IPv4Protocol) {
		names[base.Name] = s.specs[i].Name
	}
	b := &Batch{}
	for _, m := range del {
		b.Del(names[m.Set], m.Entry)
	}
	for _, m := range add {
		b.Add(names[m.Set], m.Entry)
	}
	if err := s.ipset.Restore(ctx, b); err != nil {
		return fmt.Errorf("update ipsets: %w", err)
	}
	return nil
}

// list reads the owned sets' members from the kernel; a missing set has
// none, and a set of the wrong type or family is reported (create -exist
// would fail on it anyway).
func (s *Syncer) list(ctx context.Context) (map[string][]string, error) {
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
func (s *Syncer) Known() map[string][]string { return maps.Clone(s.known) }
