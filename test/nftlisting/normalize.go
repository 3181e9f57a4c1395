package nftlisting

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	handleComment = regexp.MustCompile(`\s+# handle \d+$`)
	counterValues = regexp.MustCompile(`packets \d+ bytes \d+`)
	expiresValue  = regexp.MustCompile(` expires [0-9a-z]+`)
)

// table is one "table FAMILY NAME { ... }" of a listing.
type table struct {
	header string   // "table ip kube-proxy"
	attrs  []string // table-level lines (comment, flags), in listing order
	blocks []block
}

// block is a chain, set, map or other named object of a table.
type block struct {
	kind, name string
	lines      []string // body lines, elements already split and sorted
}

// Normalize returns listing (the output of "nft list table" or "nft list
// ruleset", with or without -a) in canonical form; see the package doc.
func Normalize(listing string) (string, error) {
	tables, err := parse(logicalLines(listing))
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, t := range tables {
		t.write(&b)
	}
	return b.String(), nil
}

// logicalLines trims the listing's lines, drops empty ones and per-run
// values, and joins a line whose braces are not balanced with the lines
// that follow until they are: nft wraps a long "elements = { ... }" over
// several lines, and a brace opening a block ends its line.
func logicalLines(listing string) []string {
	var out []string
	var pending string
	for raw := range strings.Lines(listing) {
		line := strings.TrimSpace(handleComment.ReplaceAllString(strings.TrimRight(raw, "\n"), ""))
		if line == "" {
			continue
		}
		if pending != "" {
			line = pending + " " + line
			pending = ""
		}
		if strings.HasPrefix(line, "elements = {") && braceBalance(line) > 0 {
			pending = line
			continue
		}
		line = counterValues.ReplaceAllString(line, "packets 0 bytes 0")
		out = append(out, expiresValue.ReplaceAllString(line, ""))
	}
	if pending != "" {
		out = append(out, pending) // parse reports the unbalanced braces
	}
	return out
}

// parse reads tables from logical lines.
func parse(lines []string) ([]table, error) {
	var tables []table
	for i := 0; i < len(lines); {
		header, ok := strings.CutSuffix(lines[i], " {")
		if !ok || !strings.HasPrefix(header, "table ") {
			return nil, fmt.Errorf("line %q: want \"table FAMILY NAME {\"", lines[i])
		}
		t := table{header: header}
		next, err := t.parseBody(lines, i+1)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", header, err)
		}
		slices.SortFunc(t.blocks, func(a, b block) int {
			return cmp.Or(cmp.Compare(a.kind, b.kind), cmp.Compare(a.name, b.name))
		})
		tables = append(tables, t)
		i = next
	}
	return tables, nil
}

// parseBody reads a table's body from lines[i:] up to its closing brace and
// returns the index after it.
func (t *table) parseBody(lines []string, i int) (int, error) {
	for ; i < len(lines); i++ {
		line := lines[i]
		if line == "}" {
			return i + 1, nil
		}
		head, ok := strings.CutSuffix(line, " {")
		if !ok {
			t.attrs = append(t.attrs, line)
			continue
		}
		kind, name, ok := strings.Cut(head, " ")
		if !ok {
			return 0, fmt.Errorf("line %q: want \"KIND NAME {\"", line)
		}
		b := block{kind: kind, name: name}
		next, err := b.parseBody(lines, i+1)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", kind, name, err)
		}
		t.blocks = append(t.blocks, b)
		i = next - 1
	}
	return 0, fmt.Errorf("no closing brace")
}

// parseBody reads a block's body up to its closing brace and returns the
// index after it.
func (b *block) parseBody(lines []string, i int) (int, error) {
	for ; i < len(lines); i++ {
		line := lines[i]
		if line == "}" {
			return i + 1, nil
		}
		if braceBalance(line) != 0 {
			return 0, fmt.Errorf("line %q: unbalanced braces", line)
		}
		if rest, ok := strings.CutPrefix(line, "elements = "); ok {
			elems, err := sortedElements(rest)
			if err != nil {
				return 0, err
			}
			b.lines = append(b.lines, "elements = {")
			for j, e := range elems {
				if j < len(elems)-1 {
					e += ","
				}
				b.lines = append(b.lines, "\t"+e)
			}
			b.lines = append(b.lines, "}")
			continue
		}
		norm, err := sortAnonymousSets(line)
		if err != nil {
			return 0, fmt.Errorf("line %q: %w", line, err)
		}
		b.lines = append(b.lines, norm)
	}
	return 0, fmt.Errorf("no closing brace")
}

func (t table) write(b *strings.Builder) {
	b.WriteString(t.header + " {\n")
	for _, a := range t.attrs {
		b.WriteString("\t" + a + "\n")
	}
	for _, bl := range t.blocks {
		fmt.Fprintf(b, "\t%s %s {\n", bl.kind, bl.name)
		for _, l := range bl.lines {
			b.WriteString("\t\t" + l + "\n")
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
}
