package ruleset

import (
	"errors"
	"strings"
)

// SplitArgs splits one iptables-restore line into arguments the way
// iptables-restore does: blanks separate arguments, double quotes group
// blanks into one argument, and inside quotes a backslash escapes the next
// character.
func SplitArgs(line string) ([]string, error) {
	var (
		args    []string
		cur     strings.Builder
		inArg   bool
		quoted  bool
		escaped bool
	)
	flush := func() {
		if inArg {
			args = append(args, cur.String())
		}
		cur.Reset()
		inArg = false
	}
	for _, r := range line {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case quoted && r == '\\':
			escaped = true
		case quoted && r == '"':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '"':
			quoted, inArg = true, true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r':
			flush()
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quoted argument")
	}
	flush()
	return args, nil
}

// QuoteArg renders an argument the way iptables-save prints strings such as
// comments: bare when it is non-empty and made only of [A-Za-z0-9_-],
// otherwise in double quotes with ", \ and ' escaped by a backslash.
func QuoteArg(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' || r == '\'' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// quoteRestoreArg quotes an argument only when iptables-restore would
// otherwise split it or lose characters.
func quoteRestoreArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\"\\'") {
		return s
	}
	return QuoteArg(s)
}
