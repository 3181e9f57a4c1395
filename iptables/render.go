package iptables

import (
	"bytes"
	"net/netip"
	"slices"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// DefaultLargeClusterEndpointsThreshold is upstream's largeClusterEndpointsThreshold:
// above this many endpoints in total, endpoint rules carry no comments.
const DefaultLargeClusterEndpointsThreshold = 1000

// NodePortAddresses says which destinations NodePorts answer on. The zero
// value matches every local address (upstream's MatchAll, the default).
type NodePortAddresses struct {
	// Restricted limits NodePorts to IPs; with no IPs no NodePort answers.
	Restricted bool
	// IPs are the node addresses of the proxier's family inside the configured CIDRs.
	IPs []netip.Addr
}

// RenderOptions configure rule generation for one IP family.
type RenderOptions struct {
	// Family selects IPv4 or IPv6 specifics; empty means the snapshot's family.
	Family v1.IPFamily
	// MasqueradeMark is the mark text written in rules, e.g. "0x00004000".
	MasqueradeMark string
	// MasqueradeAll masquerades all ClusterIP traffic, not only off-cluster traffic.
	MasqueradeAll     bool
	LocalDetector     netfilter.LocalDetector
	NodePortAddresses NodePortAddresses
	// LocalhostNodePorts allows NodePorts on 127.0.0.0/8 (IPv4 only, and only
	// when NodePortAddresses include an IPv4 loopback address).
	LocalhostNodePorts bool
	// NodeIPs are this node's IPs, for the LB source-range allow-from-node
	// check; empty means the snapshot's Node.IPs.
	NodeIPs []netip.Addr
	// RandomFully adds --random-fully to the MASQUERADE rule.
	RandomFully bool
	// ConntrackTCPBeLiberal omits the INVALID-state drop in KUBE-FORWARD, as
	// upstream does when net.netfilter.nf_conntrack_tcp_be_liberal is set.
	ConntrackTCPBeLiberal bool
	// LargeClusterEndpointsThreshold defaults to DefaultLargeClusterEndpointsThreshold when 0.
	LargeClusterEndpointsThreshold int
}

// Renderer turns snapshots into iptables-restore input. It caches the
// probability strings between calls; it is not safe for concurrent use.
type Renderer struct {
	opts  RenderOptions
	probs probabilities
	// Buffers reused across renders, so steady-state syncs do not page in
	// tens of megabytes of fresh memory.
	svcBuf, out bytes.Buffer
	top         [topChains]chainBuf
	// state caches chain names and per-service chains across renders.
	state serviceState
	// gen counts renders: a Rendering is valid while it is the latest.
	gen uint64
}

// NewRenderer returns a renderer for one IP family.
func NewRenderer(opts RenderOptions) *Renderer {
	if opts.LargeClusterEndpointsThreshold == 0 {
		opts.LargeClusterEndpointsThreshold = DefaultLargeClusterEndpointsThreshold
	}
	opts.LocalDetector = netfilter.LocalDetector{IfLocal: restoreArgs(opts.LocalDetector.IfLocal),
		IfNotLocal: restoreArgs(opts.LocalDetector.IfNotLocal)}
	return &Renderer{opts: opts}
}

// restoreArgs quotes configured arguments once, so rules never carry them raw.
func restoreArgs(args []string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = restoreArg(a)
	}
	return out
}

// Render is NewRenderer(opts).Render(snap), for one-off use.
func Render(snap *proxier.Snapshot, opts RenderOptions) *Rendering {
	return NewRenderer(opts).Render(snap)
}

// Render builds the filter and nat tables for snap. Top-level chains are
// always complete; per-service chains are written for every service when
// snap.Full, otherwise only for services in snap.Changed (the others are
// still counted and reported active). The output is deterministic: chains
// are declared and filled in upstream's test order (KUBE-NODEPORTS,
// KUBE-SERVICES, then by name) and services are visited by svcPortName.
// The Rendering shares the Renderer's buffers: it is valid until the next
// Render, and using it later panics.
func (r *Renderer) Render(snap *proxier.Snapshot) *Rendering {
	r.gen++
	run := newRenderRun(r, snap)
	for _, n := range r.state.sortedNames(snap) {
		run.service(n)
	}
	run.removed = r.state.forgetRemoved(snap, run.removed)
	run.writeTopLevel()
	return run.finish()
}

