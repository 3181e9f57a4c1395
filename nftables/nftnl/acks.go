package nftnl

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// OpError is the kernel's rejection of one operation of a batch; the batch
// was not applied. It unwraps to the kernel's errno (a unix.Errno).
type OpError struct {
	// Op is the operation's index in the batch, in the order it was added.
	Op int
	// Element is the index of the rejected element in an AddElements or
	// DeleteElements operation, or -1 when the kernel did not say.
	Element int
	// Text is the operation (and element) as nft text.
	Text string
	// Message is the kernel's extended-ack message, often empty.
	Message string
	Err     error
	// Others counts the batch's further rejected requests, often
	// consequences of the first (the kernel goes on checking the batch).
	Others int
}

func (e *OpError) Error() string {
	s := e.Text + ": " + e.Err.Error()
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	if e.Others > 0 {
		s += fmt.Sprintf(" (and %d more rejected requests)", e.Others)
	}
	return s
}

func (e *OpError) Unwrap() error { return e.Err }

// frame writes msgs as one nf_tables transaction into one buffer, as
// sendmsg takes it: BATCH_BEGIN, the requests, BATCH_END, numbered from
// seq on (request i is seq+1+i). Only the last request asks for an ack, as
// nft asks for none: the kernel answers every failed request anyway, and
// the last one's ack, which comes after them all, says the batch was
// processed. A 20000-request chunk of a full sync would otherwise queue
// 20000 acks. One exact-size buffer: framing through netlink.Message
// copied each request twice more and grew the buffer by doubling.
func frame(f Family, msgs []message, seq uint32) []byte {
	size := 2 * (unix.NLMSG_HDRLEN + 4)
	for i := range msgs {
		size += nlAlign(unix.NLMSG_HDRLEN + 4 + len(msgs[i].data))
	}
	buf := make([]byte, 0, size)
	batch := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES} // res_id: big-endian subsystem
	buf = appendMsg(buf, unix.NFNL_MSG_BATCH_BEGIN, netlink.Request, seq, batch, nil)
	for i := range msgs {
		m := &msgs[i]
		flags := netlink.Request | m.flags
		if i == len(msgs)-1 {
			flags |= netlink.Acknowledge
		}
		buf = appendMsg(buf, unix.NFNL_SUBSYS_NFTABLES<<8|m.typ, flags, seq+1+uint32(i),
			[]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, m.data)
	}
	return appendMsg(buf, unix.NFNL_MSG_BATCH_END, netlink.Request, seq+1+uint32(len(msgs)), batch, nil)
}

// appendMsg appends one netlink message (header, the nfgenmsg gen, data,
// padding to the 4-byte boundary) to buf.
func appendMsg(buf []byte, typ uint16, flags netlink.HeaderFlags, seq uint32, gen, data []byte) []byte {
	n := unix.NLMSG_HDRLEN + len(gen) + len(data)
	buf = binary.NativeEndian.AppendUint32(buf, uint32(n))
	buf = binary.NativeEndian.AppendUint16(buf, typ)
	buf = binary.NativeEndian.AppendUint16(buf, uint16(flags))
	buf = binary.NativeEndian.AppendUint32(buf, seq)
	buf = binary.NativeEndian.AppendUint32(buf, 0) // pid: the kernel's
	buf = append(buf, gen...)
	buf = append(buf, data...)
	for range nlAlign(n) - n {
		buf = append(buf, 0)
	}
	return buf
}

func nlAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }

