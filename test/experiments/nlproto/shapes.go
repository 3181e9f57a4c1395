//go:build nlproto

package main

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// queueShapes writes, through rawBatch, the per-service rule shapes of
// nftables/render_chains.go (ip family), into chains made by
// shapes-base.nft. shapes.nft is the same text for nft -f; the two
// listings must be identical. Each case's bytecode is nft's
// (`nft --debug=netlink -f shapes.nft`).
func queueShapes(b *rawBatch) {
	const masqMark = 0x00004000
	ep := netip.MustParseAddrPort("10.131.169.5:8080")

	// meta l4proto tcp dnat to 10.131.169.5:8080
	//   [ meta load l4proto => reg 1 ] [ cmp eq reg 1 0x06 ]
	//   [ immediate reg 1 addr ] [ immediate reg 2 port ]
	//   [ nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2 ]
	b.addRule("c-single", singleDNAT(unix.IPPROTO_TCP, ep), "")

	// mark set mark or 0x00004000 comment "masquerade"
	b.addRule("c-masq", markOr(masqMark), "masquerade")

	// goto ep
	b.addRule("c-goto", []expr.Any{gotoChain("ep")}, "")

	// fib saddr type local <masq> / fib saddr type local goto ep
	b.addRule("c-fib", append(fibSaddrLocal(), markOr(masqMark)...), "masquerade local traffic")
	b.addRule("c-fib", append(fibSaddrLocal(), gotoChain("ep")), "short-circuit local traffic")

	// ip saddr != { 1.2.3.0/24 , 5.6.7.8 , 10.0.0.0/8 } drop
	//   anonymous interval set; [ payload ip saddr ] [ lookup … 0x1 (inverted) ]
	name, id := b.addAnonSet(intervalAddrSet([]netip.Prefix{
		netip.MustParsePrefix("1.2.3.0/24"),
		netip.MustParsePrefix("5.6.7.8/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
	}))
	b.addRule("c-fw", []expr.Any{
		ipSaddr(),
		&expr.Lookup{SourceRegister: 1, SetName: name, SetID: id, Invert: true},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}, "")

	// ip saddr 10.128.0.0/14 goto ep (a LocalDetector prefix match)
	b.addRule("c-local", append(saddrInPrefix(netip.MustParsePrefix("10.128.0.0/14")), gotoChain("ep")), "short-circuit pod traffic")

	// ip saddr @affinity-x goto ep
	b.addRule("c-aff", []expr.Any{
		ipSaddr(),
		&expr.Lookup{SourceRegister: 1, SetName: "affinity-x"},
		gotoChain("ep"),
	}, "")

	// numgen random mod 2 vmap { 0 : goto ep , 1 : goto ep2 }
	//   anonymous map integer → verdict; [ numgen ] [ lookup reg 1 dreg 0 ]
	vname, vid := b.addAnonSet(numgenVmap([]string{"ep", "ep2"}))
	b.addRule("c-aff", []expr.Any{
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_RANDOM, Modulus: 2},
		&expr.Lookup{SourceRegister: 1, DestRegister: unix.NFT_REG_VERDICT, IsDestRegSet: true, SetName: vname, SetID: vid},
	}, "")

	// update @affinity-x { ip saddr }  then the endpoint's DNAT
	b.addRule("c-upd", []expr.Any{
		ipSaddr(),
		&expr.Dynset{SrcRegKey: 1, SetName: "affinity-x", Operation: unix.NFT_DYNSET_OP_UPDATE},
	}, "")
	b.addRule("c-upd", singleDNAT(unix.IPPROTO_TCP, ep), "")
}

func singleDNAT(proto byte, ep netip.AddrPort) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Immediate{Register: 1, Data: ep.Addr().AsSlice()},
		&expr.Immediate{Register: 2, Data: port(ep.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
}

// markOr is `mark set mark or M`: [ meta load mark ] [ bitwise (r & ^M) ^ M ]
// [ meta set mark ]; the mark is host byte order.
func markOr(m uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binary.NativeEndian.AppendUint32(nil, ^m),
			Xor:  binary.NativeEndian.AppendUint32(nil, m)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: 1},
	}
}

