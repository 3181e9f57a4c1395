package probe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Answer is what a pod server says first.
type Answer struct {
	Pod        string // the answering pod's name
	SeenSource string // the source IP as the pod saw it (after any NAT)
	SeenPort   int    // the source port as the pod saw it
}

// Option adjusts a probe.
type Option func(*options)

type options struct {
	src         netip.Addr
	srcErr      error
	streamName  string // "tcp" or "sctp", for OpenLongLived
	streamProto int
}

// Src binds the probe's socket to a local address of the namespace, e.g.
// the client's second address 192.168.50.3, to test source ranges.
func Src(addr string) Option {
	return func(o *options) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			o.srcErr = fmt.Errorf("source address: %w", err)
			return
		}
		o.src = a
	}
}

// target is one probe's fully resolved destination and settings.
type target struct {
	ns, proto, addr string
	dst             netip.AddrPort
	src             netip.Addr
	timeout         time.Duration
	deadline        time.Time
}

func newTarget(ns, proto, addr string, timeout time.Duration, opts []Option) (target, error) {
	t := target{ns: ns, proto: proto, addr: addr, timeout: timeout, deadline: time.Now().Add(timeout)}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var err error
	if t.dst, err = netip.ParseAddrPort(addr); err != nil {
		return t, fmt.Errorf("%s probe: address must be ip:port: %w", proto, err)
	}
	t.dst = netip.AddrPortFrom(t.dst.Addr().Unmap(), t.dst.Port())
	switch {
	case timeout <= 0:
		return t, fmt.Errorf("%s probe: timeout must be positive", proto)
	case o.srcErr != nil:
		return t, fmt.Errorf("%s probe: %w", proto, o.srcErr)
	case o.src.IsValid() && o.src.Unmap().Is4() != t.dst.Addr().Is4():
		return t, fmt.Errorf("%s probe: source %s and destination %s differ in family", proto, o.src, addr)
	}
	t.src = o.src.Unmap()
	return t, nil
}

// open creates, binds and connects a socket for t and wraps it as a
// net.Conn whose deadline is the probe's.
func (t target) open(sotype, proto int) (net.Conn, error) {
	fd, err := socketIn(t.ns, family(t.dst.Addr()), sotype, proto)
	if err != nil {
		return nil, failure(t, "socket", err)
	}
	if err := t.connect(fd, sotype == unix.SOCK_STREAM); err != nil {
		unix.Close(fd)
		return nil, err
	}
	c, err := fileConn(fd, t.proto+":"+t.addr)
	if err != nil {
		return nil, failure(t, "socket", err)
	}
	if err := c.SetDeadline(t.deadline); err != nil {
		c.Close()
		return nil, failure(t, "deadline", err)
	}
	return c, nil
}

func (t target) connect(fd int, stream bool) error {
	if err := setRecvErr(fd, t.dst.Addr(), true); err != nil {
		return failure(t, "IP_RECVERR", err)
	}
	if t.src.IsValid() {
		if err := unix.Bind(fd, sockaddr(netip.AddrPortFrom(t.src, 0))); err != nil {
			return failure(t, "bind "+t.src.String(), err)
		}
	}
	err := unix.Connect(fd, sockaddr(t.dst))
	if errors.Is(err, unix.EINPROGRESS) {
		err = waitConnected(fd, t.deadline)
	}
	if err != nil {
		return failure(t, "connect", err)
	}
	if stream {
		// Established TCP with RECVERR would turn transient ICMP errors
		// into fatal ones; long-lived probes want kernel defaults.
		if err := setRecvErr(fd, t.dst.Addr(), false); err != nil {
			return failure(t, "IP_RECVERR", err)
		}
	}
	return nil
}

// TCP connects to addr (ip:port) from namespace ns and returns the pod
// server's greeting. timeout covers connecting and the greeting.
func TCP(ns, addr string, timeout time.Duration, opts ...Option) (Answer, error) {
	return greeting(ns, "tcp", unix.IPPROTO_TCP, addr, timeout, opts)
}

