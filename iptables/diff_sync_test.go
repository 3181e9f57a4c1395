package iptables_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// declares reports whether a restore input declares chain in table.
func declares(input []byte, table, chain string) bool {
	in := false
	for line := range strings.SplitSeq(string(input), "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			in = line[1:] == table
		case in && strings.HasPrefix(line, ":"+chain+" "):
			return true
		}
	}
	return false
}

func saveAll(f *ruleset.Fake) string {
	return ruleset.FormatSave(f.Table("nat")) + ruleset.FormatSave(f.Table("filter"))
}

func TestRestartOverExistingRulesWritesOnlyWhatDiffers(t *testing.T) {
	w := newWorld(t)
	for _, tc := range []struct {
		name string
		// tamper changes the kernel between the two processes.
		tamper  string
		rewrite []string // nat chains the restart must write
	}{
		{name: "identical rules", rewrite: nil},
		{name: "flushed service chain", tamper: "*nat\n:" + svc1Chain + " - [0:0]\nCOMMIT\n", rewrite: []string{svc1Chain}},
		{name: "endpoint chain with a different rule", tamper: "*nat\n:" + sep1 + " - [0:0]\n-A " + sep1 +
			" -p tcp -j DNAT --to-destination 10.180.0.9:80\nCOMMIT\n", rewrite: []string{sep1}},
		{name: "KUBE-SERVICES lost a rule", tamper: "*nat\n-D KUBE-SERVICES 1\nCOMMIT\n", rewrite: []string{"KUBE-SERVICES"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := ruleset.NewFake(ruleset.FakeOptions{})
			mustSync(t, newProxier(t, fake), w.full(svc1, svc2))
			want := saveAll(fake)
			if tc.tamper != "" {
				if err := fake.Restore(context.Background(), []byte(tc.tamper)); err != nil {
					t.Fatal(err)
				}
			}
			res := mustSync(t, newProxier(t, fake), w.full(svc1, svc2))
			in := fake.LastRestore()
			if !res.Full {
				t.Errorf("restart sync not full")
			}
			for _, c := range []string{svc1Chain, svc2Chain, sep1, sep2, "KUBE-SERVICES", "KUBE-POSTROUTING"} {
				wanted := false
				for _, r := range tc.rewrite {
					wanted = wanted || r == c
				}
				if got := declares(in, "nat", c); got != wanted {
					t.Errorf("restart declares %s: %v, want %v\ninput:\n%s", c, got, wanted, in)
				}
			}
			if got := saveAll(fake); got != want {
				t.Errorf("tables after restart differ from the first sync's:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPartialSyncLeavesOutUnchangedChains(t *testing.T) {
	w := newWorld(t)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	mustSync(t, p, w.full(svc1, svc2))

	// One endpoint fewer: the service's chains change, KUBE-SERVICES does not.
	shrunk := svc1
	shrunk.endpoints = []string{"10.180.0.1"}
	mustSync(t, p, w.next(shrunk, svc2))
	in := fake.LastRestore()
	if declares(in, "nat", "KUBE-SERVICES") || declares(in, "filter", "KUBE-SERVICES") {
		t.Errorf("unchanged KUBE-SERVICES rewritten:\n%s", in)
	}
	if !declares(in, "nat", svc1Chain) {
		t.Errorf("changed %s not written:\n%s", svc1Chain, in)
	}
	if declares(in, "nat", sep1) {
		t.Errorf("unchanged endpoint chain %s rewritten:\n%s", sep1, in)
	}
	if hasChain(fake, "nat", sep2) {
		t.Errorf("stale endpoint chain %s kept", sep2)
	}

	// Removing a service changes KUBE-SERVICES, which is then written whole.
	mustSync(t, p, w.next(shrunk))
	in = fake.LastRestore()
	if !declares(in, "nat", "KUBE-SERVICES") {
		t.Errorf("changed KUBE-SERVICES not written:\n%s", in)
	}
	if n := len(fake.Table("nat").Chain("KUBE-SERVICES").Rules); n != 2 {
		t.Errorf("KUBE-SERVICES has %d rules, want the cluster IP jump and the nodeports tail", n)
	}

	// A full sync in the same process with nothing changed writes no nat chain.
	mustSync(t, p, w.full(shrunk))
	if in := string(fake.LastRestore()); strings.Contains(in, "*nat\n:") {
		t.Errorf("no-op full sync declared nat chains:\n%s", in)
	}
}

// manyServices returns n specs with distinct names, IPs and one endpoint each.
func manyServices(n int) []svcSpec {
	var out []svcSpec
	for i := range n {
		out = append(out, svcSpec{"ns", fmt.Sprintf("s%03d", i), fmt.Sprintf("172.30.1.%d", i+1), 0,
			[]string{fmt.Sprintf("10.180.1.%d", i+1)}})
	}
	return out
}

func TestPartialSyncEditsLongTopLevelChainsRuleByRule(t *testing.T) {
	w := newWorld(t)
	all := manyServices(100)
	fake := ruleset.NewFake(ruleset.FakeOptions{})
	p := newProxier(t, fake)
	mustSync(t, p, w.full(all...))

	// s010 goes away, s100 arrives: one deletion and one insertion in KUBE-SERVICES.
	next := append(append([]svcSpec(nil), all[:10]...), all[11:]...)
	next = append(next, svcSpec{"ns", "s100", "172.30.2.1", 0, []string{"10.180.2.1"}})
	mustSync(t, p, w.next(next...))
	in := string(fake.LastRestore())
	if declares([]byte(in), "nat", "KUBE-SERVICES") {
		t.Errorf("KUBE-SERVICES rewritten instead of edited:\n%s", in)
	}
	if !strings.Contains(in, "-D KUBE-SERVICES ") || !strings.Contains(in, "-I KUBE-SERVICES 100 ") {
		t.Errorf("missing rule edits (the new service sorts last, before the nodeports tail):\n%s", in)
	}

	// The edited table equals what a full sync of the same state writes.
	fresh := ruleset.NewFake(ruleset.FakeOptions{})
	mustSync(t, newProxier(t, fresh), w.full(next...))
	if got, want := saveAll(fake), saveAll(fresh); got != want {
		t.Errorf("edited tables differ from a full sync's:\n%s\nwant:\n%s", got, want)
	}
}
