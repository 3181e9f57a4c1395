package nftnl

import (
	"context"
	"errors"
	"fmt"
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

// requests frames msgs as one nf_tables transaction: BATCH_BEGIN, the
// requests, BATCH_END. Only the last request asks for an ack, as nft asks
// for none: the kernel answers every failed request anyway, and the last
// one's ack, which comes after them all, says the batch was processed. A
// 20000-request chunk of a full sync would otherwise queue 20000 acks.
func requests(f Family, msgs []message) []netlink.Message {
	batch := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES} // res_id: big-endian subsystem
	out := make([]netlink.Message, 0, len(msgs)+2)
	out = append(out, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_BEGIN, Flags: netlink.Request}, Data: batch})
	for i, m := range msgs {
		data := make([]byte, 0, 4+len(m.data))
		data = append(data, byte(f), unix.NFNETLINK_V0, 0, 0)
		flags := netlink.Request | m.flags
		if i == len(msgs)-1 {
			flags |= netlink.Acknowledge
		}
		out = append(out, netlink.Message{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | m.typ), Flags: flags},
			Data:   append(data, m.data...),
		})
	}
	return append(out, netlink.Message{Header: netlink.Header{Type: unix.NFNL_MSG_BATCH_END, Flags: netlink.Request}, Data: batch})
}

// sizeBuffers grows the socket buffers to the batch, as nft does: the batch
// goes out in one sendmsg (EMSGSIZE if the send buffer is smaller), and
// the kernel queues every ack before we read one (ENOBUFS if the receive
// buffer is smaller; an error ack carries a copy of its request). The
// FORCE options pass the system limits and need CAP_NET_ADMIN; without
// it the plain options do what they can.
func sizeBuffers(nl *netlink.Conn, req []netlink.Message) error {
	size := 0
	for _, m := range req {
		size += 16 + len(m.Data)
	}
	snd := max(2*size, 1<<20)
	rcv := max(size+len(req)*1024, 1<<20)
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
func readAcks(ctx context.Context, nl *netlink.Conn, b *Batch, msgs []message, sent []netlink.Message) (clean bool, err error) {
	index := make(map[uint32]int, len(msgs))
	for i := range msgs {
		index[sent[i+1].Header.Sequence] = i
	}
	last := sent[len(msgs)].Header.Sequence
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
			if _, ok := index[oe.Sequence]; !ok {
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
	sort.Slice(rejected, func(i, j int) bool { return index[rejected[i].Sequence] < index[rejected[j].Sequence] })
	first := rejected[0]
	return true, describe(b, msgs[index[first.Sequence]], first, len(rejected)-1)
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
