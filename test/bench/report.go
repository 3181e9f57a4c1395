package bench

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// Summary is the medians of one scenario's successful samples.
type Summary struct {
	Scenario                string
	N, Failed               int
	Sync, Snapshot          time.Duration
	RestoreTime, SaveTime   time.Duration
	RestoreBytes            int
	ChildPeakRSS            int64
	ProcessRSS, ProcessPeak int64
	// VsPlain is Sync divided by the plain restore's median (0 without one).
	VsPlain float64
	// IPVS summarizes the IPVS-mode accounts (nil in iptables mode).
	IPVS *IPVSSummary
}

// SummarizeMode is Summarize over the samples of one proxy mode.
func SummarizeMode(samples []Sample, mode string) []Summary {
	var own []Sample
	for _, s := range samples {
		if s.Mode == mode {
			own = append(own, s)
		}
	}
	return Summarize(own)
}

// Summarize groups samples by scenario, in Scenarios order, and takes medians.
func Summarize(samples []Sample) []Summary {
	var out []Summary
	for _, name := range Scenarios {
		var ok []Sample
		failed := 0
		for _, s := range samples {
			switch {
			case s.Scenario != name:
			case s.Err != nil:
				failed++
			default:
				ok = append(ok, s)
			}
		}
		if len(ok)+failed == 0 {
			continue
		}
		out = append(out, summarize(name, ok, failed))
	}
	var plain time.Duration
	for _, s := range out {
		if s.Scenario == ScenarioPlain {
			plain = s.Sync
		}
	}
	for i := range out {
		if plain > 0 && out[i].N > 0 {
			out[i].VsPlain = float64(out[i].Sync) / float64(plain)
		}
	}
	return out
}

func summarize(name string, ok []Sample, failed int) Summary {
	s := Summary{Scenario: name, N: len(ok), Failed: failed}
	if len(ok) == 0 {
		return s
	}
	s.Sync = Median(ok, func(x Sample) time.Duration { return x.Sync })
	s.Snapshot = Median(ok, func(x Sample) time.Duration { return x.Snapshot })
	s.RestoreTime = Median(ok, func(x Sample) time.Duration { return x.RestoreTime })
	s.SaveTime = Median(ok, func(x Sample) time.Duration { return x.SaveTime })
	s.RestoreBytes = Median(ok, func(x Sample) int { return x.RestoreBytes })
	s.ChildPeakRSS = Median(ok, func(x Sample) int64 { return x.ChildPeakRSS })
	s.ProcessRSS = Median(ok, func(x Sample) int64 { return x.ProcessRSS })
	s.ProcessPeak = Median(ok, func(x Sample) int64 { return x.ProcessPeak })
	s.IPVS = summarizeIPVS(ok)
	return s
}

// Median is the median of f over xs (the mean of the two middle values for
// an even count); zero for no values.
func Median[T any, V int | int64 | time.Duration](xs []T, f func(T) V) V {
	if len(xs) == 0 {
		return 0
	}
	vs := make([]V, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	slices.SortFunc(vs, cmp.Compare[V])
	mid := len(vs) / 2
	if len(vs)%2 == 1 {
		return vs[mid]
	}
	return (vs[mid-1] + vs[mid]) / 2
}

// WriteTable prints summaries as an aligned table.
func WriteTable(w io.Writer, title string, sums []Summary) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\truns\tsync\t×plain\tsnapshot\trestore\tsave\trestore input\tchild peak RSS\tRSS\tpeak RSS\t")
	for _, s := range sums {
		runs := fmt.Sprint(s.N)
		if s.Failed > 0 {
			runs += fmt.Sprintf(" (%d failed)", s.Failed)
		}
		if s.N == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\n", s.Scenario, runs)
			continue
		}
		ratio := "-"
		if s.VsPlain > 0 {
			ratio = fmt.Sprintf("%.2f", s.VsPlain)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Scenario, runs,
			seconds(s.Sync), ratio, seconds(s.Snapshot), seconds(s.RestoreTime), seconds(s.SaveTime),
			size(int64(s.RestoreBytes)), size(s.ChildPeakRSS), size(s.ProcessRSS), size(s.ProcessPeak))
	}
	return tw.Flush()
}

func seconds(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func size(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
