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

// TestBadObjectsAreSkipped feeds a valid service together with invalid
// objects and a very large valid one: the valid services work, kproxy keeps
// running, and its log names every bad object.
func TestBadObjectsAreSkipped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	const vip = "10.96.0.10:80"
	web := service("web", "10.96.0.10")
	objs := []any{web, slice(web, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.Pods[2]))}
	bad := badObjects(e)
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
	objs = append(objs, noName, noNameSlice, big, bigSlice(big, 5000))
	e.start(objs...)

	e.waitAnswer(w.Pods[0].Netns, vip)
	e.waitSynced()
	if counts, err := probe.TCPMany(w.Pods[1].Netns, vip, 30, probeTimeout); err != nil || len(counts) != 3 {
		t.Errorf("valid service next to bad objects: answers %v, error %v", counts, err)
	}
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

// bigSlice is a slice of svc with n ready endpoints 10.250.x.y (not probed).
func bigSlice(svc *v1.Service, n int) *discovery.EndpointSlice {
	s := slice(svc, "big")
	for i := range n {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{
			Addresses:  []string{fmt.Sprintf("10.250.%d.%d", i/250, i%250+1)},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(node2Name),
		})
	}
	return s
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
