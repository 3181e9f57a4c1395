package nftnl

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The unit tests decode the encoder's messages back and print them the way
// `nft --debug=netlink` prints what nft sends, so that each expectation is
// nft's own output for the same text (captured with nft 1.0.6).

// decodedRule is a NEWRULE message: its chain, bytecode and comment.
type decodedRule struct {
	table, chain string
	bytecode     []string
	comment      string
}

func decodeRule(t *testing.T, fam Family, m message) decodedRule {
	t.Helper()
	var r decodedRule
	ad := decoder(t, m.data)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_TABLE:
			r.table = ad.String()
		case unix.NFTA_RULE_CHAIN:
			r.chain = ad.String()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					r.bytecode = append(r.bytecode, formatExpr(t, fam, nad.Bytes()))
				}
				return nil
			})
		case unix.NFTA_RULE_USERDATA:
			r.comment = udataComment0(t, ad.Bytes())
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return r
}

func decoder(t *testing.T, b []byte) *netlink.AttributeDecoder {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		t.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	return ad
}

// udataComment0 is the comment record of rule or element userdata.
func udataComment0(t *testing.T, u []byte) string {
	t.Helper()
	if len(u) < 3 || u[0] != udataComment || int(u[1]) != len(u)-2 || u[len(u)-1] != 0 {
		t.Fatalf("userdata % x is not one NUL-terminated comment record", u)
	}
	return string(u[2 : len(u)-1])
}

// formatExpr decodes one NFTA_LIST_ELEM with google/nftables' decoders and
// prints it as libnftnl does.
func formatExpr(t *testing.T, fam Family, b []byte) string {
	t.Helper()
	var name string
	var data []byte
	ad := decoder(t, b)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
	e := map[string]expr.Any{
		"payload": &expr.Payload{}, "bitwise": &expr.Bitwise{}, "cmp": &expr.Cmp{}, "immediate": &expr.Immediate{},
		"meta": &expr.Meta{}, "fib": &expr.Fib{}, "lookup": &expr.Lookup{}, "dynset": &expr.Dynset{},
		"numgen": &expr.Numgen{}, "nat": &expr.NAT{}, "ct": &expr.Ct{}, "masq": &expr.Masq{}, "reject": &expr.Reject{},
	}[name]
	if e == nil {
		t.Fatalf("unexpected expression %q", name)
	}
	if imm, ok := e.(*expr.Immediate); ok {
		if err := expr.Unmarshal(byte(fam), data, imm); err != nil {
			t.Fatal(err)
		}
		if imm.Register == 0 {
			e = &expr.Verdict{}
		}
	}
	if err := expr.Unmarshal(byte(fam), data, e); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return "[ " + exprText(t, e) + " ]"
}

func exprText(t *testing.T, e expr.Any) string {
	switch e := e.(type) {
	case *expr.Payload:
		base := map[expr.PayloadBase]string{expr.PayloadBaseNetworkHeader: "network", expr.PayloadBaseTransportHeader: "transport"}[e.Base]
		return fmt.Sprintf("payload load %db @ %s header + %d => reg %d", e.Len, base, e.Offset, e.DestRegister)
	case *expr.Bitwise:
		return fmt.Sprintf("bitwise reg %d = ( reg %d & %s ) ^ %s", e.DestRegister, e.SourceRegister, words(e.Mask), words(e.Xor))
	case *expr.Cmp:
		op := map[expr.CmpOp]string{expr.CmpOpEq: "eq", expr.CmpOpNeq: "neq"}[e.Op]
		return fmt.Sprintf("cmp %s reg %d %s", op, e.Register, words(e.Data))
	case *expr.Immediate:
		return fmt.Sprintf("immediate reg %d %s", e.Register, words(e.Data))
	case *expr.Verdict:
		switch e.Kind {
		case expr.VerdictGoto:
			return "immediate reg 0 goto -> " + e.Chain
		case expr.VerdictJump:
			return "immediate reg 0 jump -> " + e.Chain
		}
		return "immediate reg 0 " + map[expr.VerdictKind]string{expr.VerdictDrop: "drop"}[e.Kind]
	case *expr.Meta:
		key := map[expr.MetaKey]string{expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyL4PROTO: "l4proto", expr.MetaKeyMARK: "mark"}[e.Key]
		if e.SourceRegister {
			return fmt.Sprintf("meta set %s with reg %d", key, e.Register)
		}
		return fmt.Sprintf("meta load %s => reg %d", key, e.Register)
	case *expr.Fib:
		if e.FlagSADDR != e.FlagDADDR && e.ResultADDRTYPE && !e.FlagIIF && !e.FlagOIF && !e.FlagMARK {
			return fmt.Sprintf("fib %s type => reg %d", map[bool]string{true: "saddr", false: "daddr"}[e.FlagSADDR], e.Register)
		}
	case *expr.Ct:
		key := map[expr.CtKey]string{expr.CtKeySTATE: "state", expr.CtKeySTATUS: "status"}[e.Key]
		if key != "" && !e.SourceRegister {
			return fmt.Sprintf("ct load %s => reg %d", key, e.Register)
		}
	case *expr.Masq:
		if e.FullyRandom && !e.Random && !e.Persistent && !e.ToPorts {
			return "masq flags 0x10"
		}
	case *expr.Reject:
		return fmt.Sprintf("reject type %d code %d", e.Type, e.Code)
	case *expr.Lookup:
		s := fmt.Sprintf("lookup reg %d set %s", e.SourceRegister, e.SetName)
		if e.IsDestRegSet {
			s += fmt.Sprintf(" dreg %d", e.DestRegister)
		}
		if e.Invert {
			s += " 0x1"
		}
		return s
	case *expr.Dynset:
		if e.Operation == unix.NFT_DYNSET_OP_UPDATE {
			return fmt.Sprintf("dynset update reg_key %d set %s", e.SrcRegKey, e.SetName)
		}
	case *expr.Numgen:
		if e.Type == unix.NFT_NG_RANDOM && e.Offset == 0 {
			return fmt.Sprintf("numgen reg %d = random mod %d", e.Register, e.Modulus)
		}
	case *expr.NAT:
		fam := map[uint32]string{unix.NFPROTO_IPV4: "ip", unix.NFPROTO_IPV6: "ip6"}[e.Family]
		s := fmt.Sprintf("nat dnat %s addr_min reg %d proto_min reg %d", fam, e.RegAddrMin, e.RegProtoMin)
		if e.Specified {
			s += " flags 0x2"
		}
		if e.Type == expr.NATTypeDestNAT && !e.Random && !e.FullyRandom && !e.Persistent && e.RegAddrMax == 0 && e.RegProtoMax == 0 {
			return s
		}
	}
	t.Fatalf("expression %#v is not one nft writes for kproxy's shapes", e)
	return ""
}

