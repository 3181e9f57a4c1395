package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/config"
	"github.com/kproxy/kproxy/proxier/sysctl"
)

// Host settings upstream kube-proxy applies at startup (setupConntrack and the
// OOM adjuster): conntrack sysctls (keys under /proc/sys), and other files
// as paths relative to the root of hostFiles.
const (
	netfilterSysctlDir = "net/netfilter"
	conntrackMaxSysctl = netfilterSysctlDir + "/nf_conntrack_max"

	oomScoreAdjPath = "proc/self/oom_score_adj"
	// conntrackHashsizePath is only read: the module parameter is global to
	// the machine and the kernel refuses it outside the initial network
	// namespace, so kproxy never writes it.
	conntrackHashsizePath = "sys/module/nf_conntrack/parameters/hashsize"
	onlineCPUsPath        = "sys/devices/system/cpu/online"
)

// host is what kproxy reads and changes of the machine besides the
// kernel's tables: the sysctls of kproxy's network namespace, the other
// files of /proc and /sys, and the namespace's interface addresses (which
// a dry run prints as NodePort destinations, so tests give their own).
type host struct {
	sysctls sysctl.Dir
	files   hostFiles
	// interfaceAddrs lists the network namespace's addresses of a family,
	// global unicast first, then loopback.
	interfaceAddrs func(v1.IPFamily) []netip.Addr
}

// realHost is the machine (and network namespace) kproxy runs in.
func realHost() host {
	return host{sysctls: sysctl.Dir{Root: sysctl.ProcSys}, files: rootedFiles{root: "/"}, interfaceAddrs: interfaceAddrs}
}

// hostFiles is the part of /proc and /sys outside the sysctl tree kproxy
// touches at startup. Paths are relative to a root directory so tests run
// against a temporary tree.
type hostFiles interface {
	Read(path string) ([]byte, error)
	// Write replaces the content of an existing file (it never creates one).
	Write(path string, data []byte) error
}

// rootedFiles is hostFiles over a directory: "/" in production.
type rootedFiles struct{ root string }

func (r rootedFiles) Read(path string) ([]byte, error) {
	return os.ReadFile(filepath.Join(r.root, path))
}

