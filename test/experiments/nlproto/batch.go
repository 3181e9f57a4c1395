//go:build nlproto

package main

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawBatch builds an nf_tables transaction message by message, with the
// attributes nft 1.0.6 sends (captured with `nft --debug=mnl`), so the
// objects list exactly as nft's own. google/nftables is used only to
// marshal rule expressions: its AddSet forces big-endian key byte-order
// userdata on anonymous sets, which makes `nft list` print numgen map
// keys 1, 2 … as 16777216, 33554432 …
type rawBatch struct {
	family byte
	table  string
	msgs   []netlink.Message
	nextID uint32
	err    error
}

func newRawBatch(family byte, table string) *rawBatch {
	return &rawBatch{family: family, table: table}
}

func (b *rawBatch) add(msgType uint16, flags netlink.HeaderFlags, attrs []netlink.Attribute) {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil && b.err == nil {
		b.err = err
	}
	b.msgs = append(b.msgs, netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msgType),
			Flags: netlink.Request | netlink.Acknowledge | flags,
		},
		Data: append([]byte{b.family, unix.NFNETLINK_V0, 0, 0}, data...),
	})
}

func (b *rawBatch) addChain(name string) {
	b.add(unix.NFT_MSG_NEWCHAIN, netlink.Create, []netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cstr(b.table)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cstr(name)},
	})
}

func (b *rawBatch) flushChain(name string) {
	b.add(unix.NFT_MSG_DELRULE, 0, []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(b.table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(name)},
	})
}

// anonSet describes an anonymous constant set or map as nft lays it out.
type anonSet struct {
	// name is nft's "__set%d"/"__map%d" if empty; the kernel then picks
	// the number by parsing every set name of the table.
	name     string
	isMap    bool
	interval bool
	keyType  uint32 // nft datatype id; concatenations: id<<6|id …
	keyLen   uint32
	// keyByteOrder is nft's byte-order userdata: 1 host (numgen, mark,
	// meta l4proto), 2 big endian (addresses, ports).
	keyByteOrder uint32
	dataType     uint32 // maps only; 0xffffff00 = verdict
	dataLen      uint32
	elems        []setElem
	// udata, when set, replaces setUserdata's (nft 1.0.6 adds "typeof"
	// records for some sets).
	udata []byte
}

type setElem struct {
	key, keyEnd []byte
	intervalEnd bool
	data        []byte // map value
	verdict     *verdict
	comment     string
}

type verdict struct {
	code  int32 // unix.NFT_GOTO, unix.NFT_JUMP, unix.NF_DROP …
	chain string
}

// addAnonSet queues NEWSET + NEWSETELEM for an anonymous constant set and
// returns its name and id for a lookup/vmap expression in the same batch.
func (b *rawBatch) addAnonSet(s anonSet) (name string, id uint32) {
	b.nextID++
	id = b.nextID
	name = "__set%d"
	flags := uint32(unix.NFT_SET_ANONYMOUS | unix.NFT_SET_CONSTANT)
	if s.isMap {
		name = "__map%d"
		flags |= unix.NFT_SET_MAP
	}
	if s.name != "" {
		name = s.name
	}
	if s.interval {
		flags |= unix.NFT_SET_INTERVAL
	}
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_SET_TABLE, Data: cstr(b.table)},
		{Type: unix.NFTA_SET_NAME, Data: cstr(name)},
		{Type: unix.NFTA_SET_FLAGS, Data: be32(flags)},
		{Type: unix.NFTA_SET_KEY_TYPE, Data: be32(s.keyType)},
		{Type: unix.NFTA_SET_KEY_LEN, Data: be32(s.keyLen)},
	}
	if s.isMap {
		attrs = append(attrs,
			netlink.Attribute{Type: unix.NFTA_SET_DATA_TYPE, Data: be32(s.dataType)},
			netlink.Attribute{Type: unix.NFTA_SET_DATA_LEN, Data: be32(s.dataLen)})
	}
	attrs = append(attrs,
		netlink.Attribute{Type: unix.NFTA_SET_ID, Data: be32(id)},
		netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_DESC, Data: b.marshal([]netlink.Attribute{
			{Type: unix.NFTA_SET_DESC_SIZE, Data: be32(uint32(len(s.elems)))},
		})},
		netlink.Attribute{Type: unix.NFTA_SET_USERDATA, Data: setUserdata(s)})
	b.add(unix.NFT_MSG_NEWSET, netlink.Create, attrs)
	b.addElems(name, id, s.elems)
	return name, id
}

// setUserdata is the TLV list nft 1.0.6 attaches to an anonymous set:
// key byte order, and for maps the data byte order and "data interval".
func setUserdata(s anonSet) []byte {
	if s.udata != nil {
		return s.udata
	}
	const (
		keyByteOrder  = 0 // NFTNL_UDATA_SET_KEYBYTEORDER
		dataByteOrder = 1 // NFTNL_UDATA_SET_DATABYTEORDER
		dataInterval  = 6 // NFTNL_UDATA_SET_DATA_INTERVAL
	)
	u := udataU32(nil, keyByteOrder, s.keyByteOrder)
	if s.isMap {
		u = udataU32(u, dataByteOrder, 0)
		u = udataU32(u, dataInterval, 0)
	}
	return u
}

func udataU32(u []byte, typ byte, v uint32) []byte {
	u = append(u, typ, 4)
	return binary.NativeEndian.AppendUint32(u, v)
}