func gotoChain(name string) expr.Any {
	return &expr.Verdict{Kind: expr.VerdictGoto, Chain: name}
}

// fibSaddrLocal is `fib saddr type local`: [ fib saddr type ] [ cmp eq
// RTN_LOCAL (host order) ].
func fibSaddrLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagSADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.NativeEndian.AppendUint32(nil, unix.RTN_LOCAL)},
	}
}

// ipSaddr loads the IPv4 source address (network header + 12, 4 bytes).
func ipSaddr() expr.Any {
	return &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func saddrInPrefix(p netip.Prefix) []expr.Any {
	m := make([]byte, 4)
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return []expr.Any{
		ipSaddr(),
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: m, Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: p.Masked().Addr().AsSlice()},
	}
}

// intervalAddrSet is nft's encoding of `{ prefix , addr , … }` for ipv4
// keys: a leading 0.0.0.0 interval end when the first range starts above
// zero, then per range its start and (flagged) end one past it; touching
// ranges would share a boundary (not handled here: nft merges them).
// Userdata: key order big endian, merge elements, and the "typeof ip
// saddr" expression nft 1.0.6 records.
func intervalAddrSet(prefixes []netip.Prefix) anonSet {
	s := anonSet{
		interval:     true,
		keyType:      nftTypeIPAddr,
		keyLen:       4,
		keyByteOrder: byteOrderBig,
		udata: []byte{
			0, 4, 2, 0, 0, 0, // KEYBYTEORDER big endian
			2, 4, 1, 0, 0, 0, // MERGE_ELEMENTS
			3, 20, // KEY_TYPEOF: payload ip saddr
			0, 4, 7, 0, 0, 0,
			1, 12, 0, 4, 12, 0, 0, 0, 1, 4, 11, 0, 0, 0,
		},
	}
	sorted := append([]netip.Prefix(nil), prefixes...)
	// Callers pass sorted, non-overlapping prefixes in this experiment.
	if sorted[0].Masked().Addr() != netip.IPv4Unspecified() {
		s.elems = append(s.elems, setElem{key: []byte{0, 0, 0, 0}, intervalEnd: true})
	}
	for _, p := range sorted {
		start := p.Masked().Addr()
		end := lastAddr(p).Next()
		s.elems = append(s.elems, setElem{key: start.AsSlice()})
		if end.IsValid() {
			s.elems = append(s.elems, setElem{key: end.AsSlice(), intervalEnd: true})
		}
	}
	return s
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | (1<<(32-p.Bits()) - 1)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// numgenVmap is `numgen … vmap { 0 : goto A , 1 : goto B … }`'s map:
// key integer host order, data verdict (type 0xffffff00, length 0),
// userdata with nft 1.0.6's "typeof" of the verdict data.
func numgenVmap(chains []string) anonSet {
	s := anonSet{
		isMap:        true,
		keyType:      nftTypeInteger,
		keyLen:       4,
		keyByteOrder: byteOrderHost,
		dataType:     unix.NFT_DATA_VERDICT,
		udata: []byte{
			0, 4, 1, 0, 0, 0, // KEYBYTEORDER host
			1, 4, 0, 0, 0, 0, // DATABYTEORDER
			4, 8, 0, 4, 1, 0, 0, 0, 1, 0, // DATA_TYPEOF: verdict
			6, 4, 0, 0, 0, 0, // DATA_INTERVAL 0
		},
	}
	for i, c := range chains {
		s.elems = append(s.elems, setElem{
			key:     binary.NativeEndian.AppendUint32(nil, uint32(i)),
			verdict: &verdict{code: unix.NFT_GOTO, chain: c},
		})
	}
	return s
}
