package ipvs

import (
	"context"
	"errors"
	"net/netip"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
)

// NetfilterOptions turn on the ipsets and iptables rules of IPVS mode as a
// step of Proxier.Sync (after the virtual servers, before stale addresses
// are unbound). Without them the Proxier programs IPVS only.
type NetfilterOptions struct {
	// IPSet (ExecIPSet or FakeIPSet) and Restorer (of the proxier's family) are required.
	IPSet    IPSet
	Restorer iptables.Restorer
	Rules    RulesOptions
	// NodeIP is the node's primary IP, checked against LB source ranges;
	// invalid means the snapshot's first node IP of the family.
	NodeIP netip.Addr
}

// netfilterSync is the ipset + iptables step of one Proxier.
type netfilterSync struct {
	opts  NetfilterOptions
	sets  *SetSyncer
	rules *RulesApplier
}

func newNetfilterSync(opts *NetfilterOptions, family v1.IPFamily) (*netfilterSync, error) {
	if opts == nil {
		return nil, nil
	}
	if opts.IPSet == nil || opts.Restorer == nil {
		return nil, errors.New("ipvs proxier: Netfilter needs IPSet and Restorer")
	}
	if opts.Rules.MasqueradeMark == "" {
		return nil, errors.New("ipvs proxier: Netfilter.Rules.MasqueradeMark is required")
	}
	return &netfilterSync{
		opts:  *opts,
		sets:  NewSetSyncer(SetSyncerOptions{IPSet: opts.IPSet, Family: family}),
		rules: NewRulesApplier(opts.Restorer),
	}, nil
}

// syncNetfilter writes the sets (one ipset restore), then the rules that
// match them (one iptables-restore). Both are computed from the whole
// snapshot on every sync: IPVS-mode tables are small.
func (p *Proxier) syncNetfilter(ctx context.Context, snap *proxier.Snapshot, pl *syncPlan) error {
	nf := p.netfilter
	if nf == nil {
		return nil
	}
	want := BuildDesiredSets(snap, SetMemberOptions{NodeIP: nf.opts.NodeIP, NodePortIPs: pl.nodeIPs, Bound: pl.desired.Bind})
	if _, _, err := nf.sets.Sync(ctx, want, pl.full); err != nil {
		return err
	}
	return nf.rules.Apply(ctx, RenderRules(want, nf.opts.Rules))
}
