package ruleset

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// restoreInput builds iptables-restore input: table, then lines, then COMMIT.
func restoreInput(table string, lines ...string) string {
	return "*" + table + "\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
}

func mustRestore(t *testing.T, f *Fake, input string) {
	t.Helper()
	if err := f.Restore(context.Background(), []byte(input)); err != nil {
		t.Fatalf("Restore: %v\ninput:\n%s", err, input)
	}
}

func mustSave(t *testing.T, f *Fake, table string) string {
	t.Helper()
	out, err := f.Save(context.Background(), table)
	if err != nil {
		t.Fatalf("Save(%s): %v", table, err)
	}
	return string(out)
}

func ruleLines(t *testing.T, f *Fake, table, chain string) []string {
	t.Helper()
	c := f.Table(table).Chain(chain)
	if c == nil {
		return nil
	}
	var out []string
	for i := range c.Rules {
		out = append(out, c.Rules[i].SaveLine())
	}
	return out
}

func TestFakeMatchesKernelSaveOutput(t *testing.T) {
	in, err := os.ReadFile("testdata/fixture_a.restore")
	if err != nil {
		t.Fatal(err)
	}
	f := NewFake(FakeOptions{})
	mustRestore(t, f, string(in))
	for _, table := range []string{"filter", "nat"} {
		want, err := os.ReadFile("testdata/fixture_a." + table + ".save")
		if err != nil {
			t.Fatal(err)
		}
		if got := mustSave(t, f, table); got != string(want) {
			t.Errorf("Save(%s) differs from iptables-save 1.8.9:\n%s\nwant:\n%s", table, got, want)
		}
	}
}

func TestFakeNoflushSemantics(t *testing.T) {
	f := NewFake(FakeOptions{})
	mustRestore(t, f, restoreInput("nat",
		":A - [0:0]", ":B - [0:0]",
		"-A A -j ACCEPT", "-A B -j DROP",
		"-A PREROUTING -j A"))
	// Declaring A again flushes it; B is not mentioned and survives; the
	// built-in chain's rule stays.
	mustRestore(t, f, restoreInput("nat", ":A - [0:0]", "-A A -j RETURN"))
	checks := map[string][]string{
		"A":          {"-j RETURN"},
		"B":          {"-j DROP"},
		"PREROUTING": {"-j A"},
	}
	for chain, want := range checks {
		if got := ruleLines(t, f, "nat", chain); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("chain %s = %q, want %q", chain, got, want)
		}
	}
	// Declaring a built-in chain sets its policy and keeps its rules.
	mustRestore(t, f, restoreInput("nat", ":PREROUTING DROP [0:0]"))
	if c := f.Table("nat").Chain("PREROUTING"); c.Policy != "DROP" || len(c.Rules) != 1 {
		t.Errorf("PREROUTING after declaration = %+v", c)
	}
}

func TestFakeStatements(t *testing.T) {
	f := NewFake(FakeOptions{})
	mustRestore(t, f, restoreInput("filter",
		":C - [0:0]",
		"-A C -s 10.0.0.1 -j ACCEPT",
		"-A C -s 10.0.0.3 -j ACCEPT",
		"-I C 2 -s 10.0.0.2 -j ACCEPT",
		"-I C -s 10.0.0.0 -j ACCEPT",
		"-D C -s 10.0.0.3/32 -j ACCEPT",
		"-D C 1",
		"-N D",
		"-A D -j C",
		"-F D",
		"-X D",
		"-P FORWARD DROP"))
	want := "-s 10.0.0.1/32 -j ACCEPT|-s 10.0.0.2/32 -j ACCEPT"
	if got := strings.Join(ruleLines(t, f, "filter", "C"), "|"); got != want {
		t.Errorf("chain C = %s, want %s", got, want)
	}
	tbl := f.Table("filter")
	if tbl.Chain("D") != nil || tbl.Chain("FORWARD").Policy != "DROP" {
		t.Errorf("unexpected table state:\n%s", FormatSave(tbl))
	}
}

