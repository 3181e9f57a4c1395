package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"

	"github.com/kproxy/kproxy/test/probe"
)

// TestBadObjectsAreSkipped feeds valid services together with invalid and
// hostile objects (names with quotes and newlines, IPv6 zones, out-of-range
// ports, an unparseable source range) and a very large valid one, then an
// invalid update of a working Service: the valid services keep answering,
// the LB IP with the unparseable source range drops external traffic,
// kproxy keeps running, and its log names every bad object.
func TestBadObjectsAreSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.0.10:80"
	web := service("web", "10.96.0.10")
	objs := []any{web, slice(web, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))}
	bad := append(badObjects(e), hostileObjects(e)...)
	for _, b := range bad {
		objs = append(objs, b.objs...)
	}
	// A slice port without a name is not invalid: the API server defaults
	// the name to "", so its endpoints serve the Service's unnamed port, not
	// port "p", and "p" has no endpoints (as with upstream kube-proxy).
	noName := service("noname", "10.96.0.26")
	noNameSlice := slice(noName, "a", endpoint(w, w.Pods[0]))
	noNameSlice.Ports[0].Name = nil
	big := service("big", "10.96.0.15")
	// A valid LB Service whose only source range cannot be parsed: it is
	// programmed, but its LB IP fails closed.
	const closedLB = "192.168.60.104"
	closed := service("lb-bad-range", "10.96.0.34", withLoadBalancer(closedLB, 30084, "not-a-cidr"))
	upd := service("upd", "10.96.0.35")
	updSlice := slice(upd, "a", endpoint(w, w.Pods[1]))
	objs = append(objs, noName, noNameSlice, big, closed, slice(closed, "a", endpoint(w, w.Pods[2])))
	objs = append(objs, bigSlices(big, 5000)...)
	objs = append(objs, upd, updSlice)
	e.start(objs...)

	e.waitAnswer(w.Pods[0].Netns, vip)
	e.waitSynced()
	good := goodTraffic{e: e}
	good.require(w.Pods[1].Netns, vip, 30, 3)
	nat := e.save("nat")
	if n := strings.Count(nat, "--to-destination 10.250."); n != 5000 {
		t.Errorf("service with 5000 endpoints: %d DNAT rules to its endpoints, want 5000", n)
	}
	if err := hasServiceChain(nat, "e2e/big:p", "10.96.0.15"); err != nil {
		t.Errorf("service with 5000 endpoints: %v", err)
	}
	if filter := e.save("filter"); !strings.Contains(filter, "e2e/noname:p has no endpoints") {
		t.Errorf("a slice whose port has no name serves port \"\", so e2e/noname:p must reject:\n%s", filter)
	}
	// The unparseable source range: LB traffic from outside is dropped by
	// the firewall, the same Service's NodePort still answers.
	e.requireDroppedBy([]string{"-A KUBE-PROXY-FIREWALL", "-d " + closedLB, "-j DROP"}, w.Client, closedLB+":80")
	good.require(w.Client, nodeAddr(w, 30084), 10, 1)
	good.require(w.Pods[0].Netns, "10.96.0.35:80", 10, 1)

	// An invalid update of the working Service "upd" keeps its last valid version.
	updBad := upd.DeepCopy()
	updBad.Spec.Ports[0].Name = "p\"\n-A INPUT -j ACCEPT"
	e.apply(append(objs[:len(objs)-2:len(objs)-2], updBad, updSlice)...)
	if err := e.kproxy.WaitOutput("Ignoring invalid update of Service", changeTimeout); err != nil {
		t.Fatalf("kproxy did not report the invalid update of e2e/upd: %v", err)
	}
	e.waitSynced()
	good.require(w.Pods[0].Netns, "10.96.0.35:80", 10, 1)
	good.require(w.Pods[1].Netns, vip, 30, 3)

	select {
	case <-e.kproxy.Done():
		t.Fatalf("kproxy exited on bad input: %v", e.kproxy.Err())
	default:
	}
	out := e.kproxy.Output()
	for _, b := range bad {
		if !strings.Contains(out, b.logName) {
			t.Errorf("%s: kproxy's log does not name %s", b.what, b.logName)
		}
	}
	if !strings.Contains(out, "e2e/lb-bad-range") || !strings.Contains(out, `service="e2e/upd"`) {
		t.Errorf("kproxy's log names neither the unparseable source range nor the invalid update")
	}
	t.Logf("bad inputs: %d invalid objects + 1 unparseable source range + 1 invalid update; "+
		"good-service connections: %d answered, 0 failed; LB with the unparseable range: dropped", len(bad), good.answered)
}

// goodTraffic counts connections to services that must keep answering.
type goodTraffic struct {
	e        *env
	answered int
}

// require makes n connections to addr from ns: all must be answered, by pods pods.
func (g *goodTraffic) require(ns, addr string, n, pods int) {
	g.e.t.Helper()
	counts, err := probe.TCPMany(ns, addr, n, probeTimeout)
	if err != nil || len(counts) != pods {
		g.e.t.Fatalf("valid service %s next to bad objects: answers %v, error %v", addr, counts, err)
	}
	g.answered += n
}

// badObject is one kind of invalid input and the name kproxy's log must give it.
type badObject struct {
	what    string
	logName string
	objs    []any
}

