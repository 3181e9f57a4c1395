//go:build nlproto

// Command nlproto is a feasibility experiment, not kproxy code: it writes
// one service's partial-sync objects (flush + numgen-map DNAT rule, plus
// elements in service-ips, cluster-ips and no-endpoint-services) to the
// kube-proxy table through netlink, so the cost can be compared with
// `nft -f` (which loads its set cache first) and the listing compared with
// what nft itself writes. -writer raw (default) builds nft's exact
// messages (batch.go); -writer lib uses github.com/google/nftables' Conn.
//
//	go build -tags nlproto -o /tmp/nlproto . && /tmp/nlproto -netns kpx-nlp-a -reps 20
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

type options struct {
	netns    string
	family   string
	chain    string
	reps     int
	elements bool
	verbose  bool
	writer   string
	parts    string
	anonName string
	shapes   bool
	chains   []string // -chains-from: every service chain to rewrite
}

// has reports whether the raw batch should include part p.
func (o options) has(p string) bool {
	return o.parts == "" || slices.Contains(strings.Split(o.parts, ","), p)
}

func main() {
	var o options
	flag.StringVar(&o.netns, "netns", "", "named network namespace (/run/netns/NAME)")
	flag.StringVar(&o.family, "family", "ip", "ip or ip6")
	flag.StringVar(&o.chain, "chain", "service-WEWXXFIG-ns19/svc7919/tcp/p80", "service chain to rewrite")
	flag.IntVar(&o.reps, "reps", 1, "batches to send (timed one by one)")
	flag.BoolVar(&o.elements, "elements", true, "also add the three map/set elements")
	flag.BoolVar(&o.verbose, "v", false, "print each batch's duration")
	flag.StringVar(&o.parts, "parts", "", "raw writer: comma list of chain,rule,service-ips,cluster-ips,no-endpoint (default all)")
	flag.StringVar(&o.anonName, "anon-name", "", `name for the anonymous map (default nft's "__map%d", which makes the kernel scan every set name with sscanf)`)
	flag.BoolVar(&o.shapes, "shapes", false, "raw writer: write the rule shapes of shapes.nft instead (table from shapes-base.nft)")
	flag.StringVar(&o.writer, "writer", "raw", "raw (own messages, nft's attributes) or lib (google/nftables Conn)")
	chainsFrom := flag.String("chains-from", "", "raw writer: rewrite (flush + numgen rule) every chain whose numgen rule this nft file adds, in one batch")
	limit := flag.Int("chains-limit", 0, "with -chains-from: only the first N chains")
	flag.Parse()
	if *chainsFrom != "" {
		chains, err := numgenChains(*chainsFrom, *limit)
		if err != nil {
			fmt.Fprintln(os.Stderr, "nlproto:", err)
			os.Exit(1)
		}
		o.chains = chains
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "nlproto:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	f, err := os.Open("/run/netns/" + o.netns)
	if err != nil {
		return fmt.Errorf("open netns: %w", err)
	}
	defer f.Close()
	fam := familyOf(o.family)
	send, closeConn, err := sender(int(f.Fd()), fam, o)
	if err != nil {
		return err
	}
	defer closeConn()
	var durs, cpus []time.Duration
	for i := 0; i < o.reps; i++ {
		start, cpuStart := time.Now(), cpuTime()
		if err := send(); err != nil {
			return fmt.Errorf("batch %d: %w", i, err)
		}
		d, cpu := time.Since(start), cpuTime()-cpuStart
		durs, cpus = append(durs, d), append(cpus, cpu)
		if o.verbose {
			fmt.Printf("batch %d: wall %v cpu %v\n", i, d, cpu)
		}
	}
	slices.Sort(durs)
	slices.Sort(cpus)
	fmt.Printf("netlink writer=%s batches=%d wall median=%v min=%v max=%v; cpu (user+sys, kernel commit included) median=%v min=%v\n",
		o.writer, len(durs), durs[len(durs)/2], durs[0], durs[len(durs)-1], cpus[len(cpus)/2], cpus[0])
	fmt.Println(memStatus())
	return nil
}

// sender returns a function that builds and commits one batch, over one
// netlink socket kept open across batches (as kproxy would).
func sender(nsFd int, fam family, o options) (send func() error, closeConn func(), err error) {
	if o.writer == "lib" {
		conn, err := nftables.New(nftables.WithNetNSFd(nsFd), nftables.AsLasting())
		if err != nil {
			return nil, nil, fmt.Errorf("netlink conn: %w", err)
		}
		return func() error {
			if err := queueBatch(conn, fam, o); err != nil {
				return err
			}
			return conn.Flush()
		}, func() { conn.CloseLasting() }, nil
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return nil, nil, fmt.Errorf("netlink conn: %w", err)
	}
	return func() error {
		b := newRawBatch(byte(fam.table.Family), fam.table.Name)
		if o.shapes {
			queueShapes(b)
			return b.send(conn)
		}
		if o.chains != nil {
			for i, c := range o.chains {
				o := o
				o.chain = c
				o.elements = false
				if o.anonName != "" {
					o.anonName = fmt.Sprintf("%s%d", o.anonName, i)
				}
				queueRawBatch(b, fam, o)
			}
			return b.send(conn)
		}
		queueRawBatch(b, fam, o)
		return b.send(conn)
	}, func() { conn.Close() }, nil
}

// family holds what differs between the ip and ip6 tables.
type family struct {
	table       *nftables.Table
	nfproto     uint32
	addrType    nftables.SetDatatype
	nftAddrType uint32
	epPrefix    string // endpoint addresses are epPrefix + index
	svcIP       string // a cluster IP not in the 10k table
	noEpIP      string
}

func familyOf(name string) family {
	if name == "ip6" {
		return family{
			table:       &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv6},
			nfproto:     unix.NFPROTO_IPV6,
			addrType:    nftables.TypeIP6Addr,
			nftAddrType: nftTypeIP6Addr,
			epPrefix:    "fd00::",
			svcIP:       "fd00:30::c801",
			noEpIP:      "fd00:30::c802",
		}
	}
	return family{
		table:       &nftables.Table{Name: "kube-proxy", Family: nftables.TableFamilyIPv4},
		nfproto:     unix.NFPROTO_IPV4,
		addrType:    nftables.TypeIPAddr,
		nftAddrType: nftTypeIPAddr,
		epPrefix:    "10.131.169.",
		svcIP:       "172.30.200.1",
		noEpIP:      "172.30.200.2",
	}
}