// renderRun is the state of one Render call.
type renderRun struct {
	owner *Renderer
	opts  *RenderOptions
	probs *probabilities
	snap  *proxier.Snapshot

	ipv6               bool
	large              bool
	localhostNodePorts bool
	nodeIPs            []netip.Addr

	// top holds all top-level chains; filter and nat name them.
	top    *[topChains]chainBuf
	filter struct{ services, external, forward, nodePorts, proxyFirewall, firewall *chainBuf }
	nat    struct{ services, nodePorts, postrouting, markMasq *chainBuf }

	// svc holds the rules of all per-service nat chains, one contiguous
	// segment per chain; discard is set for services not being rewritten.
	svcBuf  *bytes.Buffer
	out     *bytes.Buffer
	svc     ruleWriter
	segs    []segment
	segOpen int
	group   int32 // ordinal of the service port being rendered

	// state is the Renderer's; collect gathers the chains of the service
	// being rendered, removed the chains no service needs any more.
	state   *serviceState
	port    *portState
	collect []string
	removed []string

	scratch   []endpointInfo
	usedNames []endpointName
}

// chainBuf is a top-level chain whose rules are written by many services.
type chainBuf struct {
	name string
	buf  bytes.Buffer
	w    ruleWriter
}

// reset prepares a reused chain buffer for a new render.
func (c *chainBuf) reset(name string) *chainBuf {
	c.name = name
	c.buf.Reset()
	c.w = ruleWriter{buf: &c.buf}
	return c
}

// segment is one per-service chain inside renderRun.svcBuf.
type segment struct {
	name       string
	start, end int
	group      int32 // the service port's ordinal in this render, from 1
}

func newRenderRun(r *Renderer, snap *proxier.Snapshot) *renderRun {
	total := r.state.totalEndpoints(snap)
	r.state.reserveOwners(2*snap.Len() + total)
	run := &renderRun{owner: r, opts: &r.opts, probs: &r.probs, snap: snap, svcBuf: &r.svcBuf, out: &r.out,
		state: &r.state, top: &r.top}
	family := r.opts.Family
	if family == "" {
		family = snap.Family
	}
	run.ipv6 = family == v1.IPv6Protocol
	run.localhostNodePorts = r.opts.LocalhostNodePorts && !run.ipv6 && r.opts.NodePortAddresses.containsIPv4Loopback()
	run.nodeIPs = r.opts.NodeIPs
	if len(run.nodeIPs) == 0 {
		run.nodeIPs = snap.Node.IPs
	}
	run.large = total > r.opts.LargeClusterEndpointsThreshold
	f, n, t := &run.filter, &run.nat, &r.top
	f.services, f.external, f.forward = t[0].reset(netfilter.ServicesChain), t[1].reset(netfilter.ExternalServicesChain), t[2].reset(netfilter.ForwardChain)
	f.nodePorts, f.proxyFirewall, f.firewall = t[3].reset(netfilter.NodePortsChain), t[4].reset(netfilter.ProxyFirewallChain), t[5].reset(netfilter.FirewallChain)
	n.services, n.nodePorts = t[6].reset(netfilter.ServicesChain), t[7].reset(netfilter.NodePortsChain)
	n.postrouting, n.markMasq = t[8].reset(netfilter.PostroutingChain), t[9].reset(netfilter.MarkMasqChain)
	r.svcBuf.Reset()
	run.svc.buf = &r.svcBuf
	if snap.Full {
		run.svcBuf.Grow(500*snap.Len() + 350*total)
	}
	return run
}

// keepBufferBytes is the buffer capacity a partial render keeps; a full
// render at 10k services grows each buffer to ~30 MB.
const keepBufferBytes = 4 << 20

// releaseLargeBuffers drops the buffers a full render grew: partial inputs
// are kilobytes, and keeping ~60 MB resident between rare full syncs is
// waste. It reports whether it dropped any. The Proxier calls it when a sync
// is over, as the Rendering shares these buffers.
func (r *Renderer) releaseLargeBuffers() bool {
	released := false
	if r.svcBuf.Cap() > keepBufferBytes {
		r.svcBuf, released = bytes.Buffer{}, true
	}
	if r.out.Cap() > keepBufferBytes {
		r.out, released = bytes.Buffer{}, true
	}
	return released
}

func (n *NodePortAddresses) containsIPv4Loopback() bool {
	if !n.Restricted {
		return true
	}
	return slices.ContainsFunc(n.IPs, func(a netip.Addr) bool { return a.Is4() && a.IsLoopback() })
}

// serviceName pairs a service port name with its cached state.
type serviceName struct {
	name proxier.ServicePortName
	str  string
	port *portState
}

// beginChain declares a per-service chain and starts its segment.
func (r *renderRun) beginChain(name string) {
	r.collect = append(r.collect, name)
	if !r.svc.discard {
		r.segOpen = r.svcBuf.Len()
	}
}

// endChain closes the segment opened by beginChain.
func (r *renderRun) endChain(name string) {
	if !r.svc.discard {
		r.segs = append(r.segs, segment{name: name, start: r.segOpen, end: r.svcBuf.Len(), group: r.group})
	}
}
