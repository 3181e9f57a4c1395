package iptables

import (
	"bytes"
	"net/netip"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// ruleWriter appends iptables-restore rule lines to a buffer and counts them.
// In discard mode it writes nothing but still counts, so a partial sync can
// report the size of chains it did not rewrite without formatting them.
// Calls chain: w.add(chain).arg("-j").arg(target).end().
type ruleWriter struct {
	buf     *bytes.Buffer
	lines   int
	discard bool
}

// add starts a rule appended to chain.
func (w *ruleWriter) add(chain string) *ruleWriter {
	if !w.discard {
		w.buf.WriteString("-A ")
		w.buf.WriteString(chain)
	}
	return w
}

// arg appends space-separated arguments.
func (w *ruleWriter) arg(args ...string) *ruleWriter {
	if w.discard {
		return w
	}
	for _, a := range args {
		w.buf.WriteByte(' ')
		w.buf.WriteString(a)
	}
	return w
}

// comment appends ` -m comment --comment "<parts...>"`. Comments carry
// object names, so the text is always double-quoted with `\` and `"`
// escaped (what iptables-restore undoes inside quotes) and is first made
// safe by CommentText. Text that needs none of it (validated names always)
// is written straight from the parts after one scan.
func (w *ruleWriter) comment(parts ...string) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteString(` -m comment --comment "`)
	if plainComment(parts) {
		for _, p := range parts {
			w.buf.WriteString(p)
		}
	} else {
		writeEscaped(w.buf, CommentText(parts...))
	}
	w.buf.WriteByte('"')
	return w
}

// addr appends " <flag> <address>".
func (w *ruleWriter) addr(flag string, a netip.Addr) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(flag)
	w.buf.WriteByte(' ')
	w.buf.Write(a.AppendTo(w.buf.AvailableBuffer()))
	return w
}

// prefix appends " <flag> <cidr>" with host bits cleared, as a parsed net.IPNet prints.
func (w *ruleWriter) prefix(flag string, p netip.Prefix) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(flag)
	w.buf.WriteByte(' ')
	w.buf.Write(p.Masked().AppendTo(w.buf.AvailableBuffer()))
	return w
}

// port appends " <flag> <n>".
func (w *ruleWriter) port(flag string, n int32) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteByte(' ')
	w.buf.WriteString(flag)
	w.buf.WriteByte(' ')
	w.buf.Write(strconv.AppendInt(w.buf.AvailableBuffer(), int64(n), 10))
	return w
}

// proto appends "-m <p> -p <p>".
func (w *ruleWriter) proto(p string) *ruleWriter {
	return w.arg("-m", p, "-p", p)
}

// end terminates the rule line.
func (w *ruleWriter) end() {
	w.lines++
	if !w.discard {
		w.buf.WriteByte('\n')
	}
}

// MaxCommentLen is the most bytes of a comment the kernel keeps (xt_comment).
const MaxCommentLen = 255

// CommentText is the text kproxy stores as the comment made of parts, and
// what iptables-save shows: invalid UTF-8 and control characters (NUL, CR,
// LF, tab, ESC, DEL, C1) become '?', since iptables-restore reads a line
// with fgets (a newline can never be inside an argument) and ends it at NUL,
// and iptables-save prints control characters raw; the result is cut to
// MaxCommentLen bytes on a UTF-8 boundary.
func CommentText(parts ...string) string {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	s := make([]byte, 0, n)
	for _, p := range parts {
		s = append(s, p...)
	}
	out := make([]byte, 0, min(len(s), MaxCommentLen))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if (r == utf8.RuneError && size <= 1) || unicode.IsControl(r) {
			r = '?'
		}
		if len(out)+utf8.RuneLen(r) > MaxCommentLen {
			break
		}
		out = utf8.AppendRune(out, r)
		i += size
	}
	return string(out)
}

// plainComment reports whether parts joined are printable ASCII without
// quote or backslash and short enough: CommentText would not change them
// and they need no escape.
func plainComment(parts []string) bool {
	n := 0
	for _, p := range parts {
		n += len(p)
		for i := 0; i < len(p); i++ {
			if c := p[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
				return false
			}
		}
	}
	return n <= MaxCommentLen
}

// writeEscaped writes s for inside double quotes: a backslash before each
// `"` and `\`.
func writeEscaped(b *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
}

// restoreArg makes one argument safe for an iptables-restore line: bare when
// it is non-empty printable ASCII without blank, quote or backslash, else
// double-quoted and escaped, with bytes no line can carry (control
// characters) replaced by '?'. Used for configured strings (local-traffic
// detector matches); iptables itself still judges whether they are valid.
func restoreArg(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = c > ' ' && c < 0x7f && c != '"' && c != '\\' && c != '\''
	}
	if safe {
		return s
	}
	var b bytes.Buffer
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f {
			c = '?'
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
