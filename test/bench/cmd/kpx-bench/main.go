// Command kpx-bench measures kproxy's sync against the kernel inside
// throwaway network namespaces (see package test/bench). It must run as root.
// IPVS mode needs a kernel with IPVS: make bench-ipvs runs it, with iptables
// mode for comparison, inside the qemu guest (test/vm/cmd/kpx-vm-bench).
//
//	kpx-bench -services 1000 -endpoints 10 -rounds 5
//	kpx-bench -mode ipvs,iptables -skip restart,plain   # in a kernel with IPVS
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/test/bench"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kpx-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts bench.Options
	var skip, modes string
	var quiet, noChildLog bool
	flag.IntVar(&opts.World.Services, "services", 1000, "number of ClusterIP services")
	flag.IntVar(&opts.World.Endpoints, "endpoints", 10, "endpoints per service")
	flag.IntVar(&opts.Rounds, "rounds", 5, "rounds; figures are medians over them")
	flag.BoolVar(&opts.Legacy, "legacy", false, "use iptables-legacy instead of iptables-nft")
	flag.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "bound on each iptables command")
	flag.StringVar(&skip, "skip", "", "comma-separated scenarios not to run (resync, restart, plain)")
	flag.BoolVar(&quiet, "quiet", false, "do not print each sample")
	flag.StringVar(&opts.DumpDir, "dump", "", "write the first round's restore inputs to this directory")
	flag.StringVar(&modes, "mode", bench.ModeIPTables, "comma-separated proxy modes (iptables, ipvs); each round runs them in turn")
	flag.IntVar(&opts.Partials, "partials", 1, "endpoint and slice-delete syncs per round, each on other services")
	flag.BoolVar(&noChildLog, "no-child-stats", false, "do not wrap iptables children in /usr/bin/time (no child peak RSS)")
	flag.Parse()
	opts.NoChildLog = noChildLog
	for m := range strings.SplitSeq(modes, ",") {
		if m != "" {
			opts.Modes = append(opts.Modes, m)
		}
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create network namespaces")
	}
	opts.Skip = map[string]bool{}
	for s := range strings.SplitSeq(skip, ",") {
		if s != "" {
			opts.Skip[s] = true
		}
	}
	dir, err := os.MkdirTemp("", "kpx-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	opts.TempDir = dir
	if !quiet {
		opts.Progress = printSample
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	samples, runErr := bench.Run(ctx, opts)
	if err := report(opts, samples, time.Since(start)); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	return checkIPVS(opts, samples)
}

// checkIPVS states, and enforces, that IPVS partial syncs touched only the
// changed service in the kernel.
func checkIPVS(opts bench.Options, samples []bench.Sample) error {
	if !slices.Contains(opts.Modes, bench.ModeIPVS) {
		return nil
	}
	if err := bench.CheckIPVSPartial(samples); err != nil {
		fmt.Println("\nipvs partial syncs: FAIL")
		return err
	}
	fmt.Println("\nipvs partial syncs: ok (no table or address rescan; only the changed service's virtual servers and addresses named)")
	return nil
}

// report prints one table per mode and, with both modes, their comparison.
func report(opts bench.Options, samples []bench.Sample, took time.Duration) error {
	backend := "nf_tables"
	if opts.Legacy {
		backend = "legacy"
	}
	scale := fmt.Sprintf("%d services × %d endpoints, iptables %s, medians of %d rounds",
		opts.World.Services, opts.World.Endpoints, backend, opts.Rounds)
	sums := map[string][]bench.Summary{}
	for i, mode := range opts.Modes {
		if i > 0 {
			fmt.Println()
		}
		sums[mode] = bench.SummarizeMode(samples, mode)
		title := fmt.Sprintf("kproxy %s sync: %s (%.0fs in all)", mode, scale, took.Seconds())
		write := bench.WriteTable
		if mode == bench.ModeIPVS {
			write = bench.WriteIPVSTable
		}
		if err := write(os.Stdout, title, sums[mode]); err != nil {
			return err
		}
	}
	if len(sums[bench.ModeIPTables]) == 0 || len(sums[bench.ModeIPVS]) == 0 {
		return nil
	}
	fmt.Println()
	title := fmt.Sprintf("ipvs vs iptables, same run: %s", scale)
	return bench.WriteComparison(os.Stdout, title, bench.Compare(sums[bench.ModeIPTables], sums[bench.ModeIPVS]))
}

func printSample(round int, s bench.Sample) {
	status := "ok"
	if s.Err != nil {
		status = s.Err.Error()
	}
	fmt.Fprintf(os.Stderr, "round %d %-8s %-12s sync %.3fs (restore %.3fs in %d, save %.3fs in %d saves + %d lists) input %d B, child peak %d MB, RSS %d MB: %s\n",
		round+1, s.Mode, s.Scenario, s.Sync.Seconds(), s.RestoreTime.Seconds(), s.Restores, s.SaveTime.Seconds(), s.Saves, s.Lists,
		s.RestoreBytes, s.ChildPeakRSS>>20, s.ProcessPeak>>20, status)
}