// addElems queues NEWSETELEM for a named set (id 0) or one created in
// this batch (name "__set%d" and its id).
func (b *rawBatch) addElems(set string, id uint32, elems []setElem) {
	var list []netlink.Attribute
	for i, e := range elems {
		var item []netlink.Attribute
		if e.intervalEnd {
			item = append(item, netlink.Attribute{Type: unix.NFTA_SET_ELEM_FLAGS, Data: be32(unix.NFT_SET_ELEM_INTERVAL_END)})
		}
		item = append(item, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_KEY, Data: b.marshal([]netlink.Attribute{
			{Type: unix.NFTA_DATA_VALUE, Data: e.key}})})
		if e.keyEnd != nil {
			item = append(item, netlink.Attribute{Type: unix.NLA_F_NESTED | nftaSetElemKeyEnd, Data: b.marshal([]netlink.Attribute{
				{Type: unix.NFTA_DATA_VALUE, Data: e.keyEnd}})})
		}
		switch {
		case e.verdict != nil:
			v := []netlink.Attribute{{Type: unix.NFTA_VERDICT_CODE, Data: be32(uint32(e.verdict.code))}}
			if e.verdict.chain != "" {
				v = append(v, netlink.Attribute{Type: unix.NFTA_VERDICT_CHAIN, Data: cstr(e.verdict.chain)})
			}
			item = append(item, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_DATA, Data: b.marshal([]netlink.Attribute{
				{Type: unix.NLA_F_NESTED | unix.NFTA_DATA_VERDICT, Data: b.marshal(v)}})})
		case e.data != nil:
			item = append(item, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_DATA, Data: b.marshal([]netlink.Attribute{
				{Type: unix.NFTA_DATA_VALUE, Data: e.data}})})
		}
		if e.comment != "" {
			// NFTNL_UDATA_SET_ELEM_COMMENT = 0, NUL-terminated.
			c := cstr(e.comment)
			item = append(item, netlink.Attribute{Type: unix.NFTA_SET_ELEM_USERDATA, Data: append([]byte{0, byte(len(c))}, c...)})
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | uint16(i+1), Data: b.marshal(item)})
	}
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_SET_ELEM_LIST_TABLE, Data: cstr(b.table)},
		{Type: unix.NFTA_SET_ELEM_LIST_SET, Data: cstr(set)},
	}
	if id != 0 {
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_SET_ELEM_LIST_SET_ID, Data: be32(id)})
	}
	attrs = append(attrs, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_SET_ELEM_LIST_ELEMENTS, Data: b.marshal(list)})
	b.add(unix.NFT_MSG_NEWSETELEM, netlink.Create, attrs)
}

// addRule appends a rule; comment becomes the rule userdata nft writes
// for `comment "…"` (NFTNL_UDATA_RULE_COMMENT = 0, NUL-terminated).
func (b *rawBatch) addRule(chain string, exprs []expr.Any, comment string) {
	var list []netlink.Attribute
	for _, e := range exprs {
		data, err := expr.Marshal(b.family, e)
		if err != nil && b.err == nil {
			b.err = fmt.Errorf("marshal %T: %w", e, err)
		}
		list = append(list, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: data})
	}
	attrs := []netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: cstr(b.table)},
		{Type: unix.NFTA_RULE_CHAIN, Data: cstr(chain)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: b.marshal(list)},
	}
	if comment != "" {
		c := cstr(comment)
		attrs = append(attrs, netlink.Attribute{Type: unix.NFTA_RULE_USERDATA, Data: append([]byte{0, byte(len(c))}, c...)})
	}
	b.add(unix.NFT_MSG_NEWRULE, netlink.Create|netlink.Append, attrs)
}

// send wraps the messages in BATCH_BEGIN/END and waits for one ack per
// message; the kernel applies all or nothing.
func (b *rawBatch) send(c *netlink.Conn) error {
	if b.err != nil {
		return b.err
	}
	res := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	msgs := make([]netlink.Message, 0, len(b.msgs)+2)
	msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: netlink.Request}, Data: res})
	msgs = append(msgs, b.msgs...)
	msgs = append(msgs, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: netlink.Request}, Data: res})
	if err := sizeBuffers(c, msgs); err != nil {
		return err
	}
	if _, err := c.SendMessages(msgs); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	// An error ends the read: the kernel aborted the whole batch, and
	// this experiment gives up on the connection rather than draining it.
	for acks := 0; acks < len(b.msgs); {
		replies, err := c.Receive()
		if err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		acks += len(replies)
	}
	return nil
}

// sizeBuffers grows the socket buffers to fit the batch (sent in one
// sendmsg, EMSGSIZE otherwise) and one ack per message (ENOBUFS
// otherwise), as nft does; FORCE variants pass rmem_max/wmem_max (root).
func sizeBuffers(c *netlink.Conn, msgs []netlink.Message) error {
	size := 0
	for _, m := range msgs {
		size += 16 + len(m.Data) + 4
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, max(size*2, 1<<20))
		if sockErr == nil {
			// An ack (error message with the request header) plus skb
			// overhead: well under 1 KiB each.
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, max(len(msgs)*1024, 1<<20))
		}
	})
	if err != nil {
		return err
	}
	if sockErr != nil {
		return fmt.Errorf("socket buffers: %w", sockErr)
	}
	return nil
}

func (b *rawBatch) marshal(attrs []netlink.Attribute) []byte {
	data, err := netlink.MarshalAttributes(attrs)
	if err != nil && b.err == nil {
		b.err = err
	}
	return data
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// nftaSetElemKeyEnd is NFTA_SET_ELEM_KEY_END (kernel 5.6), absent from
// this x/sys/unix.
const nftaSetElemKeyEnd = 10
