package iptables

import (
	"bytes"
	"net/netip"
	"strconv"
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

// comment appends `-m comment --comment "<parts...>"`, quoted as upstream
// quotes multi-word comments.
func (w *ruleWriter) comment(parts ...string) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteString(` -m comment --comment "`)
	for _, p := range parts {
		w.buf.WriteString(p)
	}
	w.buf.WriteByte('"')
	return w
}

// bareComment appends a single-token comment unquoted (upstream writes
// svcPortName comments without quotes).
func (w *ruleWriter) bareComment(c string) *ruleWriter {
	if w.discard {
		return w
	}
	w.buf.WriteString(" -m comment --comment ")
	w.buf.WriteString(c)
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
