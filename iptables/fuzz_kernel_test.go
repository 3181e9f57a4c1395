package iptables_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/objectfuzz"
)

const fuzzCorpusDir = "testdata/fuzz/FuzzObjectToRules"

// TestFuzzCorpusInKernel is the kernel tier of FuzzObjectToRules: every
// seed and every checked-in corpus entry is rendered (validated and not)
// and applied with the real iptables-restore and ip6tables-restore in a
// network namespace the test creates. Each must be accepted. It skips
// without root or iptables, and fails instead under
// KPROXY_KERNEL_TESTS=require.
func TestFuzzCorpusInKernel(t *testing.T) {
	ns := fuzzNetns(t)
	runners := map[v1.IPFamily]*xtables.Runner{}
	for _, fam := range families {
		r, err := xtables.New(xtables.Options{Family: fam, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		runners[fam] = r
	}
	ctx := context.Background()
	// Each input goes into emptied tables, as a first sync would. Many
	// entries render the same input (every rejected object renders the
	// empty service set): each distinct input is applied once.
	flush := []byte("*nat\n-F\n-X\nCOMMIT\n*filter\n-F\n-X\nCOMMIT\n")
	applied := map[string]bool{}
	apply := func(fam v1.IPFamily, input []byte) error {
		key := string(fam) + "\n" + string(input)
		if applied[key] {
			return nil
		}
		applied[key] = true
		return runners[fam].Restore(ctx, append(flush[:len(flush):len(flush)], input...))
	}
	cases, err := objectfuzz.ReadCorpus(fuzzCorpusDir)
	if err != nil || len(cases) < 20 {
		t.Fatalf("corpus %s: %d entries, %v", fuzzCorpusDir, len(cases), err)
	}
	for i, c := range objectfuzz.Seeds() {
		cases[fmt.Sprintf("seed#%d", i)] = c
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) { checkCase(t, c, apply) })
	}
	t.Logf("%d corpus entries, %d distinct inputs applied with iptables-restore and ip6tables-restore", len(cases), len(applied))
}

// fuzzNetns creates a kpx- network namespace for the test and deletes it
// when the test ends.
func fuzzNetns(t *testing.T) string {
	t.Helper()
	kerneltest.NeedTools(t, "fuzz corpus kernel test", "iptables-restore", "ip6tables-restore")
	return kerneltest.Netns(t, "kpx-fz")
}