func TestFakeRejects(t *testing.T) {
	base := restoreInput("nat",
		":KUBE-SERVICES - [0:0]", ":KUBE-SVC-A - [0:0]", ":KUBE-SEP-A - [0:0]", ":UNUSED - [0:0]",
		"-A KUBE-SEP-A -m tcp -p tcp -j DNAT --to-destination 10.1.0.1:80",
		"-A KUBE-SVC-A -j KUBE-SEP-A",
		"-A KUBE-SERVICES -d 172.30.0.1 -j KUBE-SVC-A",
		"-A PREROUTING -j KUBE-SERVICES")
	tests := []struct {
		name   string
		family v1.IPFamily
		input  string
		want   string
	}{
		{name: "jump to missing chain", input: restoreInput("nat", "-A KUBE-SERVICES -j KUBE-SVC-NOPE"), want: `line 2: chain "KUBE-SVC-NOPE" does not exist`},
		{name: "jump to chain declared later", input: restoreInput("nat", ":X - [0:0]", "-A X -j LATER", ":LATER - [0:0]"), want: `chain "LATER" does not exist`},
		{name: "jump to built-in chain", input: restoreInput("nat", "-A KUBE-SERVICES -j OUTPUT"), want: `does not exist`},
		{name: "delete referenced chain", input: restoreInput("nat", "-X KUBE-SEP-A"), want: `still referenced`},
		{name: "delete chain after only flushing it", input: restoreInput("nat", ":KUBE-SVC-A - [0:0]", "-X KUBE-SVC-A"), want: `still referenced`},
		{name: "delete non-empty chain", input: restoreInput("nat", "-A UNUSED -j ACCEPT", "-X UNUSED"), want: `not empty`},
		{name: "delete missing chain", input: restoreInput("nat", "-X NOPE"), want: `does not exist`},
		{name: "delete built-in chain", input: restoreInput("nat", "-X INPUT"), want: `built-in`},
		{name: "append to missing chain", input: restoreInput("nat", "-A NOPE -j ACCEPT"), want: `"NOPE" does not exist`},
		{name: "chain name too long", input: restoreInput("nat", ":ABCDEFGHIJKLMNOPQRSTUVWXYZ123 - [0:0]"), want: `too long`},
		{name: "new chain exists", input: restoreInput("nat", "-N UNUSED"), want: `already exists`},
		{name: "user chain with policy", input: restoreInput("nat", ":C2 ACCEPT [0:0]"), want: `bad built-in chain`},
		{name: "unknown option with line", input: restoreInput("nat", ":C3 - [0:0]", "-A C3 --bogus 1 -j ACCEPT"), want: `line 3: unknown option "--bogus"`},
		{name: "ipv6 address in ipv4", input: restoreInput("nat", "-A UNUSED -d fd00::1 -j ACCEPT"), want: `not found`},
		{name: "ipv4 address in ipv6", family: v1.IPv6Protocol, input: restoreInput("nat", ":U - [0:0]", "-A U -d 10.0.0.1 -j ACCEPT"), want: `not found`},
		{name: "ipv4 DNAT in ipv6", family: v1.IPv6Protocol, input: restoreInput("nat", ":U - [0:0]", "-A U -p tcp -j DNAT --to-destination 10.0.0.1:80"), want: `not found`},
		{name: "DNAT in filter", input: restoreInput("filter", ":C - [0:0]", "-A C -p tcp -j DNAT --to-destination 1.2.3.4:80"), want: `only valid in the nat table`},
		{name: "REJECT in nat", input: restoreInput("nat", "-A UNUSED -j REJECT"), want: `not valid in table nat`},
		{name: "MASQUERADE reachable from PREROUTING", input: restoreInput("nat", "-A UNUSED -j MASQUERADE", "-A KUBE-SERVICES -j UNUSED"), want: `reachable from PREROUTING`},
		{name: "DNAT reachable from POSTROUTING", input: restoreInput("nat", "-A POSTROUTING -j KUBE-SVC-A"), want: `reachable from POSTROUTING`},
		{name: "loop reachable from a built-in chain", input: restoreInput("nat", ":L1 - [0:0]", ":L2 - [0:0]", "-A L1 -j L2", "-A L2 -j L1", "-A OUTPUT -j L1"), want: `loop`},
		{name: "missing COMMIT", input: "*nat\n:C - [0:0]\n", want: `COMMIT expected`},
		{name: "unknown table", input: restoreInput("bogus"), want: `does not exist`},
		{name: "insert beyond end", input: restoreInput("nat", "-I UNUSED 3 -j ACCEPT"), want: `too big`},
		{name: "delete missing rule", input: restoreInput("nat", "-D UNUSED -j ACCEPT"), want: `matching rule`},
		{name: "COMMIT with a trailing blank", input: "*nat\n-A UNUSED -j ACCEPT\nCOMMIT \n", want: `line 3: unknown command "COMMIT"`},
		{name: "comment line with leading blank", input: restoreInput("nat", " # note"), want: `unknown command "#"`},
		{name: "closing quote ends the argument", input: restoreInput("nat", `-A UNUSED -m comment --comment "a"b -j ACCEPT`), want: `unknown argument "b"`},
		{name: "line too long", input: restoreInput("nat", "-A UNUSED -m comment --comment x"+strings.Repeat(" ", MaxLineLen)), want: `line 2: line longer than`},
		// The block after the failing one is not run (TestFakeCommitsPerTable
		// covers the block before it, which stays applied).
		{name: "error in first table", input: restoreInput("nat", "-A NOPE -j ACCEPT") + restoreInput("filter", ":OK - [0:0]"), want: `does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(FakeOptions{Family: tt.family})
			if tt.family != v1.IPv6Protocol {
				mustRestore(t, f, base)
			}
			before := f.Tables()
			err := f.Restore(context.Background(), []byte(tt.input))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Restore error = %v, want it to contain %q", err, tt.want)
			}
			after := f.Tables()
			if len(before) != len(after) {
				t.Fatalf("failed restore changed the set of tables: %d -> %d", len(before), len(after))
			}
			for name, tb := range before {
				if FormatSave(tb) != FormatSave(after[name]) {
					t.Errorf("failed restore changed table %s:\n%s\nwas:\n%s", name, FormatSave(after[name]), FormatSave(tb))
				}
			}
		})
	}
}

// TestFakeLineSemantics checks inputs iptables-restore 1.8.9 accepts in a
// surprising way (verified in a network namespace): the Fake must end up
// with what the kernel lists.
func TestFakeLineSemantics(t *testing.T) {
	tests := []struct {
		name, line, want string
	}{
		{"NUL ends the line, leaving a rule without target", "-A X -m comment --comment \"ab\x00cd\" -j ACCEPT",
			`-A X -m comment --comment ab`},
		{"unterminated quote keeps the newline", `-A X -m comment --comment "abc -j ACCEPT`,
			"-A X -m comment --comment \"abc -j ACCEPT\n\""},
		{"comment cut at 255 bytes", `-A X -m comment --comment "` + strings.Repeat("x", 300) + `" -j ACCEPT`,
			`-A X -m comment --comment ` + strings.Repeat("x", 255) + ` -j ACCEPT`},
		{"CR is part of a bare argument", "-A X -m comment --comment a\rb -j ACCEPT",
			"-A X -m comment --comment \"a\rb\" -j ACCEPT"},
		{"leading blanks before a rule", "   -A X -j ACCEPT", `-A X -j ACCEPT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewFake(FakeOptions{})
			mustRestore(t, f, restoreInput("filter", ":X - [0:0]", tt.line))
			if got := ruleLines(t, f, "filter", "X"); len(got) != 1 || "-A X "+got[0] != tt.want {
				t.Errorf("rules of X = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFakeAcceptsKubeProxyPatterns(t *testing.T) {
	f := NewFake(FakeOptions{})
	mustRestore(t, f, restoreInput("nat",
		":KUBE-SVC-A - [0:0]", ":KUBE-SEP-A - [0:0]", ":KUBE-SEP-B - [0:0]",
		"-A KUBE-SVC-A -j KUBE-SEP-A",
		"-A KUBE-SEP-B -j ACCEPT"))
	// Stale chain GC as kube-proxy writes it: declare (flush) then delete;
	// KUBE-SEP-B is unreferenced, so this works even though it had a rule.
	// Then the referencing chain is flushed and its target deleted in one go.
	mustRestore(t, f, restoreInput("nat",
		":KUBE-SEP-B - [0:0]", "-X KUBE-SEP-B",
		":KUBE-SVC-A - [0:0]", ":KUBE-SEP-A - [0:0]", "-X KUBE-SEP-A",
		":ABCDEFGHIJKLMNOPQRSTUVWXYZ12 - [0:0]"))
	tbl := f.Table("nat")
	if tbl.Chain("KUBE-SEP-A") != nil || tbl.Chain("KUBE-SEP-B") != nil || tbl.Chain("ABCDEFGHIJKLMNOPQRSTUVWXYZ12") == nil {
		t.Errorf("unexpected chains:\n%s", FormatSave(tbl))
	}
}

// TestFakeCommitsPerTable: as iptables-restore, a failing block leaves the
// blocks before it applied and does not run the ones after it.
func TestFakeCommitsPerTable(t *testing.T) {
	input := restoreInput("filter", ":ATOM1 - [0:0]") + restoreInput("nat", "-A NOPE -j ACCEPT") +
		restoreInput("mangle", ":ATOM3 - [0:0]")
	f := NewFake(FakeOptions{})
	if err := f.Restore(context.Background(), []byte(input)); err == nil {
		t.Fatal("Restore succeeded")
	}
	if f.Table("filter").Chain("ATOM1") == nil {
		t.Error("the filter block before the failing one was not committed")
	}
	if f.Table("mangle").Chain("ATOM3") != nil {
		t.Error("the mangle block after the failing one was applied")
	}
	if _, touched := f.Tables()["nat"]; touched {
		t.Error("the failing nat block changed the nat table")
	}
}

func TestFakeHooks(t *testing.T) {
	f := NewFake(FakeOptions{})
	injected := errors.New("injected")
	f.FailNextRestore(injected)
	input := restoreInput("filter", ":C - [0:0]")
	if err := f.Restore(context.Background(), []byte(input)); !errors.Is(err, injected) {
		t.Fatalf("Restore error = %v, want injected", err)
	}
	if f.Table("filter").Chain("C") != nil {
		t.Error("failed restore changed state")
	}
	mustRestore(t, f, input)
	if f.RestoreCount() != 2 || string(f.LastRestore()) != input {
		t.Errorf("RestoreCount = %d, LastRestore = %q", f.RestoreCount(), f.LastRestore())
	}
	if _, ok := f.Tables()["filter"]; !ok || len(f.Tables()) != 1 {
		t.Errorf("Tables() = %v, want only filter", f.Tables())
	}
	if _, err := f.Save(context.Background(), "bogus"); err == nil {
		t.Error("Save of an unknown table succeeded")
	}
	want := "*raw\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"
	if got := mustSave(t, f, "raw"); got != want {
		t.Errorf("Save(raw) = %q, want %q", got, want)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.Restore(ctx, []byte(input)); !errors.Is(err, context.Canceled) {
		t.Errorf("Restore with cancelled context = %v", err)
	}
}

func TestParseTablesRoundTrip(t *testing.T) {
	save, err := os.ReadFile("testdata/fixture_a.nat.save")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := ParseTables(save, v1.IPv4Protocol)
	if err != nil {
		t.Fatal(err)
	}
	if got := FormatSave(tables["nat"]); got != string(save) {
		t.Errorf("round trip differs:\n%s\nwant:\n%s", got, save)
	}
}

// restorer is the netfilter.Restorer method set (that package imports this one).
type restorer interface {
	Restore(ctx context.Context, data []byte) error
	Save(ctx context.Context, table string) ([]byte, error)
}

var _ restorer = (*Fake)(nil)
