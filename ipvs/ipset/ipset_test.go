package ipset_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs/ipset"
)

func TestSetNameIPv6(t *testing.T) {
	tests := []struct{ base, v4, v6 string }{
		{"KUBE-CLUSTER-IP", "KUBE-CLUSTER-IP", "KUBE-6-CLUSTER-IP"},
		{"KUBE-LOAD-BALANCER-SOURCE-CIDR", "KUBE-LOAD-BALANCER-SOURCE-CIDR", "KUBE-6-LOAD-BALANCER-SOURCE-CID"},
		{"KUBE-NODE-PORT-LOCAL-SCTP-HASH", "KUBE-NODE-PORT-LOCAL-SCTP-HASH", "KUBE-6-NODE-PORT-LOCAL-SCTP-HAS"},
	}
	for _, tc := range tests {
		if got := ipset.Name(tc.base, v1.IPv4Protocol); got != tc.v4 {
			t.Errorf("Name(%s, v4) = %s", tc.base, got)
		}
		if got := ipset.Name(tc.base, v1.IPv6Protocol); got != tc.v6 {
			t.Errorf("Name(%s, v6) = %s, want %s", tc.base, got, tc.v6)
		}
	}
	for _, s := range ipset.Specs(v1.IPv6Protocol) {
		if len(s.Name) > 31 || s.Family != v1.IPv6Protocol {
			t.Errorf("bad IPv6 spec %+v", s)
		}
	}
}

// The accepted and rejected forms follow ipset 7.17 (checked in a netns).
func TestCanonicalEntry(t *testing.T) {
	tests := []struct {
		typ    ipset.Type
		family v1.IPFamily
		in     string
		want   string // "" means rejected
	}{
		{ipset.HashIPPort, v1.IPv4Protocol, "10.0.0.1,tcp:80", "10.0.0.1,tcp:80"},
		{ipset.HashIPPort, v1.IPv4Protocol, "10.0.0.1,SCTP:80", "10.0.0.1,sctp:80"},
		{ipset.HashIPPort, v1.IPv4Protocol, "10.0.0.1,80", "10.0.0.1,tcp:80"},
		{ipset.HashIPPort, v1.IPv4Protocol, "fd00::1,tcp:80", ""},
		{ipset.HashIPPort, v1.IPv4Protocol, "10.0.0.1", ""},
		{ipset.HashIPPort, v1.IPv4Protocol, "10.0.0.1,tcp:70000", ""},
		{ipset.HashIPPort, v1.IPv6Protocol, "FD00:0::1,udp:53", "fd00::1,udp:53"},
		{ipset.HashIPPortIP, v1.IPv4Protocol, "10.0.0.1,tcp:80,10.0.0.1", "10.0.0.1,tcp:80,10.0.0.1"},
		{ipset.HashIPPortIP, v1.IPv4Protocol, "10.0.0.1,tcp:80,10.0.0.0/8", ""},
		{ipset.HashIPPortNet, v1.IPv4Protocol, "10.0.0.1,tcp:80,10.1.2.3/8", "10.0.0.1,tcp:80,10.0.0.0/8"},
		{ipset.HashIPPortNet, v1.IPv4Protocol, "10.0.0.1,tcp:80,10.0.0.5/32", "10.0.0.1,tcp:80,10.0.0.5"},
		{ipset.HashIPPortNet, v1.IPv4Protocol, "10.0.0.1,tcp:80,0.0.0.0/0", ""},
		{ipset.BitmapPort, v1.IPv4Protocol, "30080", "30080"},
		{ipset.BitmapPort, v1.IPv4Protocol, "10.0.0.1,tcp:80", ""},
		{ipset.HashIP, v1.IPv4Protocol, "10.0.0.1", "10.0.0.1"},
		{ipset.HashIP, v1.IPv4Protocol, "::ffff:10.0.0.1", ""},
	}
	for _, tc := range tests {
		got, err := ipset.CanonicalEntry(tc.typ, tc.family, tc.in)
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s %s %q: accepted as %q, ipset rejects it", tc.typ, tc.family, tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s %s %q = %q, %v; want %q", tc.typ, tc.family, tc.in, got, err, tc.want)
		}
	}
}

