package ipvs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
)

// DryRunOptions configure a DryRun.
type DryRunOptions struct {
	// Options are the Proxier's; Handle, Addresses and the Netfilter seams
	// (IPSet, Restorer) are replaced by fakes. Netfilter nil means IPVS only.
	Options Options
	// Local are the node's addresses (NodePort virtual servers go there).
	Local []netip.Addr
	// Out receives the report after every sync.
	Out io.Writer
}

// DryRun is a proxier.Backend for --dry-run: it runs a Proxier against
// empty fakes (no root, nothing touched) and after each sync prints the
// planned virtual servers and destinations (like `ipvsadm -Ln`), the
// kube-ipvs0 addresses, the ipset members and the iptables-restore input.
type DryRun struct {
	p      *Proxier
	handle *vs.Fake
	addrs  *addresses.Fake
	sets   *ipset.Fake
	rules  *capturingRestorer
	family v1.IPFamily
	out    io.Writer
}

var _ proxier.Backend = (*DryRun)(nil)

// NewDryRun builds the Proxier over fakes.
func NewDryRun(opts DryRunOptions) (*DryRun, error) {
	if opts.Out == nil {
		return nil, errors.New("ipvs dry run: Out is required")
	}
	d := &DryRun{handle: vs.NewFake(vs.FakeOptions{}), addrs: addresses.NewFake(opts.Local...), family: opts.Options.Family, out: opts.Out}
	if d.family == "" {
		d.family = v1.IPv4Protocol
	}
	o := opts.Options
	o.Handle, o.Addresses = d.handle, d.addrs
	if o.Netfilter != nil {
		nf := *o.Netfilter
		d.sets, d.rules = ipset.NewFake(), &capturingRestorer{}
		nf.IPSet, nf.Restorer = d.sets, d.rules
		o.Netfilter = &nf
	}
	p, err := New(o)
	if err != nil {
		return nil, err
	}
	d.p = p
	return d, nil
}

// Sync syncs the Proxier against the fakes and prints the result.
func (d *DryRun) Sync(ctx context.Context, snap *proxier.Snapshot) (proxier.SyncResult, error) {
	res, err := d.p.Sync(ctx, snap)
	if err != nil {
		return res, err
	}
	return res, d.WriteReport(d.out)
}

// WriteReport prints the state the last sync planned, in four sections
// headed "# kproxy --dry-run: <family> ...".
func (d *DryRun) WriteReport(w io.Writer) error {
	var b strings.Builder
	if err := d.writeServers(&b); err != nil {
		return err
	}
	bound, err := d.addrs.Bound()
	if err != nil {
		return err
	}
	d.header(&b, addresses.DummyDevice+" addresses")
	for _, a := range bound {
		b.WriteString(netip.PrefixFrom(a, a.BitLen()).String() + "\n")
	}
	if d.sets != nil {
		d.writeSets(&b)
		d.header(&b, "iptables-restore --noflush input")
		b.Write(d.rules.last)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

func (d *DryRun) header(b *strings.Builder, what string) {
	fmt.Fprintf(b, "# kproxy --dry-run: %s %s\n", d.family, what)
}

// writeServers prints the virtual servers like `ipvsadm -Ln` (without its version line).
func (d *DryRun) writeServers(b *strings.Builder) error {
	d.header(b, "IPVS virtual servers (ipvsadm -Ln)")
	b.WriteString("Prot LocalAddress:Port Scheduler Flags\n")
	b.WriteString("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	servers, err := d.handle.ListVirtualServers()
	if err != nil {
		return err
	}
	for _, v := range servers {
		fmt.Fprintf(b, "%-4s %s %s%s\n", v.Protocol, hostPort(v.Addr, v.Port), v.Scheduler, flagsText(v))
		dests, err := d.handle.ListDestinations(v.ServiceKey)
		if err != nil {
			return err
		}
		for _, dst := range dests {
			fmt.Fprintf(b, "  -> %-28s %-7s %-6d %-10d %d\n", hostPort(dst.Addr, dst.Port), "Masq", dst.Weight,
				dst.ActiveConnections, dst.InactiveConnections)
		}
	}
	return nil
}

// hostPort is ipvsadm's spelling: 10.0.0.1:80, [fd00::1]:80.
func hostPort(a netip.Addr, port uint16) string {
	return netip.AddrPortFrom(a, port).String()
}

// flagsText is ipvsadm's flag column: " persistent 10800", " ops", " flag-1,flag-2".
func flagsText(v vs.VirtualServer) string {
	var parts []string
	if v.Flags&vs.FlagPersistent != 0 {
		parts = append(parts, fmt.Sprintf("persistent %d", v.Timeout))
	}
	if v.Flags&vs.FlagOnePacket != 0 {
		parts = append(parts, "ops")
	}
	var sched []string
	for i, f := range []vs.Flags{vs.FlagSched1, vs.FlagSched2, vs.FlagSched3} {
		if v.Flags&f != 0 {
			sched = append(sched, fmt.Sprintf("flag-%d", i+1))
		}
	}
	if len(sched) > 0 {
		parts = append(parts, strings.Join(sched, ","))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, " ")
}

// writeSets prints every KUBE-* set of the family as `ipset save` would.
func (d *DryRun) writeSets(b *strings.Builder) {
	d.header(b, "ipsets (ipset save)")
	for _, spec := range ipset.Specs(d.family) {
		members, ok := d.sets.Members(spec.Name)
		if !ok {
			continue
		}
		b.WriteString(spec.CreateLine() + "\n")
		for _, m := range members {
			b.WriteString("add " + spec.Name + " " + m + "\n")
		}
	}
}

// capturingRestorer is the dry run's iptables: empty tables (so every jump
// rule is inserted) and the last restore input kept for the report.
type capturingRestorer struct {
	last []byte
}

func (c *capturingRestorer) Restore(_ context.Context, data []byte) error {
	c.last = slices.Clone(data)
	return nil
}

func (c *capturingRestorer) Save(context.Context, string) ([]byte, error) { return nil, nil }