// SCTP is TCP over a one-to-one style SCTP association. On a kernel without
// SCTP it fails with ErrUnsupported.
func SCTP(ns, addr string, timeout time.Duration, opts ...Option) (Answer, error) {
	return greeting(ns, "sctp", unix.IPPROTO_SCTP, addr, timeout, opts)
}

func greeting(ns, name string, proto int, addr string, timeout time.Duration, opts []Option) (Answer, error) {
	c, err := OpenLongLived(ns, addr, timeout, append(opts, protocol(name, proto))...)
	if err != nil {
		return Answer{}, err
	}
	defer c.Close()
	return c.First, nil
}

// UDP sends one datagram to addr from ns and returns the reply. An ICMP
// port-unreachable (closed port, or REJECT) gives ErrRefused; silence gives
// ErrTimeout. The socket is connected, so, as for a real client, a reply from
// any address other than addr (broken reverse NAT) is ignored: ErrTimeout.
func UDP(ns, addr string, timeout time.Duration, opts ...Option) (Answer, error) {
	t, err := newTarget(ns, "udp", addr, timeout, opts)
	if err != nil {
		return Answer{}, err
	}
	c, err := t.open(unix.SOCK_DGRAM, unix.IPPROTO_UDP)
	if err != nil {
		return Answer{}, err
	}
	defer c.Close()
	if _, err := c.Write([]byte("probe\n")); err != nil {
		return Answer{}, failure(t, "send", err)
	}
	buf := make([]byte, 512)
	n, err := c.Read(buf)
	if err != nil {
		return Answer{}, failure(t, "receive", err)
	}
	a, err := parseAnswer(string(buf[:n]))
	if err != nil {
		return Answer{}, failure(t, "parse reply", err)
	}
	return a, nil
}

// TCPMany makes n separate TCP connections (each from a new source port)
// and counts answers per pod. It stops at the first failure and returns the
// counts so far with the error.
func TCPMany(ns, addr string, n int, timeout time.Duration, opts ...Option) (map[string]int, error) {
	return many(n, func() (Answer, error) { return TCP(ns, addr, timeout, opts...) })
}

// UDPMany is TCPMany for UDP: n datagrams, each from a new socket.
func UDPMany(ns, addr string, n int, timeout time.Duration, opts ...Option) (map[string]int, error) {
	return many(n, func() (Answer, error) { return UDP(ns, addr, timeout, opts...) })
}

func many(n int, probe func() (Answer, error)) (map[string]int, error) {
	counts := map[string]int{}
	for i := range n {
		a, err := probe()
		if err != nil {
			return counts, fmt.Errorf("probe %d of %d: %w", i+1, n, err)
		}
		counts[a.Pod]++
	}
	return counts, nil
}

// SCTPSupported reports nil if an SCTP socket can be created in ns, else an
// error wrapping ErrUnsupported (or why the check failed).
func SCTPSupported(ns string) error {
	fd, err := socketIn(ns, unix.AF_INET, unix.SOCK_STREAM, unix.IPPROTO_SCTP)
	if err != nil {
		return failure(target{ns: ns, proto: "sctp", addr: "-"}, "socket", err)
	}
	return unix.Close(fd)
}

// parseAnswer reads "<pod> <ip:port>" (a trailing newline is allowed).
func parseAnswer(line string) (Answer, error) {
	fields := strings.Fields(line)
	if len(fields) != 2 {
		return Answer{}, fmt.Errorf("want %q, got %q", "<pod> <ip:port>", line)
	}
	ap, err := netip.ParseAddrPort(fields[1])
	if err != nil {
		return Answer{}, fmt.Errorf("seen source in %q: %w", line, err)
	}
	return Answer{Pod: fields[0], SeenSource: ap.Addr().String(), SeenPort: int(ap.Port())}, nil
}

// readLine reads one newline-terminated line, mapping a clean EOF to a
// readable error.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if errors.Is(err, io.EOF) {
		return "", fmt.Errorf("closed by the server after %q: %w", line, err)
	}
	return line, err
}
