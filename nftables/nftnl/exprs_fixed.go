package nftnl

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The expressions of rule_fixed.go's shapes, as nft 1.0.6 writes them
// (`nft --debug=netlink`), register for register.

// Conntrack bits the fixed chains test: IP_CT_NEW's state bit, and
// IPS_DST_NAT.
const (
	ctStateNewBit = 1 << 3
	ctStatusDNAT  = 1 << 5
)

// fixedMatch is the expressions of a fixed-chain match.
func (e *encoder) fixedMatch(m Match) ([]expr.Any, error) {
	switch m := m.(type) {
	case All:
		return e.allMatches(m)
	case CtStateNew:
		return ctBitSet(expr.CtKeySTATE, ctStateNewBit), nil
	case CtStatusDNAT:
		return ctBitSet(expr.CtKeySTATUS, ctStatusDNAT), nil
	case MarkAny:
		mark, err := parseMark(m.Mark)
		if err != nil {
			return nil, err
		}
		return append([]expr.Any{&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}}, bitSet(mark)...), nil
	case InSet:
		return e.inSet(m)
	case DaddrIn:
		return e.daddrIn(m)
	case DaddrNot:
		return e.addrPrefixMatch(e.b.fam.daddrOffset(), m.Prefix, expr.CmpOpNeq)
	case SaddrNot:
		return e.addrPrefixMatch(e.b.fam.saddrOffset(), m.Prefix, expr.CmpOpNeq)
	case IifNameNot:
		return iifName(m.Name, expr.CmpOpNeq)
	case FibDaddrLocal:
		return []expr.Any{
			&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
		}, nil
	}
	return nil, fmt.Errorf("unknown match %T", m)
}

// fixedStmt is the expressions of a fixed-chain statement.
func (e *encoder) fixedStmt(s Stmt) ([]expr.Any, error) {
	switch s := s.(type) {
	case Seq:
		return e.seq(s)
	case Jump:
		if err := checkName("jump chain", s.Chain); err != nil {
			return nil, err
		}
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: s.Chain}}, nil
	case Reject:
		// nft's default: ICMP port unreachable (3), ICMPv6 port unreachable (4).
		code := uint8(3)
		if e.b.fam == IPv6 {
			code = 4
		}
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: code}}, nil
	case Masquerade:
		return []expr.Any{&expr.Masq{FullyRandom: true}}, nil
	case MarkXor:
		return markXor(s.Mark)
	case Vmap:
		return e.vmap(s)
	}
	return nil, fmt.Errorf("unknown statement %T", s)
}

func (e *encoder) allMatches(ms All) ([]expr.Any, error) {
	if len(ms) == 0 {
		return nil, errors.New("empty match list")
	}
	var out []expr.Any
	for _, m := range ms {
		if m == nil {
			return nil, errors.New("nil match in a list")
		}
		x, err := e.match(m)
		if err != nil {
			return nil, err
		}
		out = append(out, x...)
	}
	return out, nil
}

func (e *encoder) seq(ss Seq) ([]expr.Any, error) {
	if len(ss) == 0 {
		return nil, errors.New("empty statement list")
	}
	var out []expr.Any
	for _, s := range ss {
		if s == nil {
			return nil, errors.New("nil statement in a list")
		}
		x, err := e.stmt(s)
		if err != nil {
			return nil, err
		}
		out = append(out, x...)
	}
	return out, nil
}

// ctBitSet is `ct KEY BIT`: the key loaded, masked to the bit, compared
// with zero.
func ctBitSet(key expr.CtKey, bit uint32) []expr.Any {
	return append([]expr.Any{&expr.Ct{Key: key, Register: 1}}, bitSet(bit)...)
}

// bitSet tests register 1 (a host-order u32) for any bit of mask.
func bitSet(mask uint32) []expr.Any {
	return []expr.Any{
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, mask), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

// markXor is `mark set mark xor M`: the mark kept whole and xored with M.
func markXor(mark string) ([]expr.Any, error) {
	return markRewrite(mark, func(uint32) uint32 { return ^uint32(0) })
}

// inSet loads the key and looks it up in a named set.
func (e *encoder) inSet(m InSet) ([]expr.Any, error) {
	if err := checkName("set", m.Set); err != nil {
		return nil, err
	}
	load, err := e.loadKey(m.Fields)
	if err != nil {
		return nil, err
	}
	return append(load, &expr.Lookup{SourceRegister: 1, SetName: m.Set}), nil
}

// vmap loads the key and looks it up in a named verdict map, into the
// verdict register.
func (e *encoder) vmap(s Vmap) ([]expr.Any, error) {
	if err := checkName("map", s.Map); err != nil {
		return nil, err
	}
	load, err := e.loadKey(s.Fields)
	if err != nil {
		return nil, err
	}
	return append(load, &expr.Lookup{SourceRegister: 1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: s.Map}), nil
}

// loadKey loads a key's fields into consecutive registers from register 1
// on, each padded to 32 bits, as nft does for a concatenation.
func (e *encoder) loadKey(fields []PacketField) ([]expr.Any, error) {
	if len(fields) == 0 {
		return nil, errors.New("empty key")
	}
	var out []expr.Any
	slot := 0
	for _, f := range fields {
		reg := concatRegister(slot)
		switch f {
		case Saddr, Daddr:
			off := e.b.fam.saddrOffset()
			if f == Daddr {
				off = e.b.fam.daddrOffset()
			}
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(e.b.fam.addrLen())})
			slot += e.b.fam.addrLen() / 4
		case L4Proto:
			out = append(out, &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg})
			slot++
		case Dport:
			out = append(out, &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
			slot++
		default:
			return nil, fmt.Errorf("unknown packet field %d", f)
		}
	}
	return out, nil
}

// concatRegister is the register nft names for the 32-bit slot of a
// concatenation: a 128-bit register where one starts (NFT_REG_1 …), else
// the 32-bit one (NFT_REG32_00 + slot).
func concatRegister(slot int) uint32 {
	if slot%4 == 0 {
		return uint32(unix.NFT_REG_1 + slot/4)
	}
	return uint32(unix.NFT_REG32_00 + slot)
}

// daddrIn is `daddr { P , … }` as nft evaluates it: one prefix is a
// comparison; more make an anonymous interval set of the merged ranges.
func (e *encoder) daddrIn(m DaddrIn) ([]expr.Any, error) {
	if len(m.Prefixes) == 0 {
		return nil, errors.New("daddr {} without prefixes")
	}
	for _, p := range m.Prefixes {
		if !p.IsValid() {
			return nil, errors.New("invalid prefix")
		}
		if err := e.b.fam.checkAddr(p.Addr()); err != nil {
			return nil, err
		}
	}
	off := e.b.fam.daddrOffset()
	if len(m.Prefixes) == 1 {
		return e.addrPrefixMatch(off, m.Prefixes[0], expr.CmpOpEq)
	}
	s := intervalSet(e.b.fam, mergeRanges(entryRanges(m.Prefixes, nil)), addrTypeof(e.b.fam, Daddr))
	name, id, err := e.anonSet(s)
	if err != nil {
		return nil, err
	}
	return []expr.Any{addrLoad(off, e.b.fam.addrLen()), &expr.Lookup{SourceRegister: 1, SetName: name, SetID: id}}, nil
}
