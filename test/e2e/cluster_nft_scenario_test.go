package e2e

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// nftScenarioService is one Service of the nftables differential scenario
// with its EndpointSlices (none: a service without endpoints).
type nftScenarioService struct {
	svc    *v1.Service
	slices []*discovery.EndpointSlice
}

// createNFTScenario writes, through the API, one Service of every kind
// the nftables backend renders differently: each protocol, several ports,
// NodePort, LoadBalancer with source ranges, external IPs, both traffic
// policies Local (with and without local endpoints), ClientIP affinity, no
// endpoints, only terminating endpoints, and dual stack.
func (ce *clusterEnv) createNFTScenario() {
	for _, s := range ce.nftScenario() {
		status := s.svc.Status
		ce.createService(s.svc)
		if len(status.LoadBalancer.Ingress) > 0 {
			ce.setServiceStatus(s.svc.Name, status)
		}
		for _, sl := range s.slices {
			ce.putSlice(sl, time.Now())
		}
	}
}

func (ce *clusterEnv) nftScenario() []nftScenarioService {
	w := ce.w
	local, remote := w.Pods, w.RemotePods
	one := func(svc *v1.Service, eps ...discovery.Endpoint) nftScenarioService {
		return nftScenarioService{svc: svc, slices: []*discovery.EndpointSlice{slice(svc, "a", eps...)}}
	}
	multi := service("multi", "10.96.0.22")
	nftMultiPort(multi)
	dual := service("dual", "10.96.0.30", withNodePort(30083), nftDualStack("fd00:10:96::30"))
	dualV6 := slice(dual, "b", endpoint(w, local[0], v6(local[0])), endpoint(w, remote[0], v6(remote[0])))
	dualV6.AddressType = discovery.AddressTypeIPv6
	lbRanges := []string{w.Addrs.ClientV4.String() + "/32", "203.0.113.0/24"}
	return []nftScenarioService{
		one(service("web", "10.96.0.10"), eps(ce, local[0], local[1], local[2])...),
		one(service("udp", "10.96.0.20", withProtocol(v1.ProtocolUDP)), eps(ce, local[0], local[1])...),
		one(service("sctp", "10.96.0.21", withProtocol(v1.ProtocolSCTP)), eps(ce, local[1])...),
		{svc: multi, slices: []*discovery.EndpointSlice{withSlicePorts(slice(multi, "a", eps(ce, local[0], remote[1])...), multi)}},
		one(service("np", "10.96.0.11", withNodePort(testNodePort)), eps(ce, local[0], local[1])...),
		one(service("etp", "10.96.0.12", withLoadBalancer("192.168.60.101", 30081), withExternalLocal(30900)),
			eps(ce, local[0], remote[0])...),
		one(service("etpr", "10.96.0.18", withNodePort(30084), withExternalLocal(0)), eps(ce, remote[0])...),
		one(service("itp", "10.96.0.13", withInternalLocal()), eps(ce, local[1], remote[1])...),
		one(service("aff", "10.96.0.14", withAffinity(600)), eps(ce, local[0], local[2])...),
		{svc: service("empty", "10.96.0.15")},
		one(service("lb", "10.96.0.16", withLoadBalancer(lbIngressIP, 30082, lbRanges...)), eps(ce, local[2], remote[2])...),
		one(service("ext", "10.96.0.17", withExternalIPs(externalIP)), eps(ce, local[0])...),
		one(service("term", "10.96.0.19"), endpoint(w, local[0], terminatingServing()), endpoint(w, local[1], terminatingServing())),
		{svc: dual, slices: []*discovery.EndpointSlice{slice(dual, "a", eps(ce, local[0], remote[0])...), dualV6}},
	}
}