func (r rootedFiles) Write(path string, data []byte) error {
	f, err := os.OpenFile(filepath.Join(r.root, path), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// applyHostSettings does what upstream does to the host before proxying: the
// OOM score of this process (never fatal, as upstream) and the conntrack
// sysctls (fatal on failure, as upstream, except a read-only nf_conntrack_max).
func applyHostSettings(cfg *config.Config, h host, logger klog.Logger) error {
	applyOOMScoreAdj(h.files, cfg.OOMScoreAdj, logger)
	if err := applyConntrack(h, cfg.Conntrack, logger); err != nil {
		return fmt.Errorf("could not set conntrack parameters from kube-proxy configuration: %w", err)
	}
	return nil
}

func applyOOMScoreAdj(files hostFiles, adj int32, logger klog.Logger) {
	if err := files.Write(oomScoreAdjPath, []byte(strconv.Itoa(int(adj)))); err != nil {
		logger.V(2).Info("Failed to apply OOMScore", "path", "/"+oomScoreAdjPath, "value", adj, "err", err)
		return
	}
	logger.V(2).Info("Applied OOMScore", "oomScoreAdj", adj)
}

// sysctlSetting is one net.netfilter sysctl and the value kproxy wants.
type sysctlSetting struct {
	name  string // under net.netfilter, e.g. "nf_conntrack_udp_timeout"
	value int
}

// key is the sysctl's path under /proc/sys.
func (s sysctlSetting) key() string { return netfilterSysctlDir + "/" + s.name }

// applyConntrack raises nf_conntrack_max, then sets the per-namespace
// timeouts and tcp_be_liberal. It stops at the first failure, as upstream does.
func applyConntrack(h host, c config.ConntrackConfig, logger klog.Logger) error {
	if limit := conntrackMax(c, onlineCPUs(h.files)); limit > 0 {
		if err := raiseConntrackMax(h, limit, logger); err != nil {
			return err
		}
	}
	for _, s := range conntrackSettings(c) {
		if err := setSysctl(h.sysctls, s, logger); err != nil {
			return err
		}
	}
	return nil
}

// conntrackMax is upstream's getConntrackMax: maxPerCore × CPUs, at least
// min; 0 when maxPerCore is 0 (leave the limit alone, ignore min).
func conntrackMax(c config.ConntrackConfig, cpus int) int {
	if c.MaxPerCore <= 0 {
		return 0
	}
	return max(int(c.MaxPerCore)*cpus, int(c.Min))
}

// conntrackSettings lists the sysctls the configuration asks for; zero
// timeouts and tcpBeLiberal=false leave the kernel's values.
func conntrackSettings(c config.ConntrackConfig) []sysctlSetting {
	var out []sysctlSetting
	timeout := func(name string, d time.Duration) {
		if d > 0 {
			// A positive timeout under a second must not become 0 (immediate expiry).
			out = append(out, sysctlSetting{name: name, value: max(1, int(d/time.Second))})
		}
	}
	timeout("nf_conntrack_tcp_timeout_established", c.TCPEstablishedTimeout)
	timeout("nf_conntrack_tcp_timeout_close_wait", c.TCPCloseWaitTimeout)
	if c.TCPBeLiberal {
		out = append(out, sysctlSetting{name: "nf_conntrack_tcp_be_liberal", value: 1})
	}
	timeout("nf_conntrack_udp_timeout", c.UDPTimeout)
	timeout("nf_conntrack_udp_timeout_stream", c.UDPStreamTimeout)
	return out
}

// raiseConntrackMax only ever raises the limit (upstream: set when the
// current value is lower or unreadable). Outside the host's initial network
// namespace the kernel makes the sysctl read-only: the limit is then the
// host's business, and kproxy goes on.
func raiseConntrackMax(h host, want int, logger klog.Logger) error {
	key, name := conntrackMaxSysctl, sysctl.Name(conntrackMaxSysctl)
	cur, readErr := h.sysctls.Get(key)
	if readErr == nil && cur >= want {
		logger.V(4).Info("Sysctl already high enough", "sysctl", name, "value", cur, "wanted", want)
		noteSmallHashsize(h.files, want, logger)
		return nil
	}
	if h.sysctls.ReadOnly(key) {
		logger.V(2).Info("Sysctl is read-only here (not the initial network namespace?); left to the host",
			"sysctl", name, "value", cur, "wanted", want)
		return nil
	}
	if err := h.sysctls.Set(key, want); err != nil {
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) {
			logger.V(2).Info("Sysctl cannot be written here; left to the host", "sysctl", name, "wanted", want, "err", err)
			return nil
		}
		return err
	}
	logger.Info("Set sysctl", "sysctl", name, "value", want)
	noteSmallHashsize(h.files, want, logger)
	return nil
}

// noteSmallHashsize says where upstream would have grown the conntrack hash
// table (to max/4). That knob is global to the machine; kproxy leaves it.
func noteSmallHashsize(files hostFiles, limit int, logger klog.Logger) {
	if size, err := readInt(files, conntrackHashsizePath); err == nil && size < limit/4 {
		logger.V(2).Info("Conntrack hash table is smaller than nf_conntrack_max/4; hashsize is left to the host",
			"hashsize", size, "nfConntrackMax", limit)
	}
}

// setSysctl writes a per-namespace sysctl when its value differs.
func setSysctl(sysctls sysctl.Dir, s sysctlSetting, logger klog.Logger) error {
	if cur, err := sysctls.Get(s.key()); err == nil && cur == s.value {
		logger.V(4).Info("Sysctl already set", "sysctl", sysctl.Name(s.key()), "value", cur)
		return nil
	}
	if err := sysctls.Set(s.key(), s.value); err != nil {
		return err
	}
	logger.Info("Set sysctl", "sysctl", sysctl.Name(s.key()), "value", s.value)
	return nil
}

// readInt reads a host file holding an integer.
func readInt(files hostFiles, path string) (int, error) {
	b, err := files.Read(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// onlineCPUs counts the machine's online CPUs from sysfs, as upstream does:
// nf_conntrack_max is host-wide, so a CPU-pinned process must not undercount
// (runtime.NumCPU honours the affinity mask). runtime.NumCPU is the fallback.
func onlineCPUs(files hostFiles) int {
	if b, err := files.Read(onlineCPUsPath); err == nil {
		if n, err := countCPUList(string(b)); err == nil && n > 0 {
			return n
		}
	}
	return runtime.NumCPU()
}

// countCPUList counts a kernel CPU list such as "0-3,8,10-11".
func countCPUList(list string) (int, error) {
	list = strings.TrimSpace(list)
	if list == "" {
		return 0, errors.New("empty CPU list")
	}
	n := 0
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("CPU list %q: %w", list, err)
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return 0, fmt.Errorf("CPU list %q: %w", list, err)
			}
		}
		if first < 0 || last < first {
			return 0, fmt.Errorf("CPU list %q: bad range %q", list, part)
		}
		n += last - first + 1
	}
	return n, nil
}
