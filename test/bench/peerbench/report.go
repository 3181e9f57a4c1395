package peerbench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is one peer's medians over its successful rounds.
type Summary struct {
	Peer                 string
	Rounds, Failed       int
	Full, FullOwn        time.Duration
	Endpoint             time.Duration // median over every change of every round
	EndpointP99          time.Duration
	EndpointMax          time.Duration
	EndpointOwn, Restart time.Duration
	// RestartConns, RestartFailed and EndpointFailed are summed over rounds.
	RestartConns, RestartFailed int
	EndpointFailed              int
	FirstConn, LastConn         time.Duration
	RSSTree, RSSMain            int64 // peak over rounds
	Children                    bool
}

// Summarize groups samples by peer, in peers' order.
func Summarize(samples []Sample, peers []Peer) []Summary {
	var out []Summary
	for _, p := range peers {
		var ok []Sample
		failed := 0
		for _, s := range samples {
			switch {
			case s.Peer != p.Name:
			case s.Err != nil:
				failed++
			default:
				ok = append(ok, s)
			}
		}
		sum := Summary{Peer: p.Name, Rounds: len(ok), Failed: failed}
		if len(ok) > 0 {
			fillSummary(&sum, ok)
		}
		out = append(out, sum)
	}
	return out
}

func fillSummary(sum *Summary, ok []Sample) {
	var changes []time.Duration
	for _, s := range ok {
		changes = append(changes, s.Endpoint...)
		sum.RSSTree, sum.RSSMain = max(sum.RSSTree, s.RSSTree), max(sum.RSSMain, s.RSSMain)
		sum.Children = sum.Children || s.Children
		sum.RestartConns += s.RestartConns
		sum.RestartFailed += s.RestartFailed
		sum.EndpointFailed += s.EndpointFailed
	}
	slices.Sort(changes)
	sum.Full = median(ok, func(s Sample) time.Duration { return s.Full })
	sum.FullOwn = median(ok, func(s Sample) time.Duration { return s.FullOwn })
	sum.EndpointOwn = median(ok, func(s Sample) time.Duration { return s.EndpointOwn })
	sum.Restart = median(ok, func(s Sample) time.Duration { return s.Restart })
	sum.FirstConn = median(ok, func(s Sample) time.Duration { return s.FirstConn })
	sum.LastConn = median(ok, func(s Sample) time.Duration { return s.LastConn })
	if len(changes) > 0 {
		sum.Endpoint = changes[len(changes)/2]
		sum.EndpointP99 = changes[(99*len(changes)+99)/100-1]
		sum.EndpointMax = changes[len(changes)-1]
	}
}

// median is the median of f over xs (the upper one for an even count).
func median(xs []Sample, f func(Sample) time.Duration) time.Duration {
	vs := make([]time.Duration, 0, len(xs))
	for _, x := range xs {
		vs = append(vs, f(x))
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// ratioPairs are the (kproxy, upstream) columns of the same mode: a peer
// named "kproxy…" and one named "upstream…" with the same suffix.
func ratioPairs(sums []Summary) [][2]int {
	var pairs [][2]int
	for i, k := range sums {
		suffix, ok := strings.CutPrefix(k.Peer, "kproxy")
		if !ok {
			continue
		}
		for j, u := range sums {
			if u.Peer == "upstream"+suffix {
				pairs = append(pairs, [2]int{i, j})
			}
		}
	}
	return pairs
}

// Write prints the summaries as a table with one column per peer and a
// column of kproxy ÷ upstream per mode measured for both.
func Write(w io.Writer, title string, sums []Summary) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	header := "\t"
	for _, s := range sums {
		header += s.Peer + "\t"
	}
	pairs := ratioPairs(sums)
	for _, p := range pairs {
		header += sums[p[0]].Peer + " ÷ " + sums[p[1]].Peer + "\t"
	}
	fmt.Fprintln(tw, header)
	rows := []struct {
		name string
		f    func(Summary) float64
		unit string
	}{
		{"rounds ok (failed)", func(s Summary) float64 { return float64(s.Rounds) }, "n"},
		{"full: start → all services in table", secs(func(s Summary) time.Duration { return s.Full }), "s"},
		{"full: proxy's own sync metric", secs(func(s Summary) time.Duration { return s.FullOwn }), "s"},
		{"endpoint: API write → traffic at it, p50", ms(func(s Summary) time.Duration { return s.Endpoint }), "ms"},
		{"endpoint: p99", ms(func(s Summary) time.Duration { return s.EndpointP99 }), "ms"},
		{"endpoint: max", ms(func(s Summary) time.Duration { return s.EndpointMax }), "ms"},
		{"endpoint: connections failed meanwhile", func(s Summary) float64 { return float64(s.EndpointFailed) }, "count"},
		{"endpoint: proxy's own partial sync", ms(func(s Summary) time.Duration { return s.EndpointOwn }), "ms"},
		{"restart: start → synced, all services", secs(func(s Summary) time.Duration { return s.Restart }), "s"},
		{"restart: connections made meanwhile", func(s Summary) float64 { return float64(s.RestartConns) }, "count"},
		{"restart: connections failed", func(s Summary) float64 { return float64(s.RestartFailed) }, "count"},
		{"first packet: connect to first service", ms(func(s Summary) time.Duration { return s.FirstConn }), "ms"},
		{"first packet: connect to last service", ms(func(s Summary) time.Duration { return s.LastConn }), "ms"},
		{"peak RSS, proxy + children", func(s Summary) float64 { return float64(s.RSSTree) / (1 << 20) }, "MB"},
		{"peak RSS, main process (VmHWM)", func(s Summary) float64 { return float64(s.RSSMain) / (1 << 20) }, "MB"},
	}
	for _, row := range rows {
		line := row.name + " (" + row.unit + ")\t"
		for _, s := range sums {
			line += format(row.f(s), row.unit)
			if row.unit == "n" && s.Failed > 0 {
				line += fmt.Sprintf(" (%d)", s.Failed)
			}
			line += "\t"
		}
		for _, p := range pairs {
			if row.unit != "n" && row.unit != "count" {
				line += ratio(row.f(sums[p[0]]), row.f(sums[p[1]]))
			}
			line += "\t"
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func secs(f func(Summary) time.Duration) func(Summary) float64 {
	return func(s Summary) float64 { return f(s).Seconds() }
}

func ms(f func(Summary) time.Duration) func(Summary) float64 {
	return func(s Summary) float64 { return float64(f(s)) / float64(time.Millisecond) }
}

// format prints v; 0 (a scenario the peer did not run) is "–".
func format(v float64, unit string) string {
	if v == 0 && unit != "n" && unit != "count" {
		return "–"
	}
	switch unit {
	case "n", "count", "MB":
		return fmt.Sprintf("%.0f", v)
	case "ms":
		if v < 10 {
			return fmt.Sprintf("%.3f", v)
		}
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f ×", a/b)
}
