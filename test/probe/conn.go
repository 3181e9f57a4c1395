package probe

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// protocol selects the stream protocol of OpenLongLived (default TCP).
func protocol(name string, proto int) Option {
	return func(o *options) {
		o.streamName, o.streamProto = name, proto
	}
}

// OverSCTP makes OpenLongLived use SCTP instead of TCP.
func OverSCTP() Option {
	return protocol("sctp", unix.IPPROTO_SCTP)
}

// Conn is a long-lived stream connection to a pod server, for checking that
// established flows survive (or do not survive) rule changes.
type Conn struct {
	// First is the greeting read when the connection opened.
	First Answer

	t     target
	conn  net.Conn
	lines *bufio.Reader
	seq   int
}

// OpenLongLived connects to addr from ns, reads the greeting and keeps the
// connection open. timeout applies to the connect and to every Ping.
func OpenLongLived(ns, addr string, timeout time.Duration, opts ...Option) (*Conn, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	name, proto := "tcp", unix.IPPROTO_TCP
	if o.streamName != "" {
		name, proto = o.streamName, o.streamProto
	}
	t, err := newTarget(ns, name, addr, timeout, opts)
	if err != nil {
		return nil, err
	}
	c, err := t.open(unix.SOCK_STREAM, proto)
	if err != nil {
		return nil, err
	}
	conn := &Conn{t: t, conn: c, lines: bufio.NewReader(c)}
	line, err := readLine(conn.lines)
	if err == nil {
		conn.First, err = parseAnswer(line)
	}
	if err != nil {
		c.Close()
		return nil, failure(t, "greeting", err)
	}
	return conn, nil
}

// Ping writes a line and waits for its echo; it returns the name of the pod
// that echoed it.
func (c *Conn) Ping() (string, error) {
	c.seq++
	msg := fmt.Sprintf("ping-%d", c.seq)
	if err := c.conn.SetDeadline(time.Now().Add(c.t.timeout)); err != nil {
		return "", failure(c.t, "deadline", err)
	}
	if _, err := fmt.Fprintf(c.conn, "%s\n", msg); err != nil {
		return "", failure(c.t, "ping", err)
	}
	line, err := readLine(c.lines)
	if err != nil {
		return "", failure(c.t, "ping echo", err)
	}
	fields := strings.Fields(line)
	if len(fields) != 2 || fields[1] != msg {
		return "", failure(c.t, "ping echo", fmt.Errorf("want %q, got %q", "<pod> "+msg, line))
	}
	return fields[0], nil
}

// LocalAddr is the connection's own address (the client side of the tuple).
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// Close closes the connection.
func (c *Conn) Close() error { return c.conn.Close() }
