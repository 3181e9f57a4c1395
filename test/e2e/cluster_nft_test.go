package e2e

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/kproxy/kproxy/test/cluster"
	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/netns"
	"github.com/kproxy/kproxy/test/nftlisting"
)

const (
	// nftServiceCIDRv6 makes the API server dual-stack, so that the ip6
	// table has services too.
	nftServiceCIDRv6 = "fd00:10:96::/108"
	// nftSettle is how long a listing must stay the same before it counts
	// as the result of the proxy's sync (both proxies sync at once on start,
	// then on changes; upstream v1.37's periodic sync is hourly).
	nftSettle = 2 * time.Second
	// nftReadyTimeout bounds the wait for a proxy's sync.
	nftReadyTimeout = 90 * time.Second
	// envNFTDump names a directory where the tests write each proxy's raw
	// listings (<namespace>-<family>.nft) as they were compared: samples
	// for test/nftlisting and material for fixing a difference.
	envNFTDump = "KPROXY_E2E_NFT_DUMP"
)

// TestClusterNFTUpstreamScenario runs upstream kube-proxy v1.37.2 in
// nftables mode against a real kube-apiserver holding one object of every
// kind the differential test compares, and checks its tables against what
// upstream's proxier.go writes for them (chain names from the rule in
// reference section 10.1). Then it runs upstream a second time in a
// namespace of its own, set up exactly as kproxy's in
// TestClusterNFTMatchesUpstream, and requires the same normalized tables:
// this proves the harness (the second namespace, the relayed API server,
// the normalization) adds no difference of its own, so that every line the
// differential test reports is kproxy's.
func TestClusterNFTUpstreamScenario(t *testing.T) {
	runNFTDifferential(t, "", "- node namespace, + second namespace")
}

// TestClusterNFTMatchesUpstream is the differential test of kproxy's
// nftables mode: upstream kube-proxy v1.37.2 (--proxy-mode nftables) in the
// node namespace and kproxy in a namespace of its own, with the same
// configuration file, the same node addresses and the same API server, must
// list the same "table ip kube-proxy" and "table ip6 kube-proxy" after
// normalization (test/nftlisting: element, chain and set order, counters),
// first after their initial sync, then after changes to the objects (which
// kproxy applies as partial syncs).
func TestClusterNFTMatchesUpstream(t *testing.T) {
	runNFTDifferential(t, kproxyBin, "- upstream, + kproxy")
}

// runNFTDifferential builds the world and the scenario, runs upstream
// kube-proxy in nftables mode in the node namespace and secondBin (upstream
// again when empty) in a second namespace, and compares their normalized
// tables after the first sync and after changeNFTScenario; diffLabel says
// which side is which.
func runNFTDifferential(t *testing.T, secondBin, diffLabel string) {
	kerneltest.NeedTools(t, "nftables differential test", "nft")
	ce := newBareClusterEnvWith(t, []string{"--service-cluster-ip-range=" + cluster.ServiceCIDR + "," + nftServiceCIDRv6})
	if ce.c.Binaries.KubeProxy == "" {
		kerneltest.SkipOrFail(t, "nftables differential test: no upstream kube-proxy binary (KPROXY_ETCD_BIN/KPROXY_APISERVER_BIN given without it)")
	}
	if secondBin == "" {
		secondBin = ce.c.Binaries.KubeProxy
	}
	ce.createNFTScenario()
	confPath := ce.writeNFTConfig()
	upstream := ce.startNFTProxy(ce.w.Node, ce.c.Binaries.KubeProxy, confPath)
	want := ce.settledNFTState(ce.w.Node, upstream, nftReady)
	requireNFTScenario(t, want)
	ns := ce.secondNodeNamespace()
	second := ce.startNFTProxy(ns, secondBin, confPath)
	if got := ce.settledNFTState(ns, second, nftReady); got != want {
		t.Errorf("after the first sync, the tables differ (normalized; %s):\n%s", diffLabel, lineDiff(want, got))
	}

	ce.changeNFTScenario()
	// Upstream flushes the chains the changes made stale and deletes them
	// at its next sync at least a second later, which only a change
	// triggers: one more Service (dual-stack: each family's proxier syncs on
	// its own), once both proxies have the changes.
	ce.settledNFTState(ce.w.Node, upstream, nftChangedReady(false))
	ce.settledNFTState(ns, second, nftChangedReady(false))
	ce.createService(service("trigger", "10.96.0.41", nftDualStack("fd00:10:96::41")))
	want = ce.settledNFTState(ce.w.Node, upstream, nftChangedReady(true))
	requireNFTChanges(t, want)
	if got := ce.settledNFTState(ns, second, nftChangedReady(true)); got != want {
		t.Errorf("after the changes, the tables differ (normalized; %s):\n%s", diffLabel, lineDiff(want, got))
	}
}

// startNFTProxy runs bin (upstream kube-proxy or kproxy) with confPath in
// ns; its output is logged when the test fails.
func (ce *clusterEnv) startNFTProxy(ns, bin, confPath string) *netns.Process {
	t := ce.t
	t.Helper()
	p, err := ce.w.Start(ns, bin, "--config", confPath, "--hostname-override", nodeName, "-v", "2")
	if err != nil {
		t.Fatalf("start %s in %s: %v", bin, ns, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s output (%s):\n%s", filepath.Base(bin), ns, tail(p.Output(), 60))
		}
		if err := p.Stop(10 * time.Second); err != nil {
			t.Logf("stop %s: %v", bin, err)
		}
	})
	return p
}