// words prints data as libnftnl does: 32-bit words in host byte order.
func words(b []byte) string {
	var w []string
	for i := 0; i < len(b); i += 4 {
		var chunk [4]byte
		copy(chunk[:], b[i:])
		w = append(w, fmt.Sprintf("0x%08x", binary.NativeEndian.Uint32(chunk[:])))
	}
	return strings.Join(w, " ")
}

// decodedSet is a NEWSET message.
type decodedSet struct {
	name                string
	flags               uint32
	keyType, keyLen     uint32
	dataType, dataLen   uint32
	id, size            uint32
	timeoutMS           uint64
	udata               string // hex
	hasDesc, hasTimeout bool
}

func decodeSet(t *testing.T, m message) decodedSet {
	t.Helper()
	var s decodedSet
	ad := decoder(t, m.data)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_NAME:
			s.name = ad.String()
		case unix.NFTA_SET_FLAGS:
			s.flags = ad.Uint32()
		case unix.NFTA_SET_KEY_TYPE:
			s.keyType = ad.Uint32()
		case unix.NFTA_SET_KEY_LEN:
			s.keyLen = ad.Uint32()
		case unix.NFTA_SET_DATA_TYPE:
			s.dataType = ad.Uint32()
		case unix.NFTA_SET_DATA_LEN:
			s.dataLen = ad.Uint32()
		case unix.NFTA_SET_ID:
			s.id = ad.Uint32()
		case unix.NFTA_SET_TIMEOUT:
			s.timeoutMS, s.hasTimeout = ad.Uint64(), true
		case unix.NFTA_SET_DESC:
			s.hasDesc = true
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					if nad.Type() == unix.NFTA_SET_DESC_SIZE {
						s.size = nad.Uint32()
					}
				}
				return nil
			})
		case unix.NFTA_SET_USERDATA:
			s.udata = hex.EncodeToString(ad.Bytes())
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return s
}

// decodedElems is a NEWSETELEM/DELSETELEM message: its set, set id and
// elements, each printed as "KEYWORDS[ end][ : DATA][ udata HEX]".
type decodedElems struct {
	set   string
	id    uint32
	elems []string
}

func decodeElems(t *testing.T, m message) decodedElems {
	t.Helper()
	var d decodedElems
	ad := decoder(t, m.data)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_LIST_SET:
			d.set = ad.String()
		case unix.NFTA_SET_ELEM_LIST_SET_ID:
			d.id = ad.Uint32()
		case unix.NFTA_SET_ELEM_LIST_ELEMENTS:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					d.elems = append(d.elems, formatElem(t, nad.Bytes()))
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

func formatElem(t *testing.T, b []byte) string {
	t.Helper()
	var key, flags, data, udata string
	ad := decoder(t, b)
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_SET_ELEM_FLAGS:
			if ad.Uint32() == unix.NFT_SET_ELEM_INTERVAL_END {
				flags = " end"
			}
		case unix.NFTA_SET_ELEM_KEY:
			key = dataValue(t, ad.Bytes())
		case unix.NFTA_SET_ELEM_DATA:
			data = " : " + dataValue(t, ad.Bytes())
		case unix.NFTA_SET_ELEM_USERDATA:
			udata = " udata " + hex.EncodeToString(ad.Bytes())
		}
	}
	return key + flags + data + udata
}

// dataValue prints an NFTA_DATA_VALUE as words, an NFTA_DATA_VERDICT as
// "drop" or "goto -> C".
func dataValue(t *testing.T, b []byte) string {
	t.Helper()
	ad := decoder(t, b)
	var s string
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_DATA_VALUE:
			s = strings.ReplaceAll(words(ad.Bytes()), "0x", "")
		case unix.NFTA_DATA_VERDICT:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				var code int32
				var chain string
				for nad.Next() {
					switch nad.Type() {
					case unix.NFTA_VERDICT_CODE:
						code = int32(nad.Uint32())
					case unix.NFTA_VERDICT_CHAIN:
						chain = nad.String()
					}
				}
				s = map[int32]string{nfDrop: "drop", unix.NFT_GOTO: "goto -> " + chain}[code]
				return nil
			})
		}
	}
	return s
}
