package iptables_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/ruleset"
)

// fuzzCase is one Service and one EndpointSlice, described by the fuzz
// arguments (in FuzzObjectToRules' order). Lists are comma-separated.
type fuzzCase struct {
	ns, name, portName  string
	svcType             uint8
	protocol            string
	port, nodePort, hc  int32
	clusterIPs          string
	externalIP, lbIP    string
	sourceRanges        string
	flags               uint8 // 1 ETP Local, 2 ITP Local, 4 ipMode Proxy, 8 not ready, 16 terminating, 32 local
	affinity            int32
	sliceName, svcLabel string
	addressType         string
	epAddrs, epPortName string
	epPort              int32
	nodeName            string
}

// FuzzObjectToRules drives object → validation → tracker → render for both
// families. Invariants: no panic; what validation accepts with a cluster
// IP of a family is programmed; every rendered input is accepted by the
// Fake (which refuses what iptables-restore refuses), also when validation
// is bypassed; every rule stays in KUBE-* chains; comments are safe and
// survive iptables-save and restore; IPVS desired state and ipset members
// build and are canonical. The checked-in corpus is also applied with the
// real iptables-restore by TestFuzzCorpusInKernel.
func FuzzObjectToRules(f *testing.F) {
	for _, c := range fuzzSeeds() {
		f.Add(c.ns, c.name, c.portName, c.svcType, c.protocol, c.port, c.nodePort, c.hc, c.clusterIPs, c.externalIP, c.lbIP,
			c.sourceRanges, c.flags, c.affinity, c.sliceName, c.svcLabel, c.addressType, c.epAddrs, c.epPortName, c.epPort, c.nodeName)
	}
	f.Fuzz(func(t *testing.T, ns, name, portName string, svcType uint8, protocol string, port, nodePort, hc int32,
		clusterIPs, externalIP, lbIP, sourceRanges string, flags uint8, affinity int32,
		sliceName, svcLabel, addressType, epAddrs, epPortName string, epPort int32, nodeName string) {
		c := fuzzCase{ns, name, portName, svcType, protocol, port, nodePort, hc, clusterIPs, externalIP, lbIP,
			sourceRanges, flags, affinity, sliceName, svcLabel, addressType, epAddrs, epPortName, epPort, nodeName}
		checkCase(t, c, nil)
	})
}

// fuzzSeeds are a valid baseline and edge cases; testdata/fuzz holds more.
func fuzzSeeds() []fuzzCase {
	base := fuzzCase{ns: "ns1", name: "svc1", portName: "http", svcType: 2, protocol: "TCP", port: 80, nodePort: 30080,
		hc: 30999, clusterIPs: "10.96.0.10,fd00::10", externalIP: "192.168.99.1", lbIP: "1.2.3.4",
		sourceRanges: "203.0.113.0/24", flags: 1, sliceName: "svc1-abc", svcLabel: "svc1", addressType: "IPv4",
		epAddrs: "10.180.0.1,10.180.0.2", epPortName: "http", epPort: 8080, nodeName: "node-a"}
	with := func(mod func(*fuzzCase)) fuzzCase { c := base; mod(&c); return c }
	return []fuzzCase{
		base,
		with(func(c *fuzzCase) { c.name = "q\"uote\n-A INPUT -j ACCEPT" }),
		with(func(c *fuzzCase) { c.clusterIPs = "fe80::1%eth0" }),
		with(func(c *fuzzCase) { c.hc = 70000 }),
		with(func(c *fuzzCase) { c.sourceRanges = "not-a-cidr" }),
		with(func(c *fuzzCase) { c.sourceRanges = " 010.000.000.000/8 ,fd00::/64" }),
		with(func(c *fuzzCase) { c.addressType, c.epAddrs = "IPv6", "fd00::1%eth0,fd00::2" }),
		with(func(c *fuzzCase) { c.affinity = -5 }),
		with(func(c *fuzzCase) { c.svcType, c.nodePort, c.flags, c.hc = 0, 0, 0, 0 }),
	}
}

