package ipvs_test

import (
	"net/netip"
	"slices"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/vs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

func TestBuildDesired(t *testing.T) {
	nodeIPs := addrs("192.168.1.10", "192.168.2.10")
	tests := []struct {
		name      string
		entry     entry
		opts      ipvs.BuildOptions
		want      []string
		wantBound []string
	}{{
		name:      "ClusterIP with cluster endpoints",
		entry:     e(svc("a", "10.96.0.1", withEndpoints("10.244.2.2:8080", "10.244.1.1:8080"))),
		want:      []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1 -> 10.244.2.2:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "no endpoints still has a virtual server",
		entry:     e(svc("a", "10.96.0.1")),
		want:      []string{"TCP/10.96.0.1:80 rr"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "ClientIP affinity is persistence with the timeout",
		entry:     e(svc("a", "10.96.0.1", withAffinity(10800), withEndpoints("10.244.1.1:8080"))),
		want:      []string{"TCP/10.96.0.1:80 rr flags=0x1 timeout=10800 -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:  "NodePort on every node IP, node IPs not bound",
		entry: e(svc("a", "10.96.0.1", withNodePort(30080), withEndpoints("10.244.1.1:8080"))),
		opts:  ipvs.BuildOptions{NodePortIPs: nodeIPs},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
			"TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1", "TCP/192.168.2.10:30080 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name: "external IPs and LB VIPs are bound unless they are node addresses",
		entry: e(svc("a", "10.96.0.1", withExternalIPs("203.0.113.1", "192.168.1.10"), withLB("198.51.100.7"),
			withEndpoints("10.244.1.1:8080"))),
		opts: ipvs.BuildOptions{LocalAddresses: nodeIPs},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1", "TCP/203.0.113.1:80 rr -> 10.244.1.1:8080 w1",
			"TCP/192.168.1.10:80 rr -> 10.244.1.1:8080 w1", "TCP/198.51.100.7:80 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1", "198.51.100.7", "203.0.113.1"},
	}, {
		name: "ETP Local: external servers use local endpoints, ClusterIP all",
		entry: e(svc("a", "10.96.0.1", withETPLocal(), withNodePort(30080), withLB("198.51.100.7"),
			withEndpoints("10.244.1.1:8080", "local:10.244.9.9:8080"))),
		opts: ipvs.BuildOptions{NodePortIPs: nodeIPs[:1]},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1 -> 10.244.9.9:8080 w1",
			"TCP/198.51.100.7:80 rr -> 10.244.9.9:8080 w1", "TCP/192.168.1.10:30080 rr -> 10.244.9.9:8080 w1"},
		wantBound: []string{"10.96.0.1", "198.51.100.7"},
	}, {
		name:  "ETP Local without local endpoints falls back to cluster endpoints (#97081)",
		entry: e(svc("a", "10.96.0.1", withETPLocal(), withNodePort(30080), withEndpoints("10.244.1.1:8080"))),
		opts:  ipvs.BuildOptions{NodePortIPs: nodeIPs[:1]},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
			"TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "ITP Local: ClusterIP uses local endpoints",
		entry:     e(svc("a", "10.96.0.1", withITPLocal(), withEndpoints("10.244.1.1:8080", "local:10.244.9.9:8080"))),
		want:      []string{"TCP/10.96.0.1:80 rr -> 10.244.9.9:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name: "ITP Local without local endpoints and no external access: no destinations",
		// Upstream's CategorizeEndpoints leaves cluster endpoints empty here,
		// so the fallback has nothing to fall back to.
		entry:     e(svc("a", "10.96.0.1", withITPLocal(), withEndpoints("10.244.1.1:8080"))),
		want:      []string{"TCP/10.96.0.1:80 rr"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:  "ITP Local without local endpoints but a NodePort falls back to cluster endpoints",
		entry: e(svc("a", "10.96.0.1", withITPLocal(), withNodePort(30080), withEndpoints("10.244.1.1:8080"))),
		opts:  ipvs.BuildOptions{NodePortIPs: nodeIPs[:1]},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
			"TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "UDP",
		entry:     e(svc("dns", "10.96.0.10", withProtocol(v1.ProtocolUDP), withPort(53), withEndpoints("10.244.1.1:53"))),
		want:      []string{"UDP/10.96.0.10:53 rr -> 10.244.1.1:53 w1"},
		wantBound: []string{"10.96.0.10"},
	}, {
		name:      "SCTP with scheduler and flags",
		entry:     e(svc("s", "10.96.0.11", withProtocol(v1.ProtocolSCTP), withEndpoints("10.244.1.1:80"))),
		opts:      ipvs.BuildOptions{Scheduler: "sh", SchedulerFlags: vs.FlagSched1 | vs.FlagSched2},
		want:      []string{"SCTP/10.96.0.11:80 sh flags=0x18 -> 10.244.1.1:80 w1"},
		wantBound: []string{"10.96.0.11"},
	}, {
		name:      "mh defaults to mh-port as upstream's FlagSourceHash",
		entry:     e(svc("a", "10.96.0.1", withAffinity(60))),
		opts:      ipvs.BuildOptions{Scheduler: "mh"},
		want:      []string{"TCP/10.96.0.1:80 mh flags=0x11 timeout=60"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:  "IPv6 family ignores IPv4 node IPs",
		entry: e(svc("a", "fd00:96::1", withNodePort(30080), withEndpoints("[fd00:244::1]:8080"))),
		opts:  ipvs.BuildOptions{NodePortIPs: append(addrs("fd00:1::10"), nodeIPs...)},
		want: []string{"TCP/[fd00:96::1]:80 rr -> [fd00:244::1]:8080 w1",
			"TCP/[fd00:1::10]:30080 rr -> [fd00:244::1]:8080 w1"},
		wantBound: []string{"fd00:96::1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ipvs.BuildDesired(snapshot(tt.entry), tt.opts)
			if got := renderServers(d.Servers[tt.entry.sp.Name]); !slices.Equal(got, tt.want) {
				t.Errorf("servers:\n got %q\nwant %q", got, tt.want)
			}
			if got := addrStrings(d.Bind); !slices.Equal(got, tt.wantBound) {
				t.Errorf("bound = %q, want %q", got, tt.wantBound)
			}
		})
	}
}

func addrStrings[T interface{ String() string }](as []T) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func TestBuildDesiredOnlyRestrictsServersNotAddresses(t *testing.T) {
	snap := snapshot(e(svc("a", "10.96.0.1")), e(svc("b", "10.96.0.2")))
	only := map[proxier.ServicePortName]struct{}{portName("b"): {}, portName("gone"): {}}
	d := ipvs.BuildDesired(snap, ipvs.BuildOptions{Only: only})
	if _, ok := d.Servers[portName("a")]; ok {
		t.Errorf("unchanged service a has servers in a partial build")
	}
	if got := renderServers(d.Servers[portName("b")]); !slices.Equal(got, []string{"TCP/10.96.0.2:80 rr"}) {
		t.Errorf("b = %q", got)
	}
	if s, ok := d.Servers[portName("gone")]; !ok || s != nil {
		t.Errorf("deleted service: servers %v, present %v; want present and empty", s, ok)
	}
	if got := addrStrings(d.Bind); !slices.Equal(got, []string{"10.96.0.1", "10.96.0.2"}) {
		t.Errorf("bound = %q, want both cluster IPs", got)
	}
}

func TestNodePortIPs(t *testing.T) {
	local := addrs("127.0.0.1", "192.168.1.10", "10.0.0.5", "::1", "fe80::1", "fd00::10")
	tests := []struct {
		name   string
		match  netfilter.NodePortMatch
		family v1.IPFamily
		want   []string
	}{
		{"all IPv4 skips loopback", netfilter.NodePortMatch{All: true}, v1.IPv4Protocol, []string{"10.0.0.5", "192.168.1.10"}},
		{"all IPv6 skips loopback and link-local", netfilter.NodePortMatch{All: true}, v1.IPv6Protocol, []string{"fd00::10"}},
		{"CIDR", netfilter.NodePortMatch{Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("127.0.0.0/8")}}, v1.IPv4Protocol, []string{"192.168.1.10"}},
		{"none", netfilter.NodePortMatch{}, v1.IPv4Protocol, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := addrStrings(ipvs.NodePortIPs(local, tt.match, tt.family))
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
