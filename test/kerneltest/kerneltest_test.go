package kerneltest

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestNoSkipBypassesThePolicy scans every Go file of the repository: a
// t.Skip, Skipf or SkipNow call, or a read of KPROXY_KERNEL_TESTS, outside
// this package would let a test skip without the policy (a missing tool
// that passes CI silently), so each is a failure.
func TestNoSkipBypassesThePolicy(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	own, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	found, files, err := scanTree(root, own)
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("scanned only %d Go files under %s; the scan proves nothing", files, root)
	}
	for _, f := range found {
		t.Errorf("%s: skip outside test/kerneltest; use kerneltest.SkipOrFail, NeedRoot, NeedTools, RunsElsewhere, GuestOnly or OptIn", f)
	}
	t.Logf("scanned %d Go files", files)
}

func TestScannerFindsEveryForm(t *testing.T) {
	src := `package p
import ("os"; "testing")
type opts struct{ Skip []string }
func a(t *testing.T, b *testing.B, tb testing.TB) {
	t.Skip("x")
	b.Skipf("%d", 1)
	tb.SkipNow()
	_ = opts{Skip: nil}.Skip
	_ = os.Getenv("KPROXY_KERNEL_TESTS")
	_, _ = os.LookupEnv("KPROXY_KERNEL_TESTS")
	_ = os.Getenv("OTHER")
}
`
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var lines []int
	for _, pos := range bypasses(f) {
		lines = append(lines, fset.Position(pos).Line)
	}
	if want := []int{5, 6, 7, 9, 10}; !slices.Equal(lines, want) {
		t.Errorf("bypasses on lines %v, want %v", lines, want)
	}
}

func moduleRoot() (string, error) {
	dir, err := filepath.Abs(".")
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil &&
			strings.HasPrefix(string(data), "module github.com/kproxy/kproxy\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/kproxy/kproxy above the test directory")
		}
		dir = parent
	}
}

// scanTree parses every .go file under root except those in skipDir (this
// package) and testdata, and returns "file:line" of each bypass.
func scanTree(root, skipDir string) (found []string, files int, err error) {
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path == skipDir || name == "testdata" || name == "vendor" || (strings.HasPrefix(name, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return fmt.Errorf("parse %s: %w", path, err)
		}
		files++
		for _, pos := range bypasses(f) {
			p := fset.Position(pos)
			rel, _ := filepath.Rel(root, p.Filename)
			found = append(found, rel+":"+strconv.Itoa(p.Line))
		}
		return nil
	})
	return found, files, err
}

// bypasses finds calls of a method named Skip, Skipf or SkipNow (on any
// receiver: t, b, tb) and os.Getenv/LookupEnv of KPROXY_KERNEL_TESTS.
func bypasses(f *ast.File) []token.Pos {
	var out []token.Pos
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		switch sel.Sel.Name {
		case "Skip", "Skipf", "SkipNow":
			out = append(out, call.Pos())
		case "Getenv", "LookupEnv":
			if len(call.Args) == 1 {
				if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Value == strconv.Quote(Env) {
					out = append(out, call.Pos())
				}
			}
		}
		return true
	})
	return out
}

// recorder is a testing.TB that records how a policy function ended the
// test instead of ending it.
type recorder struct {
	testing.TB
	calls []string
}

func (r *recorder) Helper()           {}
func (r *recorder) Fatal(args ...any) { r.calls = append(r.calls, "fatal: "+fmt.Sprint(args...)) }
func (r *recorder) Fatalf(f string, args ...any) {
	r.calls = append(r.calls, "fatal: "+fmt.Sprintf(f, args...))
}
func (r *recorder) Skip(args ...any) { r.calls = append(r.calls, "skip: "+fmt.Sprint(args...)) }
func (r *recorder) Skipf(f string, args ...any) {
	r.calls = append(r.calls, "skip: "+fmt.Sprintf(f, args...))
}
func (r *recorder) first() string { return append(r.calls, "none")[0] }

func TestPolicy(t *testing.T) {
	tests := []struct {
		name, require, inGuest string
		call                   func(testing.TB)
		want                   string // prefix of the first call
	}{
		{"missing tool, no require", "", "", func(tb testing.TB) { SkipOrFail(tb, "no ipset") }, "skip: no ipset"},
		{"missing tool, require", "require", "", func(tb testing.TB) { SkipOrFail(tb, "no ipset") }, "fatal: no ipset (KPROXY_KERNEL_TESTS=require"},
		{"tool found, require", "require", "", func(tb testing.TB) { NeedTools(tb, "x", "sh") }, "none"},
		{"tool not in PATH, require", "require", "", func(tb testing.TB) { NeedTools(tb, "x", "kpx-no-such-tool") },
			"fatal: x: kpx-no-such-tool not found in PATH"},
		{"runs elsewhere, require", "require", "", func(tb testing.TB) { RunsElsewhere(tb, "in the guest, started by X") },
			"skip: runs elsewhere: in the guest, started by X"},
		{"runs elsewhere without a place", "", "", func(tb testing.TB) { RunsElsewhere(tb, "") }, "fatal: kerneltest.RunsElsewhere"},
		{"guest only, on the host", "require", "", func(tb testing.TB) { GuestOnly(tb, "test/vm TestX") },
			"skip: runs elsewhere: inside the qemu guest, started by test/vm TestX"},
		{"guest only, in the guest", "require", "1", func(tb testing.TB) { GuestOnly(tb, "test/vm TestX") }, "none"},
		{"host only, in the guest", "require", "1", func(tb testing.TB) { HostOnly(tb) }, "skip: runs elsewhere: on the host"},
		{"opt-in not set, require", "require", "", func(tb testing.TB) { OptIn(tb, "KPX_TEST_OPT_IN_UNSET", "a smoke test") },
			"skip: opt-in, not part of the suite: a smoke test; set KPX_TEST_OPT_IN_UNSET=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(Env, tt.require)
			t.Setenv(EnvInGuest, tt.inGuest)
			r := &recorder{TB: t}
			tt.call(r)
			if got := r.first(); !strings.HasPrefix(got, tt.want) {
				t.Errorf("first call %q, want one starting %q", got, tt.want)
			}
		})
	}
}
