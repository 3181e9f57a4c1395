package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// archive is a txtar file: a free-form comment, then files, each introduced
// by a "-- name --" line. The golden cases are archives (see
// testdata/golden/README.md).
type archive struct {
	comment []byte
	files   []archiveFile
}

type archiveFile struct {
	name string
	data []byte
}

// parseArchive reads a txtar file. A file's data is every line up to the
// next marker line, each with its newline.
func parseArchive(data []byte) archive {
	var a archive
	cur := &a.comment
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if name, ok := markerName(line); ok {
			a.files = append(a.files, archiveFile{name: name})
			cur = &a.files[len(a.files)-1].data
			continue
		}
		*cur = append(append(*cur, line...), '\n')
	}
	return a
}

func markerName(line []byte) (string, bool) {
	s := string(line)
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 7 {
		return "", false
	}
	return strings.TrimSpace(s[3 : len(s)-3]), true
}

// format writes a back as txtar; parseArchive(a.format()) is a (file data
// gets a final newline if it lacked one).
func (a archive) format() []byte {
	var b bytes.Buffer
	b.Write(a.comment)
	for _, f := range a.files {
		fmt.Fprintf(&b, "-- %s --\n", f.name)
		b.Write(f.data)
		if len(f.data) > 0 && f.data[len(f.data)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

// file returns the data of the named file.
func (a archive) file(name string) ([]byte, bool) {
	for _, f := range a.files {
		if f.name == name {
			return f.data, true
		}
	}
	return nil, false
}

// set replaces the named file's data, or appends the file.
func (a *archive) set(name string, data []byte) {
	for i := range a.files {
		if a.files[i].name == name {
			a.files[i].data = data
			return
		}
	}
	a.files = append(a.files, archiveFile{name: name, data: data})
}

// remove drops the named file.
func (a *archive) remove(name string) {
	a.files = slices.DeleteFunc(a.files, func(f archiveFile) bool { return f.name == name })
}

// lineDiff shows how got differs from want: the lines of a longest common
// subsequence as context (at most two around each change), "-" for lines
// only in want, "+" for lines only in got, each with its line number in
// the text it comes from (context lines: want's).
func lineDiff(want, got string) string {
	w, g := splitLines(want), splitLines(got)
	// lcs[i][j] is the length of the longest common subsequence of w[i:] and g[j:].
	lcs := make([][]int, len(w)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		line string
		at   int
	}
	var ops []op
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			ops, i, j = append(ops, op{' ', w[i], i + 1}), i+1, j+1
		case i < len(w) && (j == len(g) || lcs[i+1][j] >= lcs[i][j+1]):
			ops, i = append(ops, op{'-', w[i], i + 1}), i+1
		default:
			ops, j = append(ops, op{'+', g[j], j + 1}), j+1
		}
	}
	var b strings.Builder
	last := -1
	for k, o := range ops {
		if o.kind == ' ' && !nearChange(ops, k, func(o op) bool { return o.kind != ' ' }) {
			continue
		}
		if last >= 0 && k > last+1 {
			b.WriteString("  ...\n")
		}
		last = k
		fmt.Fprintf(&b, "%c %4d %s", o.kind, o.at, strings.TrimSuffix(o.line, "\n")+"\n")
	}
	return b.String()
}

// splitLines splits s after each newline, without an empty last element.
func splitLines(s string) []string {
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// nearChange reports whether an element within two positions of k is a change.
func nearChange[T any](ops []T, k int, change func(T) bool) bool {
	for d := -2; d <= 2; d++ {
		if k+d >= 0 && k+d < len(ops) && change(ops[k+d]) {
			return true
		}
	}
	return false
}
