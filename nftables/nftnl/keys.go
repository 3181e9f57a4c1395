package nftnl

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// nft's datatype ids (nftables include/datatype.h), which the kernel
// stores as set key and data types and nft reads back to print elements.
const (
	typeInteger     = 4
	typeIPv4Addr    = 7
	typeIPv6Addr    = 8
	typeInetService = 13
	typeVerdict     = unix.NFT_DATA_VERDICT // 0xffffff00: a verdict map's data
)

// concatType is the type id of a concatenation: each field's id in 6 bits.
func concatType(ids ...uint32) uint32 {
	var t uint32
	for _, id := range ids {
		t = t<<6 | id
	}
	return t
}

// addrType and addrLen are the family's address datatype and size.
func (f Family) addrType() uint32 {
	if f == IPv6 {
		return typeIPv6Addr
	}
	return typeIPv4Addr
}

func (f Family) addrLen() int {
	if f == IPv6 {
		return 16
	}
	return 4
}

// saddrOffset is where the source address sits in the network header.
func (f Family) saddrOffset() uint32 {
	if f == IPv6 {
		return 8
	}
	return 12
}

// daddrOffset is where the destination address sits in the network header.
func (f Family) daddrOffset() uint32 {
	if f == IPv6 {
		return 24
	}
	return 16
}

// checkAddr rejects an address the family's tables cannot hold: the other
// family, or an IPv6 zone (nft has no syntax for one).
func (f Family) checkAddr(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("invalid address")
	case f == IPv4 && !a.Is4():
		return fmt.Errorf("address %s is not IPv4", a)
	case f == IPv6 && !a.Is6():
		return fmt.Errorf("address %s is not IPv6", a)
	case a.Zone() != "":
		return fmt.Errorf("address %s has a zone", a)
	}
	return nil
}

// protoNumber is the IP protocol number of the L4 protocols kproxy serves.
func protoNumber(name string) (byte, error) {
	switch name {
	case "tcp":
		return unix.IPPROTO_TCP, nil
	case "udp":
		return unix.IPPROTO_UDP, nil
	case "sctp":
		return unix.IPPROTO_SCTP, nil
	}
	return 0, fmt.Errorf("unknown protocol %q (want tcp, udp or sctp)", name)
}

// encodeKey lays out an element key as nft does: each field in network
// byte order, padded to 4 bytes (one 32-bit register), one after another.
func encodeKey(f Family, fields []Field) ([]byte, error) {
	if len(fields) == 0 {
		return nil, fmt.Errorf("empty key")
	}
	var key []byte
	for _, fd := range fields {
		switch fd.kind {
		case fieldAddr:
			if err := f.checkAddr(fd.addr); err != nil {
				return nil, err
			}
			key = append(key, fd.addr.AsSlice()...)
		case fieldProto:
			p, err := protoNumber(fd.proto)
			if err != nil {
				return nil, err
			}
			key = append(key, p)
		case fieldPort:
			key = binary.BigEndian.AppendUint16(key, fd.port)
		default:
			return nil, fmt.Errorf("zero Field in key")
		}
		for len(key)%4 != 0 {
			key = append(key, 0)
		}
	}
	return key, nil
}
