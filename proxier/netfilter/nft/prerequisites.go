package nft

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// SkipKernelCheckEnv, when set to anything non-empty, skips the kernel
// version check, as upstream kube-proxy's variable of the same name does.
const SkipKernelCheckEnv = "KUBE_PROXY_NFTABLES_SKIP_KERNEL_VERSION_CHECK"

// MinKernel is the oldest kernel nftables mode runs on, upstream's: kernel 5.13 has every
// nftables feature the mode uses, and nft 1.0.1 is the first that parses
// only the table it is asked about (an older nft parses the whole ruleset
// and can crash on another program's newer rules, locking kproxy out of its
// own table). A kernel that new implies an nft that new on a maintained
// distribution, which is why upstream checks the kernel for the host's nft.
func MinKernel() Release { return Release{5, 13, 0} }

// MinNFT is the oldest nft nftables mode runs with (see MinKernel).
func MinNFT() Release { return Release{1, 0, 1} }

// Release is a major.minor.patch version.
type Release [3]int

func (r Release) String() string { return fmt.Sprintf("%d.%d.%d", r[0], r[1], r[2]) }

// Less reports whether r is older than o.
func (r Release) Less(o Release) bool {
	for i := range r {
		if r[i] != o[i] {
			return r[i] < o[i]
		}
	}
	return false
}

// ParseRelease reads the leading "major.minor[.patch]" of s ("6.18.44-fc",
// "5.13", "4.19.0+"); what follows the numbers is ignored.
func ParseRelease(s string) (Release, error) {
	end := strings.IndexFunc(s, func(c rune) bool { return (c < '0' || c > '9') && c != '.' })
	if end < 0 {
		end = len(s)
	}
	parts := strings.Split(strings.TrimSuffix(s[:end], "."), ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Release{}, fmt.Errorf("version %q: want major.minor[.patch]", s)
	}
	var r Release
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return Release{}, fmt.Errorf("version %q: %w", s, err)
		}
		r[i] = n
	}
	return r, nil
}

// Host is what nftables mode's prerequisites are checked against.
type Host struct {
	// KernelRelease is uname -r ("6.18.44-fc-v1147").
	KernelRelease string
	// NFTVersion is the first line of `nft --version` ("nftables v1.0.6
	// (Lester Gooch #5)").
	NFTVersion string
	// SkipKernelCheck: SkipKernelCheckEnv is set.
	SkipKernelCheck bool
}

// CheckPrerequisites returns an error saying what is missing when the host
// cannot run nftables mode: nft older than MinNFT, or (unless
// SkipKernelCheck) a kernel older than MinKernel. Unreadable versions are
// errors too: kproxy does not guess.
func CheckPrerequisites(h Host) error {
	v, ok := strings.CutPrefix(strings.TrimSpace(h.NFTVersion), "nftables v")
	if !ok {
		return fmt.Errorf("nftables mode: cannot read the nft version from %q", h.NFTVersion)
	}
	nft, err := ParseRelease(v)
	if err != nil {
		return fmt.Errorf("nftables mode: nft version: %w", err)
	}
	if nft.Less(MinNFT()) {
		return fmt.Errorf("nftables mode requires nft %s or later, found %s", MinNFT(), nft)
	}
	if h.SkipKernelCheck {
		return nil
	}
	kernel, err := ParseRelease(h.KernelRelease)
	if err != nil {
		return fmt.Errorf("nftables mode: kernel release: %w", err)
	}
	if kernel.Less(MinKernel()) {
		return fmt.Errorf("nftables mode requires kernel %d.%d or later, this is %s (set %s=1 to skip this check)",
			MinKernel()[0], MinKernel()[1], h.KernelRelease, SkipKernelCheckEnv)
	}
	return nil
}

// ReadHost reads this host's Host: uname -r, `nft --version` (bounded by
// timeout; ErrNotInstalled, wrapped, without nft) and getenv(SkipKernelCheckEnv).
func ReadHost(ctx context.Context, timeout time.Duration, getenv func(string) string) (Host, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return Host{}, fmt.Errorf("uname: %w", err)
	}
	version, err := Version(ctx, timeout)
	if err != nil {
		return Host{}, err
	}
	return Host{KernelRelease: unix.ByteSliceToString(uts.Release[:]), NFTVersion: version,
		SkipKernelCheck: getenv(SkipKernelCheckEnv) != ""}, nil
}

// CheckHost is ReadHost then CheckPrerequisites: the one call nftables
// mode makes at start (getenv is os.Getenv outside tests).
func CheckHost(ctx context.Context, timeout time.Duration, getenv func(string) string) error {
	h, err := ReadHost(ctx, timeout, getenv)
	if err != nil {
		return fmt.Errorf("nftables mode: %w", err)
	}
	return CheckPrerequisites(h)
}
