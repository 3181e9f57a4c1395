package vs

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// DefaultTerminationTimeout bounds how long a removed destination keeps
// draining at weight 0 (IPVS's own TCP established timeout is 15 minutes).
const DefaultTerminationTimeout = 15 * time.Minute

// ReconcilerOptions configure a Reconciler.
type ReconcilerOptions struct {
	Handle Handle
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// TerminationTimeout; 0 means DefaultTerminationTimeout.
	TerminationTimeout time.Duration
}

// Reconciler converges the kernel's virtual servers and destinations to a
// desired set and drains removed destinations gracefully. Its methods are
// serialized by one mutex (the Handle is one netlink socket).
type Reconciler struct {
	mu      sync.Mutex
	h       Handle
	now     func() time.Time
	timeout time.Duration
	// terminating holds destinations at weight 0 waiting for their
	// connections to end, with their deadline.
	terminating map[ServiceKey]map[DestKey]time.Time
}

// DesiredServer is one virtual server wanted, with its destinations sorted
// by address and port.
type DesiredServer struct {
	VirtualServer
	Destinations []Destination
}

// Stats count the kernel writes of one reconcile.
type Stats struct {
	Created, Updated, Deleted              int // virtual servers
	DestsAdded, DestsUpdated, DestsRemoved int // destinations (removed = deleted or set to weight 0)
}

// Writes is the total number of kernel writes.
func (s Stats) Writes() int {
	return s.Created + s.Updated + s.Deleted + s.DestsAdded + s.DestsUpdated + s.DestsRemoved
}

// NewReconciler returns a Reconciler with an empty termination queue.
func NewReconciler(opts ReconcilerOptions) *Reconciler {
	r := &Reconciler{h: opts.Handle, now: opts.Now, timeout: opts.TerminationTimeout,
		terminating: map[ServiceKey]map[DestKey]time.Time{}}
	if r.now == nil {
		r.now = time.Now
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTerminationTimeout
	}
	return r
}

// Full lists the kernel's virtual servers once, converges every desired one,
// and deletes those not desired for which owned returns true.
func (r *Reconciler) Full(want []DesiredServer, owned func(ServiceKey) bool) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var st Stats
	have, err := r.h.ListVirtualServers()
	if err != nil {
		return st, err
	}
	current := make(map[ServiceKey]VirtualServer, len(have))
	for _, vs := range have {
		current[vs.ServiceKey] = vs
	}
	wanted := make(map[ServiceKey]struct{}, len(want))
	var errs []error
	for i := range want {
		wanted[want[i].ServiceKey] = struct{}{}
		cur, exists := current[want[i].ServiceKey]
		errs = append(errs, r.converge(&want[i], cur, exists, &st))
	}
	for _, vs := range have {
		if _, ok := wanted[vs.ServiceKey]; ok || !owned(vs.ServiceKey) {
			continue
		}
		errs = append(errs, r.deleteServer(vs.ServiceKey, &st))
	}
	return st, errors.Join(errs...)
}

// Partial converges only want, reading each virtual server individually,
// and deletes the virtual servers in remove (kproxy's own, from memory).
func (r *Reconciler) Partial(want []DesiredServer, remove []ServiceKey) (Stats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var st Stats
	var errs []error
	for i := range want {
		cur, err := r.h.GetVirtualServer(want[i].ServiceKey)
		if err != nil && !IsNotFound(err) {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, r.converge(&want[i], cur, err == nil, &st))
	}
	for _, k := range remove {
		errs = append(errs, r.deleteServer(k, &st))
	}
	return st, errors.Join(errs...)
}

func (r *Reconciler) deleteServer(k ServiceKey, st *Stats) error {
	delete(r.terminating, k)
	if err := r.h.DelVirtualServer(k); err != nil && !IsNotFound(err) {
		return err
	}
	st.Deleted++
	return nil
}

// converge creates or updates one virtual server, then its destinations.
func (r *Reconciler) converge(d *DesiredServer, cur VirtualServer, exists bool, st *Stats) error {
	if !exists {
		// A fresh virtual server has no destinations; forget any drain state.
		delete(r.terminating, d.ServiceKey)
		if err := r.h.NewVirtualServer(d.VirtualServer); err != nil {
			return err
		}
		st.Created++
		var errs []error
		for _, dst := range d.Destinations {
			if err := r.h.NewDestination(d.ServiceKey, dst); err != nil {
				errs = append(errs, err)
				continue
			}
			st.DestsAdded++
		}
		return errors.Join(errs...)
	}
	if !cur.Equal(d.VirtualServer) {
		if err := r.h.UpdateVirtualServer(d.VirtualServer); err != nil {
			return err
		}
		st.Updated++
	}
	have, err := r.h.ListDestinations(d.ServiceKey)
	if err != nil {
		return err
	}
	return r.convergeDestinations(d, have, st)
}