// endpoints are the 10 of the partial-sync file: .101, .1 … .9 (ip6:
// fd00::101 (hex), fd00::1 …).
func (f family) endpoints() []netip.AddrPort {
	var eps []netip.AddrPort
	for i := 0; i < 10; i++ {
		n := i
		if i == 0 {
			n = 101
		}
		eps = append(eps, netip.AddrPortFrom(netip.MustParseAddr(fmt.Sprintf("%s%d", f.epPrefix, n)), 80))
	}
	return eps
}

// queueBatch queues, for one atomic batch, what this file's nft
// equivalent does:
//
//	add chain ip kube-proxy CHAIN
//	flush chain ip kube-proxy CHAIN
//	add rule ip kube-proxy CHAIN meta l4proto tcp dnat ip addr . port to numgen random mod 10 map { 0 : A . 80 , … }
//	add element ip kube-proxy service-ips { SVC . tcp . 80 : goto CHAIN }
//	add element ip kube-proxy cluster-ips { SVC }
//	add element ip kube-proxy no-endpoint-services { NOEP . tcp . 81 comment "ns19/noep:p81" : goto reject-chain }
func queueBatch(conn *nftables.Conn, f family, o options) error {
	ch := &nftables.Chain{Table: f.table, Name: o.chain}
	conn.AddChain(ch)
	conn.FlushChain(ch)
	if err := queueNumgenDNAT(conn, f, ch, unix.IPPROTO_TCP, f.endpoints()); err != nil {
		return err
	}
	if !o.elements {
		return nil
	}
	svc := netip.MustParseAddr(f.svcIP)
	noEp := netip.MustParseAddr(f.noEpIP)
	err := conn.SetAddElements(&nftables.Set{Table: f.table, Name: "service-ips", IsMap: true}, []nftables.SetElement{{
		Key:         concatKey(svc.AsSlice(), []byte{unix.IPPROTO_TCP}, port(80)),
		VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: o.chain},
	}})
	if err != nil {
		return fmt.Errorf("service-ips element: %w", err)
	}
	err = conn.SetAddElements(&nftables.Set{Table: f.table, Name: "cluster-ips"}, []nftables.SetElement{{Key: svc.AsSlice()}})
	if err != nil {
		return fmt.Errorf("cluster-ips element: %w", err)
	}
	err = conn.SetAddElements(&nftables.Set{Table: f.table, Name: "no-endpoint-services", IsMap: true}, []nftables.SetElement{{
		Key:         concatKey(noEp.AsSlice(), []byte{unix.IPPROTO_TCP}, port(81)),
		VerdictData: &expr.Verdict{Kind: expr.VerdictGoto, Chain: "reject-chain"},
		Comment:     "ns19/noep:p81",
	}})
	if err != nil {
		return fmt.Errorf("no-endpoint-services element: %w", err)
	}
	return nil
}