func badObjects(e *env) []badObject {
	w := e.w
	withPort := func(port int32) svcOpt { return func(s *v1.Service) { s.Spec.Ports[0].Port = port } }
	badIP := service("bad-ip", "10.96.0.999")
	zero := service("port-zero", "10.96.0.21", withPort(0))
	huge := service("port-big", "10.96.0.22", withPort(65536))
	proto := service("bad-proto", "10.96.0.23", withProtocol("ICMP"))
	dup := service("dup-ports", "10.96.0.24", func(s *v1.Service) {
		s.Spec.Ports = append(s.Spec.Ports, v1.ServicePort{Name: "p", Port: 81, Protocol: v1.ProtocolTCP})
	})
	mixed := service("mixed", "10.96.0.25")
	mixedSlice := slice(mixed, "a", endpoint(w, w.Pods[0], v6(w.Pods[0])))
	zeroTarget := service("slice-port-zero", "10.96.0.27")
	zeroTargetSlice := slice(zeroTarget, "a", endpoint(w, w.Pods[0]))
	zeroTargetSlice.Ports[0].Port = ptr.To(int32(0))
	return []badObject{
		{"invalid clusterIP", "e2e/bad-ip", []any{badIP, slice(badIP, "a", endpoint(w, w.Pods[0]))}},
		{"port 0", "e2e/port-zero", []any{zero}},
		{"port 65536", "e2e/port-big", []any{huge}},
		{"unknown protocol", "e2e/bad-proto", []any{proto}},
		{"duplicate ports", "e2e/dup-ports", []any{dup}},
		{"IPv6 address in an IPv4 slice", "e2e/mixed-a", []any{mixed, mixedSlice}},
		{"slice port number 0", "e2e/slice-port-zero-a", []any{zeroTarget, zeroTargetSlice}},
	}
}

// hostileObjects are objects an attacker may write into a manifest or the
// API server may hold from older versions: names that would break out of a
// rule comment, IPv6 zones, an out-of-range health-check port. logName is
// how klog prints the object.
func hostileObjects(e *env) []badObject {
	w := e.w
	quoted := service("q\"uote\n-A INPUT -j ACCEPT", "10.96.0.30")
	portName := service("bad-port-name", "10.96.0.31", func(s *v1.Service) { s.Spec.Ports[0].Name = `p" -j ACCEPT #` })
	zoneIP := service("zone-ip", "", withIPv6("fd00:10:96::31%eth0"))
	zoneEP := service("zone-ep", "", withIPv6("fd00:10:96::32"))
	zoneEPSlice := slice(zoneEP, "a", endpoint(w, w.Pods[0], func(ep *discovery.Endpoint) {
		ep.Addresses = []string{w.Pods[0].IPv6.String() + "%eth0"}
	}))
	hcnp := service("hcnp-big", "10.96.0.33", withLoadBalancer("192.168.60.103", 30083), withExternalLocal(70000))
	return []badObject{
		// klog prints a multi-line value as an indented block: no line of
		// the log can be forged by a name.
		{"quotes and a newline in the Service name", "\te2e/q\"uote\n\t-A INPUT -j ACCEPT\n", []any{quoted, slice(quoted, "a", endpoint(w, w.Pods[0]))}},
		{"quote in a port name", "e2e/bad-port-name", []any{portName}},
		{"cluster IP with a zone", "e2e/zone-ip", []any{zoneIP}},
		{"endpoint address with a zone", "e2e/zone-ep-a", []any{zoneEP, zoneEPSlice}},
		{"healthCheckNodePort 70000", "e2e/hcnp-big", []any{hcnp, slice(hcnp, "a", endpoint(w, w.Pods[0]))}},
	}
}

// bigSlices are slices of svc with n ready endpoints 10.250.x.y (not
// probed) in all, at most 1000 per slice as the API server allows.
func bigSlices(svc *v1.Service, n int) []any {
	var out []any
	for first := 0; first < n; first += 1000 {
		s := slice(svc, fmt.Sprintf("big%d", first/1000))
		for i := first; i < min(n, first+1000); i++ {
			s.Endpoints = append(s.Endpoints, discovery.Endpoint{
				Addresses:  []string{fmt.Sprintf("10.250.%d.%d", i/250, i%250+1)},
				Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
				NodeName:   ptr.To(node2Name),
			})
		}
		out = append(out, s)
	}
	return out
}

// TestBrokenManifestEditKeepsRules breaks the manifests after startup: the
// rules stay and traffic keeps working, and a later valid edit is applied.
func TestBrokenManifestEditKeepsRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.0.10:80"
	svc := service("web", "10.96.0.10")
	e.start(svc, slice(svc, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2])))
	e.waitAnswer(w.Pods[0].Netns, vip)
	e.waitSynced()

	e.writeManifest("---\napiVersion: v1\nkind: Service\nmetadata: {name: [web\nspec: {{\n")
	if err := e.kproxy.WaitOutput("Manifest change not applied", 15*time.Second); err != nil {
		t.Fatalf("kproxy did not report the broken manifests: %v", err)
	}
	if err := hasServiceChain(e.save("nat"), "e2e/web:p", "10.96.0.10"); err != nil {
		t.Errorf("after a broken edit: %v", err)
	}
	if counts, err := probe.TCPMany(w.Pods[1].Netns, vip, 30, probeTimeout); err != nil || len(counts) != 3 {
		t.Errorf("after a broken edit: answers %v, error %v", counts, err)
	}

	e.apply(svc, slice(svc, "a", endpoint(w, w.Pods[0])))
	e.waitNoRule("nat", w.Pods[1].IPv4.String()+":8080")
	counts, err := probe.TCPMany(w.Pods[1].Netns, vip, 10, probeTimeout)
	if err != nil || counts[w.Pods[0].Name] != 10 {
		t.Errorf("after fixing the manifests only pod-1 must answer: %v, error %v", counts, err)
	}
}

// writeManifest replaces the manifests with raw text, atomically.
func (e *env) writeManifest(text string) {
	e.t.Helper()
	tmp := filepath.Join(e.dir, ".objects.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		e.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(e.dir, "objects.yaml")); err != nil {
		e.t.Fatal(err)
	}
}