func clusterIPSpec() ipset.Spec {
	return ipset.Spec{Name: "KUBE-CLUSTER-IP", Type: ipset.HashIPPort, Family: v1.IPv4Protocol}
}

func TestFakeIPSetRejectsWhatIPSetRejects(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		batch func(b *ipset.Batch)
	}{
		{"add to unknown set", func(b *ipset.Batch) { b.Add("KUBE-NOPE", "10.0.0.1,tcp:80") }},
		{"entry of another type", func(b *ipset.Batch) { b.Add("KUBE-CLUSTER-IP", "30080") }},
		{"entry of another family", func(b *ipset.Batch) { b.Add("KUBE-CLUSTER-IP", "fd00::1,tcp:80") }},
		{"create with another type", func(b *ipset.Batch) {
			b.Create(ipset.Spec{Name: "KUBE-CLUSTER-IP", Type: ipset.HashIP, Family: v1.IPv4Protocol})
		}},
		{"create with another family", func(b *ipset.Batch) {
			b.Create(ipset.Spec{Name: "KUBE-CLUSTER-IP", Type: ipset.HashIPPort, Family: v1.IPv6Protocol})
		}},
		{"name over 31 characters", func(b *ipset.Batch) {
			b.Create(ipset.Spec{Name: strings.Repeat("K", 32), Type: ipset.HashIP})
		}},
		{"swap sets of different types", func(b *ipset.Batch) {
			b.Create(ipset.Spec{Name: "KUBE-PORTS", Type: ipset.BitmapPort})
			b.Swap("KUBE-CLUSTER-IP", "KUBE-PORTS")
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := ipset.NewFake()
			b := &ipset.Batch{}
			b.Create(clusterIPSpec())
			b.Add("KUBE-CLUSTER-IP", "10.0.0.1,tcp:80")
			if err := f.Restore(ctx, b); err != nil {
				t.Fatal(err)
			}
			bad := &ipset.Batch{}
			bad.Add("KUBE-CLUSTER-IP", "10.0.0.2,tcp:80")
			tc.batch(bad)
			if err := f.Restore(ctx, bad); err == nil {
				t.Fatalf("accepted:\n%s", bad.Script())
			}
			if got, _ := f.Members("KUBE-CLUSTER-IP"); !slices.Equal(got, []string{"10.0.0.1,tcp:80"}) {
				t.Errorf("a failed batch changed the set: %q", got)
			}
		})
	}
}

