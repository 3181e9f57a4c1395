package nftnl

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"
)

// fixedShapes are the fixed chains' rule shapes (rule_fixed.go) and the
// bytecode nft 1.0.6 writes for their text in family f.
func fixedShapes(f famText) []shapeCase {
	v6 := f.fam == IPv6
	daddr := f.pick("[ payload load 4b @ network header + 16 => reg 1 ]", "[ payload load 16b @ network header + 24 => reg 1 ]")
	saddr := f.pick(load4, load16)
	// The registers of a concatenation after an address: 32-bit slot 1
	// (ip), or the 128-bit register 2 (ip6); the port after it.
	protoReg, portReg := f.pick("9", "2"), f.pick("10", "13")
	newState := []string{"[ ct load state => reg 1 ]", "[ bitwise reg 1 = ( reg 1 & 0x00000008 ) ^ 0x00000000 ]", "[ cmp neq reg 1 0x00000000 ]"}
	reject := f.pick("[ reject type 0 code 3 ]", "[ reject type 0 code 4 ]")
	protoPort := []string{l4proto, "[ payload load 2b @ transport header + 2 => reg 9 ]"}
	addrProtoPort := []string{daddr, "[ meta load l4proto => reg " + protoReg + " ]", "[ payload load 2b @ transport header + 2 => reg " + portReg + " ]"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	loopback := f.pick("127.0.0.0/8", "::1/128")
	notLoopback := f.pick("[ payload load 1b @ network header + 16 => reg 1 ]|[ cmp neq reg 1 0x0000007f ]",
		"[ payload load 16b @ network header + 24 => reg 1 ]|[ cmp neq reg 1 0x00000000 0x00000000 0x00000000 0x01000000 ]")
	daddrUdata := f.pick("000402000000"+"020401000000"+"0314000407000000010c00040c00000001040c000000",
		"000402000000"+"020401000000"+"0314000407000000010c00040d000000010409000000")
	intervals := wantSet{decodedSet{name: "__set%d", flags: 7, keyType: map[bool]uint32{false: 7, true: 8}[v6], keyLen: map[bool]uint32{false: 4, true: 16}[v6],
		size: 5, udata: daddrUdata, hasDesc: true}, []string{
		f.pick("00000000 end", "00000000 00000000 00000000 00000000 end"),
		f.pick("0000600a", "000000fd 00000000 00000000 00000000"), f.pick("0000700a end", "000000fd 00000000 00000000 10000000 end"),
		f.pick("00001eac", "000001fd 00000000 00000000 00000000"), f.pick("00001fac end", "000001fd 01000000 00000000 00000000 end")}}
	hairpinLoads := f.pick("[ payload load 4b @ network header + 12 => reg 1 ]|[ payload load 4b @ network header + 16 => reg 9 ]|[ meta load l4proto => reg 10 ]|[ payload load 2b @ transport header + 2 => reg 11 ]",
		"[ payload load 16b @ network header + 8 => reg 1 ]|[ payload load 16b @ network header + 24 => reg 2 ]|[ meta load l4proto => reg 3 ]|[ payload load 2b @ transport header + 2 => reg 17 ]")
	markThenVmap := []string{"[ meta load mark => reg 1 ]", "[ bitwise reg 1 = ( reg 1 & 0xffffbfff ) ^ 0x00004000 ]", "[ meta set mark with reg 1 ]"}
	split := func(s string) []string { return strings.Split(s, "|") }
	return []shapeCase{
		{name: "ct state new jump", rule: Rule{Match: CtStateNew{}, Stmt: Jump{"firewall-check"}},
			bytecode: cat(newState, []string{"[ immediate reg 0 jump -> firewall-check ]"})},
		{name: "jump", rule: Rule{Stmt: Jump{"services"}}, bytecode: []string{"[ immediate reg 0 jump -> services ]"}},
		{name: "unmark and masquerade", rule: Rule{Match: MarkAny{"0x4000"}, Stmt: Seq{MarkXor{"0x4000"}, Masquerade{}}},
			bytecode: []string{"[ meta load mark => reg 1 ]", "[ bitwise reg 1 = ( reg 1 & 0x00004000 ) ^ 0x00000000 ]", "[ cmp neq reg 1 0x00000000 ]",
				"[ meta load mark => reg 1 ]", "[ bitwise reg 1 = ( reg 1 & 0xffffffff ) ^ 0x00004000 ]", "[ meta set mark with reg 1 ]", "[ masq flags 0x10 ]"}},
		{name: "hairpin", rule: Rule{Match: All{CtStatusDNAT{}, InSet{Fields: []PacketField{Saddr, Daddr, L4Proto, Dport}, Set: "hairpin-connections"}}, Stmt: Masquerade{}},
			bytecode: cat([]string{"[ ct load status => reg 1 ]", "[ bitwise reg 1 = ( reg 1 & 0x00000020 ) ^ 0x00000000 ]", "[ cmp neq reg 1 0x00000000 ]"},
				split(hairpinLoads), []string{"[ lookup reg 1 set hairpin-connections ]", "[ masq flags 0x10 ]"})},
		{name: "cluster ip reject", rule: Rule{Match: InSet{Fields: []PacketField{Daddr}, Set: "cluster-ips"}, Stmt: Reject{}, Comment: "Reject traffic to invalid ports of ClusterIPs"},
			bytecode: []string{daddr, "[ lookup reg 1 set cluster-ips ]", reject}},
		{name: "service cidrs", rule: Rule{Match: DaddrIn{[]netip.Prefix{f.prefix("172.30.0.0/16", "fd01::/64"), f.prefix("10.96.0.0/12", "fd00::/124")}}, Stmt: Drop{}},
			sets: []wantSet{intervals}, bytecode: []string{daddr, "[ lookup reg 1 set __set%d ]", drop}},
		{name: "one service cidr", rule: Rule{Match: DaddrIn{[]netip.Prefix{f.prefix("172.30.0.0/16", "fd00::/64")}}, Stmt: Drop{}},
			bytecode: []string{f.pick("[ payload load 2b @ network header + 16 => reg 1 ]", "[ payload load 8b @ network header + 24 => reg 1 ]"),
				f.pick("[ cmp eq reg 1 0x00001eac ]", "[ cmp eq reg 1 0x000000fd 0x00000000 ]"), drop}},
		{name: "service vmap", rule: Rule{Stmt: Vmap{Fields: []PacketField{Daddr, L4Proto, Dport}, Map: "service-ips"}},
			bytecode: cat(addrProtoPort, []string{"[ lookup reg 1 set service-ips dreg 0 ]"})},
		{name: "nodeport ips vmap", rule: Rule{Match: InSet{Fields: []PacketField{Daddr}, Set: "nodeport-ips"}, Stmt: Vmap{Fields: []PacketField{L4Proto, Dport}, Map: "service-nodeports"}},
			bytecode: cat([]string{daddr, "[ lookup reg 1 set nodeport-ips ]"}, protoPort, []string{"[ lookup reg 1 set service-nodeports dreg 0 ]"})},
		{name: "local nodeports vmap", rule: Rule{Match: All{FibDaddrLocal{}, DaddrNot{netip.MustParsePrefix(loopback)}}, Stmt: Vmap{Fields: []PacketField{L4Proto, Dport}, Map: "service-nodeports"}},
			bytecode: cat([]string{"[ fib daddr type => reg 1 ]", "[ cmp eq reg 1 0x00000002 ]"}, split(notLoopback), protoPort, []string{"[ lookup reg 1 set service-nodeports dreg 0 ]"})},
		{name: "not loopback vmap", rule: Rule{Match: DaddrNot{netip.MustParsePrefix(loopback)}, Stmt: Vmap{Fields: []PacketField{L4Proto, Dport}, Map: "no-endpoint-nodeports"}},
			bytecode: cat(split(notLoopback), protoPort, []string{"[ lookup reg 1 set no-endpoint-nodeports dreg 0 ]"})},
		{name: "reject", rule: Rule{Stmt: Reject{}}, bytecode: []string{reject}},
		{name: "masquerade all", rule: Rule{Match: InSet{Fields: []PacketField{Daddr}, Set: "cluster-ips"}, Stmt: MarkOr{"0x4000"}, Comment: "masquerade all clusterIP traffic"},
			bytecode: cat([]string{daddr, "[ lookup reg 1 set cluster-ips ]"}, markThenVmap)},
		{name: "off-cluster masquerade by cidr", rule: Rule{Match: All{InSet{Fields: []PacketField{Daddr}, Set: "cluster-ips"}, SaddrNot{f.prefix("10.0.0.0/8", "fd00:10::/64")}}, Stmt: MarkOr{"0x4000"}},
			bytecode: cat([]string{daddr, "[ lookup reg 1 set cluster-ips ]"},
				[]string{f.pick("[ payload load 1b @ network header + 12 => reg 1 ]", "[ payload load 8b @ network header + 8 => reg 1 ]"),
					f.pick("[ cmp neq reg 1 0x0000000a ]", "[ cmp neq reg 1 0x100000fd 0x00000000 ]")}, markThenVmap)},
		{name: "off-cluster masquerade by unaligned cidr", rule: Rule{Match: SaddrNot{f.prefix("10.128.0.0/14", "fd00:10::/60")}, Stmt: MarkOr{"0x4000"}},
			bytecode: cat([]string{saddr, f.pick("[ bitwise reg 1 = ( reg 1 & 0x0000fcff ) ^ 0x00000000 ]",
				"[ bitwise reg 1 = ( reg 1 & 0xffffffff 0xf0ffffff 0x00000000 0x00000000 ) ^ 0x00000000 0x00000000 0x00000000 0x00000000 ]"),
				f.pick("[ cmp neq reg 1 0x0000800a ]", "[ cmp neq reg 1 0x100000fd 0x00000000 0x00000000 0x00000000 ]")}, markThenVmap)},
		{name: "off-cluster masquerade by bridge", rule: Rule{Match: IifNameNot{"cbr0"}, Stmt: MarkOr{"0x4000"}},
			bytecode: cat([]string{"[ meta load iifname => reg 1 ]", "[ cmp neq reg 1 0x30726263 0x00000000 0x00000000 0x00000000 ]"}, markThenVmap)},
		{name: "off-cluster masquerade by prefix", rule: Rule{Match: IifNameNot{"veth*"}, Stmt: MarkOr{"0x4000"}},
			bytecode: cat([]string{"[ meta load iifname => reg 1 ]", "[ cmp neq reg 1 0x68746576 ]"}, markThenVmap)},
	}
}

// attrsText prints netlink attributes as "type:hex", nested ones as
// "type{…}", space-separated: a message compared whole, byte for byte.
func attrsText(t *testing.T, b []byte) string {
	t.Helper()
	var parts []string
	for len(b) > 0 {
		if len(b) < 4 {
			t.Fatalf("truncated attribute % x", b)
		}
		n, typ := int(binary.NativeEndian.Uint16(b)), binary.NativeEndian.Uint16(b[2:])
		if n < 4 || n > len(b) {
			t.Fatalf("attribute length %d of %d bytes", n, len(b))
		}
		val := b[4:n]
		if typ&unix.NLA_F_NESTED != 0 {
			parts = append(parts, fmt.Sprintf("%d{%s}", typ&^unix.NLA_F_NESTED, attrsText(t, val)))
		} else {
			parts = append(parts, fmt.Sprintf("%d:%s", typ, hex.EncodeToString(val)))
		}
		b = b[min(nlAlign(n), len(b)):]
	}
	return strings.Join(parts, " ")
}

// cstr is s NUL-terminated, in hex.
func cstr(s string) string { return hex.EncodeToString(append([]byte(s), 0)) }

// udataComment is a comment userdata record of type typ, in hex.
func udataCommentHex(typ byte, s string) string { return hex.EncodeToString(udataString(typ, s)) }

// TestObjectsEncodeAsNft checks the fixed objects' requests, attribute for
// attribute, against what nft 1.0.6 sends for the same commands (captured
// with nft --debug=mnl).
func TestObjectsEncodeAsNft(t *testing.T) {
	b := NewBatch(IPv4, "kube-proxy")
	b.AddTable("rules for kube-proxy")
	b.DeclareChain(Chain{Name: "filter-prerouting-pre-dnat", Hook: &Hook{Type: knftables.FilterType, Hook: knftables.PreroutingHook, Priority: knftables.DNATPriority + "-10"}})
	b.DeclareChain(Chain{Name: "nat-postrouting", Hook: &Hook{Type: knftables.NATType, Hook: knftables.PostroutingHook, Priority: knftables.SNATPriority}})
	b.DeclareChain(Chain{Name: "reject-chain", Comment: "helper"})
	b.DeclareSet(Set{Name: "hairpin-connections", Key: []KeyField{KeyAddr, KeyAddr, KeyProto, KeyPort}, Comment: "service hairpin connections"})
	b.DeclareSet(Set{Name: "cluster-ips", Key: []KeyField{KeyAddr}, Comment: "Active ClusterIPs"})
	b.DeclareSet(Set{Name: "service-nodeports", Key: []KeyField{KeyProto, KeyPort}, Verdicts: true, Comment: "NodePort traffic"})
	b.DeclareSet(Set{Name: "no-endpoint-services", Key: []KeyField{KeyAddr, KeyProto, KeyPort}, Verdicts: true, Comment: "vmap"})
	b.DeleteMap("no-endpoint-services")
	b.AddCounter("localhost-nodeport-rejected-tcp")
	b.DeleteCounter("localhost-nodeport-rejected-tcp")
	msgs, err := encodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	table := "1:" + cstr("kube-proxy")
	u32 := func(v uint32) string { return hex.EncodeToString(binary.BigEndian.AppendUint32(nil, v)) }
	want := []struct {
		typ   uint16
		flags netlink.HeaderFlags
		attrs string
	}{
		{unix.NFT_MSG_NEWTABLE, netlink.Create, table + " 2:00000000 6:" + udataCommentHex(0, "rules for kube-proxy")},
		{unix.NFT_MSG_NEWCHAIN, netlink.Create, table + " 3:" + cstr("filter-prerouting-pre-dnat") + " 7:" + cstr("filter") + " 4{1:00000000 2:ffffff92}"},
		{unix.NFT_MSG_NEWCHAIN, netlink.Create, table + " 3:" + cstr("nat-postrouting") + " 7:" + cstr("nat") + " 4{1:00000004 2:00000064}"},
		{unix.NFT_MSG_NEWCHAIN, netlink.Create, table + " 3:" + cstr("reject-chain") + " 12:" + udataCommentHex(0, "helper")},
		{unix.NFT_MSG_NEWSET, netlink.Create, table + " 2:" + cstr("hairpin-connections") + " 3:00000000 4:001c730d 5:00000010 10:" + u32(1) +
			" 13:000400000000030800040d0000000100" + udataCommentHex(7, "service hairpin connections")},
		{unix.NFT_MSG_NEWSET, netlink.Create, table + " 2:" + cstr("cluster-ips") + " 3:00000000 4:00000007 5:00000004 10:" + u32(2) +
			" 13:000402000000" + udataCommentHex(7, "Active ClusterIPs")},
		{unix.NFT_MSG_NEWSET, netlink.Create, table + " 2:" + cstr("service-nodeports") + " 3:00000008 4:0000030d 5:00000008 6:ffffff00 7:00000000 10:" + u32(3) +
			" 13:000400000000010400000000030800040d0000000100060400000000" + udataCommentHex(7, "NodePort traffic")},
		{unix.NFT_MSG_NEWSET, netlink.Create, table + " 2:" + cstr("no-endpoint-services") + " 3:00000008 4:0000730d 5:0000000c 6:ffffff00 7:00000000 10:" + u32(4) +
			" 13:000400000000010400000000030800040d0000000100060400000000" + udataCommentHex(7, "vmap")},
		{unix.NFT_MSG_DELSET, 0, table + " 2:" + cstr("no-endpoint-services")},
		{unix.NFT_MSG_NEWOBJ, netlink.Create, table + " 2:" + cstr("localhost-nodeport-rejected-tcp") + " 3:00000001 4{1:0000000000000000 2:0000000000000000}"},
		{unix.NFT_MSG_DELOBJ, 0, table + " 2:" + cstr("localhost-nodeport-rejected-tcp") + " 3:00000001 4{}"},
	}
	if len(msgs) != len(want) {
		t.Fatalf("%d messages, want %d", len(msgs), len(want))
	}
	for i, w := range want {
		if got := attrsText(t, msgs[i].data); msgs[i].typ != w.typ || msgs[i].flags != w.flags || got != w.attrs {
			t.Errorf("%s:\n got type %d flags %v %s\nwant type %d flags %v %s", b.opLine(&b.ops[i], -1), msgs[i].typ, msgs[i].flags, got, w.typ, w.flags, w.attrs)
		}
	}
}