// requireNFTScenario fails t unless state (normalized tables, both
// families) holds what upstream's pkg/proxy/nftables/proxier.go writes for
// each scenario service, so that a comparison cannot pass on tables that
// lack a feature.
func requireNFTScenario(t *testing.T, state string) {
	t.Helper()
	svc := func(name, proto, port string) string { return nftChain("service", "e2e/"+name+"/"+proto+"/"+port) }
	ext := func(name string) string { return nftChain("external", "e2e/"+name+"/tcp/p") }
	for _, want := range []string{
		// writeServiceToEndpointDNATs: one numgen map rule, or one dnat for one endpoint.
		"10.96.0.10 . tcp . 80 : goto " + svc("web", "tcp", "p"),
		"meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.244.1.11 . 8080, 1 : 10.244.1.12 . 8080, 2 : 10.244.1.13 . 8080 }",
		"10.96.0.20 . udp . 80 : goto " + svc("udp", "udp", "p"),
		"meta l4proto udp dnat ip to numgen random mod 2 map { 0 : 10.244.1.11 . 8080, 1 : 10.244.1.12 . 8080 }",
		"10.96.0.21 . sctp . 80 : goto " + svc("sctp", "sctp", "p"),
		"meta l4proto sctp dnat to 10.244.1.12:8080",
		"10.96.0.22 . tcp . 443 : goto " + svc("multi", "tcp", "q"),
		"10.96.0.22 . udp . 53 : goto " + svc("multi", "udp", "d"),
		"meta l4proto udp dnat ip to numgen random mod 2 map { 0 : 10.244.1.11 . 8082, 1 : 10.244.2.12 . 8082 }",
		// hairpin-connections: a local endpoint reaching itself is masqueraded.
		"10.244.1.12 . 10.244.1.12 . sctp . 8080",
		`ip daddr @cluster-ips ip saddr != 10.244.0.0/16 meta mark set meta mark | 0x00004000 comment "masquerade clusterIP traffic from outside cluster"`,
		"tcp . 30080 : goto " + ext("np"),
		"ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports",
		"tcp . 30081 : goto " + ext("etp"),
		"goto " + nftChain("local", "e2e/etp/tcp/p"),
		`fib saddr type local goto ` + svc("etp", "tcp", "p") + ` comment "short-circuit local traffic"`,
		"192.168.60.101 . tcp . 80 : goto " + ext("etp"),
		`tcp . 30084 comment "e2e/etpr:p" : drop`,
		"10.96.0.13 . tcp . 80 : goto " + nftChain("local", "e2e/itp/tcp/p"),
		"set " + nftChain("affinity", "e2e/aff/tcp/p__10.244.1.11/8080") + " {",
		"update @" + nftChain("affinity", "e2e/aff/tcp/p__10.244.1.11/8080") + " { ip saddr }",
		"ip saddr @" + nftChain("affinity", "e2e/aff/tcp/p__10.244.1.11/8080") + " goto " +
			nftChain("endpoint", "e2e/aff/tcp/p__10.244.1.11/8080"),
		`10.96.0.15 . tcp . 80 comment "e2e/empty:p" : goto reject-chain`,
		lbIngressIP + " . tcp . 80 : goto " + nftChain("firewall", "e2e/lb/tcp/p"),
		lbIngressIP + " . tcp . 80 : goto " + ext("lb"),
		"ip saddr != { 192.168.50.2, 203.0.113.0/24 } drop",
		externalIP + " . tcp . 80 : goto " + ext("ext"),
		// Only terminating (serving) endpoints: upstream falls back to them.
		"10.96.0.19 . tcp . 80 : goto " + svc("term", "tcp", "p"),
		"10.96.0.30 . tcp . 80 : goto " + svc("dual", "tcp", "p"),
		"fd00:10:96::30 . tcp . 80 : goto " + svc("dual", "tcp", "p"),
		"meta l4proto tcp dnat ip6 to numgen random mod 2 map { 0 : fd00:10:244:1::11 . 8080, 1 : fd00:10:244:2::11 . 8080 }",
		// The default ServiceCIDR, per family.
		`ip daddr 10.96.0.0/12 drop comment "Drop traffic to unallocated ClusterIPs"`,
		`ip6 daddr fd00:10:96::/108 drop comment "Drop traffic to unallocated ClusterIPs"`,
	} {
		if !strings.Contains(state, want) {
			t.Fatalf("upstream kube-proxy's nftables tables lack %q:\n%s", want, state)
		}
	}
	for _, node := range []string{"192.168.50.1", "fd00:50::1"} {
		if !strings.Contains(state, "elements = {\n\t\t\t"+node+"\n") {
			t.Fatalf("upstream's nodeport-ips lack the node address %s:\n%s", node, state)
		}
	}
}

