package nftnl

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Names are the chains and named sets and maps of one table.
type Names struct {
	Chains []string
	Sets   []string
}

// ListNames lists the names of table's chains and named sets (maps
// included) in one family; a missing table holds nothing. It reads names
// only: at 110000 chains, nft's JSON listing of the same costs seconds
// and, decoded, about a hundred megabytes. It runs on a socket of its
// own, so a batch's unread answers never mix with the dump.
func (c *Conn) ListNames(ctx context.Context, f Family, table string) (Names, error) {
	if err := checkName("table", table); err != nil {
		return Names{}, err
	}
	if f != IPv4 && f != IPv6 {
		return Names{}, fmt.Errorf("family %d is neither IPv4 nor IPv6", f)
	}
	if err := ctx.Err(); err != nil {
		return Names{}, err
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return Names{}, errors.New("nf_tables listing on a closed Conn")
	}
	nl, err := c.dial()
	if err != nil {
		return Names{}, err
	}
	defer nl.Close()
	deadline := time.Now().Add(c.opts.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := nl.SetDeadline(deadline); err != nil {
		return Names{}, fmt.Errorf("socket deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = nl.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var names Names
	// Chain dumps cannot be limited to a table; set dumps can.
	names.Chains, err = dumpNames(nl, f, unix.NFT_MSG_GETCHAIN, nil, table, unix.NFTA_CHAIN_TABLE, unix.NFTA_CHAIN_NAME, 0)
	if err == nil {
		var filter attrs
		filter.str(unix.NFTA_SET_TABLE, table)
		names.Sets, err = dumpNames(nl, f, unix.NFT_MSG_GETSET, filter.b, table, unix.NFTA_SET_TABLE, unix.NFTA_SET_NAME, unix.NFTA_SET_FLAGS)
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		return Names{}, nil
	case err != nil:
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err)
		}
		return Names{}, fmt.Errorf("list table %s %s: %w", f.IP(), table, err)
	}
	return names, nil
}

// dumpNames dumps one kind of object (typ, the request's attributes req)
// and returns the names (attribute nameAttr) of those in table (attribute
// tableAttr), leaving out anonymous sets (flags in flagsAttr, when not 0).
func dumpNames(nl *netlink.Conn, f Family, typ uint16, req []byte, table string, tableAttr, nameAttr, flagsAttr uint16) ([]string, error) {
	data := append([]byte{byte(f), unix.NFNETLINK_V0, 0, 0}, req...)
	msgs, err := nl.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ), Flags: netlink.Request | netlink.Dump},
		Data:   data,
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range msgs {
		name, inTable, err := objectName(m.Data, table, tableAttr, nameAttr, flagsAttr)
		if err != nil {
			return nil, err
		}
		if inTable {
			out = append(out, name)
		}
	}
	return out, nil
}

// objectName decodes one dumped object: its name, and whether it is a
// named object of table.
func objectName(data []byte, table string, tableAttr, nameAttr, flagsAttr uint16) (string, bool, error) {
	if len(data) < 4 {
		return "", false, fmt.Errorf("dumped object of %d bytes", len(data))
	}
	ad, err := netlink.NewAttributeDecoder(data[4:])
	if err != nil {
		return "", false, fmt.Errorf("dumped object: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	var name, tbl string
	var flags uint32
	for ad.Next() {
		switch t := ad.Type(); {
		case t == tableAttr:
			tbl = ad.String()
		case t == nameAttr:
			name = ad.String()
		case flagsAttr != 0 && t == flagsAttr:
			flags = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return "", false, fmt.Errorf("dumped object: %w", err)
	}
	return name, tbl == table && name != "" && flags&unix.NFT_SET_ANONYMOUS == 0, nil
}
