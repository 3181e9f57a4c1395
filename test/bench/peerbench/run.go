package peerbench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/kproxy/kproxy/test/cluster"
)

// Proxy modes a peer runs in.
const (
	ModeNFTables = "nftables"
	ModeIPTables = "iptables"
)

// Peer is one proxy binary to measure, in one mode.
type Peer struct {
	Name string // "upstream", "kproxy", "upstream-iptables", ...
	Bin  string
	// Mode is nftables (every scenario) or iptables (full sync, first
	// packet and memory only: the comparison point for the first packet).
	Mode string
}

// Options configures Run.
type Options struct {
	Services, Endpoints int
	Rounds              int
	// Changes is the number of endpoint changes timed per round and peer.
	Changes int
	Peers   []Peer
	// Timeout bounds each wait for a proxy (full sync, restart, one change).
	Timeout time.Duration
	// FirstPacket adds the first-packet scenario.
	FirstPacket bool
	// HeapProfiles turns on the proxies' profiling endpoints and writes
	// each proxy's live heap after its first full sync to the WorkDir
	// (NAME-roundN-heap.pprof, for go tool pprof).
	HeapProfiles bool
	// Podserver is the pod server binary (test/netns.BuildPodserver) that
	// answers for the endpoints.
	Podserver string
	// Binaries of the control plane; zero means cluster.ResolveBinaries.
	Binaries cluster.Binaries
	// WorkDir receives the configuration and the proxies' logs.
	WorkDir string
	// Progress, when set, is called with each sample as it is taken.
	Progress func(Sample)
	// Log, when set, is called with progress lines (object creation, ...).
	Log func(format string, args ...any)
}

// Sample is one round of one peer.
type Sample struct {
	Peer  string
	Round int
	// Full is proxy start → service-ips holds every service; FullOwn the
	// proxy's own first full IPv4 sync (its metric).
	Full, FullOwn time.Duration
	// Endpoint are the round's API write → address in the chain times;
	// EndpointOwn the proxy's mean partial IPv4 sync over them.
	Endpoint    []time.Duration
	EndpointOwn time.Duration
	// EndpointFailed is how many connections failed while waiting for the
	// changes (a proxy should refuse none).
	EndpointFailed int
	// Restart is the second start → a completed sync with every service;
	// RestartConns connections were made meanwhile, RestartFailed failed.
	Restart                     time.Duration
	RestartConns, RestartFailed int
	// FirstConn and LastConn are the median connect (and greeting) times
	// from the node to the first and the last service created.
	FirstConn, LastConn time.Duration
	// RSSTree is the peak RSS of the proxy and its children over the
	// round; RSSMain the main process's VmHWM; Children whether any child ran.
	RSSTree, RSSMain int64
	Children         bool
	Err              error
}

// Run starts the control plane, creates the objects and measures every
// peer Rounds times. It returns the samples taken so far with an error.
func Run(ctx context.Context, opts Options) ([]Sample, error) {
	opts = withDefaults(opts)
	if n := opts.Rounds * len(opts.Peers) * opts.Changes; n > opts.Services {
		return nil, fmt.Errorf("%d endpoint changes in all, more than the %d services: each change needs a service never changed before", n, opts.Services)
	}
	c, err := cluster.Start(ctx, cluster.Options{Binaries: opts.Binaries, LogDir: filepath.Join(opts.WorkDir, "cluster")})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	cfg := *c.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	client, err := kubernetes.NewForConfig(&cfg)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	start := time.Now()
	if err := createObjects(ctx, client, opts.Services, opts.Endpoints); err != nil {
		return nil, err
	}
	opts.Log("created %d services × %d endpoints in %v", opts.Services, opts.Endpoints, time.Since(start).Round(time.Millisecond))
	r := &runner{opts: opts, c: c, client: client, conf: map[string]string{}, stride: 7919,
		read: proxyReader{countServices: countServices, scrape: scrape}}
	if opts.Services%r.stride == 0 {
		r.stride = 1
	}
	for _, mode := range []string{ModeNFTables, ModeIPTables} {
		r.conf[mode] = filepath.Join(opts.WorkDir, mode+".conf")
		if err := os.WriteFile(r.conf[mode], configFile(c.Kubeconfig, mode, opts.HeapProfiles), 0o600); err != nil {
			return nil, err
		}
	}
	var samples []Sample
	for round := range opts.Rounds {
		for _, peer := range opts.Peers {
			s := r.round(ctx, peer, round)
			opts.Progress(s)
			samples = append(samples, s)
			if ctx.Err() != nil {
				return samples, ctx.Err()
			}
		}
	}
	return samples, nil
}

func withDefaults(opts Options) Options {
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.Progress == nil {
		opts.Progress = func(Sample) {}
	}
	if opts.Log == nil {
		opts.Log = func(string, ...any) {}
	}
	return opts
}