func (c *fuzzCase) objects() (*v1.Service, *discovery.EndpointSlice) {
	types := []v1.ServiceType{v1.ServiceTypeClusterIP, v1.ServiceTypeNodePort, v1.ServiceTypeLoadBalancer, v1.ServiceTypeExternalName, ""}
	svc := &v1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: c.name},
		Spec: v1.ServiceSpec{Type: types[int(c.svcType)%len(types)], HealthCheckNodePort: c.hc,
			Ports: []v1.ServicePort{{Name: c.portName, Protocol: v1.Protocol(c.protocol), Port: c.port, NodePort: c.nodePort}}}}
	if c.clusterIPs != "" {
		svc.Spec.ClusterIPs = strings.Split(c.clusterIPs, ",")
		svc.Spec.ClusterIP = svc.Spec.ClusterIPs[0]
	}
	if c.externalIP != "" {
		svc.Spec.ExternalIPs = []string{c.externalIP}
	}
	if c.sourceRanges != "" {
		svc.Spec.LoadBalancerSourceRanges = strings.Split(c.sourceRanges, ",")
	}
	if c.flags&1 != 0 {
		svc.Spec.ExternalTrafficPolicy = v1.ServiceExternalTrafficPolicyLocal
	}
	if c.flags&2 != 0 {
		svc.Spec.InternalTrafficPolicy = ptr.To(v1.ServiceInternalTrafficPolicyLocal)
	}
	if c.lbIP != "" {
		ing := v1.LoadBalancerIngress{IP: c.lbIP}
		if c.flags&4 != 0 {
			ing.IPMode = ptr.To(v1.LoadBalancerIPModeProxy)
		}
		svc.Status.LoadBalancer.Ingress = []v1.LoadBalancerIngress{ing}
	}
	if c.affinity != 0 {
		svc.Spec.SessionAffinity = v1.ServiceAffinityClientIP
		svc.Spec.SessionAffinityConfig = &v1.SessionAffinityConfig{ClientIP: &v1.ClientIPConfig{TimeoutSeconds: ptr.To(c.affinity)}}
	}
	slice := &discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: c.sliceName,
		Labels: map[string]string{discovery.LabelServiceName: c.svcLabel}},
		AddressType: discovery.AddressType(c.addressType),
		Ports:       []discovery.EndpointPort{{Name: ptr.To(c.epPortName), Port: ptr.To(c.epPort), Protocol: ptr.To(v1.Protocol(c.protocol))}}}
	node := "other-node"
	if c.flags&32 != 0 {
		node = fuzzNode
	}
	for _, a := range strings.Split(c.epAddrs, ",") {
		slice.Endpoints = append(slice.Endpoints, discovery.Endpoint{Addresses: []string{a}, NodeName: ptr.To(node),
			Conditions: discovery.EndpointConditions{Ready: ptr.To(c.flags&8 == 0), Serving: ptr.To(true), Terminating: ptr.To(c.flags&16 != 0)}})
	}
	if c.nodeName != "" {
		slice.Endpoints[0].NodeName = ptr.To(c.nodeName)
	}
	return svc, slice
}

const fuzzNode = "kpx-node"

var families = []v1.IPFamily{v1.IPv4Protocol, v1.IPv6Protocol}

// checkCase runs the invariants; apply, when set, also hands each rendered
// input to a real restorer of its family.
func checkCase(t *testing.T, c fuzzCase, apply func(family v1.IPFamily, input []byte) error) {
	svc, slice := c.objects()
	for _, validated := range []bool{true, false} {
		snaps := trackSnapshots(svc, slice, validated)
		for i, fam := range families {
			snap := snaps[i]
			if validated {
				checkValidIsProgrammed(t, svc, fam, snap)
			}
			input := checkRender(t, fam, snap, validated)
			if apply != nil {
				if err := apply(fam, input); err != nil {
					t.Fatalf("%s (validated=%v): iptables-restore refused what the Fake accepted: %v\n%s", fam, validated, err, input)
				}
			}
			checkIPVS(t, snap)
		}
	}
}

// trackSnapshots feeds the objects to one tracker per family, through the
// validation Handler or directly, and returns their first snapshots.
func trackSnapshots(svc *v1.Service, slice *discovery.EndpointSlice, validated bool) []*proxier.Snapshot {
	var fan proxier.FanOut
	for _, fam := range families {
		fan = append(fan, proxier.NewTracker(proxier.TrackerOptions{Family: fam, NodeName: fuzzNode, Logger: klog.Background().V(9)}))
	}
	var h interface {
		OnServiceAdd(*v1.Service)
		OnEndpointSliceAdd(*discovery.EndpointSlice)
		OnNodeSet(*v1.Node)
	} = fan
	if validated {
		h = apivalidation.NewHandler(apivalidation.HandlerOptions{Next: fan, Logger: klog.Background().V(9)})
	}
	h.OnNodeSet(&v1.Node{ObjectMeta: metav1.ObjectMeta{Name: fuzzNode}, Status: v1.NodeStatus{Addresses: []v1.NodeAddress{
		{Type: v1.NodeInternalIP, Address: "203.0.113.2"}, {Type: v1.NodeInternalIP, Address: "fd00:203::2"}}}})
	h.OnServiceAdd(svc)
	h.OnEndpointSliceAdd(slice)
	out := make([]*proxier.Snapshot, len(fan))
	for i, tr := range fan {
		out[i] = tr.Snapshot()
		out[i].Full = true
	}
	return out
}

// checkValidIsProgrammed fails when validation accepted a Service with a
// cluster IP of fam that the tracker then did not convert: validator and
// converter must agree, or a valid Service silently vanishes.
func checkValidIsProgrammed(t *testing.T, svc *v1.Service, fam v1.IPFamily, snap *proxier.Snapshot) {
	if len(apivalidation.ValidateService(svc)) != 0 || svc.Spec.Type == v1.ServiceTypeExternalName {
		return
	}
	for _, s := range svc.Spec.ClusterIPs {
		if a, err := apivalidation.ParseAddr(s); err == nil && proxier.FamilyOf(a) == fam && len(snap.Services) == 0 {
			t.Fatalf("%s: valid Service %q/%q with cluster IP %s has no service port", fam, svc.Namespace, svc.Name, s)
		}
	}
}

