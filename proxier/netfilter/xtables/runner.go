package xtables

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/command"
)

// Defaults of the xtables lock wait flags, as kube-proxy passes them.
const (
	DefaultWaitSeconds      = 5
	DefaultWaitIntervalUsec = 100000
)

// Options configures a Runner.
type Options struct {
	// Family selects iptables-* (IPv4, the default) or ip6tables-*.
	Family v1.IPFamily
	// CommandPrefix is prepended to every command, e.g.
	// {"ip", "netns", "exec", "kpx-1234"} in tests.
	CommandPrefix []string
	// WaitSeconds is the -w value (default DefaultWaitSeconds).
	WaitSeconds int
	// WaitIntervalUsec is the -W value (default DefaultWaitIntervalUsec).
	WaitIntervalUsec int
	// Timeout bounds each command (0: command.DefaultBase); a restore also
	// gets TimeoutPerMB (0: command.DefaultPerMB) per MiB of input. A command
	// that overruns is killed, with its process group, and fails with a
	// *command.TimeoutError.
	Timeout      time.Duration
	TimeoutPerMB time.Duration
	// Backend selects iptables-nft-* or iptables-legacy-*; empty runs the
	// binaries as installed (iptables, iptables-restore, ...).
	Backend Backend
	// Legacy is Backend: BackendLegacy (kept for callers that predate Backend).
	Legacy bool
}

// Backend is an iptables variant.
type Backend string

// The iptables variants.
const (
	BackendDefault Backend = ""
	BackendNFT     Backend = "nft"
	BackendLegacy  Backend = "legacy"
)

// Runner runs iptables-restore and iptables-save for one address family. It
// implements netfilter.Restorer.
type Runner struct {
	opts     Options
	timeouts command.Timeouts
	binary   string // "iptables" or "ip6tables", with "-nft" or "-legacy" when asked
}

// New validates the options and returns a Runner. It does not run anything.
func New(opts Options) (*Runner, error) {
	if opts.Family == "" {
		opts.Family = v1.IPv4Protocol
	}
	if opts.WaitSeconds == 0 {
		opts.WaitSeconds = DefaultWaitSeconds
	}
	if opts.WaitIntervalUsec == 0 {
		opts.WaitIntervalUsec = DefaultWaitIntervalUsec
	}
	var binary string
	switch opts.Family {
	case v1.IPv4Protocol:
		binary = "iptables"
	case v1.IPv6Protocol:
		binary = "ip6tables"
	default:
		return nil, fmt.Errorf("iptables runner: unknown IP family %q", opts.Family)
	}
	if opts.WaitSeconds < 0 || opts.WaitIntervalUsec < 0 || opts.Timeout < 0 || opts.TimeoutPerMB < 0 {
		return nil, errors.New("iptables runner: negative wait or timeout")
	}
	if opts.Legacy {
		if opts.Backend == BackendNFT {
			return nil, errors.New("iptables runner: both Legacy and Backend nft")
		}
		opts.Backend = BackendLegacy
	}
	switch opts.Backend {
	case BackendDefault:
	case BackendNFT, BackendLegacy:
		binary += "-" + string(opts.Backend)
	default:
		return nil, fmt.Errorf("iptables runner: unknown backend %q", opts.Backend)
	}
	timeouts := command.Timeouts{Base: opts.Timeout, PerMB: opts.TimeoutPerMB}.WithDefaults()
	return &Runner{opts: opts, timeouts: timeouts, binary: binary}, nil
}

// Binary is the iptables command this runner uses ("iptables-nft", "ip6tables", ...).
func (r *Runner) Binary() string { return r.binary }

// restoreArgs is the iptables-restore command line.
func (r *Runner) restoreArgs() []string {
	return []string{r.binary + "-restore", "--noflush",
		"-w", strconv.Itoa(r.opts.WaitSeconds), "-W", strconv.Itoa(r.opts.WaitIntervalUsec)}
}

// Restore runs iptables-restore --noflush with data on stdin. A failure is a
// *RestoreError carrying stderr and, when stderr names a line, the input
// lines around it.
func (r *Runner) Restore(ctx context.Context, data []byte) error {
	_, stderr, err := r.run(ctx, data, r.restoreArgs()...)
	if err != nil {
		return newRestoreError(data, stderr, err)
	}
	return nil
}

// Save runs iptables-save -t table and returns its output.
func (r *Runner) Save(ctx context.Context, table string) ([]byte, error) {
	out, stderr, err := r.run(ctx, nil, r.binary+"-save", "-t", table)
	if err != nil {
		return nil, fmt.Errorf("%s-save -t %s: %w: %s", r.binary, table, err, strings.TrimSpace(stderr))
	}
	return out, nil
}

