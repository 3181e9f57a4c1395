// Package testns creates and deletes the named network namespaces of
// kproxy's tests, benchmarks and demo, and records which process owns each.
//
// A test binary killed by go test's timeout or by SIGKILL runs none of its
// cleanups, so its namespaces outlive it. Each namespace made by Add has an
// owner record (/run/kproxy-test/netns/<name>: the owner's pid and start
// time), and ReapOrphans deletes, by name, exactly the namespaces whose
// owner is gone. Namespaces this package did not create are never touched.
package testns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Prefix starts every namespace name Add accepts, so the suite's leftover
// check (scripts/test.sh) sees them.
const Prefix = "kpx-"

// NetnsDir is where "ip netns add" mounts named namespaces.
const NetnsDir = "/var/run/netns"

// ownerDir holds one owner record per namespace. It is on /run (tmpfs) as
// the namespace mounts are, so a reboot clears both.
var ownerDir = "/run/kproxy-test/netns"

// commandTimeout bounds each ip command (deleting a namespace whose
// processes are exiting can take a moment).
const commandTimeout = 30 * time.Second

// Path is the mount of the named namespace, for setns(2) users.
func Path(name string) string { return filepath.Join(NetnsDir, name) }

// Add records this process as the owner of name, then creates the
// namespace with its loopback up. The name must start with Prefix, be a
// plain file name and not exist yet.
func Add(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if _, err := os.Stat(Path(name)); err == nil {
		return fmt.Errorf("network namespace %s already exists", name)
	}
	self, err := ownerOf(os.Getpid())
	if err != nil {
		return err
	}
	if err := writeOwner(name, self); err != nil {
		return err
	}
	if err := ip("netns", "add", name); err != nil {
		_ = os.Remove(ownerFile(name))
		return err
	}
	return ip("-n", name, "link", "set", "lo", "up")
}

// Delete kills every process still in name (never this one), deletes the
// namespace and its owner record. A namespace that is already gone is fine.
func Delete(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	if err := remove(name); err != nil {
		return err
	}
	if err := os.Remove(ownerFile(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("owner record of %s: %w", name, err)
	}
	return nil
}

// Orphan is a namespace whose owner process is gone.
type Orphan struct {
	Name  string
	Owner int // the pid that created it
}

// ReapOrphans deletes every namespace recorded by Add whose owner process
// has exited, and returns them. Namespaces of live owners (a suite or a
// benchmark running beside this one) are left alone.
func ReapOrphans() ([]Orphan, error) {
	entries, err := os.ReadDir(ownerDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read owner records: %w", err)
	}
	var reaped []Orphan
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if checkName(name) != nil {
			continue
		}
		o, err := readOwner(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if o.alive() {
			continue
		}
		if err := Delete(name); err != nil {
			errs = append(errs, fmt.Errorf("reap %s (owner %d gone): %w", name, o.pid, err))
			continue
		}
		reaped = append(reaped, Orphan{Name: name, Owner: o.pid})
	}
	return reaped, errors.Join(errs...)
}

func checkName(name string) error {
	if !strings.HasPrefix(name, Prefix) || strings.ContainsAny(name, "/ \t\n") || len(name) > 200 {
		return fmt.Errorf("namespace name %q: want %q followed by a plain file name", name, Prefix)
	}
	return nil
}

// remove kills what runs in name and deletes it.
func remove(name string) error {
	if _, err := os.Stat(Path(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := KillProcesses(name); err != nil {
		return err
	}
	if err := ip("netns", "delete", name); err != nil {
		if _, statErr := os.Stat(Path(name)); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return err
	}
	return nil
}

// KillProcesses SIGKILLs every process in namespace name except this one.
func KillProcesses(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", name).Output()
	if err != nil {
		if _, statErr := os.Stat(Path(name)); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("ip netns pids %s: %w", name, err)
	}
	var errs []error
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill %d in %s: %w", pid, name, err))
		}
	}
	return errors.Join(errs...)
}

func ip(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
