package nftnl

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kproxy/kproxy/test/kerneltest"
)

// benchServices is the table size of the partial-sync benchmark: the size
// at which nft -f's cache load dominates a partial sync.
const benchServices = 10000

// BenchmarkKernelPartialSync writes a one-service partial sync (flush of
// the service chain, its numgen vmap rule, its service-ips element) into a
// table of 10k services, by Conn.Run and by nft -f of the same batch, and
// reports CPU per batch (user+system; the kernel's commit runs in the
// writer's context). Root; the table load takes a while.
func BenchmarkKernelPartialSync(b *testing.B) {
	ns := kerneltest.Netns(b, "kpx-nftnlb-")
	kerneltest.NeedTools(b, "nftnl kernel benchmark", "nft")
	nftLoad(b, ns, benchTable(benchServices))
	batch := func(gen int) *Batch {
		i := (gen * 7919) % benchServices
		svc := fmt.Sprintf("service-%d", i)
		bt := NewBatch(IPv4, "kube-proxy")
		bt.AddChain(svc)
		bt.FlushChain(svc)
		bt.AddRule(svc, Rule{Stmt: NumgenGoto{Chains: []string{fmt.Sprintf("endpoint-%d-0", i), fmt.Sprintf("endpoint-%d-1", i)}}})
		bt.AddElements("service-ips", Element{Key: []Field{AddrField(benchAddr(172, i)), ProtoField("tcp"), PortField(80)}, Verdict: &Verdict{Chain: svc}})
		return bt
	}
	b.Run("netlink", func(b *testing.B) {
		c, err := Open(Options{NetNS: kerneltest.NetnsPath(b, ns)})
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		cpu0 := cpuTime()
		for i := 0; b.Loop(); i++ {
			if err := c.Run(context.Background(), batch(i)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e6, "cpu-ms/op")
	})
	b.Run("nft-f", func(b *testing.B) {
		var cpu time.Duration
		for i := 0; b.Loop(); i++ {
			cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(batch(i).String())
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("nft -f: %v: %s", err, out)
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "cpu-ms/op")
	})
}

// benchTable is a kube-proxy-like table of n services, each a service-ips
// element, a service chain jumping to one of two endpoint chains through
// an anonymous vmap, and the two endpoint chains.
func benchTable(n int) string {
	var s strings.Builder
	s.WriteString(strings.NewReplacer("@IP@", "ip", "@ADDR@", "ipv4_addr", "@A1@", "10.96.0.1", "@A2@", "10.96.0.2").Replace(baseTable))
	for i := range n {
		svc, vip := fmt.Sprintf("service-%d", i), benchAddr(172, i)
		fmt.Fprintf(&s, "add chain ip kube-proxy %s\n", svc)
		for e := range 2 {
			epc, epa := fmt.Sprintf("endpoint-%d-%d", i, e), benchAddr(10+e, i)
			fmt.Fprintf(&s, "add chain ip kube-proxy %s\n", epc)
			fmt.Fprintf(&s, "add rule ip kube-proxy %s ip saddr %s jump mark-for-masquerade\n", epc, epa)
			fmt.Fprintf(&s, "add rule ip kube-proxy %s meta l4proto tcp dnat to %s:80\n", epc, epa)
		}
		fmt.Fprintf(&s, "add rule ip kube-proxy %s ip daddr %s ip saddr != 10.0.0.0/8 jump mark-for-masquerade\n", svc, vip)
		fmt.Fprintf(&s, "add rule ip kube-proxy %s numgen random mod 2 vmap { 0 : goto endpoint-%d-0 , 1 : goto endpoint-%d-1 }\n", svc, i, i)
		fmt.Fprintf(&s, "add element ip kube-proxy service-ips { %s . tcp . 80 : goto %s }\n", vip, svc)
		fmt.Fprintf(&s, "add element ip kube-proxy cluster-ips { %s }\n", vip)
	}
	return s.String()
}

func benchAddr(first, i int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(first), 30, byte(i >> 8), byte(i)})
}

// cpuTime is the process's user+system time.
func cpuTime() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
