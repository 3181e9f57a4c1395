package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/netfilter"
	"github.com/kproxy/kproxy/proxier/netfilter/xtables"
)

// Scenario names, in the order a round runs them.
const (
	ScenarioFull        = "full"
	ScenarioEndpoint    = "endpoint"
	ScenarioSliceDelete = "slice-delete"
	// ScenarioResync is a full sync of a running proxier (the periodic
	// full sync, or the retry after a failure) over unchanged rules.
	ScenarioResync  = "resync"
	ScenarioRestart = "restart"
	ScenarioPlain   = "plain"
)

// Scenarios lists every scenario in round order.
var Scenarios = []string{ScenarioFull, ScenarioEndpoint, ScenarioSliceDelete, ScenarioResync, ScenarioRestart, ScenarioPlain}

// Options configure a benchmark run.
type Options struct {
	World  WorldOptions
	Rounds int
	// Legacy uses iptables-legacy instead of iptables-nft.
	Legacy bool
	// Timeout bounds each iptables command (0: none).
	Timeout time.Duration
	// TempDir holds the child-process log.
	TempDir string
	// Skip names scenarios not to run (resync, restart, plain).
	Skip map[string]bool
	// DumpDir, if set, receives every restore input of the first round as
	// <scenario>.restore, to replay under perf or strace.
	DumpDir string
	// Progress, if set, is told about each sample as it is taken.
	Progress func(round int, s Sample)
	// Modes are the proxy modes measured (ModeIPTables, ModeIPVS); nil
	// means iptables only. Each round runs every mode in turn, so the
	// ratio between modes is measured under the same conditions.
	Modes []string
	// Partials repeats the endpoint and slice-delete scenarios this many
	// times per round, each on other services (default 1): cheap samples
	// of partial syncs when full syncs are too slow for many rounds.
	Partials int
	// NoChildLog runs the iptables children without /usr/bin/time (the
	// VM guest's time is busybox's, without -f/-o); child peak RSS is 0.
	NoChildLog bool
}

// Sample is one scenario of one round.
type Sample struct {
	Scenario string
	// Mode is ModeIPTables or ModeIPVS.
	Mode string
	// Sync is the wall time of Proxier.Sync (plan, render, restore, account);
	// for plain, the wall time of the plain iptables-restore.
	Sync time.Duration
	// Snapshot is the time Tracker.Snapshot took before the sync.
	Snapshot     time.Duration
	RestoreBytes int
	// SaveTime is the time spent reading the kernel: iptables-save and
	// single-chain listings (Lists).
	RestoreTime, SaveTime   time.Duration
	Restores, Saves, Lists  int
	ChildPeakRSS            int64
	ProcessRSS, ProcessPeak int64
	Full                    bool
	Err                     error
	// IPVS is the IPVS-mode account (nil in iptables mode).
	IPVS *IPVSCounts
}

// Run measures opts.Rounds rounds; a round that fails stops the run and its
// error is returned with the samples taken so far. Every namespace created is
// deleted before Run returns.
func Run(ctx context.Context, opts Options) ([]Sample, error) {
	w, err := NewWorld(opts.World)
	if err != nil {
		return nil, err
	}
	var ns Namespaces
	defer ns.DeleteAll()
	modes := opts.Modes
	if len(modes) == 0 {
		modes = []string{ModeIPTables}
	}
	var all []Sample
	for round := range opts.Rounds {
		for _, mode := range modes {
			if mode != ModeIPTables && mode != ModeIPVS {
				return all, fmt.Errorf("unknown proxy mode %q", mode)
			}
			samples, err := runRound(ctx, &opts, w, &ns, round, mode)
			all = append(all, samples...)
			if err != nil {
				return all, fmt.Errorf("round %d, %s mode: %w", round+1, mode, err)
			}
		}
	}
	return all, ns.DeleteAll()
}

// round is the state of one round: one namespace with the synced rules.
type round struct {
	opts  *Options
	world *World
	ns    string
	log   ChildLog
	meter *Meter
	out   []Sample
	index int
	mode  string
	// ipvs is the IPVS mode's metered seams (nil in iptables mode).
	ipvs *ipvsKit
	// current is the scenario being measured.
	current string
}

