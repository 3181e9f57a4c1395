package proxier

import (
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestCompareEndpointsOrdersLikeStrings(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var eps []Endpoint
	for range 300 {
		var ip netip.Addr
		if rng.IntN(3) == 0 {
			ip = netip.AddrFrom16([16]byte{0xfd, 0, 15: byte(rng.IntN(256)), 14: byte(rng.IntN(3))})
		} else {
			ip = netip.AddrFrom4([4]byte{10, byte(rng.IntN(3)), byte(rng.IntN(30)), byte(rng.IntN(256))})
		}
		eps = append(eps, Endpoint{IP: ip, Port: int32([]int{80, 8080, 9, 443}[rng.IntN(4)])})
	}
	for i := range eps {
		for j := range eps {
			want := strings.Compare(eps[i].String(), eps[j].String())
			if got := compareEndpoints(&eps[i], &eps[j]); got != want {
				t.Fatalf("compare %s, %s = %d, want %d", eps[i].String(), eps[j].String(), got, want)
			}
		}
	}
}

func TestMergeOneSliceSharesSortedEndpoints(t *testing.T) {
	spn := ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "web"}, Port: "p", Protocol: v1.ProtocolTCP}
	mk := func(ips ...string) []Endpoint {
		var out []Endpoint
		for _, ip := range ips {
			out = append(out, Endpoint{IP: netip.MustParseAddr(ip), Port: 80})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		in     []Endpoint
		shared bool
		want   string
	}{
		// As strings, "10.0.0.10:80" sorts before "10.0.0.1:80" (':' > '0').
		{"sorted", mk("10.0.0.10", "10.0.0.1", "10.0.0.2"), true, "10.0.0.10:80,10.0.0.1:80,10.0.0.2:80"},
		{"unsorted", mk("10.0.0.2", "10.0.0.1"), false, "10.0.0.1:80,10.0.0.2:80"},
		{"duplicate", mk("10.0.0.1", "10.0.0.1"), false, "10.0.0.1:80"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mergeSlices([]namedSlice{{name: "a", eps: sliceEndpoints{{name: spn, eps: tc.in}}}}).of(spn)
			var strs []string
			for i := range got {
				strs = append(strs, got[i].String())
			}
			if s := strings.Join(strs, ","); s != tc.want {
				t.Errorf("merged %s, want %s", s, tc.want)
			}
			if shared := &got[0] == &tc.in[0]; shared != tc.shared {
				t.Errorf("shares the slice's array: %v, want %v", shared, tc.shared)
			}
			if cap(got) != len(got) {
				t.Errorf("a shared list must be clipped: len %d cap %d", len(got), cap(got))
			}
		})
	}
}

func TestFilterEndpointsSharesOnlyWhenAllKept(t *testing.T) {
	in := []Endpoint{{Port: 1, Ready: true}, {Port: 2, Ready: true}, {Port: 3}}
	ready := func(e *Endpoint) bool { return e.Ready }
	all := func(*Endpoint) bool { return true }
	if got := filterEndpoints(in, all); &got[0] != &in[0] || cap(got) != 3 {
		t.Errorf("all kept: want in's array, clipped")
	}
	got := filterEndpoints(in, ready)
	if len(got) != 2 || &got[0] == &in[0] {
		t.Errorf("some kept: want a copy of 2, got %d (shared %v)", len(got), &got[0] == &in[0])
	}
	got = append(got, Endpoint{Port: 9})
	if in[2].Port != 3 {
		t.Errorf("append to a filtered list wrote into the input")
	}
	if got := filterEndpoints(in, func(*Endpoint) bool { return false }); got != nil {
		t.Errorf("none kept: want nil, got %v", got)
	}
}
