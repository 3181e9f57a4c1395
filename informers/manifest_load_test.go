package informers

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const (
	webService = `apiVersion: v1
kind: Service
metadata: {name: web, namespace: demo}
spec:
  clusterIP: 10.96.0.10
  ports: [{name: http, port: 80, targetPort: 8080}]
`
	webSlice = `apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: demo
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.244.1.11]}]
`
	kpxNode = `apiVersion: v1
kind: Node
metadata: {name: kpx-node}
`
)

// manifestDir writes files (name -> content) into a new temporary directory.
func manifestDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		writeFile(t, filepath.Join(dir, name), content)
	}
	return dir
}

// names lists "Kind namespace/name" for every object, in Objects order.
func names(objs *Objects) []string {
	var out []string
	for _, s := range objs.Services {
		out = append(out, "Service "+key(s.Namespace, s.Name))
	}
	for _, s := range objs.EndpointSlices {
		out = append(out, "EndpointSlice "+key(s.Namespace, s.Name))
	}
	for _, n := range objs.Nodes {
		out = append(out, "Node "+n.Name)
	}
	for _, ig := range objs.Ignored {
		out = append(out, "ignored "+ig.Kind+" "+ig.Name)
	}
	return out
}

func TestLoadManifests(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "multi-document file with other kinds and empty documents",
			files: map[string]string{"all.yaml": "---\n# leading comment\n---\n" + webService + "---\n" + webSlice +
				"---\n" + kpxNode + "--- # trailing\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n---\n"},
			want: []string{"Service demo/web", "EndpointSlice demo/web-1", "Node kpx-node", "ignored ConfigMap cm"},
		},
		{
			name: "files are read in name order, other extensions and hidden files skipped",
			files: map[string]string{
				"b.yml": webSlice, "a.yaml": webService, "c.json": `{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "kpx-node"}}`,
				"notes.txt": kpxNode, ".hidden.yaml": kpxNode,
			},
			want: []string{"Service demo/web", "EndpointSlice demo/web-1", "Node kpx-node"},
		},
		{
			name: "List with kinds on the items",
			files: map[string]string{"list.yaml": `apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a, namespace: x}, spec: {clusterIP: 10.96.0.1}}
- {apiVersion: discovery.k8s.io/v1, kind: EndpointSlice, metadata: {name: a-1, namespace: x}, addressType: IPv4}
- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}
`},
			want: []string{"Service x/a", "EndpointSlice x/a-1", "ignored Deployment d"},
		},
		{
			name: "typed list whose items omit their kind",
			files: map[string]string{"list.json": `{"apiVersion": "v1", "kind": "ServiceList", "items": [
				{"metadata": {"name": "a", "namespace": "x"}}, {"metadata": {"name": "b", "namespace": "x"}}]}`},
			want: []string{"Service x/a", "Service x/b"},
		},
		{
			name:  "unknown fields are ignored",
			files: map[string]string{"svc.yaml": strings.Replace(webService, "spec:", "futureField: {a: 1}\nspec:\n  newSpecField: true", 1)},
			want:  []string{"Service demo/web"},
		},
		{
			name: "other API versions of used kinds are ignored",
			files: map[string]string{"old.yaml": `apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata: {name: old, namespace: demo}
`},
			want: []string{"ignored EndpointSlice old"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := LoadManifests(manifestDir(t, tt.files))
			if err != nil {
				t.Fatalf("LoadManifests: %v", err)
			}
			if got := names(objs); !slices.Equal(got, tt.want) {
				t.Errorf("objects = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLoadManifestsSingleFileAndSymlink(t *testing.T) {
	dir := manifestDir(t, map[string]string{"target": webService})
	link := filepath.Join(dir, "svc.yaml")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{dir, link, filepath.Join(dir, "target")} {
		objs, err := LoadManifests(path)
		if err != nil {
			t.Fatalf("LoadManifests(%s): %v", path, err)
		}
		if got := names(objs); !slices.Equal(got, []string{"Service demo/web"}) {
			t.Errorf("LoadManifests(%s) = %q", path, got)
		}
	}
}

func TestLoadManifestsAppliesDefaults(t *testing.T) {
	dir := manifestDir(t, map[string]string{"m.yaml": `apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: 10.96.0.10
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: np}
spec:
  type: NodePort
  sessionAffinity: ClientIP
  clusterIPs: [fd00::10, 10.96.0.11]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1}
addressType: IPv4
ports: [{port: 8080}]
`})
	objs, err := LoadManifests(dir)
	if err != nil {
		t.Fatal(err)
	}
	web, np, sl := objs.Services[0], objs.Services[1], objs.EndpointSlices[0]
	checks := []struct {
		what      string
		got, want any
	}{
		{"namespace", web.Namespace, "default"},
		{"kind", web.Kind, "Service"},
		{"type", web.Spec.Type, v1.ServiceTypeClusterIP},
		{"protocol", web.Spec.Ports[0].Protocol, v1.ProtocolTCP},
		{"targetPort", web.Spec.Ports[0].TargetPort, intstr.FromInt32(80)},
		{"sessionAffinity", web.Spec.SessionAffinity, v1.ServiceAffinityNone},
		{"clusterIPs", web.Spec.ClusterIPs, []string{"10.96.0.10"}},
		{"ipFamilies", web.Spec.IPFamilies, []v1.IPFamily{v1.IPv4Protocol}},
		{"internalTrafficPolicy", *web.Spec.InternalTrafficPolicy, v1.ServiceInternalTrafficPolicyCluster},
		{"externalTrafficPolicy of ClusterIP", web.Spec.ExternalTrafficPolicy, v1.ServiceExternalTrafficPolicy("")},
		{"externalTrafficPolicy of NodePort", np.Spec.ExternalTrafficPolicy, v1.ServiceExternalTrafficPolicyCluster},
		{"clusterIP from clusterIPs", np.Spec.ClusterIP, "fd00::10"},
		{"dual-stack ipFamilies", np.Spec.IPFamilies, []v1.IPFamily{v1.IPv6Protocol, v1.IPv4Protocol}},
		{"affinity timeout", *np.Spec.SessionAffinityConfig.ClientIP.TimeoutSeconds, v1.DefaultClientIPServiceAffinitySeconds},
		{"slice port name", *sl.Ports[0].Name, ""},
		{"slice port protocol", *sl.Ports[0].Protocol, v1.ProtocolTCP},
		{"slice namespace", sl.Namespace, "default"},
	}
	for _, c := range checks {
		if !equalAny(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func equalAny(a, b any) bool {
	switch a := a.(type) {
	case []string:
		return slices.Equal(a, b.([]string))
	case []v1.IPFamily:
		return slices.Equal(a, b.([]v1.IPFamily))
	}
	return a == b
}

func TestLoadManifestsErrors(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    DocumentError // Err unused
		message string
	}{
		{"wrong value type", webService + "---\n" + strings.Replace(webSlice, "port: 8080", `port: "eighty"`, 1),
			DocumentError{Document: 2, Line: 8}, "cannot unmarshal"},
		{"invalid YAML", kpxNode + "---\nkind: Service\n  bad: [indent\n", DocumentError{Document: 2, Line: 5}, "invalid YAML"},
		{"missing kind", "apiVersion: v1\nmetadata: {name: x}\n", DocumentError{Document: 1, Line: 1}, "no kind"},
		{"missing name", "apiVersion: v1\nkind: Service\nspec: {}\n", DocumentError{Document: 1, Line: 1}, "no metadata.name"},
		{"scalar document", "just a string\n", DocumentError{Document: 1, Line: 1}, "not an object"},
		{"duplicate", webService + "---\n" + webService, DocumentError{Document: 2, Line: 8}, "duplicate Service demo/web"},
		{"bad list item", "apiVersion: v1\nkind: List\nitems:\n- " + `{apiVersion: v1, kind: Node, metadata: {name: a}}` +
			"\n- {apiVersion: v1, kind: Node, metadata: {name: [b]}}\n", DocumentError{Document: 1, Line: 1, Item: 2}, "cannot unmarshal"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := manifestDir(t, map[string]string{"a.yaml": "apiVersion: v1\nkind: Node\nmetadata: {name: first}\n", "z.yaml": tt.content})
			_, err := LoadManifests(dir)
			var docErr *DocumentError
			if !errors.As(err, &docErr) {
				t.Fatalf("LoadManifests error = %v, want a *DocumentError", err)
			}
			want := tt.want
			want.File = filepath.Join(dir, "z.yaml")
			got := *docErr
			got.Err = nil
			if got != want {
				t.Errorf("error location = %+v, want %+v", got, want)
			}
			for _, part := range []string{"z.yaml", "document", tt.message} {
				if !strings.Contains(err.Error(), part) {
					t.Errorf("error %q does not contain %q", err, part)
				}
			}
		})
	}
}

func TestLoadManifestsMissingPath(t *testing.T) {
	_, err := LoadManifests(filepath.Join(t.TempDir(), "absent"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("LoadManifests error = %v, want not-exist", err)
	}
}

func TestSplitDocuments(t *testing.T) {
	data := "# c\n---\na: 1\n---   # x\n\n# only comment\n---\nb: 2\nc: '---'\n--- not-a-separator-line\n"
	var got []int
	for _, d := range splitDocuments([]byte(data)) {
		got = append(got, d.line)
	}
	// "--- not-..." is not a separator: it stays in the document from line 8.
	if want := []int{3, 8}; !slices.Equal(got, want) {
		t.Errorf("document start lines = %v, want %v", got, want)
	}
}

func TestObjectsSelect(t *testing.T) {
	objs, err := LoadManifests(manifestDir(t, map[string]string{"m.yaml": webService + "---\n" + webSlice + `---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: demo, labels: {service.kubernetes.io/service-proxy-name: other}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: db-1, namespace: demo, labels: {service.kubernetes.io/headless: ""}}
addressType: IPv4
---
` + kpxNode}))
	if err != nil {
		t.Fatal(err)
	}
	twoNodes := &Objects{Nodes: []*v1.Node{node("a"), node("b")}}
	tests := []struct {
		name     string
		objs     *Objects
		nodeName string
		want     []string
	}{
		{"named node", objs, "kpx-node", []string{"Service demo/web", "EndpointSlice demo/web-1", "Node kpx-node"}},
		{"only node when no name", objs, "", []string{"Service demo/web", "EndpointSlice demo/web-1", "Node kpx-node"}},
		{"absent node", objs, "elsewhere", []string{"Service demo/web", "EndpointSlice demo/web-1"}},
		{"ambiguous node", twoNodes, "", nil},
		{"one of two nodes", twoNodes, "b", []string{"Node b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := names(tt.objs.Select(tt.nodeName)); !slices.Equal(got, tt.want) {
				t.Errorf("Select(%q) = %q, want %q", tt.nodeName, got, tt.want)
			}
		})
	}
}

func TestObjectsReplay(t *testing.T) {
	objs, err := LoadManifests(manifestDir(t, map[string]string{"m.yaml": webService + "---\n" + webSlice + "---\n" + kpxNode}))
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder()
	objs.Select("").Replay(HandlersOf(rec))
	want := []string{"add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node",
		"synced Services", "synced EndpointSlices", "synced Node"}
	if got := rec.take(); !slices.Equal(got, want) {
		t.Errorf("Replay events = %q, want %q", got, want)
	}
}

// TestManifestsAreBoundedUntrustedInput: a FIFO or device given as the
// manifest path is refused at once (reading it would block or never end),
// and files over the size limits are refused instead of read into memory.
func TestManifestsAreBoundedUntrustedInput(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "services.yaml")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := LoadManifests(fifo); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("FIFO as manifest path: %v, want a 'not a regular file' error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("LoadManifests blocked on a FIFO")
	}
	if _, err := LoadManifests("/dev/zero"); err == nil {
		t.Error("/dev/zero was accepted as a manifest file")
	}

	big := t.TempDir()
	for _, name := range []string{"a.yaml", "b.yaml"} {
		if err := os.WriteFile(filepath.Join(big, name), []byte(strings.Repeat("# padding\n", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := readManifestFilesLimited(big, manifestLimits{perFile: 999, total: 10000}); err == nil ||
		!strings.Contains(err.Error(), "larger than 999 bytes") {
		t.Errorf("a 1000-byte file under a 999-byte limit: %v", err)
	}
	if _, err := readManifestFilesLimited(big, manifestLimits{perFile: 1000, total: 1999}); err == nil ||
		!strings.Contains(err.Error(), "more than 1999 bytes in all") {
		t.Errorf("two 1000-byte files under a 1999-byte total: %v", err)
	}
	if files, err := readManifestFilesLimited(big, manifestLimits{perFile: 1000, total: 2000}); err != nil || len(files) != 2 {
		t.Errorf("files exactly at the limits: %d files, %v", len(files), err)
	}
}