func runRound(ctx context.Context, opts *Options, w *World, nss *Namespaces, index int, mode string) ([]Sample, error) {
	ns, err := nss.Create(ctx)
	if err != nil {
		return nil, err
	}
	defer nss.Delete(ns)
	r := &round{opts: opts, world: w, ns: ns, index: index, mode: mode}
	if !opts.NoChildLog {
		r.log.Path = filepath.Join(opts.TempDir, ns+".time")
	}
	if r.meter, err = r.newMeter(); err != nil {
		return nil, err
	}
	if mode == ModeIPVS {
		if r.ipvs, err = newIPVSKit(ctx, ns, append(r.log.TimePrefix(), Prefix(ns)...)); err != nil {
			return nil, err
		}
		defer r.ipvs.close()
	}
	r.meter.keepPath = filepath.Join(opts.TempDir, ns+".full")
	if opts.DumpDir != "" && index == 0 {
		r.meter.dump = func(data []byte) {
			_ = os.WriteFile(filepath.Join(opts.DumpDir, r.current+".restore"), data, 0o600)
		}
	}
	err = r.run(ctx, nss)
	return r.out, err
}

func (r *round) newMeter() (*Meter, error) {
	runner, err := xtables.New(xtables.Options{Legacy: r.opts.Legacy, Timeout: r.opts.Timeout,
		CommandPrefix: append(r.log.TimePrefix(), Prefix(r.ns)...)})
	if err != nil {
		return nil, err
	}
	return &Meter{Inner: runner}, nil
}

func (r *round) run(ctx context.Context, nss *Namespaces) error {
	tracker := r.world.NewTracker()
	p, err := r.newBackend()
	if err != nil {
		return err
	}
	if err := r.sync(ctx, ScenarioFull, p, tracker, true); err != nil {
		return err
	}
	first := filepath.Join(r.opts.TempDir, r.ns+".full")
	changed, deleted := r.partialTargets()
	for j := range changed {
		tracker.OnEndpointSliceUpdate(r.world.Slices[changed[j]], r.world.ChangeEndpoint(changed[j]))
		if err := r.sync(ctx, ScenarioEndpoint, p, tracker, false, changed[j]); err != nil {
			return err
		}
		tracker.OnEndpointSliceDelete(r.world.Slices[deleted[j]])
		if err := r.sync(ctx, ScenarioSliceDelete, p, tracker, false, deleted[j]); err != nil {
			return err
		}
	}
	if !r.opts.Skip[ScenarioResync] {
		if err := r.sync(ctx, ScenarioResync, p, tracker, true); err != nil {
			return err
		}
	}
	if !r.opts.Skip[ScenarioRestart] {
		if err := r.restart(ctx, changed, deleted); err != nil {
			return err
		}
	}
	if !r.opts.Skip[ScenarioPlain] && r.ipvs == nil {
		return r.plain(ctx, nss, first)
	}
	_ = os.Remove(first)
	return nil
}

// partialTargets are the services whose endpoint each partial repeat
// changes (odd indexes) and whose slice it deletes (even indexes): distinct
// services, as many repeats as the world has room for (at least one).
func (r *round) partialTargets() (changed, deleted []int) {
	n := len(r.world.Slices)
	repeats := max(1, min(r.opts.Partials, (n-1)/2))
	for j := range repeats {
		changed = append(changed, (1+2*j)%n)
		deleted = append(deleted, (2+2*j)%n)
	}
	return changed, deleted
}

// restart is a fresh tracker and proxier, as after a process restart, seeing
// the same API state the running proxier last synced.
func (r *round) restart(ctx context.Context, changed, deleted []int) error {
	tracker := r.world.NewTracker()
	for j := range changed {
		tracker.OnEndpointSliceUpdate(r.world.Slices[changed[j]], r.world.ChangeEndpoint(changed[j]))
		tracker.OnEndpointSliceDelete(r.world.Slices[deleted[j]])
	}
	p, err := r.newBackend()
	if err != nil {
		return err
	}
	return r.sync(ctx, ScenarioRestart, p, tracker, true)
}

// newBackend is the round's mode's proxier over the round's meters.
func (r *round) newBackend() (proxier.Backend, error) {
	if r.ipvs != nil {
		return r.ipvs.newProxier(r.meter)
	}
	return newProxier(r.meter)
}

func newProxier(m *Meter) (*iptables.Proxier, error) {
	return iptables.New(iptables.Options{Restorer: m, Render: iptables.RenderOptions{
		MasqueradeMark: "0x00004000",
		LocalDetector:  netfilter.LocalDetector{IfLocal: []string{"-s", "10.0.0.0/8"}, IfNotLocal: []string{"!", "-s", "10.0.0.0/8"}},
		RandomFully:    true,
	}})
}