// configFile is the configuration every peer of a mode runs with: the
// deployed settings (minSyncPeriod 1s, syncPeriod 30s), the admin
// kubeconfig, conntrack sysctls left alone (not settable in a namespace),
// and /debug/pprof when profiling.
func configFile(kubeconfig, mode string, profiling bool) []byte {
	return fmt.Appendf(nil, `apiVersion: kubeproxy.config.k8s.io/v1alpha1
enableProfiling: %t
kind: KubeProxyConfiguration
mode: %s
hostnameOverride: %s
bindAddress: 0.0.0.0
healthzBindAddress: 0.0.0.0:10256
metricsBindAddress: 127.0.0.1:10249
clusterCIDR: 10.244.0.0/16
clientConnection:
  kubeconfig: %s
  qps: 50
  burst: 100
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
%s:
  minSyncPeriod: 1s
  syncPeriod: 30s
`, profiling, mode, NodeName, kubeconfig, mode)
}

// runner holds what every round shares.
type runner struct {
	opts    Options
	c       *cluster.Cluster
	client  kubernetes.Interface
	conf    map[string]string // configuration file per mode
	changes int               // endpoint changes written so far (each gets a new address)
	stride  int               // between the services of consecutive changes
	read    proxyReader
}

// proxyReader reads what a proxy has done, from inside its namespace: the
// services in its table and its metrics (countServices and scrape; tests
// replace them).
type proxyReader struct {
	countServices func(ctx context.Context, ns, mode string) (int, error)
	scrape        func(ctx context.Context, ns string) (metrics, error)
}

func (r *runner) logPath(name string) string {
	return filepath.Join(r.opts.WorkDir, name+".log")
}

// round measures one peer in a fresh namespace.
func (r *runner) round(ctx context.Context, peer Peer, round int) Sample {
	s := Sample{Peer: peer.Name, Round: round}
	made, err := nodeNamespaces(ctx, peer.Name)
	for _, ns := range made {
		defer deleteNamespace(ns)
	}
	if err != nil {
		s.Err = err
		return s
	}
	ns := made[0]
	if err := r.c.ServeAPIIn(ns); err != nil {
		s.Err = err
		return s
	}
	stopServers, err := r.prepareTraffic(ctx, ns, made[1])
	if err != nil {
		s.Err = fmt.Errorf("pod servers: %w", err)
		return s
	}
	defer stopServers()
	s.Err = r.measure(ctx, &s, ns, peer, r.logPath(fmt.Sprintf("%s-round%d", peer.Name, round+1)))
	return s
}

