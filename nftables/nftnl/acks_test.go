package nftnl

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestFrameIsOneTransaction: a framed batch parses as netlink messages:
// BATCH_BEGIN, each request (its nfgenmsg, then its data, padded), and
// BATCH_END, numbered on from seq, with only the last request asking for
// an ack.
func TestFrameIsOneTransaction(t *testing.T) {
	msgs := []message{
		{typ: unix.NFT_MSG_NEWCHAIN, flags: netlink.Create, data: []byte{1, 2, 3}},
		{typ: unix.NFT_MSG_NEWRULE, data: []byte{4, 5, 6, 7}},
		{typ: unix.NFT_MSG_DELSET, data: []byte{8, 9, 10, 11, 12}},
	}
	const seq = 0xfffffffd // numbers wrap past the top
	buf := frame(IPv6, msgs, seq)
	if len(buf)%unix.NLMSG_ALIGNTO != 0 {
		t.Fatalf("frame is %d bytes, not aligned", len(buf))
	}
	parsed, err := syscall.ParseNetlinkMessage(buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(parsed) != len(msgs)+2 {
		t.Fatalf("%d messages, want %d", len(parsed), len(msgs)+2)
	}
	for i, p := range parsed {
		if want := uint32(seq) + uint32(i); p.Header.Seq != want {
			t.Errorf("message %d: sequence %d, want %d", i, p.Header.Seq, want)
		}
	}
	batch := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	first, last := parsed[0], parsed[len(parsed)-1]
	if first.Header.Type != unix.NFNL_MSG_BATCH_BEGIN || last.Header.Type != unix.NFNL_MSG_BATCH_END ||
		!bytes.Equal(first.Data, batch) || !bytes.Equal(last.Data, batch) {
		t.Errorf("framing: begin %+v %v, end %+v %v", first.Header, first.Data, last.Header, last.Data)
	}
	for i, m := range msgs {
		p := parsed[i+1]
		wantFlags := uint16(netlink.Request | m.flags)
		if i == len(msgs)-1 {
			wantFlags |= uint16(netlink.Acknowledge)
		}
		wantData := append([]byte{byte(IPv6), unix.NFNETLINK_V0, 0, 0}, m.data...)
		if p.Header.Type != unix.NFNL_SUBSYS_NFTABLES<<8|m.typ || p.Header.Flags != wantFlags ||
			!bytes.Equal(p.Data, wantData) || p.Header.Len != uint32(unix.NLMSG_HDRLEN+len(wantData)) {
			t.Errorf("request %d: %+v %v, want type %#x flags %#x data %v", i, p.Header, p.Data,
				unix.NFNL_SUBSYS_NFTABLES<<8|m.typ, wantFlags, wantData)
		}
	}
}

// TestNextSeqNeverZero: a batch's numbers never include 0, which an error
// answer could not be matched by.
func TestNextSeqNeverZero(t *testing.T) {
	c := &Conn{seq: 0xfffffffe}
	if got := c.nextSeq(5); got != 1 {
		t.Errorf("a range through 0 starts at %d, want 1", got)
	}
	if got := c.nextSeq(2); got != 6 {
		t.Errorf("next batch starts at %d, want 6", got)
	}
	c.seq = 0
	if got := c.nextSeq(1); got != 1 {
		t.Errorf("from 0: %d, want 1", got)
	}
}
