package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// BenchScale is one guest boot of kpx-bench: a world size and its rounds.
type BenchScale struct {
	Services, Rounds int
}

// BenchOptions configure RunBench.
type BenchOptions struct {
	Scales []BenchScale
	// Endpoints per service; default 10.
	Endpoints int
	// Modes are kpx-bench's -mode values; default ipvs and iptables, each
	// round running both in turn.
	Modes []string
	// Skip are kpx-bench's -skip scenarios; nil means resync, restart and
	// plain (iptables-save of a big table is very slow under emulation).
	Skip []string
	// Partials is kpx-bench's -partials (partial syncs per round); default 5.
	Partials int
	// Memory and CPUs of each guest; default "4G" and 2.
	Memory string
	CPUs   int
	// Timeout bounds each guest (boot included); default 15 minutes.
	Timeout time.Duration
	Assets  *Assets
	// Console, when set, receives each guest's console (progress) as it arrives.
	Console io.Writer
}

// BenchResult is one scale's report.
type BenchResult struct {
	Scale BenchScale
	// Report is kpx-bench's tables and verdict, without the progress lines.
	Report string
	// Passed is kpx-bench's exit status 0 (its IPVS partial-sync check included).
	Passed   bool
	Duration time.Duration
}

// RunBench builds kpx-bench statically and runs it in one guest per scale,
// inside the guest's own network namespaces (the guest kernel has IPVS). An
// error means the build failed or a guest returned no exit code; the
// results of the scales run so far are returned with it.
func RunBench(ctx context.Context, opts BenchOptions) ([]BenchResult, error) {
	opts = benchDefaults(opts)
	dir, err := os.MkdirTemp("", "kpx-vm-bench-")
	if err != nil {
		return nil, fmt.Errorf("vm bench: %w", err)
	}
	defer os.RemoveAll(dir)
	bin, err := BuildStatic(ctx, "./test/bench/cmd/kpx-bench", dir, false)
	if err != nil {
		return nil, fmt.Errorf("vm bench: %w", err)
	}
	var out []BenchResult
	for _, sc := range opts.Scales {
		res, err := Run(ctx, Options{Binary: bin, Args: benchArgs(opts, sc), Memory: opts.Memory, CPUs: opts.CPUs,
			Timeout: opts.Timeout, Assets: opts.Assets, Console: opts.Console})
		if err != nil {
			return out, fmt.Errorf("vm bench, %d services: %w", sc.Services, err)
		}
		out = append(out, BenchResult{Scale: sc, Report: benchReport(res.Output), Passed: res.ExitCode == 0,
			Duration: res.Duration})
	}
	return out, nil
}

func benchDefaults(o BenchOptions) BenchOptions {
	if o.Endpoints <= 0 {
		o.Endpoints = 10
	}
	if len(o.Modes) == 0 {
		o.Modes = []string{"ipvs", "iptables"}
	}
	if o.Skip == nil {
		o.Skip = []string{"resync", "restart", "plain"}
	}
	if o.Partials <= 0 {
		o.Partials = 5
	}
	if o.Memory == "" {
		o.Memory = "4G"
	}
	if o.CPUs <= 0 {
		o.CPUs = 2
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Minute
	}
	return o
}

// benchArgs: the guest's time is busybox's, so no child statistics.
func benchArgs(o BenchOptions, sc BenchScale) []string {
	return []string{"-services", strconv.Itoa(sc.Services), "-endpoints", strconv.Itoa(o.Endpoints),
		"-rounds", strconv.Itoa(max(sc.Rounds, 1)), "-mode", strings.Join(o.Modes, ","),
		"-skip", strings.Join(o.Skip, ","), "-partials", strconv.Itoa(o.Partials), "-no-child-stats", "-timeout", o.Timeout.String()}
}

// benchReport keeps kpx-bench's output from its first table title on,
// without per-sample progress lines and kernel messages.
func benchReport(console string) string {
	var b strings.Builder
	started := false
	for line := range strings.Lines(console) {
		started = started || strings.HasPrefix(line, "kproxy ")
		if !started || strings.HasPrefix(line, "round ") || strings.HasPrefix(line, "[") {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}

// ParseBenchScales reads "services:rounds,..." (e.g. "1000:5,10000:2").
func ParseBenchScales(s string) ([]BenchScale, error) {
	var out []BenchScale
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		n, r, _ := strings.Cut(part, ":")
		sc := BenchScale{Rounds: 1}
		var err error
		if sc.Services, err = strconv.Atoi(n); err != nil || sc.Services < 1 {
			return nil, fmt.Errorf("scale %q: services must be a positive number", part)
		}
		if r != "" {
			if sc.Rounds, err = strconv.Atoi(r); err != nil || sc.Rounds < 1 {
				return nil, fmt.Errorf("scale %q: rounds must be a positive number", part)
			}
		}
		out = append(out, sc)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no scales in %q", s)
	}
	return out, nil
}
