package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	"k8s.io/kube-proxy/config/v1alpha1"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/nft"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// Switching proxy modes on a node, as upstream's platformCleanup: kproxy
// removes what the modes it does not run left behind (after its own first
// sync, see leftoverRemover; with --init-only at once), and --cleanup
// removes what every mode left.

// leftoverModes returns whose leftovers to remove, in order. With
// cleanupAndExit (--cleanup): every mode's. Otherwise, starting in mode:
// nftables mode removes iptables and IPVS modes' rules, iptables and IPVS
// modes remove nftables mode's tables. Switching between iptables and IPVS
// mode removes nothing (as upstream: they share chains such as
// KUBE-SERVICES, and each one's first full sync replaces what it finds).
// An unknown mode removes nothing.
func leftoverModes(mode v1alpha1.ProxyMode, cleanupAndExit bool) []v1alpha1.ProxyMode {
	switch {
	case cleanupAndExit:
		return []v1alpha1.ProxyMode{config.ModeIPTables, config.ModeIPVS, config.ModeNFTables}
	case mode == config.ModeNFTables:
		return []v1alpha1.ProxyMode{config.ModeIPTables, config.ModeIPVS}
	case mode == config.ModeIPTables, mode == config.ModeIPVS:
		return []v1alpha1.ProxyMode{config.ModeNFTables}
	}
	return nil
}

// modeCleaners remove one mode's leftovers each, on both IP families.
type modeCleaners map[v1alpha1.ProxyMode]func(context.Context) error

// newModeCleaners are the real cleanups. iptables and IPVS mode share one
// iptables backend choice, made (and logged) once and only if one of them runs.
func newModeCleaners(ctx context.Context, cfg *config.Config, logger klog.Logger) modeCleaners {
	backend := sync.OnceValue(func() xtables.Backend { return selectIPTablesBackend(ctx, cfg, logger) })
	return modeCleaners{
		config.ModeIPTables: func(ctx context.Context) error {
			if missing := missingIPTables(cfg, backend()); missing != "" {
				logger.Info("iptables not found: no iptables-mode rules to remove", "binary", missing)
				return nil
			}
			return cleanupIPTables(ctx, cfg, backend(), logger)
		},
		config.ModeIPVS:     func(ctx context.Context) error { return cleanupIPVS(ctx, cfg, backend(), logger) },
		config.ModeNFTables: func(ctx context.Context) error { return cleanupNFTables(ctx, cfg, logger) },
	}
}

// missingIPTables names the IPv4 iptables-save binary the backend runs
// when it is not installed ("" when it is): without it no iptables-mode
// rules can be read or removed, which (as for nft) is not a failure, e.g.
// on a node that runs nftables mode without iptables.
func missingIPTables(cfg *config.Config, backend xtables.Backend) string {
	r, err := xtables.New(xtablesOptions(cfg, backend, v1.IPv4Protocol))
	if err != nil {
		return "" // an invalid option: let the cleanup report it
	}
	if _, err := exec.LookPath(r.Binary() + "-save"); err != nil {
		return r.Binary() + "-save"
	}
	return ""
}

// removeLeftovers runs the cleaners of modes in order, going on after a
// failure, and returns the failures joined.
func removeLeftovers(ctx context.Context, modes []v1alpha1.ProxyMode, cleaners modeCleaners) error {
	var errs []error
	for _, m := range modes {
		clean, ok := cleaners[m]
		if !ok {
			errs = append(errs, fmt.Errorf("no cleanup for proxy mode %q", m))
			continue
		}
		if err := clean(ctx); err != nil {
			errs = append(errs, fmt.Errorf("remove %s mode's rules: %w", m, err))
		}
	}
	return errors.Join(errs...)
}

// removeOtherModesLeftovers is the start-up cleanup of the other modes.
// Like upstream's it is best effort: a failure is logged and kproxy goes on
// (the mode it runs does not depend on the other modes' rules being gone).
func removeOtherModesLeftovers(ctx context.Context, mode v1alpha1.ProxyMode, cleaners modeCleaners, logger klog.Logger) {
	modes := leftoverModes(mode, false)
	if len(modes) == 0 {
		return
	}
	logger.V(2).Info("Removing other proxy modes' leftovers", "mode", mode, "modes", modes)
	if err := removeLeftovers(ctx, modes, cleaners); err != nil {
		logger.Error(err, "Could not remove other proxy modes' leftovers; going on", "mode", mode)
	}
}

// cleanupNFTables deletes nftables mode's tables (table ip kube-proxy,
// table ip6 kube-proxy), kproxy's or upstream kube-proxy's. Without nft
// there are none to delete: that is logged, not an error, so a node
// without nft starts in iptables mode as it always did.
func cleanupNFTables(ctx context.Context, cfg *config.Config, logger klog.Logger) error {
	n, err := nft.Open(ctx, nft.Options{Timeout: cfg.CommandTimeout})
	if errors.Is(err, nft.ErrNotInstalled) {
		logger.Info("nft not found: no nftables-mode tables to remove", "reason", err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("clean up nftables rules: %w", err)
	}
	removed, err := netfilter.CleanupNFTablesMode(ctx, n)
	if removed > 0 {
		logger.Info("Removed kube-proxy nftables tables", "tables", removed, "table", netfilter.NFTablesTable)
	}
	if err != nil {
		return fmt.Errorf("clean up nftables rules: %w", err)
	}
	return nil
}

// leftoverRemover runs the start-up cleanup of the other modes once every
// family has synced successfully, not before as upstream does: until the
// new mode's rules are in place the old mode's keep carrying traffic (both
// can be loaded at once; the first DNAT a connection meets wins), so a
// switch under traffic loses no new connection. It is a SyncObserver of
// every family's Runner; the cleanup runs in its own goroutine so that a
// large iptables cleanup does not hold back the next sync.
type leftoverRemover struct {
	mu      sync.Mutex
	pending map[v1.IPFamily]bool
	remove  func()
	done    chan struct{}
}

func newLeftoverRemover(families []v1.IPFamily, remove func()) *leftoverRemover {
	r := &leftoverRemover{pending: map[v1.IPFamily]bool{}, remove: remove, done: make(chan struct{})}
	for _, f := range families {
		r.pending[f] = true
	}
	return r
}

// Queued is not needed: only finished syncs count.
func (r *leftoverRemover) Queued(v1.IPFamily) {}

// Synced notes a family's first successful sync and starts the cleanup
// after the last one.
func (r *leftoverRemover) Synced(_ context.Context, snap *proxier.Snapshot, _ proxier.SyncResult, _ time.Duration, err error) {
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.pending[snap.Family] {
		return
	}
	delete(r.pending, snap.Family)
	if len(r.pending) == 0 {
		go func() {
			defer close(r.done)
			r.remove()
		}()
	}
}

// wait blocks until the cleanup has run (for --once) or ctx ends.
func (r *leftoverRemover) wait(ctx context.Context) {
	select {
	case <-r.done:
	case <-ctx.Done():
	}
}