// secondNodeNamespace makes the second proxy's namespace: the node's
// address on an interface named as in the node namespace (nodePortAddresses'
// default, "primary", lists the interface addresses matching the Node's IPs)
// and the API server relayed at the same address.
func (ce *clusterEnv) secondNodeNamespace() string {
	t := ce.t
	t.Helper()
	ns := kerneltest.Netns(t, "kpx-nftkp-")
	a := ce.w.Addrs
	for _, args := range [][]string{
		// This kernel has no dummy driver: a veth pair with both ends in ns.
		{"link", "add", netns.NodeClientLink, "type", "veth", "peer", "name", "eth0-peer"},
		{"link", "set", "eth0-peer", "up"},
		{"addr", "add", fmt.Sprintf("%s/%d", a.NodeV4, a.ClientCIDRv4.Bits()), "dev", netns.NodeClientLink},
		{"addr", "add", fmt.Sprintf("%s/%d", a.NodeV6, a.ClientCIDRv6.Bits()), "dev", netns.NodeClientLink, "nodad"},
		{"link", "set", netns.NodeClientLink, "up"},
	} {
		kerneltest.Run(t, append([]string{"ip", "-n", ns}, args...)...)
	}
	if err := ce.c.ServeAPIIn(ns); err != nil {
		t.Fatal(err)
	}
	return ns
}

// writeNFTConfig writes the configuration both proxies run with: the
// deployed config.conf in nftables mode (nodePortAddresses left at its
// default, which for nftables mode is the node's primary IPs), with the
// world's cluster CIDRs, the admin kubeconfig and conntrack sysctls left
// alone (not settable in a network namespace).
func (ce *clusterEnv) writeNFTConfig() string {
	ce.t.Helper()
	raw, err := upstreamConfig(ce.c.Kubeconfig)
	if err != nil {
		ce.t.Fatal(err)
	}
	var conf map[string]any
	if err := yaml.Unmarshal(raw, &conf); err != nil {
		ce.t.Fatal(err)
	}
	conf["mode"] = "nftables"
	out, err := yaml.Marshal(conf)
	if err != nil {
		ce.t.Fatal(err)
	}
	path := filepath.Join(ce.dir, "nftables.conf")
	if err := os.WriteFile(path, out, 0o600); err != nil {
		ce.t.Fatal(err)
	}
	return path
}

// nftState lists both kube-proxy tables in ns, normalized.
func (ce *clusterEnv) nftState(ns string) (string, error) {
	var b strings.Builder
	for _, family := range []string{"ip", "ip6"} {
		out, err := ce.w.Exec(ns, "nft", "list", "table", family, "kube-proxy")
		if err != nil {
			return "", err
		}
		if dir := os.Getenv(envNFTDump); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, ns+"-"+family+".nft"), out, 0o644); err != nil {
				return "", err
			}
		}
		norm, err := nftlisting.Normalize(string(out))
		if err != nil {
			return "", fmt.Errorf("normalize %s table: %w\n%s", family, err, out)
		}
		b.WriteString(norm)
	}
	return b.String(), nil
}

// settledNFTState waits until both tables in ns exist, satisfy ready and
// have not changed for nftSettle, and returns them.
func (ce *clusterEnv) settledNFTState(ns string, p *netns.Process, ready func(string) error) string {
	ce.t.Helper()
	var last string
	var since time.Time
	ce.eventually(nftReadyTimeout, "nftables tables in "+ns+" settled", func() error {
		select {
		case <-p.Done():
			ce.t.Fatalf("%s exited in %s before its tables settled: %v", filepath.Base(p.Argv[0]), ns, p.Err())
		default:
		}
		state, err := ce.nftState(ns)
		if err == nil {
			err = ready(state)
		}
		if err != nil {
			last = ""
			return err
		}
		if state != last {
			last, since = state, time.Now()
		}
		if time.Since(since) < nftSettle {
			return errors.New("tables changed in the last " + nftSettle.String())
		}
		return nil
	})
	return last
}

// nftReady says whether a state holds the last services of the scenario in
// both families: the first sync, made after every object existed, has run.
func nftReady(state string) error {
	for _, want := range []string{"10.96.0.30 . tcp . 80 : goto ", "fd00:10:96::30 . tcp . 80 : goto ",
		`10.96.0.15 . tcp . 80 comment "e2e/empty:p" : goto reject-chain`} {
		if !strings.Contains(state, want) {
			return fmt.Errorf("no %q yet", want)
		}
	}
	return nil
}

// nftChain is upstream's hashed chain name for a service or endpoint base
// name (reference section 10.1; names here stay under the length limit).
func nftChain(prefix, base string) string {
	sum := sha256.Sum256([]byte(base))
	return prefix + "-" + base32.StdEncoding.EncodeToString(sum[:])[:8] + "-" + base
}

func nftMultiPort(svc *v1.Service) {
	svc.Spec.Ports = []v1.ServicePort{
		{Name: "p", Port: 80, Protocol: v1.ProtocolTCP},
		{Name: "q", Port: 443, Protocol: v1.ProtocolTCP},
		{Name: "d", Port: 53, Protocol: v1.ProtocolUDP},
	}
}

func nftDualStack(v6 string) svcOpt {
	return func(s *v1.Service) {
		s.Spec.ClusterIPs = append(s.Spec.ClusterIPs, v6)
		s.Spec.IPFamilies = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}
		s.Spec.IPFamilyPolicy = ptr.To(v1.IPFamilyPolicyRequireDualStack)
	}
}

// withSlicePorts gives a slice the service's ports, each to podPort+i.
func withSlicePorts(s *discovery.EndpointSlice, svc *v1.Service) *discovery.EndpointSlice {
	s.Ports = nil
	for i, p := range svc.Spec.Ports {
		s.Ports = append(s.Ports, discovery.EndpointPort{Name: ptr.To(p.Name), Port: ptr.To(int32(podPort + i)),
			Protocol: ptr.To(p.Protocol)})
	}
	return s
}
