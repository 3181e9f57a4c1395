package xtables_test

import (
	"context"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// natFault makes the nat block of the next restore fail when armed, after
// the blocks before it committed, as a kernel refusing half a sync would.
type natFault struct {
	*xtables.Runner
	armed  bool
	failed string // the input that was made to fail
}

func (f *natFault) Restore(ctx context.Context, data []byte) error {
	if f.armed && strings.Contains(string(data), "*nat\n") {
		f.armed = false
		s := string(data)
		i := strings.LastIndex(s, "*nat\n")
		j := i + strings.Index(s[i:], "COMMIT\n")
		f.failed = s
		data = []byte(s[:j] + "-A KPX-NO-SUCH-CHAIN -j ACCEPT\n" + s[j:])
	}
	return f.Runner.Restore(ctx, data)
}

type service struct {
	name, clusterIP string
	nodePort        int32
	endpoints       []string
}

func snapshotOf(full bool, changed []string, svcs ...service) *proxier.Snapshot {
	s := &proxier.Snapshot{Family: v1.IPv4Protocol, Full: full,
		Services:  map[proxier.ServicePortName]*proxier.ServicePort{},
		Endpoints: map[proxier.ServicePortName]*proxier.EndpointSet{},
		Changed:   map[proxier.ServicePortName]struct{}{}}
	name := func(n string) proxier.ServicePortName {
		return proxier.ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: n}, Port: "p80", Protocol: v1.ProtocolTCP}
	}
	for _, sv := range svcs {
		n := name(sv.name)
		s.Services[n] = &proxier.ServicePort{Name: n, ClusterIP: netip.MustParseAddr(sv.clusterIP), Port: 80,
			Protocol: v1.ProtocolTCP, NodePort: sv.nodePort}
		set := &proxier.EndpointSet{}
		for _, ip := range sv.endpoints {
			e := proxier.Endpoint{IP: netip.MustParseAddr(ip), Port: 80, Ready: true, Serving: true}
			set.All, set.Cluster = append(set.All, e), append(set.Cluster, e)
		}
		set.HasAny = len(set.Cluster) > 0
		s.Endpoints[n] = set
	}
	for _, c := range changed {
		s.Changed[name(c)] = struct{}{}
	}
	return s
}

var countersRE = regexp.MustCompile(`\[\d+:\d+\]`)

// saveAll is iptables-save of every table, without the dated comment lines
// and with chain counters zeroed.
func saveAll(t *testing.T, ns string, backend xtables.Backend) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables-"+string(backend)+"-save").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-%s-save: %v: %s", backend, err, out)
	}
	return countersRE.ReplaceAllString(stripComments(out), "[0:0]")
}

