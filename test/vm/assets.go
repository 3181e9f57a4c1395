package vm

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Assets are the kernel and base initramfs the guest boots.
type Assets struct {
	Kernel string // bzImage (vmlinuz)
	Initrd string // base initramfs (gzip'd newc cpio) holding /init
	// KernelVersion is the guest's uname -r, when known.
	KernelVersion string
	// Accel is the qemu accelerator that boots Kernel here, "kvm" or "tcg",
	// decided once by PrepareAssets (kvmUsable boots the kernel to find out,
	// up to 5 s); empty means Run decides on every boot.
	Accel string
}

const assetsScript = "scripts/vm-assets.sh"

// PrepareAssets returns the guest's assets: KPROXY_VM_KERNEL and
// KPROXY_VM_INITRD when both are set, otherwise what scripts/vm-assets.sh
// (found above the working directory) prepares or finds in its cache. The
// first preparation downloads Debian's kernel package and may install
// packages, so it needs root and apt.
func PrepareAssets(ctx context.Context) (Assets, error) {
	if k, i := os.Getenv("KPROXY_VM_KERNEL"), os.Getenv("KPROXY_VM_INITRD"); k != "" && i != "" {
		return withAccel(ctx, Assets{Kernel: k, Initrd: i}), nil
	}
	script, err := findUp(assetsScript)
	if err != nil {
		return Assets{}, err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Assets{}, fmt.Errorf("%s: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	a, err := parseAssets(stdout.String())
	if err != nil {
		return Assets{}, err
	}
	return withAccel(ctx, a), nil
}

// withAccel decides the accelerator once for a set of assets, so that the
// KVM probe's boot is not paid (nor counted in a timeout) by every Run.
func withAccel(ctx context.Context, a Assets) Assets {
	a.Accel = "tcg"
	if kvmUsable(ctx, a.Kernel) {
		a.Accel = "kvm"
	}
	return a
}

// parseAssets reads the script's key=value lines.
func parseAssets(out string) (Assets, error) {
	var a Assets
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		switch k {
		case "kernel":
			a.Kernel = v
		case "initrd":
			a.Initrd = v
		case "kver":
			a.KernelVersion = v
		}
	}
	if a.Kernel == "" || a.Initrd == "" {
		return Assets{}, fmt.Errorf("%s printed no kernel= and initrd= lines: %q", assetsScript, out)
	}
	return a, nil
}

// findUp looks for rel in the working directory and its parents.
func findUp(rel string) (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", rel, err)
	}
	for {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find %s: %w above the working directory", rel, os.ErrNotExist)
		}
		dir = parent
	}
}

// moduleRoot is the directory holding the kproxy repository's go.mod and
// scripts/vm-assets.sh.
func moduleRoot() (string, error) {
	p, err := findUp(assetsScript)
	if err != nil {
		return "", err
	}
	return filepath.Dir(filepath.Dir(p)), nil
}
