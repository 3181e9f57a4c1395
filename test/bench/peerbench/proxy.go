package peerbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/test/testns"
)

// commandTimeout bounds every short external command (ip, nft, curl).
const commandTimeout = 2 * time.Minute

// run runs argv with a timeout and returns its combined output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// inNetns runs argv inside namespace ns.
func inNetns(ctx context.Context, ns string, argv ...string) ([]byte, error) {
	return run(ctx, append([]string{"ip", "netns", "exec", ns}, argv...)...)
}

// nodeNamespaces creates the node namespace "kpx-nb-<peer>-<hex>" and its
// pod namespace "<node>-pod", linked by a veth pair (eth0 in both), with
// the node address on the node's eth0, and returns their names (the ones
// made so far on failure; the caller deletes them). Nothing is linked to
// the caller's namespace.
func nodeNamespaces(ctx context.Context, peer string) ([]string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	node := "kpx-nb-" + peer + "-" + hex.EncodeToString(b)
	pod := node + "-pod"
	var made []string
	for _, ns := range []string{node, pod} {
		if err := testns.Add(ns); err != nil {
			return made, err
		}
		made = append(made, ns)
	}
	for _, argv := range [][]string{
		{"ip", "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", pod},
		{"ip", "-n", node, "addr", "add", NodeIP + "/24", "dev", "eth0"},
		{"ip", "-n", node, "link", "set", "eth0", "up"},
		{"ip", "-n", pod, "link", "set", "eth0", "up"},
	} {
		if _, err := run(ctx, argv...); err != nil {
			return made, err
		}
	}
	return made, nil
}

// deleteNamespace kills what still runs in ns (never this process) and deletes it.
func deleteNamespace(ns string) error { return testns.Delete(ns) }

// proxyProcess is a proxy running in a namespace, in its own process
// group, with its output in a log file and its memory sampled.
type proxyProcess struct {
	ns    string
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
	err   error
	rss   *rssSampler
	start time.Time
}

// startProxy runs bin with args in ns; output goes to logPath (appended).
func startProxy(ns, bin, logPath string, args ...string) (*proxyProcess, error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stdout, cmd.Stderr = log, log
	p := &proxyProcess{ns: ns, cmd: cmd, log: log, done: make(chan struct{}), start: time.Now()}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s in %s: %w", bin, ns, err)
	}
	// "ip netns exec" execs the proxy: the pid is the proxy's.
	p.rss = startRSSSampler(cmd.Process.Pid)
	go func() {
		p.err = cmd.Wait()
		p.rss.stop()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns the exit error if the proxy has exited, else nil.
func (p *proxyProcess) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("proxy exited: %v (log: %s)", p.err, p.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proxyProcess) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
}

// rssSampler records the peak summed RSS of a process and its descendants.
type rssSampler struct {
	pid      int
	mu       sync.Mutex
	peak     int64 // bytes, whole tree
	hwm      int64 // bytes, main process VmHWM (last read)
	children bool  // a descendant was ever seen
	quit     chan struct{}
	once     sync.Once
}

func startRSSSampler(pid int) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{})}
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-s.quit:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) stop() { s.once.Do(func() { close(s.quit) }) }

func (s *rssSampler) sample() {
	pids := append([]int{s.pid}, descendants(s.pid)...)
	var total int64
	for _, pid := range pids {
		total += statusKB(pid, "VmRSS:") << 10
	}
	hwm := statusKB(s.pid, "VmHWM:") << 10
	s.mu.Lock()
	defer s.mu.Unlock()
	s.peak = max(s.peak, total)
	s.hwm = max(s.hwm, hwm)
	s.children = s.children || len(pids) > 1
}

// Peak returns the sampled peak of the tree and the main process's VmHWM.
func (s *rssSampler) Peak() (tree, mainHWM int64, children bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak, s.hwm, s.children
}

// statusKB reads a "Key:   N kB" line of /proc/pid/status (0 if absent).
func statusKB(pid int, key string) int64 {
	f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				n, _ := strconv.ParseInt(fields[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// descendants lists the pids whose parent chain leads to pid.
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	parent := map[int]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, ok := ppid(p); ok {
			parent[p] = pp
		}
	}
	var out []int
	for p := range parent {
		for a, hops := parent[p], 0; a > 1 && hops < 64; a, hops = parent[a], hops+1 {
			if a == pid {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// ppid reads the parent pid from /proc/pid/stat (after the command's ")").
func ppid(pid int) (int, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(fields[1])
	return n, err == nil
}

var errNotYet = errors.New("not yet")
