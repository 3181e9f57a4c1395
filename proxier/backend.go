package proxier

import "context"

// Backend programs one IP family's data plane from snapshots. Sync returns an
// error when the kernel state could not be brought to the snapshot; the runner
// then retries with a full snapshot. A backend never sees API objects.
type Backend interface {
	Sync(ctx context.Context, snap *Snapshot) (SyncResult, error)
}

// SyncResult is what a backend reports about a successful sync, for metrics and logs.
type SyncResult struct {
	// Full is true when the backend rewrote all of its state.
	Full bool
	// RestoreBytes is the size of the kernel input written (iptables-restore text, netlink messages…).
	RestoreBytes int
	// Rules counts rules per table after the sync (for kubeproxy_sync_proxy_rules_iptables_total).
	Rules map[string]int
}
