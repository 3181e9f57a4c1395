package nftables

import (
	"context"
	"fmt"

	"github.com/kproxy/kproxy/nftables/nftnl"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// BatchRunner runs a netlink batch on this family's "kube-proxy" table:
// nftnl.Conn, or a fake in tests.
type BatchRunner interface {
	Run(ctx context.Context, b *nftnl.Batch) error
}

// NameLister lists the names of a table's chains and named sets
// (nftnl.Conn): what a full sync needs to know of the kernel's table,
// without nft's full listing.
type NameLister interface {
	ListNames(ctx context.Context, f nftnl.Family, table string) (nftnl.Names, error)
}

// ChainDigester gives the digests of a table's chains (nftnl.Conn), so
// that a full sync skips the chains that already hold what it renders.
type ChainDigester interface {
	ChainDigests(ctx context.Context, f nftnl.Family, table string) (map[string]nftnl.Digest, error)
}

// netlinkGiveUp is how many netlink transactions in a row may fail before
// the Proxier writes every sync with nft -f again. Each failure already
// makes the next sync a full one (by nft -f when it fits one transaction;
// a chunked one still tries netlink); a kernel that keeps refusing what nft
// accepts would otherwise cost a full sync per change.
const netlinkGiveUp = 3

// runBatch runs b over netlink, unless it is empty, and returns its size
// as nft text (what nft -f would have read).
func (p *Proxier) runBatch(ctx context.Context, b *nftnl.Batch) (int, error) {
	if b.Len() == 0 {
		return 0, nil
	}
	size := b.TextSize()
	if err := p.netlink.Run(ctx, b); err != nil {
		p.netlinkFailures++
		if p.netlinkFailures >= netlinkGiveUp {
			p.netlink = nil
			err = fmt.Errorf("%w (netlink failed %d times in a row: writing with nft -f from now on)", err, netlinkGiveUp)
		}
		return size, fmt.Errorf("netlink: %w", err)
	}
	p.netlinkFailures = 0
	return size, nil
}

// localMatch is the local detector's "from a pod" match as a rule match
// (nil for the no-op detector).
func localMatch(d *netfilter.LocalDetector) nftnl.Match {
	prefix, iface, ok := d.NFTSource()
	switch {
	case !ok:
		return nil
	case iface != "":
		return nftnl.IifName{Name: iface}
	}
	return nftnl.SaddrPrefix{Prefix: prefix}
}
