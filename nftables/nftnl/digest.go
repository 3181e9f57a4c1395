package nftnl

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// Digest identifies a chain's contents: its rules in order, each with its
// expressions, its comment and the contents of the anonymous sets it
// looks up. Digests of what this package would write (RulesDigest) and of
// what the kernel holds (Conn.ChainDigests) are equal exactly when the
// kernel's chain already says what the rules say, whoever wrote it (this
// package or nft): a full sync over an existing table skips rewriting
// such chains. Where the two could only differ in form, the digests
// differ, and the chain is rewritten as before.
type Digest [16]byte

// The canonical form of an attribute list, from which digests are made:
// attributes sorted by type (flag bits dropped: the kernel dumps nests
// without NLA_F_NESTED), leaves whose value is all zero bytes left out
// (the kernel dumps some defaults that nft does not send), the nests the
// spec names made canonical in turn, and set references resolved to the
// set's name or, for an anonymous set, its contents' digest.
type nestSpec map[uint16]nestSpec

// nftaSetElemKeyEnd is NFTA_SET_ELEM_KEY_END (x/sys lacks it).
const nftaSetElemKeyEnd = 10

// nlaTypeMask keeps an attribute type without the nested and byte order flags.
const nlaTypeMask = ^uint16(unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)

var (
	// dataSpec is an nft_data: NFTA_DATA_VALUE or NFTA_DATA_VERDICT.
	dataSpec = nestSpec{unix.NFTA_DATA_VERDICT: {}}
	// exprSpecs are the nested attributes of the expressions kproxy writes.
	exprSpecs = map[string]nestSpec{
		"cmp":       {unix.NFTA_CMP_DATA: dataSpec},
		"immediate": {unix.NFTA_IMMEDIATE_DATA: dataSpec},
		"bitwise":   {unix.NFTA_BITWISE_MASK: dataSpec, unix.NFTA_BITWISE_XOR: dataSpec},
	}
	// elemSpec is one set element.
	elemSpec = nestSpec{unix.NFTA_SET_ELEM_KEY: dataSpec, unix.NFTA_SET_ELEM_DATA: dataSpec, nftaSetElemKeyEnd: dataSpec}
	// setRefs are the expressions naming a set: the name and id attributes.
	setRefs = map[string][2]uint16{
		"lookup": {unix.NFTA_LOOKUP_SET, unix.NFTA_LOOKUP_SET_ID},
		"dynset": {unix.NFTA_DYNSET_SET_NAME, unix.NFTA_DYNSET_SET_ID},
	}
)

type rawAttr struct {
	typ uint16
	val []byte
}

func parseAttrs(b []byte) ([]rawAttr, error) {
	return appendAttrs(nil, b)
}

// appendAttrs appends the attributes of b to out.
func appendAttrs(out []rawAttr, b []byte) ([]rawAttr, error) {
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, errors.New("truncated netlink attribute")
		}
		n := int(binary.NativeEndian.Uint16(b))
		if n < 4 || n > len(b) {
			return nil, fmt.Errorf("netlink attribute of length %d in %d bytes", n, len(b))
		}
		out = append(out, rawAttr{typ: binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask, val: b[4:n]})
		b = b[min(len(b), (n+3)&^3):]
	}
	return out, nil
}

// canon appends the canonical form of the attribute list b to w. The
// lists canonicalized (elements, expressions, nested data) are short: up
// to 8 attributes are parsed without allocating.
func canon(w []byte, b []byte, spec nestSpec) ([]byte, error) {
	var buf [8]rawAttr
	as, err := appendAttrs(buf[:0], b)
	if err != nil {
		return nil, err
	}
	return canonAttrs(w, as, spec)
}

// canonAttrs appends the canonical form of as to w (as is sorted): each
// attribute as type and length (big-endian) and value, a nested one's
// value in canonical form.
func canonAttrs(w []byte, as []rawAttr, spec nestSpec) ([]byte, error) {
	slices.SortStableFunc(as, func(x, y rawAttr) int { return int(x.typ) - int(y.typ) })
	for _, a := range as {
		sub, nested := spec[a.typ]
		if !nested && allZero(a.val) {
			continue
		}
		w = binary.BigEndian.AppendUint16(w, a.typ)
		if !nested {
			w = binary.BigEndian.AppendUint32(w, uint32(len(a.val)))
			w = append(w, a.val...)
			continue
		}
		at := len(w)
		w = append(w, 0, 0, 0, 0) // the length, once known
		var err error
		if w, err = canon(w, a.val, sub); err != nil {
			return nil, err
		}
		binary.BigEndian.PutUint32(w[at:], uint32(len(w)-at-4))
	}
	return w, nil
}

