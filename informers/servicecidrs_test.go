package informers

import (
	"context"
	"fmt"
	"github.com/kproxy/kproxy/informers/apiclient/fromclientset"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func serviceCIDR(name string, cidrs ...string) *networkingv1.ServiceCIDR {
	return &networkingv1.ServiceCIDR{ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: networkingv1.ServiceCIDRSpec{CIDRs: cidrs}}
}

func TestRunServiceCIDRsReportsEveryChange(t *testing.T) {
	client := fake.NewClientset(serviceCIDR("kubernetes", "10.96.0.0/12", "fd00:10:96::/108"))
	got := make(chan []netip.Prefix, 10)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunServiceCIDRs(ctx, ServiceCIDRsOptions{Client: fromclientset.New(client), OnChange: func(p []netip.Prefix) { got <- p }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	expect := func(want ...string) {
		t.Helper()
		var w []netip.Prefix
		for _, s := range want {
			w = append(w, netip.MustParsePrefix(s))
		}
		select {
		case p := <-got:
			if !slices.Equal(p, w) {
				t.Fatalf("OnChange(%v), want %v", p, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no OnChange, want %v", w)
		}
	}
	expect("10.96.0.0/12", "fd00:10:96::/108")
	sc := client.NetworkingV1().ServiceCIDRs()
	if _, err := sc.Create(ctx, serviceCIDR("extra", "10.100.0.0/16", "10.96.0.0/12", "bad"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("10.96.0.0/12", "10.100.0.0/16", "fd00:10:96::/108")
	if err := sc.Delete(ctx, "kubernetes", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("10.96.0.0/12", "10.100.0.0/16")
}

// TestValidateServiceCIDR: what the API server refuses in a new ServiceCIDR.
func TestValidateServiceCIDR(t *testing.T) {
	long := strings.Repeat("a", 254)
	tests := []struct {
		name string
		sc   *networkingv1.ServiceCIDR
		want string // a part of the error; "" = valid
	}{
		{"IPv4", serviceCIDR("kubernetes", "10.96.0.0/12"), ""},
		{"IPv6", serviceCIDR("kubernetes", "fd00:10:96::/108"), ""},
		{"dual stack", serviceCIDR("kubernetes", "10.96.0.0/12", "fd00:10:96::/108"), ""},
		{"dual stack, IPv6 first", serviceCIDR("kubernetes", "fd00:10:96::/108", "10.96.0.0/12"), ""},
		{"no CIDR", serviceCIDR("kubernetes"), "spec.cidrs: Required value"},
		{"three CIDRs", serviceCIDR("k", "10.96.0.0/12", "fd00::/108", "10.100.0.0/16"), "may only hold up to 2 values"},
		{"two IPv4", serviceCIDR("k", "10.96.0.0/12", "10.100.0.0/16"), "no more than one IP for each IP family"},
		{"two IPv6", serviceCIDR("k", "fd00::/108", "fd01::/108"), "no more than one IP for each IP family"},
		{"not a CIDR", serviceCIDR("k", "10.96.0.0"), "spec.cidrs[0]"},
		{"garbage", serviceCIDR("k", "10.96.0.0/12", "bad"), "spec.cidrs[1]"},
		{"host bits set", serviceCIDR("k", "10.96.0.1/12"), "bits set beyond the prefix length"},
		{"not canonical", serviceCIDR("k", "fd00:0:0::/108"), "canonical form"},
		{"leading zeros", serviceCIDR("k", "010.096.0.0/12"), "spec.cidrs[0]"},
		{"no name", serviceCIDR("", "10.96.0.0/12"), "metadata.name: Required value"},
		{"name not a DNS subdomain", serviceCIDR("Bad_Name", "10.96.0.0/12"), "metadata.name"},
		{"name too long", serviceCIDR(long, "10.96.0.0/12"), "metadata.name"},
		{"namespaced", withNamespace(serviceCIDR("k", "10.96.0.0/12"), "default"), "metadata.namespace: Forbidden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := ValidateServiceCIDR(tt.sc)
			switch {
			case tt.want == "" && len(errs) > 0:
				t.Errorf("valid ServiceCIDR refused: %v", errs.ToAggregate())
			case tt.want != "" && (len(errs) == 0 || !strings.Contains(errs.ToAggregate().Error(), tt.want)):
				t.Errorf("errors %v, want one with %q", errs.ToAggregate(), tt.want)
			}
		})
	}
}

func withNamespace(sc *networkingv1.ServiceCIDR, ns string) *networkingv1.ServiceCIDR {
	sc.Namespace = ns
	return sc
}

const manifestServiceCIDRs = `apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: kubernetes, namespace: ignored-like-a-node}
spec: {cidrs: [10.96.0.0/16, "fd00:10:96::/112"]}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDRList
items:
- metadata: {name: extra}
  spec: {cidrs: [10.100.0.0/24]}
- metadata: {name: two-v4}
  spec: {cidrs: [10.101.0.0/24, 10.102.0.0/24]}
---
apiVersion: networking.k8s.io/v1beta1
kind: ServiceCIDR
metadata: {name: beta}
spec: {cidrs: [10.103.0.0/24]}
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata: {name: host-bits}
spec: {cidrs: [10.104.0.1/24]}
`

// TestLoadManifestsServiceCIDRs: networking.k8s.io/v1 ServiceCIDRs (and
// lists of them) are read, cluster-scoped; invalid ones are rejected with
// their name and place, not an error of the read; other versions are ignored.
func TestLoadManifestsServiceCIDRs(t *testing.T) {
	dir := manifestDir(t, map[string]string{"cidrs.yaml": manifestServiceCIDRs, "web.yaml": webService})
	objs, err := LoadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sc := range objs.ServiceCIDRs {
		got = append(got, sc.Namespace+"/"+sc.Name+" "+strings.Join(sc.Spec.CIDRs, ","))
	}
	if want := []string{"/kubernetes 10.96.0.0/16,fd00:10:96::/112", "/extra 10.100.0.0/24"}; !slices.Equal(got, want) {
		t.Errorf("ServiceCIDRs %q, want %q", got, want)
	}
	file := filepath.Join(dir, "cidrs.yaml")
	wantRejected := []RejectedObject{
		{Location: file + ": document 2 (line 6), item 2", Kind: "ServiceCIDR", Name: "two-v4"},
		{Location: file + ": document 4 (line 19)", Kind: "ServiceCIDR", Name: "host-bits"},
	}
	if len(objs.Rejected) != len(wantRejected) {
		t.Fatalf("rejected %+v, want %+v", objs.Rejected, wantRejected)
	}
	for i, r := range objs.Rejected {
		reason := r.Reason
		r.Reason = ""
		if r != wantRejected[i] || reason == "" {
			t.Errorf("rejected[%d] = %+v (reason %q), want %+v with a reason", i, r, reason, wantRejected[i])
		}
	}
	if !slices.Contains(names(objs), "ignored ServiceCIDR beta") {
		t.Errorf("a v1beta1 ServiceCIDR is not listed as ignored: %q", names(objs))
	}
	if sel := objs.Select("kpx-node"); len(sel.ServiceCIDRs) != 2 || len(sel.Rejected) != 2 {
		t.Errorf("Select kept %d ServiceCIDRs and %d rejected, want all (2 and 2)", len(sel.ServiceCIDRs), len(sel.Rejected))
	}
	dup := manifestDir(t, map[string]string{"a.yaml": manifestServiceCIDRs + "---\n" + manifestServiceCIDRs})
	if _, err := LoadManifests(dup); err == nil || !strings.Contains(err.Error(), "duplicate ServiceCIDR kubernetes") {
		t.Errorf("duplicate ServiceCIDR: error %v", err)
	}
}

// TestRunManifestsServiceCIDRs: the manifests' ServiceCIDR ranges reach
// OnServiceCIDRs before the first Synced calls (so the first sync has
// them), then again only when they change.
func TestRunManifestsServiceCIDRs(t *testing.T) {
	dir := manifestDir(t, map[string]string{"cidrs.yaml": manifestServiceCIDRs, "node.yaml": kpxNode})
	rec := newRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs strings.Builder
	var logMu sync.Mutex
	logger := funcr.New(func(prefix, args string) {
		logMu.Lock()
		defer logMu.Unlock()
		logs.WriteString(args + "\n")
	}, funcr.Options{})
	go func() {
		done <- RunManifests(ctx, ManifestOptions{Path: dir, Handlers: HandlersOf(rec), PollInterval: 5 * time.Millisecond,
			Logger: logger, OnServiceCIDRs: func(p []netip.Prefix) { rec.record(fmt.Sprint("cidrs ", p), nil) }})
	}()
	defer func() {
		cancel()
		if err := awaitReturn(t, "RunManifests", done); err != nil {
			t.Errorf("RunManifests returned %v", err)
		}
	}()
	first := "cidrs [10.96.0.0/16 10.100.0.0/24 fd00:10:96::/112]"
	got := rec.waitEvents(t, "set Node kpx-node", first, "synced Services", "synced EndpointSlices", "synced Node")
	if indexOf(t, got, first) > indexOf(t, got, "synced Services") {
		t.Errorf("service CIDRs delivered after the Synced calls: %q", got)
	}
	logMu.Lock()
	for _, name := range []string{`"name"="two-v4"`, `"name"="host-bits"`} {
		if !strings.Contains(logs.String(), `"msg"="Ignoring invalid manifest object"`) || !strings.Contains(logs.String(), name) {
			t.Errorf("no log line names the invalid ServiceCIDR %s:\n%s", name, logs.String())
		}
	}
	logMu.Unlock()

	// A change of ranges is delivered; a change elsewhere is not a change of ranges.
	replaceFile(t, filepath.Join(dir, "cidrs.yaml"), strings.Replace(manifestServiceCIDRs, "10.100.0.0/24", "10.100.0.0/16", 1))
	rec.waitEvents(t, "cidrs [10.96.0.0/16 10.100.0.0/16 fd00:10:96::/112]")
	replaceFile(t, filepath.Join(dir, "node.yaml"), strings.Replace(kpxNode, "{name: kpx-node}", "{name: kpx-node, labels: {a: b}}", 1))
	rec.waitEvents(t, "set Node kpx-node")
	// Every ServiceCIDR gone: no ranges (the drop rule goes).
	removeFile(t, filepath.Join(dir, "cidrs.yaml"))
	rec.waitEvents(t, "cidrs []")
}

// TestParseServiceCIDRsSkipsTooBroadRanges: a range the drop of
// unallocated addresses would turn against the node's own traffic (the API
// server accepts 0.0.0.0/0) is logged with its object and left out.
func TestParseServiceCIDRsSkipsTooBroadRanges(t *testing.T) {
	for _, tt := range []struct {
		cidrs []string
		want  []string
	}{
		{[]string{"0.0.0.0/0", "::/0"}, nil},
		{[]string{"10.0.0.0/7", "fd00::/63"}, nil},
		{[]string{"10.0.0.0/8", "fd00::/64"}, []string{"10.0.0.0/8", "fd00::/64"}},
		{[]string{"10.96.0.0/12", "fd00:10:96::/108"}, []string{"10.96.0.0/12", "fd00:10:96::/108"}},
	} {
		var logged []string
		logger := funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{})
		got := ParseServiceCIDRs(serviceCIDR("wide", tt.cidrs...), logger)
		var want []netip.Prefix
		for _, w := range tt.want {
			want = append(want, netip.MustParsePrefix(w))
		}
		if !slices.Equal(got, want) {
			t.Errorf("%v: got %v, want %v", tt.cidrs, got, want)
		}
		if skipped := len(tt.cidrs) - len(tt.want); len(logged) != skipped ||
			(skipped > 0 && !strings.Contains(strings.Join(logged, "\n"), `"serviceCIDR"={"name"="wide"}`)) {
			t.Errorf("%v: logged %q, want %d lines naming the object", tt.cidrs, logged, skipped)
		}
	}
}