// send writes a framed batch in one sendmsg, within nl's deadline.
func send(nl *netlink.Conn, buf []byte) error {
	raw, err := nl.SyscallConn()
	if err != nil {
		return err
	}
	var sendErr error
	err = raw.Write(func(fd uintptr) bool {
		sendErr = unix.Sendto(int(fd), buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return sendErr
}

// sizeBuffers grows the socket buffers to a batch of size bytes and
// requests, as nft does: the batch goes out in one sendmsg (EMSGSIZE if
// the send buffer is smaller), and the kernel queues every ack before we
// read one (ENOBUFS if the receive buffer is smaller; an error ack carries
// a copy of its request). The FORCE options pass the system limits and
// need CAP_NET_ADMIN; without it the plain options do what they can.
func sizeBuffers(nl *netlink.Conn, size, requests int) error {
	snd := max(2*size, 1<<20)
	rcv := max(size+requests*1024, 1<<20)
	raw, err := nl.SyscallConn()
	if err != nil {
		return fmt.Errorf("socket buffers: %w", err)
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		sockErr = setBuffer(int(fd), unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, snd)
		if sockErr == nil {
			sockErr = setBuffer(int(fd), unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, rcv)
		}
	})
	if err == nil {
		err = sockErr
	}
	if err != nil {
		return fmt.Errorf("socket buffers: %w", err)
	}
	return nil
}

func setBuffer(fd, force, plain, size int) error {
	err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size)
	if errors.Is(err, unix.EPERM) {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
	}
	return err
}

// readAcks reads the kernel's answers up to the last request's ack: the
// rejections of earlier requests come before it (the kernel processes
// the whole batch, then answers in order). It returns the first
// rejection. clean is false when answers may be left unread.
func readAcks(ctx context.Context, nl *netlink.Conn, b *Batch, msgs []message, seq uint32) (clean bool, err error) {
	// Request i is seq+1+i (frame).
	index := func(s uint32) (int, bool) {
		i := int(s - seq - 1)
		return i, s-seq-1 < uint32(len(msgs))
	}
	last := seq + uint32(len(msgs))
	var rejected []*netlink.OpError
	for done := false; !done; {
		replies, err := nl.Receive()
		var oe *netlink.OpError
		switch {
		case err == nil:
			for _, r := range replies {
				if r.Header.Sequence == last && r.Header.Type == netlink.Error {
					done = true
				}
			}
		case errors.As(err, &oe) && oe.Sequence != 0:
			if _, ok := index(oe.Sequence); !ok {
				// The batch framing itself was refused: nothing was applied,
				// and no request will be answered.
				return false, fmt.Errorf("nf_tables batch refused: %w", oe.Err)
			}
			rejected = append(rejected, oe)
			done = oe.Sequence == last
		default:
			if cerr := ctx.Err(); cerr != nil {
				err = cerr // the deadline moved by cancellation
			}
			return false, fmt.Errorf("%w: reading acks: %w", ErrOutcomeUnknown, err)
		}
	}
	if len(rejected) == 0 {
		return true, nil
	}
	first := slices.MinFunc(rejected, func(x, y *netlink.OpError) int { return cmp.Compare(x.Sequence-seq, y.Sequence-seq) })
	i, _ := index(first.Sequence)
	return true, describe(b, msgs[i], first, len(rejected)-1)
}

// describe names the operation (and element) a rejected request came
// from.
func describe(b *Batch, m message, oe *netlink.OpError, others int) *OpError {
	o := &b.ops[m.op]
	e := &OpError{Op: m.op, Element: -1, Message: oe.Message, Err: oe.Err, Others: others}
	if o.kind == opAddElements || o.kind == opDeleteElements {
		e.Element = elementAt(m, oe.Offset)
	}
	e.Text = truncate(b.opLine(o, e.Element))
	return e
}

// elementAt is the index in its operation of the element whose attribute
// holds offset, the kernel's extended-ack offset of the rejected
// attribute, counted from the request's netlink header; -1 if none.
func elementAt(m message, offset int) int {
	off := offset - 16 - 4 // nlmsghdr, nfgenmsg
	if offset <= 0 || len(m.elemOffs) == 0 || off < m.elemOffs[0] {
		return -1
	}
	return m.firstElem + sort.SearchInts(m.elemOffs, off+1) - 1
}
