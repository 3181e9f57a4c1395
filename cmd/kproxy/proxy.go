package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/informers/apiclient"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
	"github.com/kproxy/kproxy/proxier/healthcheck"
	"github.com/kproxy/kproxy/proxier/metrics"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// fullSyncInterval is upstream's FullSyncPeriod: a full rewrite at least hourly.
const fullSyncInterval = time.Hour

// proxy is the wired program: one tracker, backend and runner per IP family.
type proxy struct {
	cfg    *config.Config
	host   host
	logger klog.Logger
	// out receives --dry-run output.
	out      io.Writer
	metrics  *metrics.Metrics
	health   *healthcheck.ProxyHealth
	families []*familyProxy
	// client is the API server connection; nil in --manifests mode.
	client apiclient.API
	// nodeIPs are this node's primary IPs per family (detectNodeIPs).
	nodeIPs map[v1.IPFamily][]netip.Addr
	// iptablesBackend is the iptables every command runs (selectIPTablesBackend).
	iptablesBackend xtables.Backend
	// nft is nftables mode's nft of each family, opened once (nftablesFamilies).
	nft map[v1.IPFamily]knftables.Interface
	// leftovers removes the other modes' rules after the first syncs (nil in a dry run).
	leftovers *leftoverRemover
}

type familyProxy struct {
	family   v1.IPFamily
	tracker  *proxier.Tracker
	runner   *proxier.Runner
	restorer netfilter.Restorer
	backend  proxier.Backend
	// background is the backend's own loop, if any (familyBackend).
	background func(ctx context.Context)
	// fullSyncs counts successful full syncs (for the tamper monitor).
	fullSyncs atomic.Uint64
}

// runProxy is the whole life of kproxy after flags are resolved.
func runProxy(ctx context.Context, cfg *config.Config, h host, out io.Writer) error {
	logger := klog.FromContext(ctx)
	if cfg.Mode != config.ModeIPTables && cfg.Mode != config.ModeIPVS && cfg.Mode != config.ModeNFTables {
		return fmt.Errorf("proxy mode %q is not supported by kproxy (iptables, ipvs, nftables)", cfg.Mode)
	}
	if cfg.Cleanup {
		// As upstream: --cleanup removes what every mode left, whatever the mode.
		return removeLeftovers(ctx, leftoverModes(cfg.Mode, true), newModeCleaners(ctx, cfg, logger))
	}
	if !cfg.DryRun {
		if cfg.InitOnly {
			// As upstream, --init-only does the privileged cleanup; a proxy
			// does it after its first sync (leftoverRemover).
			removeOtherModesLeftovers(ctx, cfg.Mode, newModeCleaners(ctx, cfg, logger), logger)
		}
		if err := applyHostSettings(cfg, h, logger); err != nil {
			return err
		}
	}
	if cfg.InitOnly {
		// As upstream: the steps that need full root privileges are done; a
		// later run needs only CAP_NET_ADMIN.
		logger.Info("Initialization done, exiting as asked by --init-only")
		return nil
	}
	p, err := newProxy(ctx, cfg, h, logger, out)
	if err != nil {
		return err
	}
	if cfg.Once || cfg.DryRun {
		return p.syncOnce(ctx)
	}
	return p.run(ctx)
}

