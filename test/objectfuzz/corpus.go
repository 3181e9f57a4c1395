package objectfuzz

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CorpusDir is the checked-in corpus, relative to the module root: Go's
// fuzzing engine runs it as FuzzObjectToRules' seeds (package iptables).
const CorpusDir = "iptables/testdata/fuzz/FuzzObjectToRules"

// ReadCorpus decodes every file of the corpus directory dir, by file name.
func ReadCorpus(dir string) (map[string]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	out := make(map[string]Case, len(files))
	for _, f := range files {
		c, err := ReadCorpusFile(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out[filepath.Base(f)] = c
	}
	return out, nil
}

// ReadCorpusFile decodes a "go test fuzz v1" file of the fuzz functions' arguments.
func ReadCorpusFile(path string) (Case, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Case{}, err
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) == 0 || lines[0] != "go test fuzz v1" {
		return Case{}, fmt.Errorf("not a fuzz corpus file")
	}
	var vals []any
	for _, l := range lines[1:] {
		v, err := corpusValue(l)
		if err != nil {
			return Case{}, fmt.Errorf("%q: %w", l, err)
		}
		vals = append(vals, v)
	}
	return caseOf(vals)
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

// caseOf assigns decoded values in the fuzz functions' argument order.
func caseOf(v []any) (c Case, err error) {
	if len(v) != 21 {
		return c, fmt.Errorf("%d values, want 21", len(v))
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("value of the wrong type: %v", r)
		}
	}()
	c = Case{v[0].(string), v[1].(string), v[2].(string), v[3].(uint8), v[4].(string), v[5].(int32), v[6].(int32),
		v[7].(int32), v[8].(string), v[9].(string), v[10].(string), v[11].(string), v[12].(uint8), v[13].(int32),
		v[14].(string), v[15].(string), v[16].(string), v[17].(string), v[18].(string), v[19].(int32), v[20].(string)}
	return c, nil
}
