package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier/healthcheck"
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
		if p.cfg.Mode == config.ModeIPVS {
			go p.runIPVSTermination(ctx, fp)
		} else {
			go p.monitorCanary(ctx, fp)
		}
	}
	go func() { errs <- p.runSource(ctx) }()
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
	h := p.handler()
	if p.cfg.Manifests != "" {
		return informers.RunManifests(ctx, informers.ManifestOptions{
			Path: p.cfg.Manifests, NodeName: p.cfg.NodeName, Handler: h, PollInterval: p.cfg.ManifestsPollInterval, Logger: p.logger.WithName("manifests"),
		})
	}
	return informers.RunCluster(ctx, informers.ClusterOptions{
		Client: p.client, NodeName: p.cfg.NodeName, ResyncPeriod: p.cfg.ConfigSyncPeriod, Handler: h,
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
	return errors.Join(errs...)
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

// monitorCanary forces a full sync when someone flushed the tables under us.
func (p *proxy) monitorCanary(ctx context.Context, fp *familyProxy) {
	logger := p.logger.WithValues("ipFamily", fp.family)
	iptables.Monitor(ctx, iptables.MonitorOptions{
		Restorer: fp.restorer, Interval: p.cfg.SyncPeriod,
		OnMissing: func() {
			if !fp.tracker.Initialized() {
				return
			}
			logger.Info("Canary chain KUBE-PROXY-CANARY is gone: iptables was flushed; rewriting all rules")
			fp.runner.ForceFull()
		},
		OnError: func(err error) { logger.V(2).Info("Canary check failed", "err", err) },
	})
}