// ListChain runs iptables -t table -S chain (implements netfilter.ChainLister).
// A missing chain is (nil, nil): iptables 1.8.9 reports it as "incompatible",
// older versions as "No chain/target/match by that name".
func (r *Runner) ListChain(ctx context.Context, table, chain string) ([]byte, error) {
	out, stderr, err := r.run(ctx, nil, r.binary, "-w", strconv.Itoa(r.opts.WaitSeconds), "-t", table, "-S", chain)
	if err != nil {
		if ctx.Err() == nil && (strings.Contains(stderr, "No chain/target/match") || strings.Contains(stderr, "incompatible")) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s -t %s -S %s: %w: %s", r.binary, table, chain, err, strings.TrimSpace(stderr))
	}
	return out, nil
}

func (r *Runner) run(ctx context.Context, stdin []byte, args ...string) (stdout []byte, stderr string, err error) {
	argv := append(append([]string(nil), r.opts.CommandPrefix...), args...)
	res, err := command.Run(ctx, r.timeouts.For(len(stdin)), stdin, argv)
	return res.Stdout, res.Stderr, err
}

// RestoreError is a failed iptables-restore.
type RestoreError struct {
	// Line is the 1-based input line iptables-restore blamed, 0 if none.
	Line int
	// Context holds up to three input lines around Line, each prefixed with
	// its number, to log next to the error.
	Context []string
	Stderr  string
	Err     error
}

func (e *RestoreError) Error() string {
	msg := fmt.Sprintf("iptables-restore: %v", e.Err)
	if stderr := strings.TrimSpace(e.Stderr); stderr != "" {
		msg += ": " + stderr
	}
	if len(e.Context) > 0 {
		msg += "; input around line " + strconv.Itoa(e.Line) + ": " + strings.Join(e.Context, " | ")
	}
	return msg
}

func (e *RestoreError) Unwrap() error { return e.Err }

// lineRE finds the line number in the messages iptables-restore 1.8 prints:
// "line 3 failed", "Error occurred at line: 3", "line 3: CHAIN_DEL failed",
// "COMMIT expected at line 3".
var lineRE = regexp.MustCompile(`\bline:? (\d+)`)

func newRestoreError(data []byte, stderr string, err error) *RestoreError {
	e := &RestoreError{Stderr: stderr, Err: err}
	m := lineRE.FindStringSubmatch(stderr)
	if m == nil {
		return e
	}
	e.Line, _ = strconv.Atoi(m[1])
	lines := strings.Split(string(data), "\n")
	for n := e.Line - 1; n <= e.Line+1; n++ {
		if n >= 1 && n <= len(lines) {
			e.Context = append(e.Context, fmt.Sprintf("%d: %s", n, lines[n-1]))
		}
	}
	return e
}

// Version is an iptables version and backend.
type Version struct {
	Major, Minor, Patch int
	// Backend is "nf_tables" or "legacy" ("" for old versions that do not say).
	Backend string
}

func (v Version) String() string {
	s := fmt.Sprintf("v%d.%d.%d", v.Major, v.Minor, v.Patch)
	if v.Backend != "" {
		s += " (" + v.Backend + ")"
	}
	return s
}

// AtLeast reports whether v >= major.minor.patch.
func (v Version) AtLeast(major, minor, patch int) bool {
	if v.Major != major {
		return v.Major > major
	}
	if v.Minor != minor {
		return v.Minor > minor
	}
	return v.Patch >= patch
}

var versionRE = regexp.MustCompile(`v(\d+)\.(\d+)\.(\d+)(?:\s+\((\w+)\))?`)

// ParseVersion parses `iptables --version` output ("iptables v1.8.9 (nf_tables)").
func ParseVersion(out string) (Version, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return Version{}, fmt.Errorf("no version in %q", strings.TrimSpace(out))
	}
	var v Version
	v.Major, _ = strconv.Atoi(m[1])
	v.Minor, _ = strconv.Atoi(m[2])
	v.Patch, _ = strconv.Atoi(m[3])
	v.Backend = m[4]
	return v, nil
}

// Version runs `iptables --version`.
func (r *Runner) Version(ctx context.Context) (Version, error) {
	out, stderr, err := r.run(ctx, nil, r.binary, "--version")
	if err != nil {
		return Version{}, fmt.Errorf("%s --version: %w: %s", r.binary, err, strings.TrimSpace(stderr))
	}
	return ParseVersion(string(out))
}

// HasRandomFully reports whether MASQUERADE --random-fully is available
// (iptables >= 1.6.2), as kube-proxy decides it.
func (r *Runner) HasRandomFully(ctx context.Context) (bool, error) {
	v, err := r.Version(ctx)
	if err != nil {
		return false, err
	}
	return v.AtLeast(1, 6, 2), nil
}
