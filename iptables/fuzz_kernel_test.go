package iptables_test

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
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
	cases := map[string]fuzzCase{}
	for i, c := range fuzzSeeds() {
		cases[fmt.Sprintf("seed#%d", i)] = c
	}
	files, err := filepath.Glob(filepath.Join(fuzzCorpusDir, "*"))
	if err != nil || len(files) < 20 {
		t.Fatalf("corpus %s: %d files, %v", fuzzCorpusDir, len(files), err)
	}
	for _, f := range files {
		c, err := readCorpusFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases[filepath.Base(f)] = c
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

// readCorpusFile decodes a "go test fuzz v1" file of FuzzObjectToRules.
func readCorpusFile(path string) (fuzzCase, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return fuzzCase{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return fuzzCase{}, fmt.Errorf("not a fuzz corpus file")
	}
	var vals []any
	for _, l := range lines[1:] {
		v, err := corpusValue(l)
		if err != nil {
			return fuzzCase{}, fmt.Errorf("%q: %w", l, err)
		}
		vals = append(vals, v)
	}
	return fuzzCaseOf(vals)
}

// corpusValue decodes one line: string("…"), byte('…'), uint8(n), int32(n) or rune('…').
func corpusValue(line string) (any, error) {
	e, err := parser.ParseExpr(line)
	if err != nil {
		return nil, err
	}
	call, ok := e.(*ast.CallExpr)
	if !ok || len(call.Args) != 1 {
		return nil, fmt.Errorf("not a typed value")
	}
	fn, _ := call.Fun.(*ast.Ident)
	arg, neg := call.Args[0], false
	if u, ok := arg.(*ast.UnaryExpr); ok && u.Op == token.SUB {
		arg, neg = u.X, true
	}
	lit, _ := arg.(*ast.BasicLit)
	if fn == nil || lit == nil {
		return nil, fmt.Errorf("not a typed literal")
	}
	n, err := literalInt(lit, neg)
	switch fn.Name {
	case "string":
		return strconv.Unquote(lit.Value)
	case "byte", "uint8":
		return uint8(n), err
	case "int32", "rune":
		return int32(n), err
	}
	return nil, fmt.Errorf("unexpected type %s", fn.Name)
}

func literalInt(lit *ast.BasicLit, neg bool) (int64, error) {
	if lit.Kind == token.CHAR {
		s, err := strconv.Unquote(lit.Value)
		if err != nil || s == "" {
			return 0, fmt.Errorf("bad char literal %s", lit.Value)
		}
		if len(s) == 1 {
			return int64(s[0]), nil
		}
		return int64([]rune(s)[0]), nil
	}
	n, err := strconv.ParseInt(lit.Value, 0, 64)
	if neg {
		n = -n
	}
	return n, err
}

// fuzzCaseOf assigns decoded values in FuzzObjectToRules' argument order.
func fuzzCaseOf(v []any) (c fuzzCase, err error) {
	if len(v) != 21 {
		return c, fmt.Errorf("%d values, want 21", len(v))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("value of the wrong type: %v", r)
		}
	}()
	c = fuzzCase{v[0].(string), v[1].(string), v[2].(string), v[3].(uint8), v[4].(string), v[5].(int32), v[6].(int32),
		v[7].(int32), v[8].(string), v[9].(string), v[10].(string), v[11].(string), v[12].(uint8), v[13].(int32),
		v[14].(string), v[15].(string), v[16].(string), v[17].(string), v[18].(string), v[19].(int32), v[20].(string)}
	return c, nil
}
