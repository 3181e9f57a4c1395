package nftnl

import (
	"crypto/sha256"
	"encoding/base32"
	"net/netip"
	"slices"
	"strconv"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// anonSet is an anonymous constant set or map of one rule, declared the way
// nft declares the same `{ … }` in a rule: nft reads the userdata records
// back to print the elements (the key byte order decides whether numgen
// keys print as 1 or as 16777216).
type anonSet struct {
	isMap    bool
	interval bool
	keyType  uint32
	keyLen   uint32
	dataType uint32 // maps only
	dataLen  uint32
	size     uint32 // NFTA_SET_DESC_SIZE: nft counts an open interval's missing end too
	udata    []byte
	elems    []setElem
}

// anonSet queues NEWSET and NEWSETELEM for s, a set of the rule being
// encoded, and returns the set's name (see anonSetName) and the
// batch-local id the rule's lookup refers to it by. The set's userdata
// carries its identity (see identityRecord), so that digests of the
// kernel's table need not dump its elements.
func (e *encoder) anonSet(s anonSet) (string, uint32, error) {
	e.nextID++
	id := e.nextID
	prefix := "__set"
	flags := uint32(unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT)
	if s.isMap {
		prefix = "__map"
		flags |= unix.NFT_SET_MAP
	}
	name := anonSetName(prefix, e.chain, e.chainSets[e.chain])
	e.chainSets[e.chain]++
	if s.interval {
		flags |= unix.NFT_SET_INTERVAL
	}
	var a attrs
	a.str(unix.NFTA_SET_TABLE, e.b.table)
	a.str(unix.NFTA_SET_NAME, name)
	a.u32(unix.NFTA_SET_FLAGS, flags)
	a.u32(unix.NFTA_SET_KEY_TYPE, s.keyType)
	a.u32(unix.NFTA_SET_KEY_LEN, s.keyLen)
	if s.isMap {
		a.u32(unix.NFTA_SET_DATA_TYPE, s.dataType)
		a.u32(unix.NFTA_SET_DATA_LEN, s.dataLen)
	}
	a.u32(unix.NFTA_SET_ID, id)
	desc := a.nest(unix.NFTA_SET_DESC)
	a.u32(unix.NFTA_SET_DESC_SIZE, s.size)
	a.end(desc)
	first := len(e.msgs)
	if err := e.elemLists(unix.NFT_MSG_NEWSETELEM, netlink.Create, name, id, s.elems); err != nil {
		return "", 0, err
	}
	identity, err := batchSetIdentity(a.b, s.udata, e.msgs[first:])
	if err != nil {
		return "", 0, err
	}
	a.put(unix.NFTA_SET_USERDATA, append(slices.Clip(s.udata), identityRecord(identity)...))
	if a.err != nil {
		return "", 0, a.err
	}
	// The set goes before its elements.
	e.msgs = slices.Insert(e.msgs, first, message{typ: unix.NFT_MSG_NEWSET, flags: netlink.Create, data: a.b, op: e.op})
	return name, id, nil
}

// anonSetName names the k-th anonymous set a batch writes in chain:
// prefix ("__set" or "__map", as nft's), a hash of the chain's name and k.
//
// nft names a set "__set%d" and the kernel picks the number, scanning
// the name of every set of the table with sscanf; giving the name saves
// that walk (at 10000 services, a second of a first full sync). The name
// is free: a batch writes a chain's rules whole, after flushing the
// chain, and the kernel no longer counts the sets of flushed rules; rules
// inserted before the chain's old ones hash the chain's name with the
// handle they go before, which no earlier insertion used; nft's sets are
// numbered, never a hash. Should two chains' hashes collide
// anyway, the kernel refuses the batch, and the sync is retried by nft.
func anonSetName(prefix, chain string, k int) string {
	h := sha256.Sum256([]byte(chain))
	return prefix + anonNameEncoding.EncodeToString(h[:8]) + strconv.Itoa(k)
}

var anonNameEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// numgenMap is numgenDNAT's map: integer keys in host byte order, values
// address . inet_service.
func numgenMap(f Family, elems []setElem) anonSet {
	u := udataU32(nil, udataSetKeyByteOrder, byteOrderHost)
	u = udataU32(u, udataSetDataByteOrder, 0)
	u = udataU32(u, udataSetDataInterval, 0)
	return anonSet{
		isMap:    true,
		keyType:  typeInteger,
		keyLen:   4,
		dataType: concatType(f.addrType(), typeInetService),
		dataLen:  uint32(f.addrLen() + 4),
		size:     uint32(len(elems)),
		udata:    u,
		elems:    elems,
	}
}

// numgenVmap is numgenGoto's map: integer keys in host byte order,
// verdicts, and the "typeof verdict" record nft 1.0.6 adds for the data.
func numgenVmap(elems []setElem) anonSet {
	u := udataU32(nil, udataSetKeyByteOrder, byteOrderHost)
	u = udataU32(u, udataSetDataByteOrder, 0)
	u = udataNest(u, udataSetDataTypeof, append(udataU32(nil, typeofExpr, exprVerdict), typeofData, 0))
	u = udataU32(u, udataSetDataInterval, 0)
	return anonSet{
		isMap:    true,
		keyType:  typeInteger,
		keyLen:   4,
		dataType: typeVerdict,
		size:     uint32(len(elems)),
		udata:    u,
		elems:    elems,
	}
}

// nft's "typeof" userdata: the expression kind and its description; for
// the source address, a payload expression with nft's protocol and field
// ids (ip: PROTO_DESC_IP, IPHDR_SADDR; ip6: PROTO_DESC_IP6, IP6HDR_SADDR).
const (
	typeofExpr      = 0 // NFTNL_UDATA_SET_TYPEOF_EXPR
	typeofData      = 1 // NFTNL_UDATA_SET_TYPEOF_DATA
	exprVerdict     = 1 // nft's EXPR_VERDICT
	exprPayload     = 7 // nft's EXPR_PAYLOAD
	payloadDesc     = 0 // NFTNL_UDATA_SET_KEY_PAYLOAD_DESC
	payloadTemplate = 1 // NFTNL_UDATA_SET_KEY_PAYLOAD_TYPE
)

func saddrTypeof(f Family) []byte { return addrTypeof(f, Saddr) }

// addrTypeof is the typeof record of the source or destination address
// (ip: IPHDR_SADDR 11, IPHDR_DADDR 12; ip6: IP6HDR_SADDR 8, IP6HDR_DADDR 9).
func addrTypeof(f Family, field PacketField) []byte {
	desc, tmpl := uint32(12), uint32(11)
	if f == IPv6 {
		desc, tmpl = 13, 8
	}
	if field == Daddr {
		tmpl++
	}
	payload := udataU32(udataU32(nil, payloadDesc, desc), payloadTemplate, tmpl)
	return udataNest(udataU32(nil, typeofExpr, exprPayload), typeofData, payload)
}

// addrSet is `saddr != { A , B … }` with addresses only: a hash set of
// them in the order written, duplicates included, as nft sends it.
func addrSet(f Family, addrs []netip.Addr) anonSet {
	u := udataU32(nil, udataSetKeyByteOrder, byteOrderBig)
	u = udataNest(u, udataSetKeyTypeof, saddrTypeof(f))
	s := anonSet{keyType: f.addrType(), keyLen: uint32(f.addrLen()), size: uint32(len(addrs)), udata: u}
	for _, a := range addrs {
		s.elems = append(s.elems, setElem{key: a.AsSlice()})
	}
	return s
}

// addrRange is an inclusive range of addresses.
type addrRange struct{ first, last netip.Addr }

// entryRanges turns prefixes and addresses into ranges.
func entryRanges(prefixes []netip.Prefix, addrs []netip.Addr) []addrRange {
	var rs []addrRange
	for _, p := range prefixes {
		p = p.Masked()
		rs = append(rs, addrRange{p.Addr(), lastAddr(p)})
	}
	for _, a := range addrs {
		rs = append(rs, addrRange{a, a})
	}
	return rs
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// mergeRanges sorts ranges and joins those that overlap or touch, as nft
// does for an anonymous interval set.
func mergeRanges(rs []addrRange) []addrRange {
	rs = slices.Clone(rs)
	slices.SortFunc(rs, func(a, b addrRange) int { return a.first.Compare(b.first) })
	out := rs[:1]
	for _, r := range rs[1:] {
		cur := &out[len(out)-1]
		next := cur.last.Next() // invalid once cur reaches the top
		if !next.IsValid() || r.first.Compare(next) <= 0 {
			if r.last.Compare(cur.last) > 0 {
				cur.last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// intervalSet is `saddr != { prefix , … }` (or `daddr { … }`, by the
// typeof record): the kernel's interval encoding of the merged ranges. A range is its first address and, flagged as an
// interval end, the address after its last; nft first closes the space
// below the first range (an end at the zero address), and a range that
// reaches the top has no end element but an "open interval" userdata flag.
func intervalSet(f Family, rs []addrRange, typeof []byte) anonSet {
	u := udataU32(nil, udataSetKeyByteOrder, byteOrderBig)
	u = udataU32(u, udataSetMergeElements, 1)
	u = udataNest(u, udataSetKeyTypeof, typeof)
	s := anonSet{interval: true, keyType: f.addrType(), keyLen: uint32(f.addrLen()), udata: u}
	zero := make([]byte, f.addrLen())
	if !rs[0].first.IsUnspecified() {
		s.elems = append(s.elems, setElem{key: zero, intervalEnd: true})
	}
	for _, r := range rs {
		end := r.last.Next()
		if !end.IsValid() {
			s.elems = append(s.elems, setElem{key: r.first.AsSlice(), open: true})
			continue
		}
		s.elems = append(s.elems, setElem{key: r.first.AsSlice()}, setElem{key: end.AsSlice(), intervalEnd: true})
	}
	s.size = uint32(2 * len(rs))
	if !rs[0].first.IsUnspecified() {
		s.size++
	}
	return s
}