// queueNumgenDNAT queues the anonymous constant map numgen value →
// addr . port and the rule using it, in the shape nft 1.0.6 generates
// (see `nft --debug=netlink`):
//
//	[ meta load l4proto => reg 1 ]
//	[ cmp eq reg 1 0x00000006 ]
//	[ numgen reg 1 = random mod N ]
//	[ lookup reg 1 set __map%d dreg 1 ]
//	[ nat dnat ip addr_min reg 1 proto_min reg 9 ]   (ip6: proto_min reg 2)
func queueNumgenDNAT(conn *nftables.Conn, f family, ch *nftables.Chain, proto byte, eps []netip.AddrPort) error {
	dataType := nftables.MustConcatSetType(f.addrType, nftables.TypeInetService)
	m := &nftables.Set{
		Table:     f.table,
		Anonymous: true,
		Constant:  true,
		IsMap:     true,
		KeyType:   nftables.TypeInteger,
		DataType:  dataType,
		// nft marks the numgen key host-endian, but AddSet ignores this
		// for anonymous sets and writes big endian: the keys then list
		// as 16777216 … (README). Kept to show the field does not help.
		KeyByteOrder: binaryutil.NativeEndian,
	}
	var elems []nftables.SetElement
	for i, ep := range eps {
		elems = append(elems, nftables.SetElement{
			Key: binaryutil.NativeEndian.PutUint32(uint32(i)),
			Val: concatKey(ep.Addr().AsSlice(), port(ep.Port())),
		})
	}
	if err := conn.AddSet(m, elems); err != nil {
		return fmt.Errorf("numgen map: %w", err)
	}
	// The port sits right after the address in the lookup result: for
	// ipv4 the next 32-bit register (reg 9 = NFT_REG32_01), for ipv6
	// the next 128-bit register (reg 2).
	portReg := uint32(unix.NFT_REG32_01)
	if f.nfproto == unix.NFPROTO_IPV6 {
		portReg = unix.NFT_REG_2
	}
	conn.AddRule(&nftables.Rule{Table: f.table, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_RANDOM, Modulus: uint32(len(eps))},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: m.Name, SetID: m.ID},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: f.nfproto, RegAddrMin: 1, RegProtoMin: portReg},
	}})
	return nil
}

// queueRawBatch is queueBatch with rawBatch: the same objects, with the
// set attributes nft itself sends.
func queueRawBatch(b *rawBatch, f family, o options) {
	if o.has("chain") {
		b.addChain(o.chain)
		b.flushChain(o.chain)
	}
	var elems []setElem
	for i, ep := range f.endpoints() {
		elems = append(elems, setElem{
			key:  binary.NativeEndian.AppendUint32(nil, uint32(i)),
			data: concatKey(ep.Addr().AsSlice(), port(ep.Port())),
		})
	}
	if o.has("rule") {
		queueRawNumgenDNAT(b, f, o.chain, o.anonName, elems)
	}
	if !o.elements {
		return
	}
	svc := netip.MustParseAddr(f.svcIP)
	noEp := netip.MustParseAddr(f.noEpIP)
	if o.has("service-ips") {
		b.addElems("service-ips", 0, []setElem{{
			key:     concatKey(svc.AsSlice(), []byte{unix.IPPROTO_TCP}, port(80)),
			verdict: &verdict{code: unix.NFT_GOTO, chain: o.chain},
		}})
	}
	if o.has("cluster-ips") {
		b.addElems("cluster-ips", 0, []setElem{{key: svc.AsSlice()}})
	}
	if o.has("no-endpoint") {
		b.addElems("no-endpoint-services", 0, []setElem{{
			key:     concatKey(noEp.AsSlice(), []byte{unix.IPPROTO_TCP}, port(81)),
			verdict: &verdict{code: unix.NFT_GOTO, chain: "reject-chain"},
			comment: "ns19/noep:p81",
		}})
	}
}