func (r *runner) measure(ctx context.Context, s *Sample, ns string, peer Peer, logPath string) error {
	p, err := startProxy(ns, peer.Bin, logPath, "--config", r.conf[peer.Mode], "-v", "2")
	if err != nil {
		return err
	}
	defer func() {
		p.stop(30 * time.Second)
		tree, main, children := p.rss.Peak()
		s.RSSTree, s.RSSMain, s.Children = max(s.RSSTree, tree), max(s.RSSMain, main), s.Children || children
	}()
	if s.Full, s.FullOwn, err = r.waitFull(ctx, p, peer.Mode); err != nil {
		return fmt.Errorf("full sync: %w", err)
	}
	if r.opts.HeapProfiles {
		if err := saveHeapProfile(ctx, ns, strings.TrimSuffix(logPath, ".log")+"-heap.pprof"); err != nil {
			return fmt.Errorf("heap profile: %w", err)
		}
	}
	if r.opts.FirstPacket {
		if s.FirstConn, s.LastConn, err = r.firstPacket(ctx, ns); err != nil {
			return fmt.Errorf("first packet: %w", err)
		}
	}
	if peer.Mode == ModeIPTables {
		return nil
	}
	if s.Endpoint, s.EndpointOwn, err = r.endpointChanges(ctx, s, p); err != nil {
		return fmt.Errorf("endpoint change: %w", err)
	}
	p, err = r.restart(ctx, s, p, peer, logPath)
	if err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// restart stops p, starts the proxy again over its table and waits until
// it has synced, with connections to one service made every 10 ms from
// before the stop to the end, and returns the new process (p if it could
// not start one).
func (r *runner) restart(ctx context.Context, s *Sample, p *proxyProcess, peer Peer, logPath string) (*proxyProcess, error) {
	ip, err := r.clusterIP(ctx, r.opts.Services/2)
	if err != nil {
		return p, err
	}
	loop := startConnLoop(p.ns, ip)
	p.stop(30 * time.Second)
	s.RSSTree, s.RSSMain, s.Children = p.rss.Peak()
	next, err := startProxy(p.ns, peer.Bin, logPath, "--config", r.conf[peer.Mode], "-v", "2")
	if err != nil {
		loop.stop()
		return p, err
	}
	s.Restart, err = r.waitRestart(ctx, next)
	s.RestartConns, s.RestartFailed = loop.stop()
	return next, err
}

// poll calls fn until it reports done, fails, the proxy exits, or Timeout.
func (r *runner) poll(ctx context.Context, p *proxyProcess, every time.Duration, fn func() (bool, error)) error {
	deadline := time.Now().Add(r.opts.Timeout)
	var last error
	for {
		if err := p.exited(); err != nil {
			return err
		}
		done, err := fn()
		if done && err == nil {
			return nil
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("not done within %v (last error: %v)", r.opts.Timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
	}
}

// waitFull waits until the table holds every service after p started
// (the time it returns, Full) and then until the proxy reports its first
// full sync complete (fullSynced), and returns that sync's own metric.
// Only then do the rules surely carry traffic: iptables mode, restoring
// into a nearly empty nat table, commits nat's chains, KUBE-SERVICES
// included, one transaction before the jumps to them from the built-in
// chains (iptables/restore_plan.go, the "-S" prefix). A connection made in
// between gets a null NAT binding from conntrack, which its SYN
// retransmissions keep, so it times out even once the jumps are in: the
// first-packet scenario failed that way at 2000 (sometimes) and 10k
// services, with the proxy's own full sync metric not yet reported.
func (r *runner) waitFull(ctx context.Context, p *proxyProcess, mode string) (time.Duration, time.Duration, error) {
	var took time.Duration
	var m metrics
	err := r.poll(ctx, p, 100*time.Millisecond, func() (bool, error) {
		if took == 0 {
			n, err := r.read.countServices(ctx, p.ns, mode)
			if err != nil || n < r.opts.Services {
				return false, err
			}
			took = time.Since(p.start)
		}
		var err error
		if m, err = r.read.scrape(ctx, p.ns); err != nil {
			return false, err
		}
		if !fullSynced(m) {
			return false, errors.New("every service is in the table, but the proxy reports no completed full sync")
		}
		return true, nil
	})
	if err != nil {
		return 0, 0, err
	}
	own, _ := m.histogram(metricFull).meanSince(histogram{})
	r.opts.Log("%s: every service in the table after %v, full sync reported complete after %v (own metric %v)",
		p.ns, took.Round(time.Millisecond), time.Since(p.start).Round(time.Millisecond), own.Round(time.Millisecond))
	return took, own, nil
}

// fullSynced reports whether the proxy has completed an IPv4 full sync.
// The first one is the sync that writes every service: the objects exist
// before the proxy starts, and both proxies sync only after their
// informers listed them (FullOwn relies on the same).
func fullSynced(m metrics) bool {
	return m.histogram(metricFull).count >= 1
}

// endpointChanges times Changes endpoint changes, each written after the
// previous one was seen plus minSyncPeriod, and returns the times and the
// proxy's mean partial sync (its general sync metric when it has no
// partial one).
func (r *runner) endpointChanges(ctx context.Context, s *Sample, p *proxyProcess) ([]time.Duration, time.Duration, error) {
	before, err := r.read.scrape(ctx, p.ns)
	if err != nil {
		return nil, 0, err
	}
	var took []time.Duration
	seen := time.Now()
	for range r.opts.Changes {
		// A stride prime to Services names distinct services for changes
		// 0..Services-1: none already has a changed endpoint.
		i := r.changes * r.stride % r.opts.Services
		addr := changedIP(r.changes)
		r.changes++
		ip, err := r.clusterIP(ctx, i)
		if err != nil {
			return took, 0, err
		}
		time.Sleep(time.Until(seen.Add(1100 * time.Millisecond))) // pacing under minSyncPeriod is the experiment's input
		sent, err := changeEndpoint(ctx, r.client, i, addr)
		if err != nil {
			return took, 0, err
		}
		failed, err := r.waitChanged(ctx, p, p.ns, ip)
		s.EndpointFailed += failed
		if err != nil {
			return took, 0, fmt.Errorf("%s (%s → %s): %w", serviceName(i), ip, addr, err)
		}
		seen = time.Now()
		took = append(took, seen.Sub(sent))
	}
	after, err := r.read.scrape(ctx, p.ns)
	if err != nil {
		return took, 0, err
	}
	own, n := after.histogram(metricPartial).meanSince(before.histogram(metricPartial))
	if n == 0 {
		own, _ = after.histogram(metricSync).meanSince(before.histogram(metricSync))
	}
	return took, own, nil
}

// waitRestart waits until the restarted proxy has completed a sync and the
// table holds every service.
func (r *runner) waitRestart(ctx context.Context, p *proxyProcess) (time.Duration, error) {
	var took time.Duration
	err := r.poll(ctx, p, 100*time.Millisecond, func() (bool, error) {
		m, err := r.read.scrape(ctx, p.ns)
		if err != nil {
			return false, err
		}
		last, ok := m.lastSync()
		if !ok || last.Before(p.start) {
			return false, errors.New("no sync since the restart")
		}
		took = time.Since(p.start)
		n, err := r.read.countServices(ctx, p.ns, ModeNFTables)
		return n >= r.opts.Services, err
	})
	return took, err
}
