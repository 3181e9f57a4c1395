package nftnl

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// message is one nf_tables request of a batch, and what it came from, so
// that the kernel's error for it can name the operation (and element).
type message struct {
	typ   uint16 // NFT_MSG_*
	flags netlink.HeaderFlags
	data  []byte // attributes, after the nfgenmsg header
	op    int    // index of the Batch operation
	// For element lists: the index in the operation of the message's first
	// element, and each element's attribute offset in data.
	firstElem int
	elemOffs  []int
}

// Kernel limits on what a batch names, and nft's on comments (nft refuses
// longer ones; the kernel would store them).
const (
	maxNameLen    = unix.NFT_NAME_MAXLEN - 1 // tables, chains, sets: 255 bytes + NUL
	maxCommentLen = 128
	// maxElemBytes keeps an element list's nested attribute well under its
	// 64 KiB length field; a longer list is split over several messages,
	// as nft does.
	maxElemBytes = 32 << 10
)

// encoder turns a Batch into requests, the way nft 1.0.6 writes the same
// commands, so that `nft list` cannot tell the two apart.
type encoder struct {
	b      *Batch
	msgs   []message
	op     int    // the operation being encoded
	nextID uint32 // NFTA_SET_ID of the last set created in the batch
	// chain is the chain of the rule being encoded (with the handle it
	// goes before, for an insertion); chainSets counts the anonymous sets
	// the batch wrote in each (see anonSetName).
	chain     string
	chainSets map[string]int
}