func checkRender(t *testing.T, fam v1.IPFamily, snap *proxier.Snapshot, validated bool) []byte {
	opts := iptables.RenderOptions{Family: fam, MasqueradeMark: "0x00004000", LocalhostNodePorts: true,
		LocalDetector: netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}}}
	if fam == v1.IPv6Protocol {
		opts.LocalDetector = netfilter.LocalDetector{IfLocal: []string{"-s", "fd00::/8"}, IfNotLocal: []string{"!", "-s", "fd00::/8"}}
	}
	input := append([]byte(nil), iptables.Render(snap, opts).Bytes()...)
	fake := ruleset.NewFake(ruleset.FakeOptions{Family: fam})
	if err := fake.Restore(context.Background(), input); err != nil {
		t.Fatalf("%s (validated=%v): the Fake refused the rendering: %v\n%s", fam, validated, err, input)
	}
	for name, table := range fake.Tables() {
		for _, ch := range table.Chains {
			if len(ch.Rules) > 0 && !strings.HasPrefix(ch.Name, "KUBE-") {
				t.Fatalf("%s: %d rules in %s %s, outside KUBE-*", fam, len(ch.Rules), name, ch.Name)
			}
			checkComments(t, fam, fake, name, ch)
		}
	}
	return input
}

// checkComments requires safe comments that read back the same through
// iptables-save's quoting.
func checkComments(t *testing.T, fam v1.IPFamily, fake *ruleset.Fake, table string, ch *ruleset.Chain) {
	if len(ch.Rules) == 0 {
		return
	}
	saved := fmt.Sprintf("*%s\n:%s - [0:0]\n", table, ch.Name)
	for i := range ch.Rules {
		c := ch.Rules[i].Comment()
		if !utf8.ValidString(c) || len(c) > iptables.MaxCommentLen || strings.ContainsAny(c, "\x00\n\r\t\x1b\x7f") {
			t.Fatalf("%s %s: unsafe comment %q", table, ch.Name, c)
		}
		saved += "-A " + ch.Name + " " + ch.Rules[i].SaveLine() + "\n"
	}
	script, err := ruleset.ParseRestore([]byte(saved+"COMMIT\n"), fam)
	if err != nil {
		t.Fatalf("iptables-save output of %s does not parse: %v\n%s", ch.Name, err, saved)
	}
	for i, st := range script.Tables[0].Statements[1:] {
		if got, want := st.Rule.Comment(), ch.Rules[i].Comment(); got != want {
			t.Fatalf("%s %s: comment %q reads back as %q", table, ch.Name, want, got)
		}
	}
}

// checkIPVS builds IPVS mode's desired state and ipset members: every
// member must be in the canonical form ipset lists.
func checkIPVS(t *testing.T, snap *proxier.Snapshot) {
	nodeIPs := snap.Node.IPs
	_ = ipvs.BuildDesired(snap, ipvs.BuildOptions{NodePortIPs: nodeIPs})
	sets := ipvs.BuildDesiredSets(snap, ipvs.SetMemberOptions{NodePortIPs: nodeIPs})
	bases := ipvs.SetSpecs(v1.IPv4Protocol)
	for i, spec := range ipvs.SetSpecs(sets.Family) {
		for _, m := range sets.Members[bases[i].Name] {
			if canon, err := ipvs.CanonicalEntry(spec.Type, sets.Family, m); err != nil || canon != m {
				t.Fatalf("%s member %q is not canonical: %q, %v", spec.Name, m, canon, err)
			}
		}
	}
}

// TestFuzzBaselineIsProgrammed keeps the fuzz harness honest: its valid
// baseline is programmed in both families, so the invariants above look at
// real rules.
func TestFuzzBaselineIsProgrammed(t *testing.T) {
	svc, slice := fuzzSeeds()[0].objects()
	for i, snap := range trackSnapshots(svc, slice, true) {
		if len(snap.Services) != 1 {
			t.Fatalf("%s: %d service ports, want 1", families[i], len(snap.Services))
		}
		for _, eps := range snap.Endpoints {
			if i == 0 && len(eps.All) != 2 {
				t.Errorf("IPv4 endpoints %v, want 2", eps.All)
			}
		}
		out := string(checkRender(t, families[i], snap, true))
		want := []string{"KUBE-SVC-", "KUBE-EXT-", "KUBE-FW-", "-A KUBE-NODEPORTS"}
		if families[i] == v1.IPv6Protocol { // the slice is IPv4
			want = []string{`--comment "ns1/svc1:http has no endpoints"`}
		}
		for _, want := range want {
			if !strings.Contains(out, want) {
				t.Errorf("%s: rendering lacks %s", families[i], want)
			}
		}
	}
}
