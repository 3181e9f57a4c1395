// Command kpx-bench measures kproxy's iptables sync against the kernel inside
// throwaway network namespaces (see package test/bench). It must run as root.
//
//	kpx-bench -services 1000 -endpoints 10 -rounds 5
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
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
	var skip string
	var quiet bool
	flag.IntVar(&opts.World.Services, "services", 1000, "number of ClusterIP services")
	flag.IntVar(&opts.World.Endpoints, "endpoints", 10, "endpoints per service")
	flag.IntVar(&opts.Rounds, "rounds", 5, "rounds; figures are medians over them")
	flag.BoolVar(&opts.Legacy, "legacy", false, "use iptables-legacy instead of iptables-nft")
	flag.DurationVar(&opts.Timeout, "timeout", 10*time.Minute, "bound on each iptables command")
	flag.StringVar(&skip, "skip", "", "comma-separated scenarios not to run (resync, restart, plain)")
	flag.BoolVar(&quiet, "quiet", false, "do not print each sample")
	flag.StringVar(&opts.DumpDir, "dump", "", "write the first round's restore inputs to this directory")
	flag.Parse()
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
	backend := "nf_tables"
	if opts.Legacy {
		backend = "legacy"
	}
	title := fmt.Sprintf("kproxy iptables sync: %d services × %d endpoints, iptables %s, medians of %d rounds (%.0fs)",
		opts.World.Services, opts.World.Endpoints, backend, opts.Rounds, time.Since(start).Seconds())
	if err := bench.WriteTable(os.Stdout, title, bench.Summarize(samples)); err != nil {
		return err
	}
	return runErr
}

func printSample(round int, s bench.Sample) {
	status := "ok"
	if s.Err != nil {
		status = s.Err.Error()
	}
	fmt.Fprintf(os.Stderr, "round %d %-12s sync %.3fs (restore %.3fs in %d, save %.3fs in %d saves + %d lists) input %d B, child peak %d MB, RSS %d MB: %s\n",
		round+1, s.Scenario, s.Sync.Seconds(), s.RestoreTime.Seconds(), s.Restores, s.SaveTime.Seconds(), s.Saves, s.Lists,
		s.RestoreBytes, s.ChildPeakRSS>>20, s.ProcessPeak>>20, status)
}
