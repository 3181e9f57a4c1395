// Command kpx-nft-bench measures upstream kube-proxy and kproxy in nftables
// mode as whole processes against one real kube-apiserver, same machine,
// same objects, same run (see package test/bench/peerbench). It must run as
// root; everything happens in network namespaces it creates and deletes.
//
//	kpx-nft-bench -services 1000 -endpoints 10 -rounds 3                 # upstream only
//	kpx-nft-bench -services 1000 -peers upstream,kproxy -kproxy bin/kproxy
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

	"github.com/kproxy/kproxy/test/bench/peerbench"
	"github.com/kproxy/kproxy/test/cluster"
	"github.com/kproxy/kproxy/test/netns"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "kpx-nft-bench:", err)
		os.Exit(1)
	}
}

func run() error {
	var opts peerbench.Options
	var peers, kproxyBin, upstreamBin, keep string
	flag.IntVar(&opts.Services, "services", 1000, "number of ClusterIP services")
	flag.IntVar(&opts.Endpoints, "endpoints", 10, "endpoints per service")
	flag.IntVar(&opts.Rounds, "rounds", 3, "rounds per peer; figures are medians over them")
	flag.IntVar(&opts.Changes, "changes", 20, "endpoint changes timed per round")
	flag.DurationVar(&opts.Timeout, "timeout", 15*time.Minute, "bound on each wait for a proxy")
	flag.StringVar(&peers, "peers", "upstream", "comma-separated proxies to measure, in order: upstream, kproxy (nftables mode), upstream-iptables, kproxy-iptables (full sync and first packet only)")
	flag.BoolVar(&opts.FirstPacket, "first-packet", false, "also time connections to the first and the last service")
	flag.BoolVar(&opts.HeapProfiles, "heap-profiles", false, "write each proxy's live heap after its first full sync to the workdir (needs -workdir)")
	flag.StringVar(&kproxyBin, "kproxy", "bin/kproxy", "kproxy binary (with --proxy-mode nftables)")
	flag.StringVar(&upstreamBin, "upstream", "", "upstream kube-proxy binary (default: the one scripts/cluster-tools.sh builds)")
	flag.StringVar(&keep, "workdir", "", "keep the configuration and the proxies' logs in this directory")
	flag.Parse()
	if opts.HeapProfiles && keep == "" {
		return fmt.Errorf("-heap-profiles writes to the -workdir: set one")
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root to create network namespaces")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bins, err := cluster.ResolveBinaries(ctx)
	if err != nil {
		return err
	}
	opts.Binaries = bins
	if upstreamBin == "" {
		upstreamBin = bins.KubeProxy
	}
	for name := range strings.SplitSeq(peers, ",") {
		proxy, mode, _ := strings.Cut(name, "-")
		if mode == "" {
			mode = peerbench.ModeNFTables
		}
		bin := map[string]string{"upstream": upstreamBin, "kproxy": kproxyBin}[proxy]
		if bin == "" || (mode != peerbench.ModeNFTables && mode != peerbench.ModeIPTables) {
			return fmt.Errorf("-peers: unknown peer %q, or no binary for it (upstream, kproxy, upstream-iptables, kproxy-iptables)", name)
		}
		opts.Peers = append(opts.Peers, peerbench.Peer{Name: name, Bin: bin, Mode: mode})
	}
	if opts.WorkDir = keep; keep == "" {
		dir, err := os.MkdirTemp("", "kpx-nft-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		opts.WorkDir = dir
	} else if err := os.MkdirAll(keep, 0o755); err != nil {
		return err
	}
	if opts.Podserver, err = netns.BuildPodserver(ctx, opts.WorkDir); err != nil {
		return err
	}
	opts.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
	opts.Progress = printSample
	start := time.Now()
	samples, runErr := peerbench.Run(ctx, opts)
	title := fmt.Sprintf("nftables mode, %d services × %d endpoints, medians of %d rounds (%.0fs in all; endpoint: %d changes per round)",
		opts.Services, opts.Endpoints, opts.Rounds, time.Since(start).Seconds(), opts.Changes)
	if err := peerbench.Write(os.Stdout, title, peerbench.Summarize(samples, opts.Peers)); err != nil {
		return err
	}
	if runErr != nil {
		return runErr
	}
	failed := 0
	for _, s := range samples {
		if s.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d rounds failed (their errors are above)", failed, len(samples))
	}
	return nil
}

func printSample(s peerbench.Sample) {
	status := "ok"
	if s.Err != nil {
		status = s.Err.Error()
	}
	var eps []string
	for _, d := range s.Endpoint {
		eps = append(eps, fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)))
	}
	fmt.Fprintf(os.Stderr, "round %d %-8s full %.2fs (own %.2fs) endpoint ms [%s] (own %.1fms) restart %.2fs (%d of %d connections failed) "+
		"first/last packet %v/%v RSS %d MB (main %d MB, children %v): %s\n",
		s.Round+1, s.Peer, s.Full.Seconds(), s.FullOwn.Seconds(), strings.Join(eps, " "),
		float64(s.EndpointOwn)/float64(time.Millisecond), s.Restart.Seconds(), s.RestartFailed, s.RestartConns,
		s.FirstConn, s.LastConn, s.RSSTree>>20, s.RSSMain>>20, s.Children, status)
}
