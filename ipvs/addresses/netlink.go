package addresses

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	v1 "k8s.io/api/core/v1"
)

// DummyDevice is the interface service addresses are bound to, as upstream.
const DummyDevice = "kube-ipvs0"

// NetlinkTimeout bounds each send and receive on kproxy's route netlink
// socket (github.com/moby/ipvs bounds its generic netlink socket itself:
// 30 s to send, 3 s to receive).
const NetlinkTimeout = 30 * time.Second

// Manager is kproxy's seam to the node's addresses for one family.
type Manager interface {
	// EnsureDevice creates the dummy device if it is missing (left down, as upstream).
	EnsureDevice() error
	// Bound lists the family's addresses on the dummy device (none if it is missing).
	Bound() ([]netip.Addr, error)
	// Bind adds addr as /32 or /128 to the dummy device; binding a bound address is not an error.
	Bind(addr netip.Addr) error
	// Unbind removes addr from the dummy device; a missing one is not an error.
	Unbind(addr netip.Addr) error
	// Local lists the family's addresses of every other interface.
	Local() ([]netip.Addr, error)
}

// Netlink is the real Manager over route netlink.
type Netlink struct {
	h      *netlink.Handle
	family int
	want6  bool
}

var _ Manager = (*Netlink)(nil)

// NewNetlink manages family's addresses in the network namespace
// at nsPath, or in the caller's namespace when nsPath is "".
func NewNetlink(nsPath string, family v1.IPFamily) (*Netlink, error) {
	ns := netns.None()
	if nsPath != "" {
		var err error
		if ns, err = netns.GetFromPath(nsPath); err != nil {
			return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
		}
		defer ns.Close()
	}
	h, err := netlink.NewHandleAt(ns, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	// A handle's own sockets have no timeout (only vishvananda/netlink's
	// throwaway ones do): bound every send and receive so a stuck kernel
	// reply fails the sync instead of hanging it.
	if err := h.SetSocketTimeout(NetlinkTimeout); err != nil {
		h.Close()
		return nil, fmt.Errorf("set netlink socket timeout: %w", err)
	}
	n := &Netlink{h: h, family: netlink.FAMILY_V4}
	if family == v1.IPv6Protocol {
		n.family, n.want6 = netlink.FAMILY_V6, true
	}
	return n, nil
}

// Close releases the netlink handle.
func (n *Netlink) Close() { n.h.Close() }

func (n *Netlink) EnsureDevice() error {
	if _, err := n.h.LinkByName(DummyDevice); err == nil {
		return nil
	}
	err := n.h.LinkAdd(&netlink.Dummy{LinkAttrs: netlink.LinkAttrs{Name: DummyDevice}})
	if err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("create %s: %w", DummyDevice, err)
	}
	return nil
}

func (n *Netlink) device() (netlink.Link, error) {
	l, err := n.h.LinkByName(DummyDevice)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, nil
		}
		return nil, fmt.Errorf("find %s: %w", DummyDevice, err)
	}
	return l, nil
}

// list dumps the family's addresses, retrying a dump the kernel interrupted.
func (n *Netlink) list(link netlink.Link) ([]netlink.Addr, error) {
	var err error
	for range 5 {
		var addrs []netlink.Addr
		if addrs, err = n.h.AddrList(link, n.family); err == nil {
			return addrs, nil
		}
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	return nil, fmt.Errorf("list addresses: %w", err)
}

func (n *Netlink) Bound() ([]netip.Addr, error) {
	l, err := n.device()
	if err != nil || l == nil {
		return nil, err
	}
	addrs, err := n.list(l)
	if err != nil {
		return nil, err
	}
	return n.convert(addrs, func(netlink.Addr) bool { return true }), nil
}

func (n *Netlink) Local() ([]netip.Addr, error) {
	l, err := n.device()
	if err != nil {
		return nil, err
	}
	idx := -1
	if l != nil {
		idx = l.Attrs().Index
	}
	addrs, err := n.list(nil)
	if err != nil {
		return nil, err
	}
	return n.convert(addrs, func(a netlink.Addr) bool { return a.LinkIndex != idx }), nil
}

func (n *Netlink) convert(addrs []netlink.Addr, keep func(netlink.Addr) bool) []netip.Addr {
	var out []netip.Addr
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !keep(a) {
			continue
		}
		if ip = ip.Unmap(); ip.Is6() == n.want6 && !slices.Contains(out, ip) {
			out = append(out, ip)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

func (n *Netlink) hostAddr(addr netip.Addr) *netlink.Addr {
	p := netip.PrefixFrom(addr, addr.BitLen())
	a, _ := netlink.ParseAddr(p.String())
	return a
}

func (n *Netlink) Bind(addr netip.Addr) error {
	l, err := n.device()
	if err == nil && l == nil {
		err = fmt.Errorf("%s does not exist", DummyDevice)
	}
	if err != nil {
		return fmt.Errorf("bind %s: %w", addr, err)
	}
	if err := n.h.AddrAdd(l, n.hostAddr(addr)); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("bind %s to %s: %w", addr, DummyDevice, err)
	}
	return nil
}

func (n *Netlink) Unbind(addr netip.Addr) error {
	l, err := n.device()
	if err != nil || l == nil {
		return err
	}
	err = n.h.AddrDel(l, n.hostAddr(addr))
	if err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("unbind %s from %s: %w", addr, DummyDevice, err)
	}
	return nil
}

// RemoveDevice deletes kube-ipvs0 (and so every address bound to it).
func (n *Netlink) RemoveDevice() error {
	l, err := n.device()
	if err != nil || l == nil {
		return err
	}
	if err := n.h.LinkDel(l); err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", DummyDevice, err)
	}
	return nil
}
