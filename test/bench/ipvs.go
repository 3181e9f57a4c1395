package bench

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/addresses"
	"github.com/kproxy/kproxy/ipvs/ipset"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Proxy modes a round can measure.
const (
	ModeIPTables = "iptables"
	ModeIPVS     = "ipvs"
)

// ipvsKit is the IPVS-mode state of one round: the kernel seams opened in
// the round's namespace, metered.
type ipvsKit struct {
	meters  ipvsMeters
	closers []func()
	// proxier is the last one newProxier built: the one a round syncs.
	proxier *ipvs.Proxier
	// focus is what the scenario being measured may name (nil: anything).
	focusServers map[vs.ServiceKey]bool
	focusAddrs   map[netip.Addr]bool
}

// newIPVSKit brings lo up in ns (IPVS refuses real servers otherwise) and
// opens the IPVS and address handles there; ipset runs under cmdPrefix.
func newIPVSKit(ctx context.Context, ns string, cmdPrefix []string) (*ipvsKit, error) {
	if out, err := exec.CommandContext(ctx, "ip", "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip -n %s link set lo up: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	path, err := namespacePath(ns)
	if err != nil {
		return nil, err
	}
	h, err := vs.NewKernelHandle(path)
	if err != nil {
		return nil, fmt.Errorf("ipvs mode needs IPVS in the kernel (make bench-ipvs runs it in the qemu guest): %w", err)
	}
	k := &ipvsKit{closers: []func(){h.Close}}
	a, err := addresses.NewNetlink(path, v1.IPv4Protocol)
	if err != nil {
		k.close()
		return nil, err
	}
	k.closers = append(k.closers, a.Close)
	set := ipset.NewExec(ipset.ExecOptions{Command: slices.Concat(cmdPrefix, []string{"ipset"})})
	k.meters = ipvsMeters{handle: &HandleMeter{Handle: h}, addrs: &AddressMeter{Manager: a}, sets: &IPSetMeter{Interface: set}}
	return k, nil
}

func namespacePath(ns string) (string, error) {
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if _, err := os.Stat(dir + ns); err == nil {
			return dir + ns, nil
		}
	}
	return "", fmt.Errorf("namespace %s has no file under /run/netns", ns)
}

func (k *ipvsKit) close() {
	for i := len(k.closers) - 1; i >= 0; i-- {
		k.closers[i]()
	}
	k.closers = nil
}

// newProxier is kproxy's IPVS backend as cmd/kproxy wires it (virtual
// servers, kube-ipvs0 addresses, ipsets and the iptables rules IPVS mode
// needs), over the metered seams.
func (k *ipvsKit) newProxier(r netfilter.Restorer) (proxier.Backend, error) {
	p, err := ipvs.New(ipvs.Options{
		Handle: k.meters.handle, Addresses: k.meters.addrs, Family: v1.IPv4Protocol,
		Netfilter: &ipvs.NetfilterOptions{IPSet: k.meters.sets, Restorer: r, Rules: rules.Options{
			MasqueradeMark: "0x00004000",
			LocalDetector:  netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
			RandomFully:    true,
		}},
	})
	if err != nil {
		return nil, err
	}
	k.proxier = p
	return p, nil
}

// focusOn sets what the next (partial) sync may name: the virtual servers
// and addresses of services is of w; none means no expectation.
func (k *ipvsKit) focusOn(w *World, is ...int) {
	k.focusServers, k.focusAddrs = nil, nil
	if len(is) == 0 {
		return
	}
	k.focusServers, k.focusAddrs = map[vs.ServiceKey]bool{}, map[netip.Addr]bool{}
	for _, i := range is {
		spec := w.Services[i].Spec
		addr, err := netip.ParseAddr(spec.ClusterIP)
		if err != nil {
			continue
		}
		k.focusAddrs[addr] = true
		for _, p := range spec.Ports {
			if proto, ok := vs.ProtocolFor(p.Protocol); ok {
				k.focusServers[vs.ServiceKey{Addr: addr, Port: uint16(p.Port), Protocol: proto}] = true
			}
		}
	}
}

// counts is the scenario's IPVS account, with the proxier's own.
func (k *ipvsKit) counts() *IPVSCounts {
	c := k.meters.counts(k.focusServers, k.focusAddrs)
	if k.proxier != nil {
		c.Reconcile = k.proxier.LastStats()
	}
	return c
}
