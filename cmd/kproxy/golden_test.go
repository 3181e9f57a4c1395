package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/informers"
)

var updateGolden = flag.Bool("update", false, "rewrite the expected outputs of testdata/golden/*.txtar")

// goldenDir holds the behaviour cases every backend shares (README.md there).
const goldenDir = "testdata/golden"

// goldenModes are the backends a case runs in: --proxy-mode value and the
// archive file holding the expected --dry-run output. A new backend is one
// more row; the cases stay.
var goldenModes = []struct{ mode, file string }{
	{"iptables", "iptables.dry-run"},
	{"ipvs", "ipvs.dry-run"},
	{"nftables", "nftables.dry-run"},
}

// traceFile holds the packet tracer's verdicts over iptables mode's rules.
const traceFile = "iptables.trace"

// rejectedFile lists the case's objects validation rejects, so a case
// cannot test a typo instead of the semantics it names; absent when none.
const rejectedFile = "rejected"

// TestGolden runs kproxy in-process (run, so flags, the manifest source,
// validation, the trackers and each backend's dry run are the real ones) on
// each case's manifests and flags, once per mode, and compares the --dry-run
// output, and the tracer's verdicts for the case's packets over the
// iptables rules, with the case's expected files. -update rewrites them.
func TestGolden(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.txtar"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cases in %s (%v)", goldenDir, err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txtar"), func(t *testing.T) { runGoldenCase(t, path) })
	}
}

func runGoldenCase(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c := parseArchive(data)
	got := map[string][]byte{}
	for _, m := range goldenModes {
		got[m.file] = goldenDryRun(t, c, m.mode, false)
		// The output is a function of the objects, not of the order they
		// arrive in: the same manifests with every document order reversed
		// must print the same.
		if again := goldenDryRun(t, c, m.mode, true); !bytes.Equal(again, got[m.file]) {
			t.Errorf("%s: the output depends on the order of the manifests:\n%s", m.mode,
				lineDiff(string(got[m.file]), string(again)))
		}
	}
	packets, _ := c.file("packets")
	pkts, err := parsePackets(packets)
	if err != nil {
		t.Fatal(err)
	}
	trace, err := traceDryRun(got["iptables.dry-run"], goldenLocalAddrs(t, c), pkts)
	if err != nil {
		t.Fatal(err)
	}
	got[traceFile] = []byte(trace)
	got[rejectedFile] = rejectedObjects(goldenObjects(t, c))
	compareGolden(t, path, c, got)
}

// compareGolden checks (or with -update, rewrites) the expected files.
func compareGolden(t *testing.T, path string, c archive, got map[string][]byte) {
	names := []string{traceFile, rejectedFile}
	for _, m := range goldenModes {
		names = append(names, m.file)
	}
	slices.Sort(names)
	if *updateGolden {
		for _, name := range names {
			c.set(name, got[name])
		}
		if len(got[rejectedFile]) == 0 {
			c.remove(rejectedFile)
		}
		if err := os.WriteFile(path, c.format(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, name := range names {
		want, ok := c.file(name)
		switch {
		case !ok && name == rejectedFile && len(got[name]) == 0:
		case !ok:
			t.Errorf("%s: no %q file; run go test ./cmd/kproxy -run TestGolden -update", path, name)
		case !bytes.Equal(want, got[name]):
			t.Errorf("%s: %s differs from the expected (- expected, + got; -update rewrites it):\n%s",
				path, name, lineDiff(string(want), string(got[name])))
		}
	}
}

// goldenDryRun writes the case's manifests/* files to a directory and runs
// kproxy --dry-run on them with the case's flags in the given mode.
func goldenDryRun(t *testing.T, c archive, mode string, reversed bool) []byte {
	dir := t.TempDir()
	for _, f := range c.files {
		name, ok := strings.CutPrefix(f.name, "manifests/")
		if !ok {
			continue
		}
		data := f.data
		if reversed {
			data = reverseDocuments(data)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flags, _ := c.file("flags")
	args := append([]string{"--dry-run", "--proxy-mode", mode, "--manifests", dir}, strings.Fields(string(flags))...)
	var stdout, stderr bytes.Buffer
	h := host{interfaceAddrs: goldenInterfaces(t, c)}
	if code := runOn(h, args, &stdout, &stderr); code != 0 {
		t.Fatalf("kproxy %s: exit code %d\n%s", strings.Join(args, " "), code, stderr.String())
	}
	return stdout.Bytes()
}

// goldenObjects are the objects of the case's manifests.
func goldenObjects(t *testing.T, c archive) *informers.Objects {
	t.Helper()
	dir := t.TempDir()
	for _, f := range c.files {
		if name, ok := strings.CutPrefix(f.name, "manifests/"); ok {
			if err := os.WriteFile(filepath.Join(dir, name), f.data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	objs, err := informers.LoadManifests(dir)
	if err != nil {
		t.Fatalf("manifests: %v", err)
	}
	return objs
}

// reverseDocuments reverses the order of the "---"-separated documents of
// a YAML file.
func reverseDocuments(data []byte) []byte {
	docs := bytes.Split(data, []byte("\n---\n"))
	slices.Reverse(docs)
	return append(bytes.Join(docs, []byte("\n---\n")), '\n')
}

// TestArchiveRoundTrip keeps -update honest: what it writes reads back the same.
func TestArchiveRoundTrip(t *testing.T) {
	in := "comment\n-- a --\nx\n-- b --\n-- c --\ny\nz\n"
	a := parseArchive([]byte(in))
	if len(a.files) != 3 || string(a.comment) != "comment\n" {
		t.Fatalf("parsed %+v", a)
	}
	if got := string(a.format()); got != in {
		t.Errorf("format = %q, want %q", got, in)
	}
	a.set("b", []byte("new\n"))
	a.set("d", []byte("added"))
	if data, _ := parseArchive(a.format()).file("d"); string(data) != "added\n" {
		t.Errorf("added file reads back as %q", data)
	}
	want := "     1 a\n-    2 b\n+    2 B\n     3 c\n"
	if d := lineDiff("a\nb\nc\n", "a\nB\nc\n"); d != want {
		t.Errorf("lineDiff =\n%s\nwant\n%s", d, want)
	}
}
