package iptables_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// Tamper detection against the in-memory Fake: a full sync writes the
// canaries and jumps, a tampering (as an operator or a firewall reload
// does it) removes some, CheckTampering must name exactly those, and the
// full sync it leads to must restore the tables as they were.

// tampering is one way someone else changes the tables, as restore input.
type tampering struct {
	name  string
	input string
	// want are the failing checks, by TamperCheck.String.
	want []string
}

const servicePortalsJump = `-m comment --comment "kubernetes service portals" -j KUBE-SERVICES`

func tamperings() []tampering {
	bothJumps := []string{"nat/PREROUTING -j KUBE-SERVICES", "nat/OUTPUT -j KUBE-SERVICES"}
	return []tampering{
		{name: "untouched", input: ""},
		{name: "nat flushed and its chains deleted (iptables -t nat -F; -X)", input: "*nat\n-F\n-X\nCOMMIT\n",
			want: append([]string{"nat/KUBE-PROXY-CANARY"}, bothJumps...)},
		{name: "nat flushed only (-F leaves the empty canary)", input: "*nat\n-F\nCOMMIT\n", want: bothJumps},
		{name: "KUBE-SERVICES deleted as a firewalld reload does", input: "*nat\n-D PREROUTING " + servicePortalsJump +
			"\n-D OUTPUT " + servicePortalsJump + "\n-F KUBE-SERVICES\n-X KUBE-SERVICES\nCOMMIT\n", want: bothJumps},
		{name: "only the OUTPUT jump deleted", input: "*nat\n-D OUTPUT " + servicePortalsJump + "\nCOMMIT\n",
			want: []string{"nat/OUTPUT -j KUBE-SERVICES"}},
		{name: "mangle canary deleted", input: "*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n", want: []string{"mangle/KUBE-PROXY-CANARY"}},
		{name: "filter flushed and its chains deleted", input: "*filter\n-F\n-X\nCOMMIT\n", want: []string{"filter/KUBE-PROXY-CANARY"}},
	}
}

func checkNames(checks []netfilter.TamperCheck) []string {
	var out []string
	for _, c := range checks {
		out = append(out, c.String())
	}
	return out
}

// tablesOf is every table of the fake as iptables-save prints it.
func tablesOf(f *ruleset.Fake) string {
	var b strings.Builder
	for _, name := range []string{"mangle", "nat", "filter"} {
		b.WriteString(ruleset.FormatSave(f.Table(name)))
	}
	return b.String()
}

func TestCheckTamperingNamesWhatWasRemoved(t *testing.T) {
	w := newWorld(t)
	for _, tt := range tamperings() {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			fake := ruleset.NewFake(ruleset.FakeOptions{})
			mustSync(t, newProxier(t, fake), w.full(svc1, svc2))
			if tt.input != "" {
				if err := fake.Restore(ctx, []byte(tt.input)); err != nil {
					t.Fatalf("tamper: %v", err)
				}
			}
			failed, err := netfilter.CheckTampering(ctx, fake, netfilter.TamperChecks())
			if err != nil {
				t.Fatal(err)
			}
			if got := checkNames(failed); !slices.Equal(got, tt.want) {
				t.Errorf("failed checks = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestTamperedTablesAreRewrittenWhole runs the full sync the monitor asks
// for after each tampering, also when iptables-save fails (as it does on a
// 10k-service nat table) so that the proxier must choose between memory and
// listings: memory says every service chain is in place, which after a
// "-F" is a lie, so ForgetKernelState must make it list and rewrite.
func TestTamperedTablesAreRewrittenWhole(t *testing.T) {
	w := newWorld(t)
	for _, saveFails := range []bool{false, true} {
		for _, tt := range tamperings()[1:] {
			name := tt.name
			if saveFails {
				name += ", iptables-save failing"
			}
			t.Run(name, func(t *testing.T) {
				ctx := context.Background()
				fake := ruleset.NewFake(ruleset.FakeOptions{})
				p := newProxier(t, fake)
				mustSync(t, p, w.full(svc1, svc2))
				svc2b := svc2
				svc2b.endpoints = []string{"10.180.0.3", "10.180.0.4"}
				mustSync(t, p, w.next(svc1, svc2b)) // memory of a partial sync too
				want := tablesOf(fake)
				if err := fake.Restore(ctx, []byte(tt.input)); err != nil {
					t.Fatalf("tamper: %v", err)
				}
				if saveFails {
					fake.FailSaves(errors.New("iptables-save: killed"))
				}
				p.ForgetKernelState()
				if res := mustSync(t, p, w.next(svc1, svc2b)); !res.Full {
					t.Error("the sync after ForgetKernelState was partial")
				}
				fake.FailSaves(nil)
				if got := tablesOf(fake); got != want {
					t.Errorf("tables after the rewrite differ from before the tampering:\n%s\nwant:\n%s", got, want)
				}
				if failed, err := netfilter.CheckTampering(ctx, fake, netfilter.TamperChecks()); err != nil || len(failed) > 0 {
					t.Errorf("after the rewrite: failed checks %q, err %v", checkNames(failed), err)
				}
			})
		}
	}
}
