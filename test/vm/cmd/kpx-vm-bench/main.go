// Command kpx-vm-bench runs kpx-bench inside the qemu guest (whose kernel has
// IPVS, unlike this machine's) to compare kproxy's IPVS and iptables sync
// times in the same VM: for each scale one guest boots and every round syncs
// both modes in turn, in the guest's own network namespaces. It prints each
// scale's tables, the ipvs/iptables ratios and the check that IPVS partial
// syncs touch only the changed service. make bench-ipvs runs it.
//
//	kpx-vm-bench -scales 1000:5,10000:2
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/test/vm"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kpx-vm-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts vm.BenchOptions
	var scales, skip string
	var verbose bool
	flag.StringVar(&scales, "scales", "1000:5,10000:2", "comma-separated services:rounds, one guest boot each")
	flag.IntVar(&opts.Endpoints, "endpoints", 10, "endpoints per service")
	flag.StringVar(&skip, "skip", "resync,restart,plain", "kpx-bench scenarios not to run (resync, restart, plain)")
	flag.IntVar(&opts.Partials, "partials", 5, "endpoint and slice-delete syncs per round, each on other services")
	flag.StringVar(&opts.Memory, "memory", "4G", "guest memory")
	flag.IntVar(&opts.CPUs, "cpus", 2, "guest CPUs")
	flag.DurationVar(&opts.Timeout, "timeout", 15*time.Minute, "bound on each guest, boot included")
	flag.BoolVar(&verbose, "v", true, "show each guest's console (progress) on stderr")
	flag.Parse()
	var err error
	if opts.Scales, err = vm.ParseBenchScales(scales); err != nil {
		return err
	}
	opts.Skip = []string{}
	for s := range strings.SplitSeq(skip, ",") {
		if s != "" {
			opts.Skip = append(opts.Skip, s)
		}
	}
	if verbose {
		opts.Console = os.Stderr
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	results, runErr := vm.RunBench(ctx, opts)
	failed := report(os.Stdout, results)
	fmt.Printf("\nkpx-vm-bench: %d guest run(s) in %.0fs\n", len(results), time.Since(start).Seconds())
	if runErr != nil {
		return runErr
	}
	if failed > 0 {
		return fmt.Errorf("kpx-bench failed in %d guest run(s)", failed)
	}
	return nil
}

func report(w io.Writer, results []vm.BenchResult) (failed int) {
	for _, r := range results {
		fmt.Fprintf(w, "\n=== %d services × %d rounds in the guest (%.0fs, boot included)\n%s",
			r.Scale.Services, r.Scale.Rounds, r.Duration.Seconds(), r.Report)
		if !r.Passed {
			failed++
		}
	}
	return failed
}
