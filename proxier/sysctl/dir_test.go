package sysctl_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/sysctl"
)

// procSys is a fake /proc/sys holding net/ipv4/ip_forward = 0.
func procSys(t *testing.T) sysctl.Dir {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net/ipv4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net/ipv4/ip_forward"), []byte("0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return sysctl.Dir{Root: root}
}

func TestDirBehavesLikeProcSys(t *testing.T) {
	s := procSys(t)
	if err := s.Set("net/ipv4/ip_forward", 1); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get("net/ipv4/ip_forward"); err != nil || v != 1 {
		t.Errorf("ip_forward = %d, %v after Set(1)", v, err)
	}
	if err := s.Set("net/ipv4/vs/conntrack", 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Set of a missing key = %v, want not exist (it must not create the file)", err)
	}
	if _, err := s.Get("net/ipv4/vs/conntrack"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Get of a missing key = %v, want not exist", err)
	}
	for _, key := range []string{"", "/etc/passwd", "../x", "net/../../x"} {
		if err := s.Set(key, 1); err == nil {
			t.Errorf("Set(%q) succeeded: keys must stay under the root", key)
		}
	}
}

func TestDirErrorsNameTheSysctl(t *testing.T) {
	s := procSys(t)
	err := s.Set("net/netfilter/nf_conntrack_max", 131072)
	if err == nil || !strings.Contains(err.Error(), "net.netfilter.nf_conntrack_max=131072") {
		t.Errorf("Set error = %v, want it to name net.netfilter.nf_conntrack_max=131072", err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "net/ipv4/ip_forward"), []byte("yes"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get("net/ipv4/ip_forward"); err == nil || !strings.Contains(err.Error(), "net.ipv4.ip_forward") {
		t.Errorf("Get of a non-integer = %v, want an error naming net.ipv4.ip_forward", err)
	}
}

func TestDirReadOnly(t *testing.T) {
	s := procSys(t)
	if s.ReadOnly("net/ipv4/ip_forward") {
		t.Error("a 0644 sysctl is read-only")
	}
	if err := os.Chmod(filepath.Join(s.Root, "net/ipv4/ip_forward"), 0o444); err != nil {
		t.Fatal(err)
	}
	if !s.ReadOnly("net/ipv4/ip_forward") {
		t.Error("a 0444 sysctl (as nf_conntrack_max outside the initial namespace) is writable")
	}
	if s.ReadOnly("net/ipv4/missing") {
		t.Error("a missing sysctl is read-only")
	}
}
