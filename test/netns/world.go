package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/kproxy/kproxy/test/testns"
)

// Interface names inside the world namespaces.
const (
	BridgeName     = "cbr0" // pod bridge in node and node2
	NodeClientLink = "eth0" // node's side of the node–client link
	NodePeerLink   = "eth1" // node's side of the node–node2 link
	PeerNodeLink   = "eth0" // node2's side of the node–node2 link
	ClientLink     = "eth0" // client's side of the node–client link
	PodLink        = "eth0" // a pod's side of its veth pair
)

// NetnsDir is where "ip netns add" mounts named namespaces.
const NetnsDir = testns.NetnsDir

const (
	defaultPods = 3
	maxPods     = 80 // keeps ".1N" host numbers valid as both decimal and hex
)

// Options configures a World. The zero value is valid.
type Options struct {
	// Pods is the number of pods on the node (pod-1..pod-N); default 3.
	Pods int
	// RemotePods is the number of pods on node2 (node2-pod-1..); default 3.
	RemotePods int
	// Prefix names the world's namespaces ("<Prefix>-node", ...); default
	// "kpx-<6 random hex digits>". Setup fails if a namespace already exists.
	Prefix string
	// LogDir, when set, receives a copy of every started process's output
	// (<namespace>-<program>-<pid>.log), for the demo and post-mortems.
	LogDir string
}

// Pod is one pod namespace attached to a node's bridge.
type Pod struct {
	Name     string // what the pod server answers with: "pod-1", "node2-pod-1"
	Netns    string // network namespace name
	Node     string // namespace holding the pod's bridge port
	HostVeth string // the bridge port in Node, e.g. "veth-pod-1"
	IPv4     netip.Addr
	IPv6     netip.Addr
}

// Addresses are the fixed addresses of a World.
type Addresses struct {
	NodePodCIDRv4, NodePodCIDRv6   netip.Prefix // 10.244.1.0/24, fd00:10:244:1::/64
	Node2PodCIDRv4, Node2PodCIDRv6 netip.Prefix // 10.244.2.0/24, fd00:10:244:2::/64
	NodeBridgeV4, NodeBridgeV6     netip.Addr   // 10.244.1.1, fd00:10:244:1::1
	Node2BridgeV4, Node2BridgeV6   netip.Addr   // 10.244.2.1, fd00:10:244:2::1
	// NodeV4/NodeV6 are the node's addresses on the client link: its "node IP".
	NodeV4, NodeV6           netip.Addr   // 192.168.50.1, fd00:50::1
	ClientCIDRv4             netip.Prefix // 192.168.50.0/24
	ClientCIDRv6             netip.Prefix // fd00:50::/64
	ClientV4, ClientV6       netip.Addr   // 192.168.50.2, fd00:50::2
	ClientAltV4, ClientAltV6 netip.Addr   // 192.168.50.3, fd00:50::3 (second source)
	NodeLinkV4, NodeLinkV6   netip.Addr   // 10.100.0.1, fd00:100::1
	Node2LinkV4, Node2LinkV6 netip.Addr   // 10.100.0.2, fd00:100::2
}

// DefaultAddresses returns the address plan every World uses.
func DefaultAddresses() Addresses {
	a := netip.MustParseAddr
	p := netip.MustParsePrefix
	return Addresses{
		NodePodCIDRv4: p("10.244.1.0/24"), NodePodCIDRv6: p("fd00:10:244:1::/64"),
		Node2PodCIDRv4: p("10.244.2.0/24"), Node2PodCIDRv6: p("fd00:10:244:2::/64"),
		NodeBridgeV4: a("10.244.1.1"), NodeBridgeV6: a("fd00:10:244:1::1"),
		Node2BridgeV4: a("10.244.2.1"), Node2BridgeV6: a("fd00:10:244:2::1"),
		NodeV4: a("192.168.50.1"), NodeV6: a("fd00:50::1"),
		ClientCIDRv4: p("192.168.50.0/24"), ClientCIDRv6: p("fd00:50::/64"),
		ClientV4: a("192.168.50.2"), ClientV6: a("fd00:50::2"),
		ClientAltV4: a("192.168.50.3"), ClientAltV6: a("fd00:50::3"),
		NodeLinkV4: a("10.100.0.1"), NodeLinkV6: a("fd00:100::1"),
		Node2LinkV4: a("10.100.0.2"), Node2LinkV6: a("fd00:100::2"),
	}
}

// World is a set of network namespaces wired as described in the package
// documentation. Its exported fields are read-only after NewWorld.
type World struct {
	Prefix string
	// Namespace names.
	Node, Node2, Client string
	// Pods are on the node's bridge; RemotePods on node2's.
	Pods, RemotePods []Pod
	Addrs            Addresses

	logDir string

	mu         sync.Mutex
	namespaces []string // created by this world, in creation order
	procs      []*Process
	closed     bool
}

