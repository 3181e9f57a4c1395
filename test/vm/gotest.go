package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// GoTestResult is the outcome of a test binary run in the guest.
type GoTestResult struct {
	Passed bool
	Result
}

// BuildStatic compiles pkg (a main package, or with test set its tests via
// go test -c) into dir with CGO_ENABLED=0 and returns the binary's path.
// pkg is resolved from the kproxy module root, so "./ipvs" works from any
// package's tests.
func BuildStatic(ctx context.Context, pkg, dir string, test bool) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	name := filepath.Base(strings.TrimSuffix(pkg, "/"))
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out, pkg}
	if test {
		out += ".test"
		args = []string{"test", "-c", "-o", out, pkg}
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// RunGoTest compiles pkg's tests statically and runs them in a guest with
// -test.run run -test.v (plus opts.Args); opts.Binary is ignored. Passed is
// true when the test binary exited 0. An error means the build failed or no
// exit code came back from the guest.
func RunGoTest(ctx context.Context, pkg, run string, opts Options) (GoTestResult, error) {
	return RunGoTests(ctx, []string{pkg}, run, opts)
}

// RunGoTests is RunGoTest for several packages in one boot: their test
// binaries run one after the other (opts.Binary and opts.Then are
// ignored). Passed is true when every one exited 0. The packages' last
// path elements must differ (they name the binaries).
func RunGoTests(ctx context.Context, pkgs []string, run string, opts Options) (GoTestResult, error) {
	if len(pkgs) == 0 {
		return GoTestResult{}, fmt.Errorf("vm: no package to test")
	}
	dir, err := os.MkdirTemp("", "kpx-vm-gotest-")
	if err != nil {
		return GoTestResult{}, fmt.Errorf("vm: %w", err)
	}
	defer os.RemoveAll(dir)
	var bins []string
	for _, pkg := range pkgs {
		bin, err := BuildStatic(ctx, pkg, dir, true)
		if err != nil {
			return GoTestResult{}, fmt.Errorf("vm: %w", err)
		}
		if slices.Contains(bins, bin) {
			return GoTestResult{}, fmt.Errorf("vm: two packages build %s", filepath.Base(bin))
		}
		bins = append(bins, bin)
	}
	opts.Binary, opts.Then = bins[0], bins[1:]
	opts.Args = append([]string{"-test.run", run, "-test.v"}, opts.Args...)
	res, err := Run(ctx, opts)
	return GoTestResult{Passed: err == nil && res.ExitCode == 0, Result: res}, err
}