// sync takes a snapshot and syncs it, recording one sample; changed are the
// indexes of the services a partial sync is about.
func (r *round) sync(ctx context.Context, name string, p proxier.Backend, t *proxier.Tracker, full bool, changed ...int) error {
	r.current = name
	if err := r.prepare(); err != nil {
		return err
	}
	if r.ipvs != nil {
		r.ipvs.focusOn(r.world, changed...)
	}
	start := time.Now()
	snap := t.Snapshot()
	snap.Full = full
	s := Sample{Scenario: name, Snapshot: time.Since(start)}
	start = time.Now()
	res, err := p.Sync(ctx, snap)
	s.Sync, s.Full, s.Err = time.Since(start), res.Full, err
	if r.ipvs != nil {
		s.IPVS = r.ipvs.counts()
	}
	return r.record(s)
}

// prepare resets the counters, returns freed memory to the OS and resets the
// peak RSS so the sample reports this scenario's own peak.
func (r *round) prepare() error {
	r.meter.reset()
	if r.ipvs != nil {
		r.ipvs.meters.reset()
	}
	debug.FreeOSMemory()
	if err := r.log.Truncate(); err != nil {
		return err
	}
	return ResetPeakRSS()
}

func (r *round) record(s Sample) error {
	m := r.meter
	s.Mode = r.mode
	if s.Scenario != ScenarioPlain {
		s.RestoreBytes, s.Restores, s.Saves, s.Lists = m.restoreBytes, m.restores, m.saves, m.lists
		s.RestoreTime, s.SaveTime = m.restoreTime, m.saveTime
	}
	child, err := r.log.Read()
	if err != nil {
		return err
	}
	s.ChildPeakRSS = child.PeakRSS
	mem, err := ReadProcessMemory()
	if err != nil {
		return err
	}
	s.ProcessRSS, s.ProcessPeak = mem.RSS, mem.PeakRSS
	r.out = append(r.out, s)
	if r.opts.Progress != nil {
		r.opts.Progress(r.index, s)
	}
	if s.Err != nil {
		return fmt.Errorf("%s: %w", s.Scenario, s.Err)
	}
	return nil
}

// plain restores the first sync's input (kept in file) without --noflush
// into a second, empty namespace.
func (r *round) plain(ctx context.Context, nss *Namespaces, file string) error {
	input, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("plain: %w", err)
	}
	_ = os.Remove(file)
	input = PlainInput(input)
	ns, err := nss.Create(ctx)
	if err != nil {
		return err
	}
	defer nss.Delete(ns)
	if err := r.prepare(); err != nil {
		return err
	}
	bin := "iptables-restore"
	if r.opts.Legacy {
		bin = "iptables-legacy-restore"
	}
	argv := append(append(r.log.TimePrefix(), Prefix(ns)...), bin, "-w", "5")
	cctx := ctx
	if r.opts.Timeout > 0 {
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(cctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(input)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	s := Sample{Scenario: ScenarioPlain, Sync: time.Since(start), RestoreBytes: len(input), Restores: 1, Full: true}
	s.RestoreTime = s.Sync
	if err != nil {
		s.Err = fmt.Errorf("%s: %w: %s", bin, err, strings.TrimSpace(stderr.String()))
	}
	return r.record(s)
}

// PlainInput turns a --noflush input into the same rules for a plain
// restore: the "-S" lines are dropped and repeated blocks of one table are
// merged into its first block, since without --noflush every block flushes
// its table.
func PlainInput(input []byte) []byte {
	var order []string
	blocks := map[string]*bytes.Buffer{}
	var cur *bytes.Buffer
	for line := range bytes.Lines(input) {
		text := string(bytes.TrimRight(line, "\n"))
		switch {
		case strings.HasPrefix(text, "*"):
			name := text[1:]
			if blocks[name] == nil {
				blocks[name] = &bytes.Buffer{}
				order = append(order, name)
			}
			cur = blocks[name]
		case text == "COMMIT":
			cur = nil
		case text == "-S" || cur == nil:
		default:
			cur.WriteString(text + "\n")
		}
	}
	var out bytes.Buffer
	for _, name := range order {
		out.WriteString("*" + name + "\n")
		out.Write(blocks[name].Bytes())
		out.WriteString("COMMIT\n")
	}
	return out.Bytes()
}
