package iptables_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
	pt "github.com/kproxy/kproxy/proxier/proxiertest"
	"github.com/kproxy/kproxy/test/kerneltest"
)

// Kernel tests of the iptables proxier: it runs against the real
// iptables-restore (nft and legacy) inside network namespaces each test
// creates and deletes; nothing touches the root namespace.

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

// kernelNetns creates a kpx- network namespace for a kernel test (what
// names it) and deletes it when the test ends, failed or not.
func kernelNetns(t *testing.T, what string) string {
	t.Helper()
	kerneltest.NeedTools(t, what, "iptables-restore", "iptables-save")
	return kerneltest.Netns(t, "kpx-ipt")
}

// kernelRunner runs the backend's IPv4 iptables ("": as installed) in ns.
func kernelRunner(t *testing.T, ns string, backend xtables.Backend) *xtables.Runner {
	t.Helper()
	r, err := xtables.New(xtables.Options{Backend: backend, CommandPrefix: []string{"ip", "netns", "exec", ns}, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestKernelFailedSyncRollsBackEveryTable: with both backends, a sync whose
// nat block the kernel refuses (after filter and mangle committed) leaves
// iptables-save of every table byte for byte as before, and the next sync
// succeeds.
func TestKernelFailedSyncRollsBackEveryTable(t *testing.T) {
	t.Setenv("XTABLES_LOCKFILE", filepath.Join(t.TempDir(), "xtables.lock")) // iptables-legacy's lock, private to the test
	web := svcSpec{"ns", "web", "172.30.0.10", 30010, []string{"10.180.0.1", "10.180.0.2"}}
	api := svcSpec{"ns", "api", "172.30.0.11", 30011, []string{"10.180.0.3"}}
	apiGone := svcSpec{"ns", "api", "172.30.0.11", 30011, nil}
	syncs := []struct {
		name string
		full bool
	}{
		{"partial", false},
		{"full", true},
	}
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		for _, sync := range syncs {
			t.Run(string(backend)+"/"+sync.name, func(t *testing.T) {
				kerneltest.NeedTools(t, "iptables rollback kernel test", "iptables-"+string(backend)+"-restore")
				ns := kernelNetns(t, "iptables rollback kernel test")
				r := kernelRunner(t, ns, backend)
				// Other software's rules in the built-in chains must survive too.
				if err := r.Restore(context.Background(), []byte("*filter\n-A FORWARD -s 10.9.9.9/32 -j ACCEPT\nCOMMIT\n")); err != nil {
					t.Fatal(err)
				}
				f := &natFault{Runner: r}
				p := newProxierOn(t, f)
				w := newWorld(t)
				if _, err := p.Sync(context.Background(), w.next(web, api)); err != nil {
					t.Fatal(err)
				}
				before := kerneltest.IPTablesSave(t, ns, "iptables-"+string(backend)+"-save")

				f.armed = true
				snap := w.next(web, apiGone)
				snap.Full = sync.full
				if _, err := p.Sync(context.Background(), snap); err == nil {
					t.Fatal("the sync succeeded although its nat block failed")
				}
				if !strings.Contains(f.failed, "*filter\n") || !strings.Contains(f.failed, `"ns/api:p80 has no endpoints"`) {
					t.Fatalf("the failed input did not change filter; the test proves nothing:\n%s", f.failed)
				}
				if after := kerneltest.IPTablesSave(t, ns, "iptables-"+string(backend)+"-save"); after != before {
					t.Errorf("iptables-%s-save after the failed sync:\n%s\nbefore:\n%s", backend, after, before)
				}

				if _, err := p.Sync(context.Background(), snap); err != nil {
					t.Fatalf("the sync after the fault: %v", err)
				}
				if got := kerneltest.IPTablesSave(t, ns, "iptables-"+string(backend)+"-save"); !strings.Contains(got, `"ns/api:p80 has no endpoints"`) ||
					!strings.Contains(got, "-A FORWARD -s 10.9.9.9/32 -j ACCEPT") {
					t.Errorf("after the retry:\n%s", got)
				}
			})
		}
	}
}

// saveFault makes iptables-save fail when armed, as it does (minutes,
// then SIGSEGV) on a 10k-service nat table.
type saveFault struct {
	*natFault
	savesFail bool
}

func (f *saveFault) Save(ctx context.Context, table string) ([]byte, error) {
	if f.savesFail {
		return nil, errors.New("iptables-save: signal: segmentation fault")
	}
	return f.natFault.Save(ctx, table)
}

// TestKernelFailedFullSyncLeavesMemoryAsTheKernelIs: a full sync that
// read the tables with iptables-save fails in nat; the next full sync
// cannot Save, so it trusts the memory for per-service chains, which must
// still be what the kernel holds: the sync succeeds and leaves the same
// tables as a first sync of the same state.
func TestKernelFailedFullSyncLeavesMemoryAsTheKernelIs(t *testing.T) {
	w := newWorld(t)
	t.Setenv("XTABLES_LOCKFILE", filepath.Join(t.TempDir(), "xtables.lock"))
	web := svcSpec{"ns", "web", "172.30.0.10", 30010, []string{"10.180.0.1", "10.180.0.2"}}
	shrunk := svcSpec{"ns", "web", "172.30.0.10", 30010, []string{"10.180.0.1"}}
	api := svcSpec{"ns", "api", "172.30.0.11", 30011, []string{"10.180.0.3"}}
	for _, backend := range []xtables.Backend{xtables.BackendNFT, xtables.BackendLegacy} {
		t.Run(string(backend), func(t *testing.T) {
			kerneltest.NeedTools(t, "iptables memory kernel test", "iptables-"+string(backend)+"-restore")
			save := "iptables-" + string(backend) + "-save"
			ctx := context.Background()
			fresh := kernelNetns(t, "iptables memory kernel test")
			if _, err := newProxierOn(t, kernelRunner(t, fresh, backend)).Sync(ctx, w.full(shrunk, api)); err != nil {
				t.Fatal(err)
			}
			ns := kernelNetns(t, "iptables memory kernel test")
			f := &saveFault{natFault: &natFault{Runner: kernelRunner(t, ns, backend)}}
			p := newProxierOn(t, f)
			if _, err := p.Sync(ctx, w.full(web, api)); err != nil {
				t.Fatal(err)
			}
			f.armed = true
			if _, err := p.Sync(ctx, w.full(shrunk, api)); err == nil {
				t.Fatal("the sync succeeded although its nat block failed")
			}
			f.savesFail = true
			if _, err := p.Sync(ctx, w.full(shrunk, api)); err != nil {
				t.Fatalf("the full sync without iptables-save after the fault: %v", err)
			}
			if got, want := kerneltest.IPTablesSave(t, ns, save), kerneltest.IPTablesSave(t, fresh, save); got != want {
				t.Errorf("%s after the retry:\n%s\nafter a first sync of the same state:\n%s", save, got, want)
			}
		})
	}
}

// hostileName is one name no validated object has.
type hostileName struct{ what, name string }

var hostileNames = []hostileName{
	{"quote", `q"uote`}, {"backslash", `back\slash`}, {"blank", "a b"}, {"newline", "new\nline"},
	{"CR", "car\rriage"}, {"tab", "t\tab"}, {"NUL", "nul\x00byte"}, {"jump", "-j ACCEPT"},
	{"closing quote and jump", `x" -j ACCEPT -m comment --comment "y`}, {"new rule", "\n-A INPUT -j ACCEPT"},
	{"escaped quote", `\"`}, {"lone quote", `"`}, {"lone backslash", `\`}, {"300 bytes", strings.Repeat("n", 300)},
	{"300 bytes of 2-byte runes", strings.Repeat("é", 150)}, {"non-UTF-8", "bad\xff\xfeutf8"},
	{"terminal escape", "esc\x1b[31m"}, {"DEL", "del\x7f"}, {"empty", ""},
}

// TestKernelHostileServiceNames syncs service ports whose namespace, name
// and port name are hostile, built directly (as if validation were
// bypassed), through the iptables proxier into a namespace: the real
// iptables-restore must accept every input, no rule may land outside
// KUBE-* chains except upstream's jump rules to them, and every comment
// must read back as iptables.CommentText of what was written.
func TestKernelHostileServiceNames(t *testing.T) {
	r := kernelRunner(t, kernelNetns(t, "hostile names kernel test"), "")
	snap, want := hostileSnapshot(t)
	first, err := newProxierOn(t, r).Sync(context.Background(), snap)
	if err != nil {
		t.Fatalf("iptables-restore refused the hostile names: %v", err)
	}
	// A restarted kproxy compares what it renders with what iptables-save
	// lists: if the listed comments did not match (quoting, escapes,
	// replaced bytes), it would rewrite every chain.
	again, err := newProxierOn(t, r).Sync(context.Background(), snap)
	if err != nil {
		t.Fatalf("second full sync: %v", err)
	}
	if again.RestoreBytes*10 > first.RestoreBytes {
		t.Errorf("a restart over its own rules wrote %d bytes after a first sync of %d: the listed comments do not match the rendered ones",
			again.RestoreBytes, first.RestoreBytes)
	}
	t.Logf("first sync %d bytes, restart over the same rules %d bytes", first.RestoreBytes, again.RestoreBytes)
	comments := 0
	for _, table := range []string{"filter", "nat"} {
		saved, err := r.Save(context.Background(), table)
		if err != nil {
			t.Fatal(err)
		}
		script, err := ruleset.ParseRestore(saved, v1.IPv4Protocol)
		if err != nil {
			t.Fatalf("parse iptables-save -t %s: %v", table, err)
		}
		for _, st := range script.Tables[0].Statements {
			if st.Rule == nil {
				continue
			}
			if !strings.HasPrefix(st.Chain, "KUBE-") && !strings.HasPrefix(st.Rule.TargetName(), "KUBE-") {
				t.Errorf("%s: rule outside KUBE-* chains that is no jump to them: -A %s %s", table, st.Chain, st.Rule.String())
			}
			c := st.Rule.Comment()
			if !utf8.ValidString(c) || len(c) > iptables.MaxCommentLen || strings.ContainsAny(c, "\x00\n\r\t\x1b\x7f") {
				t.Errorf("%s %s: unsafe comment %q", table, st.Chain, c)
			}
			if strings.HasPrefix(c, "kpx") {
				comments++
				if !want[c] {
					t.Errorf("%s %s: comment %q is not CommentText of a rendered comment", table, st.Chain, c)
				}
			}
		}
	}
	if comments < len(hostileNames)*5 {
		t.Errorf("only %d comments of hostile service ports read back", comments)
	}
}

// hostileSnapshot is a full snapshot with one service port per hostile
// name (namespace "kpx"+name, name and port name the hostile name), with
// endpoints, a NodePort and a firewalled LB IP, from Services that skip
// validation; want holds CommentText of every comment the renderer may
// write for them. (The empty name has no endpoints: no slice can name it.)
func hostileSnapshot(t *testing.T) (*proxier.Snapshot, map[string]bool) {
	w := pt.NewWorld(t, pt.WorldOptions{Unvalidated: true})
	want := map[string]bool{}
	for i, h := range hostileNames {
		ip := netip.AddrFrom4([4]byte{10, 180, byte(i), 1})
		w.ApplyService(pt.Service("kpx"+h.name, h.name, pt.ClusterIP(netip.AddrFrom4([4]byte{172, 30, 0, byte(i + 1)}).String()),
			pt.Port(h.name, v1.ProtocolTCP, 80), pt.NodePort(int32(30000+i)),
			pt.LoadBalancer(netip.AddrFrom4([4]byte{1, 2, 3, byte(i + 1)}).String()), pt.SourceRanges("203.0.113.0/24")),
			pt.Endpoint(ip.String()))
		str := pt.Name("kpx"+h.name, h.name, h.name).String()
		ep := netip.AddrPortFrom(ip, 80).String()
		for _, parts := range [][]string{{str}, {str, " cluster IP"}, {str, " loadbalancer IP"}, {str, " -> ", ep}, {str, " has no endpoints"},
			{"masquerade traffic for ", str, " external destinations"}, {str, " traffic not accepted by ", iptables.ServiceChainNames(str, v1.ProtocolTCP).Firewall},
			{"other traffic to ", str, " will be dropped by KUBE-PROXY-FIREWALL"}} {
			want[iptables.CommentText(parts...)] = true
		}
	}
	snap := w.Snapshot()
	if snap.Len() != len(hostileNames) {
		t.Fatalf("%d service ports for %d hostile names", snap.Len(), len(hostileNames))
	}
	return snap, want
}
