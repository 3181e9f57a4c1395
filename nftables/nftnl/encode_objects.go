package nftnl

import (
	"errors"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// Attributes x/sys/unix lacks (linux/netfilter/nf_tables.h).
const (
	nftaTableUserdata = 6  // NFTA_TABLE_USERDATA
	nftaChainUserdata = 12 // NFTA_CHAIN_USERDATA
	nftObjectCounter  = 1  // NFT_OBJECT_COUNTER
)

// nft's userdata records of tables, chains and sets, and nft's own ids
// that its set records carry.
const (
	udataTableComment = 0 // NFTNL_UDATA_TABLE_COMMENT
	udataChainComment = 0 // NFTNL_UDATA_CHAIN_COMMENT
	udataSetComment   = 7 // NFTNL_UDATA_SET_COMMENT
	exprConcat        = 13
	typeInetProto     = 12
)

// encodeObject queues an object operation's request; ok is false for
// other operations.
func (e *encoder) encodeObject(o *op) (ok bool, err error) {
	switch o.kind {
	case opAddTable:
		err = e.table(o.comment)
	case opDeclareChain:
		err = e.declareChain(o.chain)
	case opDeclareSet:
		err = e.declareSet(o.set)
	case opAddCounter:
		e.counter(unix.NFT_MSG_NEWOBJ, netlink.Create, o.name, true)
	case opDeleteCounter:
		e.counter(unix.NFT_MSG_DELOBJ, 0, o.name, false)
	default:
		return false, nil
	}
	return true, err
}

// table is `add table … { comment "…" ; }`: the name, no flags, the
// comment as userdata.
func (e *encoder) table(comment string) error {
	if len(comment) > maxCommentLen {
		return fmt.Errorf("comment longer than %d bytes", maxCommentLen)
	}
	var a attrs
	a.str(unix.NFTA_TABLE_NAME, e.b.table)
	a.u32(unix.NFTA_TABLE_FLAGS, 0)
	if comment != "" {
		a.put(nftaTableUserdata, udataString(udataTableComment, comment))
	}
	e.add(unix.NFT_MSG_NEWTABLE, netlink.Create, a.b)
	return a.err
}

// declareChain is `add chain … { type T hook H priority P ; comment "…" ; }`
// in nft's attribute order: table, name, type, hook, userdata.
func (e *encoder) declareChain(c *Chain) error {
	if len(c.Comment) > maxCommentLen {
		return fmt.Errorf("comment longer than %d bytes", maxCommentLen)
	}
	var a attrs
	a.str(unix.NFTA_CHAIN_TABLE, e.b.table)
	a.str(unix.NFTA_CHAIN_NAME, c.Name)
	if c.Hook != nil {
		hook, prio, err := e.hook(c.Hook)
		if err != nil {
			return err
		}
		a.str(unix.NFTA_CHAIN_TYPE, string(c.Hook.Type))
		nest := a.nest(unix.NFTA_CHAIN_HOOK)
		a.u32(unix.NFTA_HOOK_HOOKNUM, hook)
		a.u32(unix.NFTA_HOOK_PRIORITY, uint32(int32(prio)))
		a.end(nest)
	}
	if c.Comment != "" {
		a.put(nftaChainUserdata, udataString(udataChainComment, c.Comment))
	}
	e.add(unix.NFT_MSG_NEWCHAIN, netlink.Create, a.b)
	return a.err
}

// hook is h's netfilter hook number and numeric priority.
func (e *encoder) hook(h *Hook) (uint32, int, error) {
	var hook uint32
	switch h.Hook {
	case knftables.PreroutingHook:
		hook = unix.NF_INET_PRE_ROUTING
	case knftables.InputHook:
		hook = unix.NF_INET_LOCAL_IN
	case knftables.ForwardHook:
		hook = unix.NF_INET_FORWARD
	case knftables.OutputHook:
		hook = unix.NF_INET_LOCAL_OUT
	case knftables.PostroutingHook:
		hook = unix.NF_INET_POST_ROUTING
	default:
		return 0, 0, fmt.Errorf("unknown hook %q", h.Hook)
	}
	if h.Type != knftables.FilterType && h.Type != knftables.NATType {
		return 0, 0, fmt.Errorf("unknown chain type %q", h.Type)
	}
	prio, err := knftables.ParsePriority(knftables.Family(e.b.fam.IP()), string(h.Priority))
	if err != nil {
		return 0, 0, fmt.Errorf("priority: %w", err)
	}
	return hook, prio, nil
}

// declareSet is `add set|map … { type K[ : verdict] ; comment "…" ; }` as
// nft sends it: no flags but map's, the key's type id and length, a
// verdict map's data type (length 0), a batch id, and nft's userdata.
func (e *encoder) declareSet(s *Set) error {
	keyType, keyLen, err := e.b.fam.keyDecl(s.Key)
	if err != nil {
		return err
	}
	if s.Verdicts && len(s.Key) < 2 {
		return errors.New("a verdict map's key must be a concatenation")
	}
	if len(s.Comment) > maxCommentLen {
		return fmt.Errorf("comment longer than %d bytes", maxCommentLen)
	}
	e.nextID++
	var a attrs
	a.str(unix.NFTA_SET_TABLE, e.b.table)
	a.str(unix.NFTA_SET_NAME, s.Name)
	flags := uint32(0)
	if s.Verdicts {
		flags = unix.NFT_SET_MAP
	}
	a.u32(unix.NFTA_SET_FLAGS, flags)
	a.u32(unix.NFTA_SET_KEY_TYPE, keyType)
	a.u32(unix.NFTA_SET_KEY_LEN, keyLen)
	if s.Verdicts {
		a.u32(unix.NFTA_SET_DATA_TYPE, typeVerdict)
		a.u32(unix.NFTA_SET_DATA_LEN, 0)
	}
	a.u32(unix.NFTA_SET_ID, e.nextID)
	a.put(unix.NFTA_SET_USERDATA, namedSetUdata(s))
	e.add(unix.NFT_MSG_NEWSET, netlink.Create, a.b)
	return a.err
}

// namedSetUdata is nft 1.0.6's userdata of a declared set: the key byte
// order (big endian for an address, none for a concatenation, which it
// also records as "typeof" a concatenation), a map's data records, then
// the comment.
func namedSetUdata(s *Set) []byte {
	if len(s.Key) == 1 {
		u := udataU32(nil, udataSetKeyByteOrder, byteOrderBig)
		return appendSetComment(u, s.Comment)
	}
	u := udataU32(nil, udataSetKeyByteOrder, 0)
	if s.Verdicts {
		u = udataU32(u, udataSetDataByteOrder, 0)
	}
	u = udataNest(u, udataSetKeyTypeof, append(udataU32(nil, typeofExpr, exprConcat), typeofData, 0))
	if s.Verdicts {
		u = udataU32(u, udataSetDataInterval, 0)
	}
	return appendSetComment(u, s.Comment)
}

func appendSetComment(u []byte, comment string) []byte {
	if comment == "" {
		return u
	}
	return append(u, udataString(udataSetComment, comment)...)
}

// keyDecl is a key's type id and length: each field padded to 4 bytes.
// A single field must be the address (the only one kproxy declares, and
// the only one whose userdata is checked against nft's).
func (f Family) keyDecl(key []KeyField) (uint32, uint32, error) {
	if len(key) == 0 {
		return 0, 0, errors.New("empty key")
	}
	if len(key) == 1 && key[0] != KeyAddr {
		return 0, 0, errors.New("a one-field key must be an address")
	}
	var ids []uint32
	n := 0
	for _, k := range key {
		switch k {
		case KeyAddr:
			ids, n = append(ids, f.addrType()), n+f.addrLen()
		case KeyProto:
			ids, n = append(ids, typeInetProto), n+4
		case KeyPort:
			ids, n = append(ids, typeInetService), n+4
		default:
			return 0, 0, fmt.Errorf("unknown key field %d", k)
		}
	}
	return concatType(ids...), uint32(n), nil
}

// counter is `add counter …` (zero bytes and packets) or `delete counter
// …` (an empty data attribute, as nft sends it).
func (e *encoder) counter(typ uint16, flags netlink.HeaderFlags, name string, add bool) {
	var a attrs
	a.str(unix.NFTA_OBJ_TABLE, e.b.table)
	a.str(unix.NFTA_OBJ_NAME, name)
	a.u32(unix.NFTA_OBJ_TYPE, nftObjectCounter)
	data := a.nest(unix.NFTA_OBJ_DATA)
	if add {
		a.u64(unix.NFTA_COUNTER_BYTES, 0)
		a.u64(unix.NFTA_COUNTER_PACKETS, 0)
	}
	a.end(data)
	e.add(typ, flags, a.b)
}