func (r *Reconciler) convergeDestinations(d *DesiredServer, have []Destination, st *Stats) error {
	current := make(map[DestKey]Destination, len(have))
	for _, h := range have {
		current[h.DestKey] = h
	}
	var errs []error
	wanted := make(map[DestKey]struct{}, len(d.Destinations))
	for _, w := range d.Destinations {
		wanted[w.DestKey] = struct{}{}
		r.unqueue(d.ServiceKey, w.DestKey)
		h, ok := current[w.DestKey]
		switch {
		case !ok:
			if err := r.h.NewDestination(d.ServiceKey, w); err != nil {
				errs = append(errs, err)
				continue
			}
			st.DestsAdded++
		case h.Weight != w.Weight || h.Forwarding != w.Forwarding:
			// Also restores a destination left at weight 0 by a drain
			// (ours, or a previous kproxy's before a restart).
			if err := r.h.UpdateDestination(d.ServiceKey, w); err != nil {
				errs = append(errs, err)
				continue
			}
			st.DestsUpdated++
		}
	}
	for _, h := range have {
		if _, ok := wanted[h.DestKey]; ok || r.queued(d.ServiceKey, h.DestKey) {
			continue
		}
		errs = append(errs, r.startTermination(d.ServiceKey, h, st))
	}
	return errors.Join(errs...)
}

// startTermination removes a destination gracefully: UDP and SCTP ones and
// ones without connections go at once (as upstream's
// IsRsGracefulTerminationNeeded); others drain at weight 0 until
// ProcessTerminating finds them idle or past their deadline.
func (r *Reconciler) startTermination(k ServiceKey, h Destination, st *Stats) error {
	if k.Protocol == UDP || k.Protocol == SCTP || h.ActiveConnections+h.InactiveConnections == 0 {
		if err := r.h.DelDestination(k, h.DestKey); err != nil && !IsNotFound(err) {
			return err
		}
		st.DestsRemoved++
		return nil
	}
	if h.Weight != 0 {
		h.Weight = 0
		if err := r.h.UpdateDestination(k, h); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	st.DestsRemoved++
	if r.terminating[k] == nil {
		r.terminating[k] = map[DestKey]time.Time{}
	}
	r.terminating[k][h.DestKey] = r.now().Add(r.timeout)
	return nil
}

func (r *Reconciler) queued(k ServiceKey, d DestKey) bool {
	_, ok := r.terminating[k][d]
	return ok
}

func (r *Reconciler) unqueue(k ServiceKey, d DestKey) {
	if m := r.terminating[k]; m != nil {
		delete(m, d)
		if len(m) == 0 {
			delete(r.terminating, k)
		}
	}
}

// Terminating lists the draining destinations per virtual server.
func (r *Reconciler) Terminating() map[ServiceKey][]DestKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[ServiceKey][]DestKey{}
	for k, m := range r.terminating {
		for d := range m {
			out[k] = append(out[k], d)
		}
	}
	return out
}

// ProcessTerminating is one pass of the termination loop: it reads the
// destinations of each virtual server with draining ones (one query per
// virtual server) and deletes those without connections or past their
// deadline. It returns how many it deleted.
func (r *Reconciler) ProcessTerminating() (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	deleted := 0
	var errs []error
	for k, m := range r.terminating {
		have, err := r.h.ListDestinations(k)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conns := make(map[DestKey]int, len(have))
		for _, h := range have {
			conns[h.DestKey] = h.ActiveConnections + h.InactiveConnections
		}
		for d, deadline := range m {
			n, present := conns[d]
			if present && n > 0 && now.Before(deadline) {
				continue
			}
			if present {
				if err := r.h.DelDestination(k, d); err != nil && !IsNotFound(err) {
					errs = append(errs, err)
					continue
				}
				deleted++
			}
			r.unqueue(k, d)
		}
	}
	return deleted, errors.Join(errs...)
}
