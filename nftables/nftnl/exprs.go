package nftnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The expressions of each Match and Stmt are nft 1.0.6's bytecode for the
// same text (`nft --debug=netlink`), register for register: the kernel
// keeps what it is given, and `nft list` prints it back, so any other
// encoding, even an equivalent one, would list differently.

// match is m's expressions; SaddrNotIn may queue an anonymous set.
func (e *encoder) match(m Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case SaddrPrefix:
		return e.prefixMatch(m.Prefix, expr.CmpOpEq)
	case IifName:
		return iifName(m.Name, expr.CmpOpEq)
	case FibSaddrLocal:
		// fib saddr type local: the address type is a host-order u32.
		return []expr.Any{
			&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		}, nil
	case SaddrInSet:
		if err := checkName("set", m.Set); err != nil {
			return nil, err
		}
		return []expr.Any{e.saddrLoad(e.b.fam.addrLen()), &expr.Lookup{SourceRegister: 1, SetName: m.Set}}, nil
	case SaddrNotIn:
		return e.saddrNotIn(m)
	case nil:
		return nil, nil
	}
	return e.fixedMatch(m)
}

// stmt is s's expressions; the numgen statements queue an anonymous map.
func (e *encoder) stmt(s Stmt) ([]expr.Any, error) {
	switch s := s.(type) {
	case Goto:
		if err := checkName("goto chain", s.Chain); err != nil {
			return nil, err
		}
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictGoto, Chain: s.Chain}}, nil
	case Drop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}, nil
	case MarkOr:
		return markOr(s.Mark)
	case DNAT:
		return e.dnat(s)
	case NumgenDNAT:
		return e.numgenDNAT(s)
	case NumgenGoto:
		return e.numgenGoto(s)
	case AffinityUpdate:
		if err := checkName("set", s.Set); err != nil {
			return nil, err
		}
		return []expr.Any{
			e.saddrLoad(e.b.fam.addrLen()),
			&expr.Dynset{SrcRegKey: 1, SetName: s.Set, Operation: unix.NFT_DYNSET_OP_UPDATE},
		}, nil
	}
	return e.fixedStmt(s)
}

// saddrLoad loads the first n bytes of the source address into register 1.
func (e *encoder) saddrLoad(n int) expr.Any { return addrLoad(e.b.fam.saddrOffset(), n) }

// addrLoad loads the first n bytes of the address at offset off of the
// network header into register 1.
func addrLoad(off uint32, n int) expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(n)}
}

// prefixMatch compares the source address with a prefix as nft does.
func (e *encoder) prefixMatch(p netip.Prefix, op expr.CmpOp) ([]expr.Any, error) {
	return e.addrPrefixMatch(e.b.fam.saddrOffset(), p, op)
}

// addrPrefixMatch compares the address at offset off with a prefix as nft
// does: a byte-aligned prefix loads only its bytes; any other (and /0)
// loads the address and masks it.
func (e *encoder) addrPrefixMatch(off uint32, p netip.Prefix, op expr.CmpOp) ([]expr.Any, error) {
	if !p.IsValid() {
		return nil, errors.New("invalid prefix")
	}
	if err := e.b.fam.checkAddr(p.Addr()); err != nil {
		return nil, err
	}
	p = p.Masked()
	bits, n := p.Bits(), e.b.fam.addrLen()
	addr := p.Addr().AsSlice()
	if bits > 0 && bits%8 == 0 {
		return []expr.Any{addrLoad(off, bits/8), &expr.Cmp{Op: op, Register: 1, Data: addr[:bits/8]}}, nil
	}
	return []expr.Any{
		addrLoad(off, n),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(n), Mask: prefixMask(bits, n), Xor: make([]byte, n)},
		&expr.Cmp{Op: op, Register: 1, Data: addr},
	}, nil
}

func prefixMask(bits, n int) []byte {
	m := make([]byte, n)
	for i := 0; i < bits; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

// ifNameSize is IFNAMSIZ: an interface name and its NUL.
const ifNameSize = 16

// iifName compares the input interface with op: a whole name NUL-padded
// to IFNAMSIZ, a "prefix*" wildcard on the prefix's bytes only.
func iifName(name string, op expr.CmpOp) ([]expr.Any, error) {
	prefix, wildcard := strings.CutSuffix(name, "*")
	switch {
	case prefix == "":
		return nil, fmt.Errorf("empty interface name %q", name)
	case len(name) >= ifNameSize:
		return nil, fmt.Errorf("interface name %q longer than %d bytes", name, ifNameSize-1)
	case strings.ContainsAny(prefix, "*\\\" \t\n\x00"):
		return nil, fmt.Errorf("interface name %q has a character nft would not take unquoted", name)
	}
	data := []byte(prefix)
	if !wildcard {
		data = append(data, make([]byte, ifNameSize-len(data))...)
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: op, Register: 1, Data: data},
	}, nil
}

// markOr is `mark set mark or M`: the mark masked with ^M and xored with M.
func markOr(mark string) ([]expr.Any, error) {
	return markRewrite(mark, func(m uint32) uint32 { return ^m })
}

