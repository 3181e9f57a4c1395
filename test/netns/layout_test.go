package netns

import (
	"net/netip"
	"strings"
	"testing"
)

func TestLayoutNumbersPodsFromEleven(t *testing.T) {
	w, err := newWorldLayout(Options{Pods: 2, RemotePods: 12, Prefix: "kpx-abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		got                             Pod
		name, netns, node, veth, v4, v6 string
	}{
		{w.Pods[0], "pod-1", "kpx-abcdef-pod-1", "kpx-abcdef-node", "veth-pod-1", "10.244.1.11", "fd00:10:244:1::11"},
		{w.Pods[1], "pod-2", "kpx-abcdef-pod-2", "kpx-abcdef-node", "veth-pod-2", "10.244.1.12", "fd00:10:244:1::12"},
		{w.RemotePods[11], "node2-pod-12", "kpx-abcdef-node2-pod-12", "kpx-abcdef-node2", "veth-pod-12", "10.244.2.22", "fd00:10:244:2::22"},
	}
	for _, tt := range tests {
		want := Pod{Name: tt.name, Netns: tt.netns, Node: tt.node, HostVeth: tt.veth,
			IPv4: netip.MustParseAddr(tt.v4), IPv6: netip.MustParseAddr(tt.v6)}
		if tt.got != want {
			t.Errorf("pod = %+v, want %+v", tt.got, want)
		}
		if len(tt.got.HostVeth) > 15 {
			t.Errorf("%s: interface name %q longer than IFNAMSIZ-1", tt.name, tt.got.HostVeth)
		}
	}
	if len(w.Pods) != 2 || len(w.RemotePods) != 12 {
		t.Errorf("pods = %d/%d, want 2/12", len(w.Pods), len(w.RemotePods))
	}
}

func TestLayoutDefaultsAndValidation(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"defaults", Options{}, ""},
		{"negative pods", Options{Pods: -1}, "options.Pods"},
		{"too many remote pods", Options{RemotePods: maxPods + 1}, "options.RemotePods"},
		{"prefix with slash", Options{Prefix: "a/b"}, "options.Prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := newWorldLayout(tt.opts)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want mention of %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(w.Pods) != defaultPods || len(w.RemotePods) != defaultPods {
				t.Errorf("pods = %d/%d, want %d each", len(w.Pods), len(w.RemotePods), defaultPods)
			}
			if !strings.HasPrefix(w.Node, "kpx-") || len(w.Prefix) != len("kpx-")+6 {
				t.Errorf("prefix %q / node %q: want kpx-<6 hex>", w.Prefix, w.Node)
			}
		})
	}
}

func TestNewWorldRejectsBadOptionsWithoutTouchingTheKernel(t *testing.T) {
	if _, err := NewWorld(Options{Pods: -3}); err == nil {
		t.Fatal("NewWorld accepted -3 pods")
	}
}
