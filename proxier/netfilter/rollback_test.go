package netfilter_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// reads counts the Saves and chain listings a fake has served since it was taken.
type reads struct {
	f            *ruleset.Fake
	saves, lists int
}

func readsOf(f *ruleset.Fake) reads {
	saves, lists := f.Reads()
	return reads{f, saves, lists}
}

func (r reads) since() (saves, lists int) {
	saves, lists = r.f.Reads()
	return saves - r.saves, lists - r.lists
}

func tablesText(t *testing.T, r netfilter.Restorer) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"filter", "nat", "mangle"} {
		out, err := r.Save(context.Background(), table)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(out)
	}
	return b.String()
}

const rollbackBase = `*filter
:KUBE-SERVICES - [0:0]
:KUBE-OLD - [0:0]
-A KUBE-SERVICES -d 172.30.0.5/32 -p tcp -m tcp --dport 80 -j REJECT
-A KUBE-OLD -j ACCEPT
-A INPUT -j KUBE-SERVICES
-A FORWARD -s 10.9.9.9/32 -j ACCEPT
COMMIT
*mangle
:KUBE-PROXY-CANARY - [0:0]
COMMIT
*nat
:KUBE-SERVICES - [0:0]
:KUBE-SVC-A - [0:0]
-A KUBE-SVC-A -j DNAT --to-destination 10.180.0.1:80 -p tcp
-A KUBE-SERVICES -d 172.30.0.1/32 -p tcp -m tcp --dport 80 -j KUBE-SVC-A
-A PREROUTING -j KUBE-SERVICES
COMMIT
`

// rollbackCase is a restore whose failTable block (the failNth one of that
// table) fails.
type rollbackCase struct {
	name      string
	input     string
	failTable string
	failNth   int
	// wantLists and wantSaves are the chain listings and table Saves
	// the snapshot takes.
	wantLists, wantSaves int
}

func TestTableRollback(t *testing.T) {
	tests := []rollbackCase{
		{name: "nat fails after filter and mangle committed", failTable: "nat", wantLists: 7, input: `*filter
:KUBE-SERVICES - [0:0]
:KUBE-NEW - [0:0]
-A KUBE-SERVICES -d 172.30.0.6/32 -p tcp -m tcp --dport 80 -j REJECT
-I INPUT 1 -j KUBE-NEW
-D FORWARD -s 10.9.9.9/32 -j ACCEPT
:KUBE-OLD - [0:0]
-X KUBE-OLD
COMMIT
*mangle
:KUBE-PROXY-CANARY - [0:0]
:KUBE-MANGLED - [0:0]
COMMIT
*nat
:KUBE-SVC-B - [0:0]
-A KUBE-SERVICES -d 172.30.0.2/32 -j KUBE-SVC-B
COMMIT
`},
		{name: "filter fails after nat committed", failTable: "filter", wantLists: 2, input: `*nat
:KUBE-SVC-B - [0:0]
-A KUBE-SVC-B -j DNAT --to-destination 10.180.0.2:80 -p tcp
:KUBE-SERVICES - [0:0]
-A KUBE-SERVICES -d 172.30.0.2/32 -j KUBE-SVC-B
COMMIT
*filter
:KUBE-SERVICES - [0:0]
COMMIT
`},
		{name: "the first table fails", failTable: "filter", wantLists: 1, input: `*filter
:KUBE-SERVICES - [0:0]
COMMIT
*nat
:KUBE-SVC-B - [0:0]
COMMIT
`},
		{name: "a table-wide flush of filter", failTable: "nat", wantSaves: 1, input: `*filter
-F
COMMIT
*nat
:KUBE-SVC-B - [0:0]
COMMIT
`},
		{name: "the second nat block fails after the first", failTable: "nat", failNth: 2, wantLists: 2, input: `*nat
:KUBE-SVC-B - [0:0]
:KUBE-SERVICES - [0:0]
COMMIT
*nat
-I PREROUTING 1 -j KUBE-SVC-B
COMMIT
`},
	}
	// A first block declaring more chains than are worth listing one by one
	// (a restore into a nearly empty nat table) is snapshotted with a Save.
	var many strings.Builder
	many.WriteString("*nat\n:KUBE-SERVICES - [0:0]\n")
	for i := range 40 {
		fmt.Fprintf(&many, ":KUBE-SEP-%02d - [0:0]\n-A KUBE-SEP-%02d -j DNAT --to-destination 10.180.1.%d:80 -p tcp\n", i, i, i)
		fmt.Fprintf(&many, "-A KUBE-SERVICES -d 172.30.1.%d/32 -j KUBE-SEP-%02d\n", i, i)
	}
	many.WriteString("COMMIT\n*nat\n-I OUTPUT 1 -j KUBE-SERVICES\nCOMMIT\n")
	tests = append(tests, rollbackCase{name: "a first nat block declaring many chains", input: many.String(), failTable: "nat", failNth: 2, wantSaves: 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ruleset.NewFake(ruleset.FakeOptions{})
			if err := f.Restore(context.Background(), []byte(rollbackBase)); err != nil {
				t.Fatal(err)
			}
			before := tablesText(t, f)
			f.FailNextBlock(tt.failTable, tt.failNth)
			read := readsOf(f)
			err := netfilter.NewTableRollback(f).Restore(context.Background(), []byte(tt.input))
			if err == nil {
				t.Fatal("Restore succeeded although a table failed")
			}
			if !strings.Contains(err.Error(), "rolled back") {
				t.Errorf("error %q does not say what was rolled back", err)
			}
			if saves, lists := read.since(); saves != tt.wantSaves || lists != tt.wantLists {
				t.Errorf("%d Saves and %d chain listings, want %d and %d", saves, lists, tt.wantSaves, tt.wantLists)
			}
			if after := tablesText(t, f); after != before {
				t.Errorf("tables changed by a failed restore:\n%s\nbefore:\n%s", after, before)
			}
			// The same input applies cleanly once the fault is gone.
			if err := netfilter.NewTableRollback(f).Restore(context.Background(), []byte(tt.input)); err != nil {
				t.Errorf("retry: %v", err)
			}
		})
	}
}