// changeNFTScenario changes the scenario through the API the way a
// cluster does, so that both proxies make partial syncs: a Service
// deleted, endpoints replaced, added and removed, a NodePort Service
// turned into a ClusterIP one, source ranges narrowed, terminating
// endpoints ready again, a family's endpoints gone, and a new Service
// (created last: its presence says the changes arrived).
func (ce *clusterEnv) changeNFTScenario() {
	w := ce.w
	local, remote := w.Pods, w.RemotePods
	if err := ce.c.Client.CoreV1().Services(testNS).Delete(ce.ctx, "ext", metav1.DeleteOptions{}); err != nil {
		ce.t.Fatalf("delete service ext: %v", err)
	}
	for _, name := range []string{"ext-a", "dual-b"} {
		if err := ce.c.Client.DiscoveryV1().EndpointSlices(testNS).Delete(ce.ctx, name, metav1.DeleteOptions{}); err != nil {
			ce.t.Fatalf("delete endpointslice %s: %v", name, err)
		}
	}
	ce.setSliceEndpoints("web-a", eps(ce, local[0], local[2], remote[0])...)
	ce.setSliceEndpoints("term-a", eps(ce, local[0], local[1])...)
	ce.setSliceEndpoints("aff-a", eps(ce, local[0])...)
	empty := service("empty", "10.96.0.15")
	ce.putSlice(slice(empty, "a", eps(ce, local[1])...), time.Now())
	ce.updateService("np", func(s *v1.Service) {
		s.Spec.Type, s.Spec.Ports[0].NodePort = v1.ServiceTypeClusterIP, 0
	})
	ce.updateService("lb", func(s *v1.Service) { s.Spec.LoadBalancerSourceRanges = []string{"203.0.113.0/24"} })
	late := service("late", "10.96.0.40")
	ce.createService(late)
	ce.putSlice(slice(late, "a", eps(ce, local[2])...), time.Now())
}

func (ce *clusterEnv) setSliceEndpoints(name string, endpoints ...discovery.Endpoint) {
	ce.t.Helper()
	s, err := ce.c.Client.DiscoveryV1().EndpointSlices(testNS).Get(ce.ctx, name, metav1.GetOptions{})
	if err != nil {
		ce.t.Fatalf("get endpointslice %s: %v", name, err)
	}
	s.Endpoints = endpoints
	ce.putSlice(s, time.Now())
}

func (ce *clusterEnv) updateService(name string, change func(*v1.Service)) {
	ce.t.Helper()
	api := ce.c.Client.CoreV1().Services(testNS)
	s, err := api.Get(ce.ctx, name, metav1.GetOptions{})
	if err != nil {
		ce.t.Fatalf("get service %s: %v", name, err)
	}
	change(s)
	if _, err := api.Update(ce.ctx, s, metav1.UpdateOptions{}); err != nil {
		ce.t.Fatalf("update service %s: %v", name, err)
	}
}

// staleChain is an empty service or endpoint chain (its name has a "/"):
// upstream flushes a chain it no longer needs and deletes it at a later
// sync, at least a second after.
var staleChain = regexp.MustCompile(`(?m)^\tchain \S*/\S* \{\n\t\}$`)

// nftChangedReady says whether a state shows every change of
// changeNFTScenario and, when triggered (after the Service "trigger" was
// created to make a sync that deletes stale chains), that one too and no
// stale chain.
func nftChangedReady(triggered bool) func(string) error {
	return func(state string) error {
		switch {
		case !strings.Contains(state, "10.96.0.40 . tcp . 80 : goto "):
			return errors.New("no service late yet")
		case strings.Contains(state, "10.96.0.17 . tcp . 80 "):
			return errors.New("service ext still there")
		case !triggered:
			return nil
		case !strings.Contains(state, `10.96.0.41 . tcp . 80 comment "e2e/trigger:p"`),
			!strings.Contains(state, `fd00:10:96::41 . tcp . 80 comment "e2e/trigger:p"`):
			return errors.New("no service trigger yet in both families")
		case staleChain.MatchString(state):
			return fmt.Errorf("stale chain %q still there", staleChain.FindString(state))
		}
		return nil
	}
}

// requireNFTChanges fails t unless upstream's state after the changes
// holds each of them, so that the second comparison cannot pass on tables
// that did not change.
func requireNFTChanges(t *testing.T, state string) {
	t.Helper()
	aff13 := nftChain("affinity", "e2e/aff/tcp/p__10.244.1.13/8080")
	for _, want := range []string{
		"meta l4proto tcp dnat ip to numgen random mod 3 map { 0 : 10.244.1.11 . 8080, 1 : 10.244.1.13 . 8080, 2 : 10.244.2.11 . 8080 }",
		"10.96.0.15 . tcp . 80 : goto " + nftChain("service", "e2e/empty/tcp/p"),
		"ip saddr != 203.0.113.0/24 drop",
		`fd00:10:96::30 . tcp . 80 comment "e2e/dual:p" : goto reject-chain`,
	} {
		if !strings.Contains(state, want) {
			t.Fatalf("upstream's tables after the changes lack %q:\n%s", want, state)
		}
	}
	for _, gone := range []string{"tcp . 30080 ", aff13, "e2e/ext/"} {
		if strings.Contains(state, gone) {
			t.Fatalf("upstream's tables after the changes still hold %q:\n%s", gone, state)
		}
	}
}