// encodeBatch returns b's requests in order, or the first operation that
// cannot be encoded.
func encodeBatch(b *Batch) ([]message, error) {
	e := &encoder{b: b, chainSets: map[string]int{}}
	if b.fam != IPv4 && b.fam != IPv6 {
		return nil, fmt.Errorf("family %d is neither IPv4 nor IPv6", b.fam)
	}
	if err := checkName("table", b.table); err != nil {
		return nil, err
	}
	for i := range b.ops {
		e.op = i
		if err := e.encodeOp(&b.ops[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", truncate(b.opLine(&b.ops[i], -1)), err)
		}
	}
	return e.msgs, nil
}

func (e *encoder) encodeOp(o *op) error {
	if err := checkName("name", o.name); err != nil {
		return err
	}
	if ok, err := e.encodeObject(o); ok {
		return err
	}
	switch o.kind {
	case opAddChain:
		e.tableObject(unix.NFT_MSG_NEWCHAIN, netlink.Create, unix.NFTA_CHAIN_NAME, o.name)
	case opFlushChain:
		e.tableObject(unix.NFT_MSG_DELRULE, 0, unix.NFTA_RULE_CHAIN, o.name)
	case opDeleteChain:
		e.tableObject(unix.NFT_MSG_DELCHAIN, 0, unix.NFTA_CHAIN_NAME, o.name)
	case opDeleteSet:
		e.tableObject(unix.NFT_MSG_DELSET, 0, unix.NFTA_SET_NAME, o.name)
	case opFlushSet: // an element deletion naming no element
		e.tableObject(unix.NFT_MSG_DELSETELEM, 0, unix.NFTA_SET_ELEM_LIST_SET, o.name)
	case opAddAffinitySet:
		return e.affinitySet(o)
	case opAddRule:
		return e.rule(o.name, o.handle, o.rule)
	case opDeleteRule:
		var a attrs
		a.str(unix.NFTA_RULE_TABLE, e.b.table)
		a.str(unix.NFTA_RULE_CHAIN, o.name)
		a.u64(unix.NFTA_RULE_HANDLE, o.handle)
		e.add(unix.NFT_MSG_DELRULE, 0, a.b)
	case opAddElements:
		return e.elements(o, unix.NFT_MSG_NEWSETELEM, netlink.Create)
	case opDeleteElements:
		return e.elements(o, unix.NFT_MSG_DELSETELEM, 0)
	default:
		return fmt.Errorf("unknown operation %d", o.kind)
	}
	return nil
}

// tableObject is a request naming one object of the table: the table
// attribute (type 1 in every object's attribute space) and the name.
func (e *encoder) tableObject(typ uint16, flags netlink.HeaderFlags, nameAttr uint16, name string) {
	var a attrs
	a.str(1, e.b.table)
	a.str(nameAttr, name)
	e.add(typ, flags, a.b)
}

func (e *encoder) add(typ uint16, flags netlink.HeaderFlags, data []byte) {
	e.msgs = append(e.msgs, message{typ: typ, flags: flags, data: data, op: e.op})
}

// affinitySet is `add set … { type ipv4_addr ; flags dynamic,timeout ;
// timeout Ns ; }` as nft sends it: flags timeout|eval, no size, and the
// key byte order userdata; a zero timeout sends no timeout attribute.
func (e *encoder) affinitySet(o *op) error {
	if o.timeout < 0 {
		return fmt.Errorf("negative timeout %v", o.timeout)
	}
	e.nextID++
	var a attrs
	a.str(unix.NFTA_SET_TABLE, e.b.table)
	a.str(unix.NFTA_SET_NAME, o.name)
	a.u32(unix.NFTA_SET_FLAGS, unix.NFT_SET_TIMEOUT|unix.NFT_SET_EVAL)
	a.u32(unix.NFTA_SET_KEY_TYPE, e.b.fam.addrType())
	a.u32(unix.NFTA_SET_KEY_LEN, uint32(e.b.fam.addrLen()))
	a.u32(unix.NFTA_SET_ID, e.nextID)
	if secs := int64(o.timeout.Seconds()); secs > 0 {
		a.u64(unix.NFTA_SET_TIMEOUT, uint64(secs)*1000)
	}
	a.put(unix.NFTA_SET_USERDATA, udataU32(nil, udataSetKeyByteOrder, byteOrderBig))
	e.add(unix.NFT_MSG_NEWSET, netlink.Create, a.b)
	return a.err
}

// rule queues the anonymous sets r needs, then r itself, appended to chain
// or, when before is not 0, inserted before the rule with that handle.
func (e *encoder) rule(chain string, before uint64, r Rule) error {
	if r.Stmt == nil {
		return errors.New("rule without a statement")
	}
	if len(r.Comment) > maxCommentLen {
		return fmt.Errorf("comment longer than %d bytes", maxCommentLen)
	}
	e.chain = chain
	if before != 0 {
		// The chain's old rules, and their anonymous sets, stay until a
		// later batch deletes them: the new sets need other names.
		e.chain = chain + " before " + strconv.FormatUint(before, 10)
	}
	var exprs []expr.Any
	if r.Match != nil {
		m, err := e.match(r.Match)
		if err != nil {
			return err
		}
		exprs = m
	}
	s, err := e.stmt(r.Stmt)
	if err != nil {
		return err
	}
	exprs = append(exprs, s...)
	var a attrs
	a.str(unix.NFTA_RULE_TABLE, e.b.table)
	a.str(unix.NFTA_RULE_CHAIN, chain)
	flags := netlink.Create | netlink.Append
	if before != 0 {
		a.u64(unix.NFTA_RULE_POSITION, before)
		flags = netlink.Create
	}
	list := a.nest(unix.NFTA_RULE_EXPRESSIONS)
	for _, x := range exprs {
		data, err := expr.Marshal(byte(e.b.fam), x)
		if err != nil {
			return fmt.Errorf("marshal %T: %w", x, err)
		}
		elem := a.nest(unix.NFTA_LIST_ELEM)
		a.b = append(a.b, data...)
		a.end(elem)
	}
	a.end(list)
	if r.Comment != "" {
		a.put(unix.NFTA_RULE_USERDATA, udataString(udataComment, r.Comment))
	}
	e.add(unix.NFT_MSG_NEWRULE, flags, a.b)
	return a.err
}

// elements queues an element operation on a named set or map, split into
// messages of at most maxElemBytes of elements.
func (e *encoder) elements(o *op, typ uint16, flags netlink.HeaderFlags) error {
	if len(o.elems) == 0 {
		return errors.New("no elements")
	}
	encoded := make([]setElem, len(o.elems))
	for i, el := range o.elems {
		se, err := e.namedElem(el, o.kind == opAddElements)
		if err != nil {
			return fmt.Errorf("element %d (%s): %w", i, el.text(o.kind == opAddElements), err)
		}
		encoded[i] = se
	}
	return e.elemLists(typ, flags, o.name, 0, encoded)
}

// namedElem is el's key, and for an add its verdict and comment.
func (e *encoder) namedElem(el Element, add bool) (setElem, error) {
	key, err := encodeKey(e.b.fam, el.Key)
	if err != nil {
		return setElem{}, err
	}
	se := setElem{key: key}
	if !add {
		return se, nil
	}
	if len(el.Comment) > maxCommentLen {
		return setElem{}, fmt.Errorf("comment longer than %d bytes", maxCommentLen)
	}
	se.comment = el.Comment
	if el.Verdict != nil {
		v, err := encodeVerdict(*el.Verdict)
		if err != nil {
			return setElem{}, err
		}
		se.verdict = &v
	}
	return se, nil
}

// setElem is one element as the kernel receives it.
type setElem struct {
	key         []byte
	intervalEnd bool
	open        bool   // an interval reaching the top of the key space (nft marks it in userdata)
	data        []byte // a map value
	verdict     *verdict
	comment     string
}

type verdict struct {
	code  int32 // nfDrop, NFT_GOTO
	chain string
}

func encodeVerdict(v Verdict) (verdict, error) {
	switch {
	case v.Drop && v.Chain != "":
		return verdict{}, errors.New("verdict both drop and goto " + v.Chain)
	case v.Drop:
		return verdict{code: nfDrop}, nil
	}
	if err := checkName("goto chain", v.Chain); err != nil {
		return verdict{}, err
	}
	return verdict{code: unix.NFT_GOTO, chain: v.Chain}, nil
}

// elemLists queues NEWSETELEM/DELSETELEM messages for elems of set (id:
// NFTA_SET_ID of a set created in this batch, 0 for an existing one).
//
// A set created in this batch is named by its id only, unlike nft, which
// sends its "__set%d" name too: the kernel looks a name up by walking the
// table's whole set list (and "__set%d" never matches), then finds the id
// among the batch's new sets, newest first. At 10000 services that walk
// was a second of a first full sync.
func (e *encoder) elemLists(typ uint16, flags netlink.HeaderFlags, set string, id uint32, elems []setElem) error {
	for first := 0; first < len(elems); {
		var a attrs
		a.str(unix.NFTA_SET_ELEM_LIST_TABLE, e.b.table)
		if id == 0 {
			a.str(unix.NFTA_SET_ELEM_LIST_SET, set)
		} else {
			a.u32(unix.NFTA_SET_ELEM_LIST_SET_ID, id)
		}
		list := a.nest(unix.NFTA_SET_ELEM_LIST_ELEMENTS)
		var offs []int
		n := first
		for ; n < len(elems) && (n == first || len(a.b)-list < maxElemBytes); n++ {
			offs = append(offs, len(a.b))
			putElem(&a, uint16(n-first+1), elems[n])
		}
		a.end(list)
		if a.err != nil {
			return a.err
		}
		e.msgs = append(e.msgs, message{typ: typ, flags: flags, data: a.b, op: e.op, firstElem: first, elemOffs: offs})
		first = n
	}
	return nil
}

// putElem writes one element in the attribute order of libnftnl: flags,
// key, data, userdata.
func putElem(a *attrs, n uint16, el setElem) {
	item := a.nest(n)
	if el.intervalEnd {
		a.u32(unix.NFTA_SET_ELEM_FLAGS, unix.NFT_SET_ELEM_INTERVAL_END)
	}
	key := a.nest(unix.NFTA_SET_ELEM_KEY)
	a.put(unix.NFTA_DATA_VALUE, el.key)
	a.end(key)
	switch {
	case el.verdict != nil:
		data := a.nest(unix.NFTA_SET_ELEM_DATA)
		v := a.nest(unix.NFTA_DATA_VERDICT)
		a.u32(unix.NFTA_VERDICT_CODE, uint32(el.verdict.code))
		if el.verdict.chain != "" {
			a.str(unix.NFTA_VERDICT_CHAIN, el.verdict.chain)
		}
		a.end(v)
		a.end(data)
	case el.data != nil:
		data := a.nest(unix.NFTA_SET_ELEM_DATA)
		a.put(unix.NFTA_DATA_VALUE, el.data)
		a.end(data)
	}
	switch {
	case el.comment != "":
		a.put(unix.NFTA_SET_ELEM_USERDATA, udataString(udataComment, el.comment))
	case el.open:
		a.put(unix.NFTA_SET_ELEM_USERDATA, udataU32(nil, udataSetElemFlags, setElemFlagIntervalOpen))
	}
	a.end(item)
}

// checkName rejects what the kernel would: an empty name, one longer than
// NFT_NAME_MAXLEN with its NUL, or one with a NUL inside.
func checkName(what, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("empty %s", what)
	case len(name) > maxNameLen:
		return fmt.Errorf("%s %.20q… longer than %d bytes", what, name, maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%s %q contains a NUL byte", what, name)
	}
	return nil
}

// truncate keeps error texts readable when a rule has many endpoints.
func truncate(s string) string {
	const max = 200
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// Userdata records (libnftnl's TLVs: type, length, value; integers in host
// byte order) that nft writes and reads back when it lists objects.
const (
	udataComment = 0 // NFTNL_UDATA_RULE_COMMENT, NFTNL_UDATA_SET_ELEM_COMMENT

	udataSetKeyByteOrder  = 0 // NFTNL_UDATA_SET_KEYBYTEORDER
	udataSetDataByteOrder = 1 // NFTNL_UDATA_SET_DATABYTEORDER
	udataSetMergeElements = 2 // NFTNL_UDATA_SET_MERGE_ELEMENTS
	udataSetKeyTypeof     = 3 // NFTNL_UDATA_SET_KEY_TYPEOF
	udataSetDataTypeof    = 4 // NFTNL_UDATA_SET_DATA_TYPEOF
	udataSetDataInterval  = 6 // NFTNL_UDATA_SET_DATA_INTERVAL

	udataSetElemFlags       = 1 // NFTNL_UDATA_SET_ELEM_FLAGS
	setElemFlagIntervalOpen = 1 // NFTNL_SET_ELEM_F_INTERVAL_OPEN

	// nft's enum byteorder.
	byteOrderHost = 1
	byteOrderBig  = 2
)

func udataU32(u []byte, typ byte, v uint32) []byte {
	u = append(u, typ, 4)
	return binary.NativeEndian.AppendUint32(u, v)
}

// udataString is a NUL-terminated string record (comments).
func udataString(typ byte, s string) []byte {
	return append(append([]byte{typ, byte(len(s) + 1)}, s...), 0)
}

// udataNest is a record holding records.
func udataNest(u []byte, typ byte, inner []byte) []byte {
	return append(append(u, typ, byte(len(inner))), inner...)
}

// nfDrop is the NF_DROP verdict code (absent from x/sys/unix).
const nfDrop = 0
