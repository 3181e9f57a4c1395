package nftnl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Options configure a Conn.
type Options struct {
	// NetNS is the file of the network namespace to write in
	// (/run/netns/NAME, /proc/PID/ns/net); empty: the caller's namespace,
	// unless NetNSFd is set.
	NetNS string
	// NetNSFd is an open network namespace file, used when NetNS is empty
	// and NetNSFd is positive. The caller keeps it open while the Conn
	// lives: a Conn reopens its socket after a failed batch.
	NetNSFd int
	// Timeout bounds one Run when its context has no earlier deadline;
	// zero means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a Run whose context has no deadline, so that a
// kernel that never answers cannot stop the caller's sync loop for good.
const DefaultTimeout = 10 * time.Second

// ErrOutcomeUnknown marks a Run that sent its batch but could not read all
// the kernel's answers (deadline, cancellation, socket overflow): the batch
// may or may not have been applied, and the caller should resync fully.
var ErrOutcomeUnknown = errors.New("nf_tables batch outcome unknown")

// Conn writes batches to nf_tables over one netlink socket, kept open
// across batches (opening one per batch costs more than a small batch).
// A Conn is safe for concurrent use; batches are written one at a time.
type Conn struct {
	opts Options
	mu   sync.Mutex
	// nl is nil after a Run that left answers unread; the next Run opens a
	// new socket rather than reading stale acks.
	nl     *netlink.Conn
	closed bool
	// seq numbers the next batch's messages (guarded by mu); the kernel
	// echoes it in each answer.
	seq uint32
	// setDumps counts the anonymous sets whose elements ChainDigests
	// dumped (tests check which sets need no dump).
	setDumps atomic.Int64
}

// Open opens a netlink socket to nf_tables in the namespace of opts.
func Open(opts Options) (*Conn, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	c := &Conn{opts: opts, seq: uint32(time.Now().UnixNano())}
	nl, err := c.dial()
	if err != nil {
		return nil, err
	}
	c.nl = nl
	return c, nil
}

func (c *Conn) dial() (*netlink.Conn, error) {
	cfg := &netlink.Config{}
	switch {
	case c.opts.NetNS != "":
		f, err := os.Open(c.opts.NetNS)
		if err != nil {
			return nil, fmt.Errorf("open network namespace: %w", err)
		}
		defer f.Close()
		cfg.NetNS = int(f.Fd())
	case c.opts.NetNSFd > 0:
		cfg.NetNS = c.opts.NetNSFd
	}
	nl, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, fmt.Errorf("netlink socket to nf_tables: %w", err)
	}
	// The kernel's message and the offset of a rejected element; older
	// kernels lack it, which only makes errors less precise.
	_ = nl.SetOption(netlink.ExtendedAcknowledge, true)
	return nl, nil
}

// Close closes the socket.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.nl == nil {
		return nil
	}
	err := c.nl.Close()
	c.nl = nil
	return err
}

// Run writes b as one transaction: the kernel applies all of it or, if any
// operation fails, none. An error names the first failing operation (an
// *OpError wrapping the kernel's errno, so errors.Is(err, unix.ENOENT)
// works), or wraps ErrOutcomeUnknown. An empty batch writes nothing.
func (c *Conn) Run(ctx context.Context, b *Batch) error {
	if b == nil || b.Len() == 0 {
		return nil
	}
	msgs, err := encodeBatch(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if c.closed {
		return errors.New("nf_tables batch on a closed Conn")
	}
	if c.nl == nil {
		nl, err := c.dial()
		if err != nil {
			return err
		}
		c.nl = nl
	}
	clean, err := c.exchange(ctx, c.nl, b, msgs)
	if !clean {
		_ = c.nl.Close()
		c.nl = nil
	}
	return err
}

// nextSeq reserves n sequence numbers and returns the first. None is 0:
// an error answer with sequence 0 would not name its request.
func (c *Conn) nextSeq(n int) uint32 {
	if c.seq == 0 || c.seq+uint32(n) < c.seq {
		c.seq = 1
	}
	seq := c.seq
	c.seq += uint32(n)
	return seq
}

// bound gives nl the earlier of ctx's deadline and the Conn's timeout, and
// makes ctx's cancellation interrupt a blocked read by moving the deadline
// into the past; stop undoes the latter and reports whether it had not
// fired.
func (c *Conn) bound(ctx context.Context, nl *netlink.Conn) (stop func() bool, err error) {
	deadline := time.Now().Add(c.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := nl.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("socket deadline: %w", err)
	}
	return context.AfterFunc(ctx, func() { _ = nl.SetDeadline(time.Unix(1, 0)) }), nil
}

// exchange sends the batch and reads one ack per request; clean is false
// when answers may be left unread on the socket.
func (c *Conn) exchange(ctx context.Context, nl *netlink.Conn, b *Batch, msgs []message) (clean bool, err error) {
	stop, err := c.bound(ctx, nl)
	if err != nil {
		return false, err
	}
	// If the cancellation fired, it may still be running: the socket is
	// not reused.
	defer func() {
		if !stop() {
			clean = false
		}
	}()
	seq := c.nextSeq(len(msgs) + 2)
	buf := frame(b.fam, msgs, seq)
	if err := sizeBuffers(nl, len(buf), len(msgs)+2); err != nil {
		return false, err
	}
	if err := send(nl, buf); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr // the deadline moved by cancellation
		}
		return false, fmt.Errorf("send nf_tables batch: %w", err)
	}
	return readAcks(ctx, nl, b, msgs, seq)
}