// findAttr is the value of attribute typ in as.
func findAttr(as []rawAttr, typ uint16) ([]byte, bool) {
	for _, a := range as {
		if a.typ == typ {
			return a.val, true
		}
	}
	return nil, false
}

// attrU32 is the big-endian u32 attribute typ of as, or 0.
func attrU32(as []rawAttr, typ uint16) uint32 {
	if v, ok := findAttr(as, typ); ok && len(v) == 4 {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

// attrU64 is the big-endian u64 attribute typ of as, or 0.
func attrU64(as []rawAttr, typ uint16) uint64 {
	if v, ok := findAttr(as, typ); ok && len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// attrString is the string attribute typ of as, or "".
func attrString(as []rawAttr, typ uint16) string {
	v, _ := findAttr(as, typ)
	return cString(v)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// setResolver gives an anonymous set's identity, its contents' digest:
// by name, or by batch id for a set created in the same batch (a named
// set's identity is its name).
type setResolver func(name string, id uint32) ([]byte, error)

func isAnonymousName(name string) bool {
	return strings.HasPrefix(name, "__set") || strings.HasPrefix(name, "__map")
}

// canonRule is the canonical form of a rule: its expressions in order and
// its userdata (the comment).
func canonRule(exprs, udata []byte, resolve setResolver) ([]byte, error) {
	list, err := parseAttrs(exprs)
	if err != nil {
		return nil, err
	}
	var w []byte
	for _, el := range list {
		inner, err := parseAttrs(el.val)
		if err != nil {
			return nil, err
		}
		name := attrString(inner, unix.NFTA_EXPR_NAME)
		data, _ := findAttr(inner, unix.NFTA_EXPR_DATA)
		w = append(w, name...)
		w = append(w, 0)
		body, err := canonExpr(name, data, resolve)
		if err != nil {
			return nil, fmt.Errorf("expression %s: %w", name, err)
		}
		w = binary.BigEndian.AppendUint32(w, uint32(len(body)))
		w = append(w, body...)
	}
	w = append(w, 0xff)
	return append(w, udata...), nil
}

// canonExpr canonicalizes one expression's data, its set reference (if
// any) resolved to the set's identity.
func canonExpr(name string, data []byte, resolve setResolver) ([]byte, error) {
	as, err := parseAttrs(data)
	if err != nil {
		return nil, err
	}
	if name == "nat" {
		as = normalizeNAT(as)
	}
	if ref, ok := setRefs[name]; ok {
		identity := []byte(attrString(as, ref[0]))
		if isAnonymousName(string(identity)) {
			if identity, err = resolve(string(identity), attrU32(as, ref[1])); err != nil {
				return nil, err
			}
		}
		as = slices.DeleteFunc(as, func(a rawAttr) bool { return a.typ == ref[1] })
		for i := range as {
			if as[i].typ == ref[0] {
				as[i].val = identity
			}
		}
	}
	return canonAttrs(nil, as, exprSpecs[name])
}

// normalizeNAT makes a nat expression's attributes as the kernel keeps
// them: a range whose maximum is not given ends at its minimum, and the
// flags say that addresses and ports are mapped when registers give them.
func normalizeNAT(as []rawAttr) []rawAttr {
	flags := attrU32(as, unix.NFTA_NAT_FLAGS)
	out := slices.DeleteFunc(slices.Clone(as), func(a rawAttr) bool { return a.typ == unix.NFTA_NAT_FLAGS })
	for _, r := range []struct{ min, max, flag uint16 }{
		{unix.NFTA_NAT_REG_ADDR_MIN, unix.NFTA_NAT_REG_ADDR_MAX, natRangeMapIPs},
		{unix.NFTA_NAT_REG_PROTO_MIN, unix.NFTA_NAT_REG_PROTO_MAX, natRangeProtoSpecified},
	} {
		v, ok := findAttr(as, r.min)
		if !ok {
			continue
		}
		flags |= uint32(r.flag)
		if _, ok := findAttr(as, r.max); !ok {
			out = append(out, rawAttr{typ: r.max, val: v})
		}
	}
	return append(out, rawAttr{typ: unix.NFTA_NAT_FLAGS, val: binary.BigEndian.AppendUint32(nil, flags)})
}

// NF_NAT_RANGE_MAP_IPS and NF_NAT_RANGE_PROTO_SPECIFIED.
const (
	natRangeMapIPs         = 1
	natRangeProtoSpecified = 2
)

func cString(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// setCanon collects an anonymous set: its declaration (the attributes
// that decide what it matches: flags, key and data types and lengths,
// nft's userdata) and its elements.
type setCanon struct {
	decl  []byte
	elems [][]byte
	arena []byte
}

var setDeclAttrs = []uint16{unix.NFTA_SET_FLAGS, unix.NFTA_SET_KEY_TYPE, unix.NFTA_SET_KEY_LEN,
	unix.NFTA_SET_DATA_TYPE, unix.NFTA_SET_DATA_LEN, unix.NFTA_SET_USERDATA}

// setHeader is what a NEWSET message or a dumped set says of the set.
type setHeader struct {
	name  string
	flags uint32
	// decl is the canonical declaration: the attributes that decide what
	// the set matches (flags, key and data types and lengths, nft's
	// userdata, without the identity record).
	decl []byte
	// identity is the identity the set's userdata records (see
	// identityRecord), for an anonymous constant set; nil if none.
	identity []byte
}

// parseSetHeader reads a NEWSET message's or dumped set's attributes
// (those after the nfgenmsg header).
func parseSetHeader(as []rawAttr) (setHeader, error) {
	h := setHeader{name: attrString(as, unix.NFTA_SET_NAME), flags: attrU32(as, unix.NFTA_SET_FLAGS)}
	verdicts := attrU32(as, unix.NFTA_SET_DATA_TYPE) == unix.NFT_DATA_VERDICT
	var keep []rawAttr
	for _, a := range as {
		// The kernel fills in the size of a verdict.
		if !slices.Contains(setDeclAttrs, a.typ) || verdicts && a.typ == unix.NFTA_SET_DATA_LEN {
			continue
		}
		if a.typ == unix.NFTA_SET_USERDATA {
			var stamp []byte
			a.val, stamp = splitIdentityRecord(a.val)
			if h.flags&constantAnonymous == constantAnonymous && len(stamp) > 0 {
				h.identity = append([]byte(anonPrefix), stamp...)
			}
		}
		keep = append(keep, a)
	}
	var err error
	h.decl, err = canonAttrs(nil, keep, nil)
	return h, err
}

const constantAnonymous = unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT

// The identity record: a userdata record (type, length, value, as nft's)
// of a type nft neither writes nor reads, holding the set's identity
// (setCanon.digest, without its prefix). This package writes it in each
// anonymous set it creates, in the same request that creates the set.
// The kernel never changes an anonymous constant set once a rule holds it
// (it refuses element changes to a bound set), so the record stays true
// for the set's life, and digests of the kernel's table read it instead
// of dumping the set's elements: one dump per set, in which the kernel
// walks the table's whole set list to find the set, made a full sync
// over an existing table quadratic in the number of services. Sets that
// nft wrote (upstream's table, small tables) have no record and are
// dumped.
const udataSetIdentity = 0xc5

func identityRecord(identity []byte) []byte {
	stamp := bytes.TrimPrefix(identity, []byte(anonPrefix))
	return append([]byte{udataSetIdentity, byte(len(stamp))}, stamp...)
}

// splitIdentityRecord returns userdata u without its identity record, and
// the record's value. Userdata that does not parse as records is kept
// whole.
func splitIdentityRecord(u []byte) (rest, stamp []byte) {
	for i := 0; i < len(u); {
		if i+2 > len(u) || i+2+int(u[i+1]) > len(u) {
			return u, nil
		}
		n := 2 + int(u[i+1])
		if u[i] == udataSetIdentity {
			return append(slices.Clip(u[:i]), u[i+n:]...), u[i+2 : i+n]
		}
		i += n
	}
	return u, nil
}

// batchSetIdentity is the identity of a set that a batch creates with
// attributes attrs (without userdata), userdata udata and the element
// messages elems.
func batchSetIdentity(attrs, udata []byte, elems []message) ([]byte, error) {
	as, err := parseAttrs(attrs)
	if err != nil {
		return nil, err
	}
	h, err := parseSetHeader(append(as, rawAttr{typ: unix.NFTA_SET_USERDATA, val: udata}))
	if err != nil {
		return nil, err
	}
	s := setCanon{decl: h.decl}
	for _, m := range elems {
		if err := s.addElems(m.data); err != nil {
			return nil, err
		}
	}
	return s.digest(), nil
}

// addElems adds the elements of an element list message's
// NFTA_SET_ELEM_LIST_ELEMENTS attribute.
func (s *setCanon) addElems(data []byte) error {
	return eachElement(data, func(el []byte) error {
		// One arena for the set's elements: each element keeps its slice
		// when the arena grows.
		start := len(s.arena)
		var err error
		if s.arena, err = canon(s.arena, el, elemSpec); err != nil {
			return err
		}
		s.elems = append(s.elems, s.arena[start:len(s.arena):len(s.arena)])
		return nil
	})
}

// eachElement calls f with the attributes of each element in an element
// list message's attributes data (those after its nfgenmsg header).
func eachElement(data []byte, f func(el []byte) error) error {
	as, err := parseAttrs(data)
	if err != nil {
		return err
	}
	for _, a := range as {
		if a.typ != unix.NFTA_SET_ELEM_LIST_ELEMENTS {
			continue
		}
		list, err := parseAttrs(a.val)
		if err != nil {
			return err
		}
		for _, el := range list {
			if err := f(el.val); err != nil {
				return err
			}
		}
	}
	return nil
}

// digest is the set's identity: its declaration and its distinct
// elements, in any order (the kernel lists a set in its own order and
// keeps one of duplicate elements).
func (s *setCanon) digest() []byte {
	slices.SortFunc(s.elems, bytes.Compare)
	elems := slices.CompactFunc(s.elems, bytes.Equal)
	h := sha256.New()
	writeLen(h, s.decl)
	for _, e := range elems {
		writeLen(h, e)
	}
	return append([]byte(anonPrefix), h.Sum(nil)[:16]...)
}

// anonPrefix sets an anonymous set's identity apart from a set name.
const anonPrefix = "anon:"

func writeLen(h hash.Hash, b []byte) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// chainHasher makes a chain's digest from its rules' canonical forms.
type chainHasher struct{ h hash.Hash }

func newChainHasher() chainHasher { return chainHasher{h: sha256.New()} }

func (c chainHasher) add(rule []byte) { writeLen(c.h, rule) }

func (c chainHasher) sum() Digest {
	var d Digest
	copy(d[:], c.h.Sum(nil))
	return d
}

// RulesDigest is the digest of a chain holding exactly rules, as a batch
// of family f would write them on table.
func RulesDigest(f Family, table string, rules []Rule) (Digest, error) {
	b := NewBatch(f, table)
	for _, r := range rules {
		b.AddRule("chain", r)
	}
	msgs, err := encodeBatch(b)
	if err != nil {
		return Digest{}, err
	}
	sets := map[uint32]*setCanon{}
	resolve := func(_ string, id uint32) ([]byte, error) {
		s, ok := sets[id]
		if !ok {
			return nil, fmt.Errorf("rule refers to unknown set id %d", id)
		}
		return s.digest(), nil
	}
	h := newChainHasher()
	for _, m := range msgs {
		if err := digestMessage(m, sets, resolve, h); err != nil {
			return Digest{}, err
		}
	}
	return h.sum(), nil
}

// digestMessage takes one encoded request into sets or the chain hash.
func digestMessage(m message, sets map[uint32]*setCanon, resolve setResolver, h chainHasher) error {
	as, err := parseAttrs(m.data)
	if err != nil {
		return err
	}
	switch m.typ {
	case unix.NFT_MSG_NEWSET:
		h, err := parseSetHeader(as)
		if err != nil {
			return err
		}
		sets[attrU32(as, unix.NFTA_SET_ID)] = &setCanon{decl: h.decl}
	case unix.NFT_MSG_NEWSETELEM:
		s, ok := sets[attrU32(as, unix.NFTA_SET_ELEM_LIST_SET_ID)]
		if !ok {
			return errors.New("elements of an unknown set")
		}
		return s.addElems(m.data)
	case unix.NFT_MSG_NEWRULE:
		c, err := canonRuleAttrs(as, resolve)
		if err != nil {
			return err
		}
		h.add(c)
	default:
		return fmt.Errorf("unexpected request type %d", m.typ)
	}
	return nil
}

// canonRuleAttrs is the canonical form of a rule message's attributes.
func canonRuleAttrs(as []rawAttr, resolve setResolver) ([]byte, error) {
	exprs, _ := findAttr(as, unix.NFTA_RULE_EXPRESSIONS)
	udata, _ := findAttr(as, unix.NFTA_RULE_USERDATA)
	return canonRule(exprs, udata, resolve)
}
