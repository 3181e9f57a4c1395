package kerneltest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/kproxy/kproxy/test/testns"
)

// Netns creates an empty network namespace named prefix plus 8 random hex
// digits, with lo up, and deletes it when the test ends, failed or not.
// prefix must start with "kpx-" (test/testns records the test binary as
// the owner, so a killed run's namespace is found and deleted later). It is the bare
// namespace of the kernel tiers that need no world of pods (test/netns):
// nothing in it can reach the caller's namespace.
func Netns(t testing.TB, prefix string) string {
	t.Helper()
	NeedRoot(t, "kernel test (creates a network namespace)")
	NeedTools(t, "kernel test", "ip")
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if err := testns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testns.Delete(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// NetnsPath is the file of the named network namespace (under /run/netns
// or /var/run/netns), for handles opened by path (IPVS, netlink).
func NetnsPath(t testing.TB, name string) string {
	t.Helper()
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if _, err := os.Stat(dir + name); err == nil {
			return dir + name
		}
	}
	t.Fatalf("namespace %s has no file under /run/netns or /var/run/netns", name)
	return ""
}

// Run runs args[0] with args[1:] and returns its combined output; a
// failure fails t with the output.
func Run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// NetnsExec is Run inside the named network namespace (ip netns exec).
func NetnsExec(t testing.TB, ns string, args ...string) string {
	t.Helper()
	return Run(t, append([]string{"ip", "netns", "exec", ns}, args...)...)
}

// GoInNetns runs fn in a new goroutine on an OS thread of its own inside
// network namespace ns, and returns a channel closed when fn returns. The
// sockets fn opens (listeners, connections) belong to ns. The thread is
// never unlocked: it ends with the goroutine, so no other goroutine ever
// runs in ns by accident.
func GoInNetns(t testing.TB, ns string, fn func()) <-chan struct{} {
	t.Helper()
	f, err := os.Open(NetnsPath(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan struct{})
	entered := make(chan error, 1)
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			entered <- fmt.Errorf("enter network namespace %s: %w", ns, err)
			return
		}
		entered <- nil
		fn()
	}()
	if err := <-entered; err != nil {
		t.Fatal(err)
	}
	return done
}
