package nftlisting

import (
	"fmt"
	"slices"
	"strings"
)

// braceBalance is the number of "{" minus the number of "}" in s outside
// double-quoted strings.
func braceBalance(s string) int {
	n, quoted := 0, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case quoted:
		case r == '{':
			n++
		case r == '}':
			n--
		}
	}
	return n
}

// sortedElements splits "{ a, b, ... }" into its elements (anonymous sets
// inside them sorted too) and sorts them.
func sortedElements(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	inner, ok := strings.CutPrefix(s, "{")
	if inner, ok = strings.CutSuffix(inner, "}"); !ok || braceBalance(inner) != 0 {
		return nil, fmt.Errorf("elements %q: want \"{ ... }\"", s)
	}
	var elems []string
	for _, e := range splitTopLevel(inner) {
		norm, err := sortAnonymousSets(e)
		if err != nil {
			return nil, err
		}
		elems = append(elems, norm)
	}
	slices.Sort(elems)
	return elems, nil
}

// sortAnonymousSets sorts the elements of every "{ ... }" in a rule line,
// innermost first.
func sortAnonymousSets(line string) (string, error) {
	var b strings.Builder
	quoted := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if c == '"' {
			quoted = !quoted
		}
		if quoted || c != '{' {
			if c == '}' && !quoted {
				return "", fmt.Errorf("unbalanced \"}\"")
			}
			b.WriteByte(c)
			continue
		}
		end := matchingBrace(line, i)
		if end < 0 {
			return "", fmt.Errorf("unbalanced \"{\"")
		}
		elems, err := sortedElements(line[i : end+1])
		if err != nil {
			return "", err
		}
		b.WriteString("{ " + strings.Join(elems, ", ") + " }")
		i = end
	}
	return b.String(), nil
}

// matchingBrace returns the index of the "}" closing the "{" at open, or -1.
func matchingBrace(s string, open int) int {
	depth, quoted := 0, false
	for i := open; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case quoted:
		case s[i] == '{':
			depth++
		case s[i] == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// splitTopLevel splits s at the commas outside quotes and braces and trims
// each part; empty parts are dropped.
func splitTopLevel(s string) []string {
	var parts []string
	depth, quoted, start := 0, false, 0
	add := func(p string) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '"':
			quoted = !quoted
		case quoted:
		case s[i] == '{':
			depth++
		case s[i] == '}':
			depth--
		case s[i] == ',' && depth == 0:
			add(s[start:i])
			start = i + 1
		}
	}
	add(s[start:])
	return parts
}
