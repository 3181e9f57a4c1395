package sysctl

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ProcSys is the sysctl tree of the caller's network namespace.
const ProcSys = "/proc/sys"

// Interface reads and writes integer sysctls of one network namespace.
type Interface interface {
	Get(key string) (int, error)
	Set(key string, value int) error
}

// Dir is the sysctl tree under Root.
type Dir struct{ Root string }

var _ Interface = Dir{}

// Name is the sysctl as operators write it: "net/ipv4/ip_forward" is
// "net.ipv4.ip_forward".
func Name(key string) string { return strings.ReplaceAll(key, "/", ".") }

func (d Dir) path(key string) (string, error) {
	clean := filepath.Clean(key)
	if key == "" || filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("sysctl key %q: not a relative path", key)
	}
	return filepath.Join(d.Root, clean), nil
}

// Read returns the sysctl's text without surrounding white space.
func (d Dir) Read(key string) (string, error) {
	p, err := d.path(key)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("read sysctl %s: %w", Name(key), err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Get reads an integer sysctl.
func (d Dir) Get(key string) (int, error) {
	s, err := d.Read(key)
	if err != nil {
		return 0, err
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("read sysctl %s: %w", Name(key), err)
	}
	return v, nil
}

// Set writes an integer sysctl; it never creates the file.
func (d Dir) Set(key string, value int) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("set sysctl %s=%d: %w", Name(key), value, err)
	}
	_, err = f.WriteString(strconv.Itoa(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("set sysctl %s=%d: %w", Name(key), value, err)
	}
	return nil
}

// ReadOnly reports whether the sysctl's mode has no write bit: the kernel
// shows such sysctls as 0444, e.g. nf_conntrack_max outside the initial
// network namespace.
func (d Dir) ReadOnly(key string) bool {
	p, err := d.path(key)
	if err != nil {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && st.Mode().Perm()&0o222 == 0
}