// TestTableRollbackPassesSingleTableInputThrough: an input that changes one
// table (blocks with only comments do not count) is handed over as it is,
// without a Save, so the common partial sync costs nothing extra.
func TestTableRollbackPassesSingleTableInputThrough(t *testing.T) {
	inputs := []string{
		"*nat\n:KUBE-SVC-B - [0:0]\nCOMMIT\n",
		"*filter\nCOMMIT\n*nat\n:KUBE-SVC-B - [0:0]\nCOMMIT\n*mangle\n# nothing\nCOMMIT\n",
		"# header\n*filter\n:KUBE-SERVICES - [0:0]\nCOMMIT\n*nat\nCOMMIT\n",
	}
	for _, in := range inputs {
		f := ruleset.NewFake(ruleset.FakeOptions{})
		if err := netfilter.NewTableRollback(f).Restore(context.Background(), []byte(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		saves, lists := f.Reads()
		if saves+lists != 0 || f.RestoreCount() != 1 || string(f.LastRestore()) != in {
			t.Errorf("%q: %d saves, %d listings, %d restores of %q; want the input once, unchanged, and nothing read",
				in, saves, lists, f.RestoreCount(), f.LastRestore())
		}
	}
}

// TestTableRollbackUsesTheCallersSnapshot: tables the caller has just read
// are not read again, and the rollback restores what the caller read.
func TestTableRollbackUsesTheCallersSnapshot(t *testing.T) {
	f := ruleset.NewFake(ruleset.FakeOptions{})
	if err := f.Restore(context.Background(), []byte(rollbackBase)); err != nil {
		t.Fatal(err)
	}
	before := tablesText(t, f)
	nat, err := f.Save(context.Background(), "nat")
	if err != nil {
		t.Fatal(err)
	}
	f.FailNextBlock("filter", 1)
	read := readsOf(f)
	in := "*nat\n:KUBE-SERVICES - [0:0]\n:KUBE-SVC-B - [0:0]\nCOMMIT\n*filter\n:KUBE-X - [0:0]\nCOMMIT\n"
	err = netfilter.NewTableRollback(f).RestoreKnown(context.Background(), []byte(in), netfilter.Known{Table: netfilter.KnownTables(map[string][]byte{"nat": nat})})
	if err == nil || !strings.Contains(err.Error(), "tables nat rolled back") {
		t.Fatalf("err = %v, want the failure and nat rolled back", err)
	}
	if saves, lists := read.since(); saves+lists != 0 {
		t.Errorf("%d Saves and %d listings, want none: the caller passed nat", saves, lists)
	}
	if after := tablesText(t, f); after != before {
		t.Errorf("tables after the failed restore:\n%s\nbefore:\n%s", after, before)
	}
}

// TestTableRollbackWithoutSnapshot: when an earlier table cannot be read,
// the restore still runs (a sync must not be refused for it), and a failure
// says that earlier tables may stay applied.
func TestTableRollbackWithoutSnapshot(t *testing.T) {
	f := ruleset.NewFake(ruleset.FakeOptions{})
	f.FailNextBlock("nat", 1)
	f.FailListings(errors.New("iptables -S crashed"))
	in := "*filter\n:KUBE-X - [0:0]\nCOMMIT\n*nat\n:KUBE-SVC-B - [0:0]\nCOMMIT\n"
	err := netfilter.NewTableRollback(f).Restore(context.Background(), []byte(in))
	var pe *ruleset.ParseError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "may stay applied") || !strings.Contains(err.Error(), "crashed") {
		t.Errorf("err = %v, want the restore's error and why nothing was rolled back", err)
	}
	if err := netfilter.NewTableRollback(f).Restore(context.Background(), []byte(in)); err != nil {
		t.Errorf("restore without a snapshot: %v", err)
	}
}
