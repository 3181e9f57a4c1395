package xtables_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// TestKernelTableRollbackUndoesEveryKindOfChange: an earlier filter block
// that creates a chain, inserts into and deletes from built-in chains,
// rewrites a chain and deletes another is undone on the real kernel, with
// both backends, when the nat block after it fails.
func TestKernelTableRollbackUndoesEveryKindOfChange(t *testing.T) {
	privateXtablesLock(t)
	base := `*filter
:KPX-KEEP - [0:0]
:KPX-GONE - [0:0]
-A KPX-KEEP -s 10.1.0.0/16 -j ACCEPT
-A KPX-KEEP -j KPX-GONE
-A KPX-GONE -j RETURN
-A INPUT -j KPX-KEEP
-A FORWARD -s 10.9.9.9/32 -j ACCEPT
COMMIT
*nat
:KPX-NAT - [0:0]
-A KPX-NAT -j RETURN
COMMIT
`
	failing := `*filter
:KPX-NEW - [0:0]
:KPX-KEEP - [0:0]
:KPX-GONE - [0:0]
-A KPX-NEW -j ACCEPT
-A KPX-KEEP -j KPX-NEW
-I INPUT 1 -j KPX-NEW
-D FORWARD -s 10.9.9.9/32 -j ACCEPT
-X KPX-GONE
COMMIT
*mangle
:KPX-MANGLE - [0:0]
COMMIT
*nat
:KPX-NAT - [0:0]
-A KPX-NAT -j KPX-NO-SUCH-CHAIN
COMMIT
`
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) {
			kerneltest.NeedTools(t, "iptables rollback kernel test", "iptables-"+string(backend)+"-restore")
			ns := newNetns(t)
			r, err := xtables.New(xtables.Options{Backend: backend, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Restore(context.Background(), []byte(base+"*mangle\n:KPX-CANARY - [0:0]\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
			before := kerneltest.IPTablesSave(t, ns, "iptables-"+string(backend)+"-save")
			err = netfilter.NewTableRollback(r).Restore(context.Background(), []byte(failing))
			if err == nil || !strings.Contains(err.Error(), "tables filter, mangle rolled back") {
				t.Fatalf("Restore = %v, want the nat failure with filter and mangle rolled back", err)
			}
			if after := kerneltest.IPTablesSave(t, ns, "iptables-"+string(backend)+"-save"); after != before {
				t.Errorf("iptables-%s-save after the failed restore:\n%s\nbefore:\n%s", backend, after, before)
			}
		})
	}
}