func TestFakeIPSetExistSemanticsAndSwap(t *testing.T) {
	ctx := context.Background()
	f := ipset.NewFake()
	b := &ipset.Batch{}
	other := ipset.Spec{Name: "KUBE-TMP", Type: ipset.HashIPPort, Family: v1.IPv4Protocol}
	b.Create(clusterIPSpec())
	b.Create(clusterIPSpec())
	b.Create(other)
	b.Add("KUBE-CLUSTER-IP", "10.0.0.1,TCP:80")
	b.Add("KUBE-CLUSTER-IP", "10.0.0.1,tcp:80")
	b.Del("KUBE-CLUSTER-IP", "10.0.0.9,tcp:80")
	b.Add("KUBE-TMP", "10.0.0.2,udp:53")
	b.Swap("KUBE-CLUSTER-IP", "KUBE-TMP")
	b.Destroy("KUBE-NEVER-CREATED")
	if err := f.Restore(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.Members("KUBE-CLUSTER-IP"); !slices.Equal(got, []string{"10.0.0.2,udp:53"}) {
		t.Errorf("after swap KUBE-CLUSTER-IP = %q", got)
	}
	d := &ipset.Batch{}
	d.Destroy("KUBE-TMP")
	if err := f.Restore(ctx, d); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Members("KUBE-TMP"); ok {
		t.Error("KUBE-TMP not destroyed")
	}
}

func TestParseIPSetSave(t *testing.T) {
	// Output of `ipset list -o save` (ipset 7.17).
	out := `create KUBE-A hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12 initval 0x4497b3c3
add KUBE-A 10.0.0.2,sctp:80
add KUBE-A 10.0.0.1,tcp:80
create KUBE-B bitmap:port range 0-65535
add KUBE-B 30080
create KUBE-6-D hash:ip,port,ip family inet6 hashsize 1024 maxelem 65536 bucketsize 12 initval 0x034cf5ab
add KUBE-6-D fd00::1,udp:53,fd00::2
create OTHER hash:net family inet hashsize 1024 maxelem 65536 comment
add OTHER 10.0.0.0/8 comment "someone else's"
`
	sets := ipset.ParseSave([]byte(out))
	want := map[string]ipset.Contents{
		"KUBE-A":   {Spec: ipset.Spec{Name: "KUBE-A", Type: ipset.HashIPPort, Family: v1.IPv4Protocol}, Members: []string{"10.0.0.1,tcp:80", "10.0.0.2,sctp:80"}},
		"KUBE-B":   {Spec: ipset.Spec{Name: "KUBE-B", Type: ipset.BitmapPort}, Members: []string{"30080"}},
		"KUBE-6-D": {Spec: ipset.Spec{Name: "KUBE-6-D", Type: ipset.HashIPPortIP, Family: v1.IPv6Protocol}, Members: []string{"fd00::1,udp:53,fd00::2"}},
		"OTHER":    {Spec: ipset.Spec{Name: "OTHER", Type: "hash:net", Family: v1.IPv4Protocol}, Members: []string{"10.0.0.0/8"}},
	}
	if len(sets) != len(want) {
		t.Fatalf("got %d sets, want %d", len(sets), len(want))
	}
	for name, w := range want {
		got := sets[name]
		if got == nil || got.Spec != w.Spec || !slices.Equal(got.Members, w.Members) {
			t.Errorf("%s = %+v, want %+v", name, got, w)
		}
	}
}

func TestSetBatchScript(t *testing.T) {
	b := &ipset.Batch{}
	for _, s := range ipset.Specs(v1.IPv4Protocol)[:2] {
		b.Create(s)
	}
	b.Create(ipset.Spec{Name: "KUBE-NODE-PORT-TCP", Type: ipset.BitmapPort, Family: v1.IPv4Protocol})
	b.Add("KUBE-CLUSTER-IP", "10.0.0.1,tcp:80")
	b.Del("KUBE-CLUSTER-IP", "10.0.0.2,tcp:80")
	want := `create KUBE-LOOP-BACK hash:ip,port,ip family inet hashsize 1024 maxelem 65536
create KUBE-CLUSTER-IP hash:ip,port family inet hashsize 1024 maxelem 65536
create KUBE-NODE-PORT-TCP bitmap:port range 0-65535
add KUBE-CLUSTER-IP 10.0.0.1,tcp:80
del KUBE-CLUSTER-IP 10.0.0.2,tcp:80
`
	if got := b.Script(); got != want {
		t.Errorf("script:\n%s\nwant:\n%s", got, want)
	}
}

func TestSyncer(t *testing.T) {
	ctx := context.Background()
	f := ipset.NewFake()
	// A foreign set and a stale kproxy entry from a previous run.
	pre := &ipset.Batch{}
	pre.Create(ipset.Spec{Name: "OTHER", Type: ipset.HashIP, Family: v1.IPv4Protocol})
	pre.Add("OTHER", "10.9.9.9")
	pre.Create(clusterIPSpec())
	pre.Add("KUBE-CLUSTER-IP", "172.30.9.9,tcp:80")
	if err := f.Restore(ctx, pre); err != nil {
		t.Fatal(err)
	}
	s := ipset.NewSyncer(ipset.SyncerOptions{IPSet: f, Family: v1.IPv4Protocol})
	two := map[string][]string{ipset.ClusterIP: {"172.30.0.1,tcp:80", "172.30.0.2,tcp:80"}, ipset.NodePortTCP: {"30080"}}
	one := map[string][]string{ipset.ClusterIP: {"172.30.0.2,tcp:80"}}

	restores, lists := f.Restores, f.Lists
	if _, _, err := s.Sync(ctx, two, false); err != nil {
		t.Fatal(err)
	}
	if f.Restores-restores != 1 || f.Lists-lists != 1 {
		t.Errorf("first sync: %d restores, %d lists; want 1 and 1", f.Restores-restores, f.Lists-lists)
	}
	assertMembers(t, f, "KUBE-CLUSTER-IP", "172.30.0.1,tcp:80", "172.30.0.2,tcp:80")
	assertMembers(t, f, "KUBE-NODE-PORT-TCP", "30080")
	assertMembers(t, f, "OTHER", "10.9.9.9")
	for _, spec := range ipset.Specs(v1.IPv4Protocol) {
		if _, ok := f.Members(spec.Name); !ok {
			t.Errorf("set %s not created", spec.Name)
		}
	}

	restores, lists = f.Restores, f.Lists
	added, deleted, err := s.Sync(ctx, one, false)
	if err != nil {
		t.Fatal(err)
	}
	if f.Restores-restores != 1 || f.Lists-lists != 0 || added != 0 || deleted != 2 {
		t.Errorf("second sync: %d restores, %d lists, +%d -%d; want 1, 0, +0 -2", f.Restores-restores, f.Lists-lists, added, deleted)
	}
	assertMembers(t, f, "KUBE-CLUSTER-IP", "172.30.0.2,tcp:80")
	assertMembers(t, f, "KUBE-NODE-PORT-TCP")

	// After a failure the syncer re-lists, so an entry added behind its back goes.
	f.FailRestore = errors.New("boom")
	if _, _, err := s.Sync(ctx, two, false); err == nil {
		t.Fatal("want the injected error")
	}
	sneak := &ipset.Batch{}
	sneak.Add("KUBE-CLUSTER-IP", "172.30.7.7,tcp:80")
	if err := f.Restore(ctx, sneak); err != nil {
		t.Fatal(err)
	}
	lists = f.Lists
	if _, _, err := s.Sync(ctx, one, false); err != nil {
		t.Fatal(err)
	}
	if f.Lists-lists != 1 {
		t.Errorf("sync after a failure listed %d times, want 1", f.Lists-lists)
	}
	assertMembers(t, f, "KUBE-CLUSTER-IP", "172.30.0.2,tcp:80")
}

// TestSyncerApplyDelta: a delta names sets by upstream's IPv4 name and
// touches only its members; afterwards the next Sync lists the kernel.
func TestSyncerApplyDelta(t *testing.T) {
	ctx := context.Background()
	f := ipset.NewFake()
	s := ipset.NewSyncer(ipset.SyncerOptions{IPSet: f, Family: v1.IPv6Protocol})
	if _, _, err := s.Sync(ctx, map[string][]string{ipset.ClusterIP: {"fd00::1,tcp:80"}}, true); err != nil {
		t.Fatal(err)
	}
	restores := f.Restores
	err := s.ApplyDelta(ctx, []ipset.Member{{Set: ipset.ClusterIP, Entry: "fd00::2,tcp:80"}},
		[]ipset.Member{{Set: ipset.ClusterIP, Entry: "fd00::1,tcp:80"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.Restores-restores != 1 {
		t.Errorf("ApplyDelta ran %d restores, want 1", f.Restores-restores)
	}
	assertMembers(t, f, "KUBE-6-CLUSTER-IP", "fd00::2,tcp:80")
	if err := s.ApplyDelta(ctx, nil, nil); err != nil || f.Restores-restores != 1 {
		t.Errorf("an empty delta: %v, %d restores in all; want no restore", err, f.Restores-restores)
	}
	if s.Known() != nil {
		t.Errorf("Known after ApplyDelta = %v, want nil (the next Sync lists the kernel)", s.Known())
	}
}

func assertMembers(t *testing.T, f *ipset.Fake, set string, want ...string) {
	t.Helper()
	got, ok := f.Members(set)
	if !ok {
		t.Errorf("set %s missing", set)
		return
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s = %q, want %q", set, got, want)
	}
}
