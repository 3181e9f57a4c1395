package ruleset

import (
	"errors"
	"strings"
)

// Limits of iptables-restore 1.8.9 that apply to one input line.
const (
	// MaxLineLen is the longest line iptables-restore reads as one line
	// (without its newline): it reads with fgets into 10240 bytes, so a
	// longer line is cut in two and its tail parsed as another statement.
	MaxLineLen = 10240 - 2
	// MaxArgLen is the longest argument: add_param_to_argv fails with
	// "Parameter too long!" when an argument reaches 1024 bytes.
	MaxArgLen = 1023
	// MaxArgs is the most arguments a rule line may have: argv holds 255
	// entries, three of them "iptables-restore -t TABLE".
	MaxArgs = 255 - 1 - 3
)

// SplitArgs splits one iptables-restore line into arguments exactly as
// iptables-restore 1.8.9 does (add_param_to_argv in xshared.c), byte by
// byte:
//   - the line ends at its first NUL byte (the C string ends there);
//   - outside double quotes, blanks (space, tab, newline; not CR) separate
//     arguments and every other byte, backslash included, is literal;
//   - a double quote opens a quoted part of the current argument; inside
//     it, a backslash takes the next byte literally and a double quote
//     closes it AND ends the argument ("a"b is two arguments), so ""
//     is an empty argument;
//   - a quote still open at the end of the line keeps what it holds: the
//     line includes its newline (as fgets reads it), so pass it with the
//     newline when it had one.
//
// Errors are the limits iptables-restore enforces while splitting.
func SplitArgs(line string) ([]string, error) {
	if i := strings.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	var args []string
	var cur []byte
	quoteOpen, escaped := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		if quoteOpen {
			switch {
			case escaped:
				cur, escaped = append(cur, c), false
				continue
			case c == '\\':
				escaped = true
				continue
			case c != '"':
				cur = append(cur, c)
				continue
			}
			quoteOpen = false // the closing quote ends the argument below
		} else if c == '"' {
			quoteOpen = true
			continue
		}
		switch c {
		case '"':
		case ' ', '\t', '\n':
			if len(cur) == 0 {
				continue
			}
		default:
			cur = append(cur, c)
			continue
		}
		if len(cur) > MaxArgLen {
			return nil, errors.New("parameter too long")
		}
		args = append(args, string(cur))
		cur = cur[:0]
	}
	if len(cur) > MaxArgLen {
		return nil, errors.New("parameter too long")
	}
	if len(cur) > 0 {
		args = append(args, string(cur))
	}
	if len(args) > MaxArgs {
		return nil, errors.New("too many arguments")
	}
	return args, nil
}

// saveNoQuote are the bytes iptables-save prints strings (comments) with
// unquoted (xtables_save_string).
const saveNoQuote = "_-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// QuoteArg renders an argument the way iptables-save prints strings such as
// comments (xtables_save_string): bare when it is non-empty and made only of
// [A-Za-z0-9_-], otherwise in double quotes with ", \ and ' escaped by a
// backslash. Like iptables-save it works on bytes: other bytes, control
// characters and invalid UTF-8 included, are printed as they are.
func QuoteArg(s string) string {
	if s != "" && onlyBytes(s, saveNoQuote) {
		return s
	}
	b := make([]byte, 0, len(s)+2)
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(append(b, '"'))
}

func onlyBytes(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// quoteRestoreArg quotes an argument only when iptables-restore would
// otherwise split it or lose characters.
func quoteRestoreArg(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n\"\\'") {
		return s
	}
	return QuoteArg(s)
}
