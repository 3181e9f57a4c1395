package netfilter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Tamper detection. Firewall reloads (firewalld, "iptables -F", an
// iptables-restore without --noflush) remove kproxy's rules behind its back,
// and partial syncs, which trust memory, would never put them back. Like
// upstream, every full sync declares an empty KUBE-PROXY-CANARY chain in
// mangle, nat and filter, and a monitor polls them every syncPeriod; unlike
// upstream (which polls mangle alone and so misses a flush of nat only), all
// three are checked, and so are the jumps from nat PREROUTING and OUTPUT to
// KUBE-SERVICES, which a firewall reload that deletes KUBE-SERVICES must
// remove first and which a "-F" without "-X" empties while leaving the
// canaries in place.
//
// Each check is a single-chain listing ("iptables -t T -S CHAIN", ChainLister):
// about 10 ms even next to a 110k-chain nat table, where iptables-save of
// nat would run minutes. Chains are never listed whole beyond the two
// built-in ones, so the cost does not grow with the number of services.

// TamperCheck is one thing the kernel must still hold after a full sync:
// the chain Chain in Table, or, when From is set, a rule in the built-in
// chain From jumping to Chain.
type TamperCheck struct {
	Table, Chain, From string
}

// String names the check in logs and metrics: "nat/KUBE-PROXY-CANARY" or
// "nat/PREROUTING -j KUBE-SERVICES".
func (c TamperCheck) String() string {
	if c.From == "" {
		return c.Table + "/" + c.Chain
	}
	return c.Table + "/" + c.From + " -j " + c.Chain
}

// listed is the chain whose listing decides the check.
func (c TamperCheck) listed() string {
	if c.From != "" {
		return c.From
	}
	return c.Chain
}

func (c TamperCheck) holds(t *ruleset.SavedTable) bool {
	if c.From == "" {
		return t.HasChain(c.Chain)
	}
	for _, r := range t.Rules {
		if r.Chain == c.From && r.Target == c.Chain {
			return true
		}
	}
	return false
}

// TamperChecks are the checks for iptables and IPVS mode alike (both jump
// from nat PREROUTING and OUTPUT to KUBE-SERVICES, and both full syncs
// declare the canaries). A jump's presence also proves KUBE-SERVICES
// exists: the kernel refuses to delete a chain that is jumped to.
func TamperChecks() []TamperCheck {
	return []TamperCheck{
		{Table: "mangle", Chain: CanaryChain},
		{Table: "nat", Chain: CanaryChain},
		{Table: "filter", Chain: CanaryChain},
		{Table: "nat", From: "PREROUTING", Chain: ServicesChain},
		{Table: "nat", From: "OUTPUT", Chain: ServicesChain},
	}
}

// CanaryTables are the tables a full sync declares the canary in.
func CanaryTables() []string { return []string{"mangle", "nat", "filter"} }

// CanaryRestoreInput is iptables-restore --noflush input that (re)creates the
// empty canary chains, for a backend that does not render them with its
// rules (IPVS mode).
func CanaryRestoreInput() []byte {
	var b []byte
	for _, t := range CanaryTables() {
		b = fmt.Appendf(b, "*%s\n:%s - [0:0]\nCOMMIT\n", t, CanaryChain)
	}
	return b
}

// CheckTampering lists each chain the checks need once and returns the
// checks that fail. An error (a listing failed, e.g. the xtables lock was
// held too long) says nothing about tampering.
func CheckTampering(ctx context.Context, l ChainLister, checks []TamperCheck) ([]TamperCheck, error) {
	listings := map[[2]string]*ruleset.SavedTable{}
	var failed []TamperCheck
	for _, c := range checks {
		key := [2]string{c.Table, c.listed()}
		t, ok := listings[key]
		if !ok {
			data, err := l.ListChain(ctx, c.Table, c.listed())
			if err != nil {
				return nil, fmt.Errorf("tamper check %s: %w", c, err)
			}
			t = ruleset.ParseSave(data)
			listings[key] = t
		}
		if !c.holds(t) {
			failed = append(failed, c)
		}
	}
	return failed, nil
}

// MonitorOptions configures a Monitor.
type MonitorOptions struct {
	// Lister lists single chains of the proxier's family (required).
	Lister ChainLister
	// Checks default to TamperChecks().
	Checks []TamperCheck
	// Interval is how often the checks run (upstream: syncPeriod).
	Interval time.Duration
	// FullSyncs returns how many full syncs have succeeded so far
	// (required). Nothing is checked before the first one has written the
	// canaries, and after a report nothing is checked again until another
	// full sync has succeeded, so a rewrite that takes longer than Interval
	// is not requested twice.
	FullSyncs func() uint64
	// OnTampered is told which checks failed (required); it should force a
	// full sync that trusts nothing remembered about the kernel.
	OnTampered func(failed []TamperCheck)
	// OnError is told about checks that could not run; the monitor keeps going.
	OnError func(error)
}

// Monitor polls the TamperChecks. It is used by one goroutine.
type Monitor struct {
	opts MonitorOptions
	// reportedAt is FullSyncs() when tampering was last reported.
	reported   bool
	reportedAt uint64
}

// NewMonitor validates the options.
func NewMonitor(opts MonitorOptions) (*Monitor, error) {
	switch {
	case opts.Lister == nil:
		return nil, errors.New("tamper monitor: no ChainLister")
	case opts.Interval <= 0:
		return nil, fmt.Errorf("tamper monitor: interval must be positive, got %v", opts.Interval)
	case opts.FullSyncs == nil || opts.OnTampered == nil:
		return nil, errors.New("tamper monitor: FullSyncs and OnTampered are required")
	}
	if opts.Checks == nil {
		opts.Checks = TamperChecks()
	}
	return &Monitor{opts: opts}, nil
}

// Check runs the checks once (unless no full sync has written the canaries
// since the start or since the last report) and returns the failed ones;
// a non-empty result is remembered as reported. It calls no callback.
func (m *Monitor) Check(ctx context.Context) ([]TamperCheck, error) {
	syncs := m.opts.FullSyncs()
	if syncs == 0 || (m.reported && syncs == m.reportedAt) {
		return nil, nil
	}
	failed, err := CheckTampering(ctx, m.opts.Lister, m.opts.Checks)
	if err != nil || len(failed) == 0 {
		return nil, err
	}
	m.reported, m.reportedAt = true, syncs
	return failed, nil
}

// Run checks every Interval until ctx ends, calling OnTampered and OnError.
func (m *Monitor) Run(ctx context.Context) {
	tick := time.NewTicker(m.opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		failed, err := m.Check(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if m.opts.OnError != nil {
				m.opts.OnError(err)
			}
		case len(failed) > 0:
			m.opts.OnTampered(failed)
		}
	}
}
