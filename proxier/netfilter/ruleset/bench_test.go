package ruleset

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// largeNAT renders a nat table in kube-proxy's layout: services × endpoints.
func largeNAT(services, endpoints int) []byte {
	var decl, rules strings.Builder
	decl.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-MARK-MASQ - [0:0]\n")
	rules.WriteString("-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n")
	for s := range services {
		svc := fmt.Sprintf("KUBE-SVC-%016d", s)
		fmt.Fprintf(&decl, ":%s - [0:0]\n", svc)
		fmt.Fprintf(&rules, "-A KUBE-SERVICES -m comment --comment \"ns/svc%d:p80 cluster IP\" -m tcp -p tcp -d 172.30.%d.%d --dport 80 -j %s\n", s, s/250, s%250, svc)
		for e := range endpoints {
			sep := fmt.Sprintf("KUBE-SEP-%08d%08d", s, e)
			fmt.Fprintf(&decl, ":%s - [0:0]\n", sep)
			fmt.Fprintf(&rules, "-A %s -m comment --comment ns/svc%d:p80 -s 10.%d.%d.%d -j KUBE-MARK-MASQ\n", sep, s, s/250, s%250, e)
			fmt.Fprintf(&rules, "-A %s -m comment --comment ns/svc%d:p80 -m tcp -p tcp -j DNAT --to-destination 10.%d.%d.%d:80\n", sep, s, s/250, s%250, e)
			if e < endpoints-1 {
				fmt.Fprintf(&rules, "-A %s -m comment --comment \"ns/svc%d:p80 -> x\" -m statistic --mode random --probability %.10f -j %s\n", svc, s, 1/float64(endpoints-e), sep)
			} else {
				fmt.Fprintf(&rules, "-A %s -m comment --comment \"ns/svc%d:p80 -> x\" -j %s\n", svc, s, sep)
			}
		}
	}
	rules.WriteString("-A PREROUTING -j KUBE-SERVICES\nCOMMIT\n")
	return []byte(decl.String() + rules.String())
}

func BenchmarkFakeRestore1kServices(b *testing.B) {
	input := largeNAT(1000, 10)
	b.SetBytes(int64(len(input)))
	for b.Loop() {
		f := NewFake(FakeOptions{})
		if err := f.Restore(context.Background(), input); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFakeSmallRestoreIntoLargeTable(b *testing.B) {
	f := NewFake(FakeOptions{})
	if err := f.Restore(context.Background(), largeNAT(1000, 10)); err != nil {
		b.Fatal(err)
	}
	small := []byte("*nat\n:KUBE-SEP-00000001" + "00000001 - [0:0]\n-A KUBE-SEP-0000000100000001 -p tcp -j DNAT --to-destination 10.0.1.1:80\nCOMMIT\n")
	for b.Loop() {
		if err := f.Restore(context.Background(), small); err != nil {
			b.Fatal(err)
		}
	}
}
