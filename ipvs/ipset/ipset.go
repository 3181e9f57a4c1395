package ipset

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Type is an ipset type kproxy uses.
type Type string

// The set types of upstream's IPVS mode.
const (
	HashIP        Type = "hash:ip"
	HashIPPort    Type = "hash:ip,port"
	HashIPPortIP  Type = "hash:ip,port,ip"
	HashIPPortNet Type = "hash:ip,port,net"
	BitmapPort    Type = "bitmap:port"
)

// Spec describes one set. Comment is not stored in the kernel: like
// upstream, it is the comment of the iptables rules that match the set.
type Spec struct {
	Name    string
	Type    Type
	Family  v1.IPFamily
	Comment string
}

// CreateLine is the "create" line of ipset save/restore, with upstream's
// parameters (hashsize 1024, maxelem 65536, range 0-65535).
func (s Spec) CreateLine() string {
	if s.Type == BitmapPort {
		return "create " + s.Name + " " + string(s.Type) + " range 0-65535"
	}
	return "create " + s.Name + " " + string(s.Type) + " family " + familyWord(s.Family) + " hashsize 1024 maxelem 65536"
}

func familyWord(f v1.IPFamily) string {
	if f == v1.IPv6Protocol {
		return "inet6"
	}
	return "inet"
}

// maxSetNameLen is the kernel's IPSET_MAXNAMELEN minus the NUL.
const maxSetNameLen = 31

// SetName is the name of an upstream set for a family: IPv6 sets use the
// prefix "KUBE-6-" instead of "KUBE-", truncated to 31 characters.
func Name(base string, family v1.IPFamily) string {
	if family != v1.IPv6Protocol || !strings.HasPrefix(base, "KUBE-") {
		return base
	}
	n := "KUBE-6-" + strings.TrimPrefix(base, "KUBE-")
	if len(n) > maxSetNameLen {
		n = n[:maxSetNameLen]
	}
	return n
}

// Contents is one set as listed from the kernel (or the fake).
type Contents struct {
	Spec    Spec
	Members []string // canonical entries, sorted
}

// Interface is the ipset seam. Restore applies a batch in one step (one
// `ipset -exist restore`); List returns every set of the network namespace,
// including sets kproxy does not own.
type Interface interface {
	Restore(ctx context.Context, b *Batch) error
	List(ctx context.Context) (map[string]*Contents, error)
}

// Batch is an ordered list of ipset commands, written with -exist
// semantics: creating an existing identical set, adding a present entry,
// deleting an absent one or destroying a missing set are no-ops.
type Batch struct {
	lines []string
	ops   []setOp
}

type setOp struct {
	verb  string // create, add, del, destroy, swap
	spec  Spec
	set   string
	entry string
	other string
}

// Create ensures a set exists with the spec's type and family.
func (b *Batch) Create(s Spec) {
	b.ops = append(b.ops, setOp{verb: "create", spec: s, set: s.Name})
	b.lines = append(b.lines, s.CreateLine())
}

// Add adds an entry to a set.
func (b *Batch) Add(set, entry string) {
	b.ops = append(b.ops, setOp{verb: "add", set: set, entry: entry})
	b.lines = append(b.lines, "add "+set+" "+entry)
}

// Del deletes an entry from a set.
func (b *Batch) Del(set, entry string) {
	b.ops = append(b.ops, setOp{verb: "del", set: set, entry: entry})
	b.lines = append(b.lines, "del "+set+" "+entry)
}

// Destroy destroys a set.
func (b *Batch) Destroy(set string) {
	b.ops = append(b.ops, setOp{verb: "destroy", set: set})
	b.lines = append(b.lines, "destroy "+set)
}

// Swap exchanges the contents (and names) of two sets of the same type.
func (b *Batch) Swap(set, other string) {
	b.ops = append(b.ops, setOp{verb: "swap", set: set, other: other})
	b.lines = append(b.lines, "swap "+set+" "+other)
}

// Len is the number of commands.
func (b *Batch) Len() int { return len(b.ops) }

// Script is the `ipset restore` input.
func (b *Batch) Script() string {
	if len(b.lines) == 0 {
		return ""
	}
	return strings.Join(b.lines, "\n") + "\n"
}

// CanonicalEntry checks an entry against a set type and family the way
// ipset does and returns it in the form `ipset list` prints (lower-case
// addresses, networks masked, /32 and /128 dropped), so desired and listed
// members compare as strings.
func CanonicalEntry(t Type, family v1.IPFamily, entry string) (string, error) {
	parts := strings.Split(entry, ",")
	want := map[Type]int{HashIP: 1, HashIPPort: 2, HashIPPortIP: 3, HashIPPortNet: 3, BitmapPort: 1}[t]
	if want == 0 {
		return "", fmt.Errorf("unknown set type %q", t)
	}
	if len(parts) != want {
		return "", fmt.Errorf("entry %q: %s needs %d elements", entry, t, want)
	}
	if t == BitmapPort {
		p, err := parsePort(parts[0])
		if err != nil {
			return "", fmt.Errorf("entry %q: %w", entry, err)
		}
		return strconv.Itoa(int(p)), nil
	}
	out := make([]string, 0, len(parts))
	ip, err := parseFamilyAddr(parts[0], family)
	if err != nil {
		return "", fmt.Errorf("entry %q: %w", entry, err)
	}
	out = append(out, ip.String())
	if len(parts) > 1 {
		pp, err := canonicalProtoPort(parts[1])
		if err != nil {
			return "", fmt.Errorf("entry %q: %w", entry, err)
		}
		out = append(out, pp)
	}
	if len(parts) > 2 {
		third, err := canonicalThird(t, family, parts[2])
		if err != nil {
			return "", fmt.Errorf("entry %q: %w", entry, err)
		}
		out = append(out, third)
	}
	return strings.Join(out, ","), nil
}

func canonicalThird(t Type, family v1.IPFamily, s string) (string, error) {
	if t == HashIPPortIP {
		ip, err := parseFamilyAddr(s, family)
		if err != nil {
			return "", err
		}
		return ip.String(), nil
	}
	if !strings.Contains(s, "/") {
		ip, err := parseFamilyAddr(s, family)
		if err != nil {
			return "", err
		}
		return ip.String(), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return "", fmt.Errorf("cannot parse %s", s)
	}
	if p.Addr().Is6() != (family == v1.IPv6Protocol) || p.Addr().Is4In6() {
		return "", fmt.Errorf("%s is not of family %s", s, familyWord(family))
	}
	if p.Bits() == 0 {
		return "", fmt.Errorf("zero prefix length in %s is not allowed", s)
	}
	p = p.Masked()
	if p.IsSingleIP() {
		return p.Addr().String(), nil
	}
	return p.String(), nil
}

func parseFamilyAddr(s string, family v1.IPFamily) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("cannot parse %s", s)
	}
	if a.Is4In6() || a.Is6() != (family == v1.IPv6Protocol) {
		return netip.Addr{}, fmt.Errorf("%s is not of family %s", s, familyWord(family))
	}
	return a, nil
}

func canonicalProtoPort(s string) (string, error) {
	proto, port, ok := strings.Cut(s, ":")
	if !ok {
		proto, port = "tcp", s
	}
	proto = strings.ToLower(proto)
	if !slices.Contains([]string{"tcp", "udp", "sctp"}, proto) {
		return "", fmt.Errorf("unsupported protocol %q", proto)
	}
	p, err := parsePort(port)
	if err != nil {
		return "", err
	}
	return proto + ":" + strconv.Itoa(int(p)), nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return uint16(n), nil
}