// TestKernelFailedSyncRollsBackEveryTable: with both backends, a sync whose
// nat block the kernel refuses (after filter and mangle committed) leaves
// iptables-save of every table byte for byte as before, and the next sync
// succeeds.
func TestKernelFailedSyncRollsBackEveryTable(t *testing.T) {
	privateXtablesLock(t)
	web := service{"web", "172.30.0.10", 30010, []string{"10.180.0.1", "10.180.0.2"}}
	api := service{"api", "172.30.0.11", 30011, []string{"10.180.0.3"}}
	apiGone := service{"api", "172.30.0.11", 30011, nil}
	syncs := []struct {
		name string
		snap *proxier.Snapshot
	}{
		{"partial", snapshotOf(false, []string{"api"}, web, apiGone)},
		{"full", snapshotOf(true, nil, web, apiGone)},
	}
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		for _, sync := range syncs {
			t.Run(string(backend)+"/"+sync.name, func(t *testing.T) {
				kerneltest.NeedTools(t, "iptables rollback kernel test", "iptables-"+string(backend)+"-restore")
				ns := newNetns(t)
				r, err := xtables.New(xtables.Options{Backend: backend, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				// Other software's rules in the built-in chains must survive too.
				if err := r.Restore(context.Background(), []byte("*filter\n-A FORWARD -s 10.9.9.9/32 -j ACCEPT\nCOMMIT\n")); err != nil {
					t.Fatal(err)
				}
				f := &natFault{Runner: r}
				p, err := iptables.New(iptables.Options{Restorer: f, Render: iptables.RenderOptions{MasqueradeMark: "0x00004000",
					LocalDetector: iptables.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
					RandomFully:   true}})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := p.Sync(context.Background(), snapshotOf(true, nil, web, api)); err != nil {
					t.Fatal(err)
				}
				before := saveAll(t, ns, backend)

				f.armed = true
				if _, err := p.Sync(context.Background(), sync.snap); err == nil {
					t.Fatal("the sync succeeded although its nat block failed")
				}
				if !strings.Contains(f.failed, "*filter\n") || !strings.Contains(f.failed, `"ns/api:p80 has no endpoints"`) {
					t.Fatalf("the failed input did not change filter; the test proves nothing:\n%s", f.failed)
				}
				if after := saveAll(t, ns, backend); after != before {
					t.Errorf("iptables-%s-save after the failed sync:\n%s\nbefore:\n%s", backend, after, before)
				}

				if _, err := p.Sync(context.Background(), sync.snap); err != nil {
					t.Fatalf("the sync after the fault: %v", err)
				}
				if got := saveAll(t, ns, backend); !strings.Contains(got, `"ns/api:p80 has no endpoints"`) ||
					!strings.Contains(got, "-A FORWARD -s 10.9.9.9/32 -j ACCEPT") {
					t.Errorf("after the retry:\n%s", got)
				}
			})
		}
	}
}

// TestKernelTableRollbackUndoesEveryKindOfChange: an earlier filter block
// that creates a chain, inserts into and deletes from built-in chains,
// rewrites a chain and deletes another is undone on the real kernel, with
// both backends, when the nat block after it fails.
func TestKernelTableRollbackUndoesEveryKindOfChange(t *testing.T) {
	privateXtablesLock(t)
	base := `*filter
:KPX-KEEP - [0:0]
:KPX-GONE - [0:0]
-A KPX-KEEP -s 10.1.0.0/16 -j ACCEPT
-A KPX-KEEP -j KPX-GONE
-A KPX-GONE -j RETURN
-A INPUT -j KPX-KEEP
-A FORWARD -s 10.9.9.9/32 -j ACCEPT
COMMIT
*nat
:KPX-NAT - [0:0]
-A KPX-NAT -j RETURN
COMMIT
`
	failing := `*filter
:KPX-NEW - [0:0]
:KPX-KEEP - [0:0]
:KPX-GONE - [0:0]
-A KPX-NEW -j ACCEPT
-A KPX-KEEP -j KPX-NEW
-I INPUT 1 -j KPX-NEW
-D FORWARD -s 10.9.9.9/32 -j ACCEPT
-X KPX-GONE
COMMIT
*mangle
:KPX-MANGLE - [0:0]
COMMIT
*nat
:KPX-NAT - [0:0]
-A KPX-NAT -j KPX-NO-SUCH-CHAIN
COMMIT
`
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) {
			kerneltest.NeedTools(t, "iptables rollback kernel test", "iptables-"+string(backend)+"-restore")
			ns := newNetns(t)
			r, err := xtables.New(xtables.Options{Backend: backend, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Restore(context.Background(), []byte(base+"*mangle\n:KPX-CANARY - [0:0]\nCOMMIT\n")); err != nil {
				t.Fatal(err)
			}
			before := saveAll(t, ns, backend)
			err = iptables.NewTableRollback(r).Restore(context.Background(), []byte(failing))
			if err == nil || !strings.Contains(err.Error(), "tables filter, mangle rolled back") {
				t.Fatalf("Restore = %v, want the nat failure with filter and mangle rolled back", err)
			}
			if after := saveAll(t, ns, backend); after != before {
				t.Errorf("iptables-%s-save after the failed restore:\n%s\nbefore:\n%s", backend, after, before)
			}
		})
	}
}