// markRewrite sets the mark to (mark & mask(M)) ^ M, both host byte order
// (the mark is a host-order u32).
func markRewrite(mark string, mask func(uint32) uint32) ([]expr.Any, error) {
	m, err := parseMark(mark)
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, mask(m)),
			Xor:  binary.NativeEndian.AppendUint32(nil, m)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}, nil
}

// parseMark reads a mark written as kproxy writes it: "0x" and up to 8 hex
// digits.
func parseMark(s string) (uint32, error) {
	digits, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok || digits == "" || len(digits) > 8 {
		return 0, fmt.Errorf("mark %q is not 0x and 1 to 8 hex digits", s)
	}
	v, err := strconv.ParseUint(digits, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("mark %q: %w", s, err)
	}
	return uint32(v), nil
}

// dnat is `meta l4proto P dnat to A:port`: address and port as immediates
// in registers 1 and 2, and the range flag nft sets for an explicit port.
func (e *encoder) dnat(s DNAT) ([]expr.Any, error) {
	proto, err := protoNumber(s.Proto)
	if err != nil {
		return nil, err
	}
	if err := e.b.fam.checkAddr(s.To.Addr()); err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Immediate{Register: 1, Data: s.To.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, s.To.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(e.b.fam), RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}, nil
}

// numgenDNAT is `meta l4proto P dnat ip addr . port to numgen random mod N
// map { i : A . port … }`: an anonymous map from the random number to
// address and port, looked up into register 1 onwards. The port follows
// the address: in 32-bit register 9 for IPv4, in 128-bit register 2 for
// IPv6, as nft allocates them.
func (e *encoder) numgenDNAT(s NumgenDNAT) ([]expr.Any, error) {
	proto, err := protoNumber(s.Proto)
	if err != nil {
		return nil, err
	}
	if len(s.To) == 0 {
		return nil, errors.New("numgen dnat without endpoints")
	}
	elems := make([]setElem, len(s.To))
	for i, ep := range s.To {
		if err := e.b.fam.checkAddr(ep.Addr()); err != nil {
			return nil, fmt.Errorf("endpoint %d: %w", i, err)
		}
		data, _ := encodeKey(e.b.fam, []Field{AddrField(ep.Addr()), PortField(ep.Port())})
		elems[i] = setElem{key: binary.NativeEndian.AppendUint32(nil, uint32(i)), data: data}
	}
	name, id, err := e.anonSet(numgenMap(e.b.fam, elems))
	if err != nil {
		return nil, err
	}
	portReg := uint32(unix.NFT_REG32_01)
	if e.b.fam == IPv6 {
		portReg = unix.NFT_REG_2
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_RANDOM, Modulus: uint32(len(s.To))},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: name, SetID: id},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: uint32(e.b.fam), RegAddrMin: 1, RegProtoMin: portReg},
	}, nil
}

// numgenGoto is `numgen random mod N vmap { i : goto C … }`: an anonymous
// verdict map looked up into the verdict register.
func (e *encoder) numgenGoto(s NumgenGoto) ([]expr.Any, error) {
	if len(s.Chains) == 0 {
		return nil, errors.New("numgen vmap without chains")
	}
	elems := make([]setElem, len(s.Chains))
	for i, c := range s.Chains {
		if err := checkName("goto chain", c); err != nil {
			return nil, err
		}
		elems[i] = setElem{key: binary.NativeEndian.AppendUint32(nil, uint32(i)), verdict: &verdict{code: unix.NFT_GOTO, chain: c}}
	}
	name, id, err := e.anonSet(numgenVmap(elems))
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_RANDOM, Modulus: uint32(len(s.Chains))},
		&expr.Lookup{SourceRegister: 1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: name, SetID: id},
	}, nil
}

// saddrNotIn is `ip saddr != { … }` as nft evaluates it: one entry is no
// set at all but a plain comparison; addresses only make a hash set of
// them as written; any prefix makes an interval set of the merged ranges.
func (e *encoder) saddrNotIn(m SaddrNotIn) ([]expr.Any, error) {
	for _, p := range m.Prefixes {
		if !p.IsValid() {
			return nil, errors.New("invalid prefix")
		}
		if err := e.b.fam.checkAddr(p.Addr()); err != nil {
			return nil, err
		}
	}
	for _, a := range m.Addrs {
		if err := e.b.fam.checkAddr(a); err != nil {
			return nil, err
		}
	}
	n := e.b.fam.addrLen()
	switch {
	case len(m.Prefixes)+len(m.Addrs) == 0:
		return nil, errors.New("saddr != {} without entries")
	case len(m.Prefixes) == 1 && len(m.Addrs) == 0:
		return e.prefixMatch(m.Prefixes[0], expr.CmpOpNeq)
	case len(m.Prefixes) == 0 && len(m.Addrs) == 1:
		return []expr.Any{e.saddrLoad(n), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: m.Addrs[0].AsSlice()}}, nil
	}
	s := addrSet(e.b.fam, m.Addrs)
	if len(m.Prefixes) > 0 {
		s = intervalSet(e.b.fam, mergeRanges(entryRanges(m.Prefixes, m.Addrs)), addrTypeof(e.b.fam, Saddr))
	}
	name, id, err := e.anonSet(s)
	if err != nil {
		return nil, err
	}
	return []expr.Any{e.saddrLoad(n), &expr.Lookup{SourceRegister: 1, SetName: name, SetID: id, Invert: true}}, nil
}
