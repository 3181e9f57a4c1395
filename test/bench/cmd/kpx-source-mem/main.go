// Command kpx-source-mem measures the heap kproxy's object pipeline
// (informers, validation, tracker, first snapshot) holds at scale, each run
// in a fresh process, and prints every run and the medians (see package
// test/bench/sourcemem). No root needed.
//
//	kpx-source-mem -services 10000 -endpoints 10 -runs 5
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kproxy/kproxy/test/bench/sourcemem"
)

// sample is one child's report.
type sample struct {
	sourcemem.Result
	// HWM is the child's VmHWM (resident peak, whole process, including
	// the fake clientset's store and the generated objects).
	HWM uint64
}

func main() {
	var opts sourcemem.Options
	var runs int
	var child bool
	var memProfile string
	flag.IntVar(&opts.Services, "services", 10000, "number of ClusterIP services")
	flag.IntVar(&opts.Endpoints, "endpoints", 10, "endpoints per service (one EndpointSlice each)")
	flag.IntVar(&runs, "runs", 5, "runs, each in a fresh process; figures are medians")
	flag.DurationVar(&opts.ResyncPeriod, "resync", 15*time.Minute, "informer resync period")
	flag.DurationVar(&opts.Timeout, "timeout", 5*time.Minute, "bound on the initial listing")
	flag.StringVar(&memProfile, "memprofile", "", "write each run's heap profile after the first snapshot to this file (the last run's stays)")
	flag.BoolVar(&child, "child", false, "run one measurement and print it as JSON (internal)")
	flag.Parse()
	var err error
	if child {
		err = runChild(opts, memProfile)
	} else {
		err = runParent(runs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kpx-source-mem:", err)
		os.Exit(1)
	}
}

func runChild(opts sourcemem.Options, memProfile string) error {
	if memProfile != "" {
		opts.AfterSnapshot = func() error { return writeHeapProfile(memProfile) }
	}
	res, err := sourcemem.Measure(context.Background(), opts)
	if err != nil {
		return err
	}
	hwm, err := vmHWM()
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(sample{Result: res, HWM: hwm})
}

func runParent(runs int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"-child"}, os.Args[1:]...)
	var all []sample
	fmt.Printf("%-4s %10s %10s %10s %10s %10s %9s\n", "run", "live", "peak", "allocated", "store", "VmHWM", "synced")
	for i := range runs {
		cmd := exec.Command(self, args...)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		var s sample
		if err := json.Unmarshal(out, &s); err != nil {
			return fmt.Errorf("run %d: %w: %q", i+1, err, out)
		}
		all = append(all, s)
		printRow(strconv.Itoa(i+1), s)
	}
	printRow("med", sample{
		Result: sourcemem.Result{
			Live: median(all, func(s sample) uint64 { return s.Live }), Peak: median(all, func(s sample) uint64 { return s.Peak }),
			Allocated: median(all, func(s sample) uint64 { return s.Allocated }),
			Store:     median(all, func(s sample) uint64 { return s.Store }),
			Synced:    time.Duration(median(all, func(s sample) uint64 { return uint64(s.Synced) })),
		},
		HWM: median(all, func(s sample) uint64 { return s.HWM }),
	})
	return nil
}

func printRow(name string, s sample) {
	fmt.Printf("%-4s %10s %10s %10s %10s %10s %9s\n", name, mb(s.Live), mb(s.Peak), mb(s.Allocated), mb(s.Store),
		mb(s.HWM), s.Synced.Round(time.Millisecond))
}

func mb(b uint64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func median(all []sample, f func(sample) uint64) uint64 {
	v := make([]uint64, len(all))
	for i, s := range all {
		v[i] = f(s)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// vmHWM is this process's resident peak, from /proc/self/status.
func vmHWM() (uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}
