package informers

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// errorLog collects the errors RunManifests reports.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.errs)
}

// startManifests runs RunManifests on path until the end of the test.
func startManifests(t *testing.T, path, nodeName string) (*recorder, *errorLog) {
	t.Helper()
	rec, errs := newRecorder(), &errorLog{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- RunManifests(ctx, ManifestOptions{
			Path: path, NodeName: nodeName, Handlers: HandlersOf(rec), PollInterval: 5 * time.Millisecond, OnError: errs.add,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := awaitReturn(t, "RunManifests", done); err != nil {
			t.Errorf("RunManifests returned %v", err)
		}
	})
	return rec, errs
}

// replaceFile writes content atomically (as editors and ConfigMap updates
// do), so a poll never sees a half-written file.
func replaceFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	writeFile(t, tmp, content)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func removeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

const apiObjects = `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: api, namespace: demo}
  spec: {clusterIP: 10.96.0.20, ports: [{port: 443}]}
- apiVersion: discovery.k8s.io/v1
  kind: EndpointSlice
  metadata: {name: api-1, namespace: demo, labels: {kubernetes.io/service-name: api}}
  addressType: IPv4
`

func TestRunManifestsFollowsChanges(t *testing.T) {
	dir := manifestDir(t, map[string]string{
		"web.yaml":   webService + "---\n" + webSlice,
		"node.yaml":  kpxNode,
		"other.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n",
	})
	web, api, nodeFile := filepath.Join(dir, "web.yaml"), filepath.Join(dir, "api.yaml"), filepath.Join(dir, "node.yaml")
	rec, errs := startManifests(t, dir, "kpx-node")

	got := rec.waitEvents(t, "add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node",
		"synced Services", "synced EndpointSlices", "synced Node")
	if want := []string{"add Service demo/web", "add EndpointSlice demo/web-1", "set Node kpx-node",
		"synced Services", "synced EndpointSlices", "synced Node"}; !slices.Equal(got, want) {
		t.Errorf("initial events = %q, want %q", got, want)
	}
	firstRV := rec.service("demo/web").ResourceVersion

	// A changed object is an update, with a new resourceVersion.
	replaceFile(t, web, strings.Replace(webService, "port: 80", "port: 81", 1)+"---\n"+webSlice)
	rec.waitEvents(t, "update Service demo/web")
	if s := rec.service("demo/web"); s.Spec.Ports[0].Port != 81 || s.ResourceVersion == firstRV {
		t.Errorf("updated service: port %d resourceVersion %q (was %q)", s.Spec.Ports[0].Port, s.ResourceVersion, firstRV)
	}

	// An object removed from a file is deleted; a new file adds its objects.
	replaceFile(t, web, strings.Replace(webService, "port: 80", "port: 81", 1))
	rec.waitEvents(t, "delete EndpointSlice demo/web-1")
	replaceFile(t, api, apiObjects)
	rec.waitEvents(t, "add Service demo/api", "add EndpointSlice demo/api-1")

	// Rewriting identical content changes nothing; the node edit made
	// alongside proves the poll ran.
	replaceFile(t, web, strings.Replace(webService, "port: 80", "port: 81", 1))
	replaceFile(t, nodeFile, strings.Replace(kpxNode, "{name: kpx-node}", "{name: kpx-node, labels: {topology.kubernetes.io/zone: zone-b}}", 1))
	rec.waitEvents(t, "set Node kpx-node")

	// Gaining the service-proxy-name label takes a Service out of view.
	replaceFile(t, api, strings.Replace(apiObjects, "{name: api, namespace: demo}",
		"{name: api, namespace: demo, labels: {service.kubernetes.io/service-proxy-name: other}}", 1))
	rec.waitEvents(t, "delete Service demo/api")

	removeFile(t, api)
	removeFile(t, nodeFile)
	rec.waitEvents(t, "delete EndpointSlice demo/api-1", "delete Node kpx-node")
	if len(errs.all()) != 0 {
		t.Errorf("errors reported: %v", errs.all())
	}
}

func TestRunManifestsKeepsStateOnBrokenEdit(t *testing.T) {
	dir := manifestDir(t, map[string]string{"web.yaml": webService + "---\n" + webSlice})
	web := filepath.Join(dir, "web.yaml")
	rec, errs := startManifests(t, dir, "")
	rec.waitEvents(t, "add Service demo/web", "add EndpointSlice demo/web-1",
		"synced Services", "synced EndpointSlices", "synced Node")

	// A type error in the second document, and the first one gone: nothing
	// may be delivered, least of all a delete.
	replaceFile(t, web, strings.Replace(webSlice, "port: 8080", "port: [8080]", 1))
	eventually(t, "the parse error to be reported", func() bool { return len(errs.all()) > 0 })
	err := errs.all()[0]
	var docErr *DocumentError
	if !errors.As(err, &docErr) || docErr.File != web || docErr.Document != 1 {
		t.Errorf("reported error = %v, want a DocumentError for %s document 1", err, web)
	}

	// A removed path is reported too, and also keeps the state. The
	// directory is renamed away, not removed: os.RemoveAll unlinks the files
	// first, and two polls seeing the empty directory left in between would
	// rightly delete everything.
	if err := os.Rename(dir, filepath.Join(t.TempDir(), "gone")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the read error to be reported", func() bool { return len(errs.all()) > 1 })
	if err := errs.all()[1]; !errors.Is(err, os.ErrNotExist) {
		t.Errorf("reported error = %v, want not-exist", err)
	}
	rec.expectQuiet(t)

	// Fixing the files resumes normal operation from the kept state. The
	// directory is filled elsewhere and moved into place: an empty directory
	// at the path, even briefly, is a valid state without objects.
	fixed := manifestDir(t, map[string]string{
		"web.yaml": strings.Replace(webService, "port: 80", "port: 82", 1) + "---\n" + webSlice,
	})
	if err := os.Rename(fixed, dir); err != nil {
		t.Fatal(err)
	}
	rec.waitEvents(t, "update Service demo/web")
	if n := len(errs.all()); n != 2 {
		t.Errorf("%d errors reported, want each broken state reported once: %v", n, errs.all())
	}
}

func TestRunManifestsFirstReadMustSucceed(t *testing.T) {
	dir := manifestDir(t, map[string]string{"a.yaml": kpxNode, "b.yaml": webService + "---\napiVersion: v1\nkind: Service\nmetadata: {name: 7}\n"})
	rec := newRecorder()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := RunManifests(ctx, ManifestOptions{Path: dir, Handlers: HandlersOf(rec)})
	var docErr *DocumentError
	if !errors.As(err, &docErr) || docErr.File != filepath.Join(dir, "b.yaml") || docErr.Document != 2 {
		t.Fatalf("RunManifests error = %v, want a DocumentError for b.yaml document 2", err)
	}
	rec.expectQuiet(t)
}

func TestRunManifestsValidatesOptions(t *testing.T) {
	err := RunManifests(context.Background(), ManifestOptions{PollInterval: -time.Second})
	if err == nil {
		t.Fatal("RunManifests with empty options succeeded")
	}
	for _, field := range []string{"Path", "Handlers.Services", "PollInterval"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error %q does not mention %s", err, field)
		}
	}
}
