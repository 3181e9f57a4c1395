package bench

import (
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// IPVSSummary is the medians of one scenario's IPVS-mode accounts.
type IPVSSummary struct {
	// Handle calls: full listings of the table (rescans), single virtual
	// server reads, destination listings, writes, and all of them.
	Lists, Gets, ListDests, Writes, Calls int
	// Servers and Addresses are the distinct virtual servers and
	// kube-ipvs0 addresses the calls named.
	Servers, Addresses int
	// OutsideMax is the most virtual servers and addresses outside the
	// changed service that any run's partial sync named (0: none ever).
	OutsideMax                          int
	AddressReads, Binds, Unbinds        int
	IPSetRestores, IPSetOps, IPSetLists int
	IPSetTime                           time.Duration
	// ReconcileWrites is ipvs.Proxier.LastStats().Writes().
	ReconcileWrites int
}

func summarizeIPVS(ok []Sample) *IPVSSummary {
	var with []Sample
	for _, s := range ok {
		if s.IPVS != nil {
			with = append(with, s)
		}
	}
	if len(with) == 0 {
		return nil
	}
	med := func(f func(c *IPVSCounts) int) int { return Median(with, func(x Sample) int { return f(x.IPVS) }) }
	s := &IPVSSummary{
		Lists:     med(func(c *IPVSCounts) int { return c.Handle.List }),
		Gets:      med(func(c *IPVSCounts) int { return c.Handle.Get }),
		ListDests: med(func(c *IPVSCounts) int { return c.Handle.ListDests }),
		Writes:    med(func(c *IPVSCounts) int { return c.Handle.Writes() }),
		Calls:     med(func(c *IPVSCounts) int { return c.Handle.Total() }),
		Servers:   med(func(c *IPVSCounts) int { return c.Servers }),
		Addresses: med(func(c *IPVSCounts) int { return c.Addresses }),

		AddressReads:  med(func(c *IPVSCounts) int { return c.Address.Reads }),
		Binds:         med(func(c *IPVSCounts) int { return c.Address.Bind }),
		Unbinds:       med(func(c *IPVSCounts) int { return c.Address.Unbind }),
		IPSetRestores: med(func(c *IPVSCounts) int { return c.IPSetRestores }),
		IPSetOps:      med(func(c *IPVSCounts) int { return c.IPSetOps }),
		IPSetLists:    med(func(c *IPVSCounts) int { return c.IPSetLists }),
		IPSetTime:     Median(with, func(x Sample) time.Duration { return x.IPVS.IPSetTime }),

		ReconcileWrites: med(func(c *IPVSCounts) int { return c.Reconcile.Writes() }),
	}
	for _, x := range with {
		s.OutsideMax = max(s.OutsideMax, x.IPVS.Outside)
	}
	return s
}

// WriteIPVSTable prints IPVS-mode summaries: sync time and what each sync
// asked of the IPVS table, kube-ipvs0, ipset and iptables.
func WriteIPVSTable(w io.Writer, title string, sums []Summary) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\truns\tsync\tsnapshot\tipvs calls\tlist all\tget vs\tlist dests\twrites\t"+
		"vs named\toutside change\taddr reads\tbind/unbind\tipset restores (ops)\tipset\tiptables restore\tiptables save\tpeak RSS\t")
	for _, s := range sums {
		v := s.IPVS
		if s.N == 0 || v == nil {
			fmt.Fprintf(tw, "%s\t%d (%d failed)\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", s.Scenario, s.N, s.Failed)
			continue
		}
		outside := "-"
		if s.Scenario == ScenarioEndpoint || s.Scenario == ScenarioSliceDelete {
			outside = fmt.Sprint(v.OutsideMax)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%d/%d\t%d (%d)\t%s\t%s\t%s\t%s\t\n",
			s.Scenario, s.N, seconds(s.Sync), seconds(s.Snapshot), v.Calls, v.Lists, v.Gets, v.ListDests, v.Writes,
			v.Servers, outside, v.AddressReads, v.Binds, v.Unbinds, v.IPSetRestores, v.IPSetOps, seconds(v.IPSetTime),
			seconds(s.RestoreTime), seconds(s.SaveTime), size(s.ProcessPeak))
	}
	return tw.Flush()
}

// Comparison is one scenario's median sync time in both modes.
type Comparison struct {
	Scenario       string
	IPTables, IPVS time.Duration
	// Ratio is IPVS / IPTables (0 when either is missing).
	Ratio float64
}

// Compare pairs the two modes' summaries by scenario.
func Compare(iptablesSums, ipvsSums []Summary) []Comparison {
	var out []Comparison
	for _, a := range iptablesSums {
		for _, b := range ipvsSums {
			if a.Scenario != b.Scenario || a.N == 0 || b.N == 0 {
				continue
			}
			c := Comparison{Scenario: a.Scenario, IPTables: a.Sync, IPVS: b.Sync}
			if a.Sync > 0 {
				c.Ratio = float64(b.Sync) / float64(a.Sync)
			}
			out = append(out, c)
		}
	}
	return out
}

// WriteComparison prints the comparison as a table.
func WriteComparison(w io.Writer, title string, cs []Comparison) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tiptables\tipvs\tipvs/iptables\t")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t\n", c.Scenario, seconds(c.IPTables), seconds(c.IPVS), c.Ratio)
	}
	return tw.Flush()
}

// CheckIPVSPartial returns an error for each IPVS-mode partial sync (one
// service changed) that rescanned the IPVS table or kube-ipvs0, or named a
// virtual server or address of a service that did not change: the contract
// that a partial sync costs O(changed), not O(services), in kernel calls.
func CheckIPVSPartial(samples []Sample) error {
	var errs []error
	for _, s := range samples {
		if s.Mode != ModeIPVS || s.IPVS == nil || s.Full || s.Err != nil {
			continue
		}
		c := s.IPVS
		if c.Handle.List > 0 || c.Address.Reads > 0 || c.Outside > 0 {
			errs = append(errs, fmt.Errorf("ipvs %s sync: %d table listings, %d address reads, %d virtual servers/addresses outside the changed service",
				s.Scenario, c.Handle.List, c.Address.Reads, c.Outside))
		}
	}
	return errors.Join(errs...)
}
