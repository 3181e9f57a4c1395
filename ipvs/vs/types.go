package vs

import (
	"cmp"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
)

// Protocol is an IP protocol number as IPVS stores it.
type Protocol uint16

// Protocols IPVS serves for kproxy.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

// ProtocolFor maps a Kubernetes protocol to IPVS; ok is false for others.
func ProtocolFor(p v1.Protocol) (proto Protocol, ok bool) {
	switch p {
	case v1.ProtocolTCP:
		return TCP, true
	case v1.ProtocolUDP:
		return UDP, true
	case v1.ProtocolSCTP:
		return SCTP, true
	}
	return 0, false
}

// String is ipvsadm's spelling (TCP, UDP, SCTP).
func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// Flags are a virtual server's IP_VS_SVC_F_* flags, without the kernel's
// internal "hashed" bit (0x2), which the real Handle strips when reading.
type Flags uint32

// Virtual server flags (include/uapi/linux/ip_vs.h).
const (
	FlagPersistent Flags = 0x1
	FlagOnePacket  Flags = 0x4
	// FlagSched1..3 are the scheduler flags: sh-fallback/mh-fallback,
	// sh-port/mh-port, and flag-3 (ipvsadm -b).
	FlagSched1 Flags = 0x8
	FlagSched2 Flags = 0x10
	FlagSched3 Flags = 0x20

	flagHashed Flags = 0x2
)

// ParseSchedulerFlags reads ipvsadm's -b names: flag-1, flag-2, flag-3,
// sh-fallback, sh-port, mh-fallback, mh-port.
func ParseSchedulerFlags(names []string) (Flags, error) {
	var f Flags
	for _, n := range names {
		switch n {
		case "flag-1", "sh-fallback", "mh-fallback":
			f |= FlagSched1
		case "flag-2", "sh-port", "mh-port":
			f |= FlagSched2
		case "flag-3":
			f |= FlagSched3
		default:
			return 0, fmt.Errorf("unknown IPVS scheduler flag %q", n)
		}
	}
	return f, nil
}

// ServiceKey identifies a virtual server (kproxy never uses fwmark ones).
type ServiceKey struct {
	Addr     netip.Addr
	Port     uint16
	Protocol Protocol
}

// String is "TCP/10.96.0.1:80" ("TCP/[fd00::1]:80" for IPv6).
func (k ServiceKey) String() string {
	return k.Protocol.String() + "/" + net.JoinHostPort(k.Addr.String(), strconv.Itoa(int(k.Port)))
}

// Compare orders keys by address, port, then protocol.
func (k ServiceKey) Compare(o ServiceKey) int {
	return cmp.Or(k.Addr.Compare(o.Addr), cmp.Compare(k.Port, o.Port), cmp.Compare(k.Protocol, o.Protocol))
}

// VirtualServer is an IPVS service as kproxy programs it.
type VirtualServer struct {
	ServiceKey
	Scheduler string
	Flags     Flags
	// Timeout is the persistence timeout in seconds (with FlagPersistent).
	Timeout uint32
}

// Equal compares the programmable fields.
func (v VirtualServer) Equal(o VirtualServer) bool {
	return v.ServiceKey == o.ServiceKey && v.Scheduler == o.Scheduler && v.Flags == o.Flags && v.Timeout == o.Timeout
}

// DestKey identifies a destination (real server) within a virtual server.
type DestKey struct {
	Addr netip.Addr
	Port uint16
}

// String is "ip:port".
func (k DestKey) String() string {
	return net.JoinHostPort(k.Addr.String(), strconv.Itoa(int(k.Port)))
}

// Compare orders keys by address, then port.
func (k DestKey) Compare(o DestKey) int {
	return cmp.Or(k.Addr.Compare(o.Addr), cmp.Compare(k.Port, o.Port))
}

// Forwarding is a destination's forwarding method (IP_VS_CONN_F_FWD_MASK).
type Forwarding uint32

// ForwardMasq is NAT, the only method kube-proxy uses.
const ForwardMasq Forwarding = 0

// Destination is a real server of a virtual server.
type Destination struct {
	DestKey
	Weight     int
	Forwarding Forwarding
	// ActiveConnections and InactiveConnections are read from the kernel
	// (ipvsadm's ActiveConn / InActConn); writes ignore them.
	ActiveConnections   int
	InactiveConnections int
}

// Timeouts are IPVS's idle connection timeouts for TCP, TCP after a FIN,
// and UDP (`ipvsadm --set`), per network namespace. The kernel keeps whole
// seconds; a zero field means "leave it as it is".
type Timeouts struct {
	TCP, TCPFin, UDP time.Duration
}

// IsZero reports whether t changes nothing.
func (t Timeouts) IsZero() bool { return t == Timeouts{} }

func (t Timeouts) String() string {
	return fmt.Sprintf("tcp=%s tcpfin=%s udp=%s", t.TCP, t.TCPFin, t.UDP)
}