// NewWorld creates and wires all namespaces. On failure everything created so
// far is removed and the error says which step failed.
func NewWorld(opts Options) (*World, error) {
	w, err := newWorldLayout(opts)
	if err != nil {
		return nil, err
	}
	if err := w.build(); err != nil {
		if cerr := w.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup after failed setup: %w", cerr))
		}
		return nil, fmt.Errorf("build netns world %s: %w", w.Prefix, err)
	}
	return w, nil
}

func newWorldLayout(opts Options) (*World, error) {
	pods, err := podCount(opts.Pods)
	if err != nil {
		return nil, fmt.Errorf("options.Pods: %w", err)
	}
	remote, err := podCount(opts.RemotePods)
	if err != nil {
		return nil, fmt.Errorf("options.RemotePods: %w", err)
	}
	prefix := opts.Prefix
	if prefix == "" {
		if prefix, err = randomPrefix(); err != nil {
			return nil, err
		}
	}
	if strings.ContainsAny(prefix, "/ \t\n") {
		return nil, fmt.Errorf("options.Prefix %q: must be a plain file name", prefix)
	}
	w := &World{
		Prefix: prefix,
		Node:   prefix + "-node",
		Node2:  prefix + "-node2",
		Client: prefix + "-client",
		Addrs:  DefaultAddresses(),
		logDir: opts.LogDir,
	}
	w.Pods = podLayout(prefix, w.Node, "", "10.244.1", "fd00:10:244:1", pods)
	w.RemotePods = podLayout(prefix, w.Node2, "node2-", "10.244.2", "fd00:10:244:2", remote)
	return w, nil
}

func podCount(n int) (int, error) {
	switch {
	case n == 0:
		return defaultPods, nil
	case n < 0 || n > maxPods:
		return 0, fmt.Errorf("%d pods: want 1..%d", n, maxPods)
	}
	return n, nil
}

func randomPrefix() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random world prefix: %w", err)
	}
	return "kpx-" + hex.EncodeToString(b), nil
}

// podLayout numbers pods from 1 with host part 10+i, so pod-1 is .11 in IPv4
// and ::11 in IPv6, as the package documentation promises.
func podLayout(prefix, node, namePrefix, v4Net, v6Net string, n int) []Pod {
	pods := make([]Pod, 0, n)
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("%spod-%d", namePrefix, i)
		pods = append(pods, Pod{
			Name:     name,
			Netns:    prefix + "-" + name,
			Node:     node,
			HostVeth: fmt.Sprintf("veth-pod-%d", i),
			IPv4:     netip.MustParseAddr(fmt.Sprintf("%s.%d", v4Net, 10+i)),
			IPv6:     netip.MustParseAddr(fmt.Sprintf("%s::%d", v6Net, 10+i)),
		})
	}
	return pods
}

// Path is the bind-mount path of a named namespace, for setns(2) users such
// as github.com/vishvananda/netns.GetFromPath.
func Path(ns string) string {
	return testns.Path(ns)
}

// Path is the bind-mount path of one of this world's namespaces.
func (w *World) Path(ns string) string {
	return Path(ns)
}

// Namespaces lists every namespace the world has created so far.
func (w *World) Namespaces() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.namespaces)
}

// AllPods returns the node's pods followed by node2's.
func (w *World) AllPods() []Pod {
	return slices.Concat(w.Pods, w.RemotePods)
}

// Pod finds a pod by name ("pod-1", "node2-pod-2").
func (w *World) Pod(name string) (Pod, bool) {
	for _, p := range w.AllPods() {
		if p.Name == name {
			return p, true
		}
	}
	return Pod{}, false
}

// Close kills every process the world started or that still lives in one of
// its namespaces, then deletes the namespaces. It is safe to call more than
// once and after a partial setup; later calls return nil.
func (w *World) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	procs := slices.Clone(w.procs)
	namespaces := slices.Clone(w.namespaces)
	w.mu.Unlock()

	var errs []error
	for _, p := range procs {
		if err := p.kill(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range slices.Backward(namespaces) {
		if err := testns.Delete(ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// addNamespace creates a named namespace (lo up, owned by this process,
// see test/testns) and records it for Close.
func (w *World) addNamespace(ns string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return errors.New("world is closed")
	}
	if err := testns.Add(ns); err != nil {
		return err
	}
	w.namespaces = append(w.namespaces, ns)
	return nil
}

// BridgeNetfilter reports whether IPv4 traffic crossing the node's bridge
// goes through iptables (br_netfilter present and bridge-nf-call-iptables=1
// in the node namespace, the per-namespace default). When it does, a
// service DNAT to a pod on the same bridge works without masquerading, and
// a pod reaching itself through a service needs hairpin mode on its port.
func (w *World) BridgeNetfilter() (bool, error) {
	out, err := w.Exec(w.Node, "cat", "/proc/sys/net/bridge/bridge-nf-call-iptables")
	if err != nil {
		if _, statErr := os.Stat("/proc/sys/net/bridge"); errors.Is(statErr, os.ErrNotExist) {
			return false, nil // br_netfilter not loaded: no such sysctl anywhere
		}
		return false, fmt.Errorf("read bridge-nf-call-iptables in %s: %w", w.Node, err)
	}
	return strings.TrimSpace(string(out)) == "1", nil
}
