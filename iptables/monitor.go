package iptables

import (
	"bytes"
	"context"
	"time"
)

// MonitorOptions configures Monitor.
type MonitorOptions struct {
	Restorer Restorer
	// Interval is how often the canary is checked (upstream: syncPeriod).
	Interval time.Duration
	// OnMissing is called when the canary chain has vanished: someone flushed
	// the tables (a firewall reload, iptables -F), so everything must be rewritten.
	OnMissing func()
	// OnError is told about failed checks; the monitor keeps going.
	OnError func(error)
}

// Monitor watches the KUBE-PROXY-CANARY chain in the mangle table, which
// every full sync creates, and calls OnMissing when it disappears, until ctx
// ends. mangle is the smallest table kproxy touches, so the check stays cheap
// at any number of services.
func Monitor(ctx context.Context, opts MonitorOptions) {
	tick := time.NewTicker(opts.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		present, err := CanaryPresent(ctx, opts.Restorer)
		switch {
		case err != nil:
			if opts.OnError != nil {
				opts.OnError(err)
			}
		case !present:
			opts.OnMissing()
		}
	}
}

// CanaryPresent reports whether the mangle table holds the canary chain.
func CanaryPresent(ctx context.Context, r Restorer) (bool, error) {
	out, err := r.Save(ctx, "mangle")
	if err != nil {
		return false, err
	}
	return bytes.Contains(out, []byte(":"+CanaryChain+" ")), nil
}
