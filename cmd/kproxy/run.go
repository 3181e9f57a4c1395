package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/healthcheck"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// initialSyncTimeout bounds how long --once / --dry-run wait for the sources' first listing.
const initialSyncTimeout = 2 * time.Minute

// run serves health and metrics, runs one sync loop per family and watches the sources until ctx ends.
func (p *proxy) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 4)
	p.startServers(ctx, errs)
	for _, fp := range p.families {
		go fp.runner.Run(ctx)
		if fp.background != nil {
			go fp.background(ctx)
		}
		go p.monitorTampering(ctx, fp)
	}
	go func() { errs <- p.runSource(ctx) }()
	go p.watchServiceCIDRs(ctx)
	select {
	case <-ctx.Done():
		p.logger.Info("Shutting down; rules stay in place for the next start")
		return nil
	case err := <-errs:
		return err
	}
}

func (p *proxy) startServers(ctx context.Context, errs chan<- error) {
	serve := func(name, addr string, start func() error) {
		if addr == "" {
			return
		}
		go func() {
			if err := start(); err != nil {
				err = fmt.Errorf("%s server on %s: %w", name, addr, err)
				if p.cfg.BindAddressHardFail {
					errs <- err
					return
				}
				p.logger.Error(err, "Server failed; continuing without it")
			}
		}()
	}
	serve("healthz", p.cfg.HealthzBindAddress, func() error {
		return p.health.Serve(ctx, p.cfg.HealthzBindAddress)
	})
	configz, err := configzBody(p.cfg)
	if err != nil {
		p.logger.Error(err, "Cannot render /configz")
	}
	mux := healthcheck.MetricsMux(p.metrics, string(p.cfg.Mode), configz, p.cfg.EnableProfiling)
	serve("metrics", p.cfg.MetricsBindAddress, func() error {
		return healthcheck.ListenAndServe(ctx, p.cfg.MetricsBindAddress, mux)
	})
}

// runSource feeds the trackers from manifest files or from the API server until ctx ends.
func (p *proxy) runSource(ctx context.Context) error {
	h := p.handlers()
	if p.cfg.Manifests != "" {
		opts := informers.ManifestOptions{
			Path: p.cfg.Manifests, NodeName: p.cfg.NodeName, Handlers: h, PollInterval: p.cfg.ManifestsPollInterval, Logger: p.logger.WithName("manifests"),
		}
		if p.cfg.Mode == config.ModeNFTables {
			opts.OnServiceCIDRs = p.setServiceCIDRs
		}
		return informers.RunManifests(ctx, opts)
	}
	return informers.RunCluster(ctx, informers.ClusterOptions{
		Client: p.client, NodeName: p.cfg.NodeName, ResyncPeriod: p.cfg.ConfigSyncPeriod, Handlers: h,
		Logger: p.logger.WithName("informers"),
	})
}

// syncOnce waits for the sources' first listing, syncs every family once and returns.
func (p *proxy) syncOnce(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, initialSyncTimeout)
	defer cancel()
	srcErr := make(chan error, 1)
	go func() { srcErr <- p.runSource(ctx) }()
	if err := p.waitInitialized(ctx, srcErr); err != nil {
		return err
	}
	var errs []error
	for _, fp := range p.families {
		if err := fp.runner.SyncOnce(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 && p.leftovers != nil {
		p.leftovers.wait(ctx)
	}
	if len(errs) == 0 && !p.cfg.DryRun {
		errs = p.retireStaleChains(ctx)
	}
	return errors.Join(errs...)
}

// staleRetirer is a backend that deletes what it flushed only in a later
// sync (nftables: stale chains, a second later); a single sync asks it to
// finish that before kproxy exits.
type staleRetirer interface {
	RetireStaleChains(ctx context.Context) error
}

func (p *proxy) retireStaleChains(ctx context.Context) []error {
	var errs []error
	for _, fp := range p.families {
		if r, ok := fp.backend.(staleRetirer); ok {
			if err := r.RetireStaleChains(ctx); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", fp.family, err))
			}
		}
	}
	return errs
}

func (p *proxy) waitInitialized(ctx context.Context, srcErr <-chan error) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		ready := true
		for _, fp := range p.families {
			ready = ready && fp.tracker.Initialized()
		}
		if ready {
			return nil
		}
		select {
		case err := <-srcErr:
			if err == nil {
				err = errors.New("source stopped before listing objects")
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("waiting for the initial listing of services and endpoint slices: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// monitorTampering forces a full sync that trusts no memory of the kernel
// when someone removed kproxy's rules under it: a canary chain (mangle, nat
// or filter) or a jump from nat PREROUTING/OUTPUT to KUBE-SERVICES is gone.
// Both modes write the canaries on full syncs and jump to KUBE-SERVICES.
func (p *proxy) monitorTampering(ctx context.Context, fp *familyProxy) {
	logger := p.logger.WithValues("ipFamily", fp.family)
	if p.cfg.Mode == config.ModeNFTables {
		// As upstream's nftables mode: no canary; a transaction that finds
		// the table changed under it fails and the retry is a full sync.
		logger.V(2).Info("No tamper monitor in nftables mode; the hourly full sync rewrites the table")
		return
	}
	lister, ok := fp.restorer.(netfilter.ChainLister)
	if !ok {
		logger.Info("Tamper detection is off: this iptables runner cannot list single chains")
		return
	}
	m, err := netfilter.NewMonitor(netfilter.MonitorOptions{
		Lister: lister, Interval: p.cfg.SyncPeriod, FullSyncs: fp.fullSyncs.Load,
		OnTampered: func(failed []netfilter.TamperCheck) {
			names := make([]string, len(failed))
			for i, c := range failed {
				names[i] = c.String()
				p.metrics.RulesTamperedTotal.WithLabelValues(string(fp.family), names[i]).Inc()
			}
			logger.Info("Rules were removed by someone else (firewall reload, iptables -F?); rewriting all rules",
				"failedChecks", names)
			if f, ok := fp.backend.(kernelStateForgetter); ok {
				f.ForgetKernelState()
			}
			fp.runner.ForceFull()
		},
		OnError: func(err error) { logger.V(2).Info("Tamper check could not run", "err", err) },
	})
	if err != nil {
		logger.Error(err, "Tamper detection is off")
		return
	}
	m.Run(ctx)
}

// kernelStateForgetter is a backend that remembers what it wrote to the
// kernel and can be told that memory is void (iptables.Proxier).
type kernelStateForgetter interface{ ForgetKernelState() }

// fullSyncCounter counts a family's successful full syncs for the tamper
// monitor, which checks nothing before the first one wrote the canaries.
type fullSyncCounter struct{ n *atomic.Uint64 }

func (fullSyncCounter) Queued(v1.IPFamily) {}

func (c fullSyncCounter) Synced(_ context.Context, _ *proxier.Snapshot, res proxier.SyncResult, _ time.Duration, err error) {
	if err == nil && res.Full {
		c.n.Add(1)
	}
}