func newProxy(ctx context.Context, cfg *config.Config, h host, logger klog.Logger, out io.Writer) (*proxy, error) {
	p := &proxy{cfg: cfg, host: h, logger: logger, out: out, metrics: metrics.New()}
	p.health = healthcheck.NewProxyHealth(healthcheck.ProxyHealthOptions{SyncPeriod: cfg.SyncPeriod, Metrics: p.metrics})
	if cfg.Manifests == "" {
		client, err := apiclient.NewClient(apiclient.ClientOptions{
			Kubeconfig: cfg.Kubeconfig, Master: cfg.Master, ContentType: cfg.ContentType,
			AcceptContentTypes: cfg.AcceptContentTypes, QPS: cfg.QPS, Burst: cfg.Burst, UserAgent: "kproxy/" + version,
		})
		if err != nil {
			return nil, fmt.Errorf("connect to the API server: %w", err)
		}
		p.client = client
	}
	p.nodeIPs = p.detectNodeIPs(ctx)
	if !cfg.DryRun && cfg.Mode != config.ModeNFTables {
		p.iptablesBackend = selectIPTablesBackend(ctx, cfg, logger)
	}
	if err := checkNFTablesHost(ctx, cfg); err != nil {
		return nil, err
	}
	var families []v1.IPFamily
	if cfg.Mode == config.ModeNFTables {
		var err error
		if families, p.nft, err = nftablesFamilies(ctx, cfg, out, logger); err != nil {
			return nil, fmt.Errorf("set up %s proxier: %w", v1.IPv4Protocol, err)
		}
	} else {
		families = detectFamilies(ctx, cfg, p.iptablesBackend, logger)
	}
	if !cfg.DryRun {
		p.leftovers = newLeftoverRemover(families, func() {
			removeOtherModesLeftovers(ctx, cfg.Mode, newModeCleaners(ctx, cfg, logger), logger)
		})
	}
	for _, fam := range families {
		fp, err := p.newFamily(fam)
		if err != nil {
			return nil, fmt.Errorf("set up %s proxier: %w", fam, err)
		}
		p.families = append(p.families, fp)
	}
	return p, nil
}

func (p *proxy) newFamily(fam v1.IPFamily) (*familyProxy, error) {
	fp := &familyProxy{family: fam}
	fp.tracker = proxier.NewTracker(proxier.TrackerOptions{
		Family: fam, NodeName: p.cfg.NodeName, Logger: p.logger.WithValues("ipFamily", fam),
		NodeIPsFallback: func(f v1.IPFamily) []netip.Addr { return p.nodeIPs[f] },
		Metrics:         p.firstFamilyMetrics(),
		OnChange: func() {
			if fp.runner != nil {
				fp.runner.Trigger()
			}
		},
	})
	fb, err := p.newBackend(fam)
	fp.restorer, fp.backend, fp.background = fb.restorer, fb.backend, fb.background
	if err != nil {
		return nil, err
	}
	health := healthObserver{health: p.health, metrics: p.metrics, failedSyncIsRestore: !fb.reportsOwnFailures}
	observers := []proxier.SyncObserver{health, fullSyncCounter{&fp.fullSyncs}}
	if p.leftovers != nil {
		observers = append(observers, p.leftovers)
	}
	if extra, err := p.familyObservers(fam); err != nil {
		return nil, err
	} else {
		observers = append(observers, extra...)
	}
	fp.runner, err = proxier.NewRunner(proxier.RunnerOptions{
		Tracker: fp.tracker, Backend: fp.backend, Mode: string(p.cfg.Mode),
		MinInterval: p.cfg.MinSyncPeriod, RetryInterval: p.cfg.SyncPeriod, FullSyncInterval: fullSyncInterval,
		Observers: observers, Logger: p.logger,
	})
	if err != nil {
		return nil, err
	}
	return fp, nil
}

// handlers are what the source delivers to: validation (once per event,
// the one validation path for both sources) in front of every family's
// tracker, and /healthz, which follows the Node's eligibility.
func (p *proxy) handlers() informers.Handlers {
	trackers := make([]*proxier.Tracker, 0, len(p.families))
	for _, fp := range p.families {
		trackers = append(trackers, fp.tracker)
	}
	next := informers.HandlersOf(trackers...)
	// /healthz follows the Node's eligibility (upstream's NodeEligibleHandler):
	// a Node being deleted, or gone, reports unhealthy.
	next.Nodes = append(next.Nodes, informers.NodeFuncs{
		Add:    p.health.SyncNode,
		Delete: func(*v1.Node) { p.health.SyncNode(nil) },
	})
	return apivalidation.NewHandlers(apivalidation.HandlerOptions{Next: next, Logger: p.logger.WithName("validation")})
}

// firstFamilyMetrics hands the change counters to the first family's tracker
// only: every event reaches every family, and counting it twice would lie.
func (p *proxy) firstFamilyMetrics() *metrics.Metrics {
	if len(p.families) == 0 {
		return p.metrics
	}
	return nil
}
