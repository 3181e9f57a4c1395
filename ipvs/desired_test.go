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
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
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
		name:  "NodePort on every node IP, node IPs not bound",
		entry: e(svc("a", "10.96.0.1", pt.NodePort(30080)), ep("10.244.1.1")),
		opts:  ipvs.BuildOptions{NodePortIPs: nodeIPs},
		want: []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1",
			"TCP/192.168.1.10:30080 rr -> 10.244.1.1:8080 w1", "TCP/192.168.2.10:30080 rr -> 10.244.1.1:8080 w1"},
		wantBound: []string{"10.96.0.1"},
	}, {
		name:      "SCTP with scheduler and flags",
		entry:     e(svcPort("s", "10.96.0.11", v1.ProtocolSCTP, 80, 80), ep("10.244.1.1")),
		opts:      ipvs.BuildOptions{Scheduler: "sh", SchedulerFlags: vs.FlagSched1 | vs.FlagSched2},
		want:      []string{"SCTP/10.96.0.11:80 sh flags=0x18 -> 10.244.1.1:80 w1"},
		wantBound: []string{"10.96.0.11"},
	}, {
		name:      "mh defaults to mh-port as upstream's FlagSourceHash",
		entry:     e(svc("a", "10.96.0.1", pt.Affinity(60))),
		opts:      ipvs.BuildOptions{Scheduler: "mh"},
		want:      []string{"TCP/10.96.0.1:80 mh flags=0x11 timeout=60"},
		wantBound: []string{"10.96.0.1"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := ipvs.BuildDesired(snapshot(t, tt.entry), tt.opts)
			name := pt.Name("ns", tt.entry.svc.Name, "p", tt.entry.svc.Spec.Ports[0].Protocol)
			if got := renderServers(d.Servers[name]); !slices.Equal(got, tt.want) {
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
	snap := snapshot(t, e(svc("a", "10.96.0.1")), e(svc("b", "10.96.0.2")))
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