// queueRawNumgenDNAT queues the anonymous map and the rule
//
//	meta l4proto tcp dnat ip addr . port to numgen random mod N map { 0 : A . P , … }
//
// as nft 1.0.6 encodes it (see `nft --debug=netlink`):
//
//	[ meta load l4proto => reg 1 ]
//	[ cmp eq reg 1 0x00000006 ]
//	[ numgen reg 1 = random mod N ]
//	[ lookup reg 1 set __map%d dreg 1 ]
//	[ nat dnat ip addr_min reg 1 proto_min reg 9 ]   (ip6: proto_min reg 2)
//
// The map: flags anonymous|constant|map, key integer (4 bytes, host
// order), data ipv4_addr . inet_service (type 7<<6|13, 8 bytes; ip6:
// 8<<6|13, 20 bytes), desc size N, userdata key order host, data order
// 0, data interval 0.
func queueRawNumgenDNAT(b *rawBatch, f family, chain, anonName string, elems []setElem) {
	addrLen := uint32(len(netip.MustParseAddr(f.svcIP).AsSlice()))
	name, id := b.addAnonSet(anonSet{
		name:         anonName,
		isMap:        true,
		keyType:      nftTypeInteger,
		keyLen:       4,
		keyByteOrder: byteOrderHost,
		dataType:     concatType(f.nftAddrType, nftTypeInetService),
		dataLen:      addrLen + 4,
		elems:        elems,
	})
	portReg := uint32(unix.NFT_REG32_01)
	if f.nfproto == unix.NFPROTO_IPV6 {
		portReg = unix.NFT_REG_2
	}
	b.addRule(chain, []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Numgen{Register: 1, Type: unix.NFT_NG_RANDOM, Modulus: uint32(len(elems))},
		&expr.Lookup{SourceRegister: 1, DestRegister: 1, IsDestRegSet: true, SetName: name, SetID: id},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: f.nfproto, RegAddrMin: 1, RegProtoMin: portReg},
	}, "")
}

// nft datatype ids (nftables include/datatype.h) and byte orders
// (enum byteorder) used in set declarations and userdata.
const (
	nftTypeVerdict     = 1
	nftTypeInteger     = 4
	nftTypeMark        = 19
	nftTypeIPAddr      = 7
	nftTypeIP6Addr     = 8
	nftTypeInetProto   = 12
	nftTypeInetService = 13

	byteOrderHost = 1
	byteOrderBig  = 2
)

func concatType(ids ...uint32) uint32 {
	var t uint32
	for _, id := range ids {
		t = t<<6 | id
	}
	return t
}

// concatKey lays out a concatenation as nft does: each field padded to a
// multiple of 4 bytes (one 32-bit register).
func concatKey(fields ...[]byte) []byte {
	var b []byte
	for _, f := range fields {
		b = append(b, f...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	return b
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// numgenChains returns the chains of file's `add rule … numgen … map`
// lines, for batches that rewrite many services at once.
func numgenChains(file string, limit int) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var chains []string
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[0] == "add" && f[1] == "rule" && strings.Contains(l, " numgen random mod ") && strings.Contains(l, " map { ") {
			chains = append(chains, f[4])
			if limit > 0 && len(chains) == limit {
				break
			}
		}
	}
	return chains, nil
}

// cpuTime is the process's user+system time: the kernel's commit work
// runs in this process's context, so it is counted.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func memStatus() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}
