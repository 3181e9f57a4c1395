package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kproxy/kproxy/proxier/netfilter"
)

// Meter wraps a Restorer and records what one scenario asked of the kernel:
// restore input sizes and wall time spent in Restore and Save.
type Meter struct {
	Inner netfilter.Restorer

	restores, saves       int
	lists                 int
	restoreBytes          int
	restoreTime, saveTime time.Duration
	// keepPath, if set, receives the next restore input (kept on disk so the
	// benchmark does not inflate its own RSS with a copy).
	keepPath string
	// dump, if set, is called with every restore input (for profiling).
	dump func(data []byte)
}

var (
	_ netfilter.Restorer    = (*Meter)(nil)
	_ netfilter.ChainLister = (*Meter)(nil)
)

// Restore forwards to the inner Restorer and accounts for the call.
func (m *Meter) Restore(ctx context.Context, data []byte) error {
	if m.dump != nil {
		m.dump(data)
	}
	start := time.Now()
	err := m.Inner.Restore(ctx, data)
	m.restoreTime += time.Since(start)
	m.restores++
	m.restoreBytes += len(data)
	if m.keepPath != "" {
		if werr := os.WriteFile(m.keepPath, data, 0o600); werr != nil && err == nil {
			err = fmt.Errorf("keep restore input: %w", werr)
		}
		m.keepPath = ""
	}
	return err
}

// Save forwards to the inner Restorer and accounts for the call.
func (m *Meter) Save(ctx context.Context, table string) ([]byte, error) {
	start := time.Now()
	out, err := m.Inner.Save(ctx, table)
	m.saveTime += time.Since(start)
	m.saves++
	return out, err
}

// ListChain forwards to the inner Restorer's optional ChainLister; its time
// counts as kernel reading (saveTime), its calls as lists.
func (m *Meter) ListChain(ctx context.Context, table, chain string) ([]byte, error) {
	l, ok := m.Inner.(netfilter.ChainLister)
	if !ok {
		return nil, fmt.Errorf("list %s %s: the restorer cannot list chains", table, chain)
	}
	start := time.Now()
	out, err := l.ListChain(ctx, table, chain)
	m.saveTime += time.Since(start)
	m.lists++
	return out, err
}

// reset forgets the counters (not the kept input).
func (m *Meter) reset() {
	m.restores, m.saves, m.lists, m.restoreBytes = 0, 0, 0, 0
	m.restoreTime, m.saveTime = 0, 0
}

// ChildLog is the output file of "/usr/bin/time -a -o FILE", which the
// kernel runner's command prefix wraps around every iptables-restore/save.
// An empty Path turns it off: no prefix, nothing logged.
type ChildLog struct{ Path string }

// TimePrefix wraps commands so that each appends "elapsed maxrssKB command" to the log.
func (l ChildLog) TimePrefix() []string {
	if l.Path == "" {
		return nil
	}
	return []string{"/usr/bin/time", "-f", "%e %M %C", "-a", "-o", l.Path}
}

// Truncate empties the log before a scenario.
func (l ChildLog) Truncate() error {
	if l.Path == "" {
		return nil
	}
	return os.WriteFile(l.Path, nil, 0o600)
}

// ChildStats summarizes the logged commands.
type ChildStats struct {
	Commands int
	// PeakRSS is the largest maximum resident set of any command, in bytes.
	PeakRSS int64
}

// Read parses the log; lines that are not "seconds kilobytes command"
// (such as "Command exited with non-zero status") are skipped.
func (l ChildLog) Read() (ChildStats, error) {
	if l.Path == "" {
		return ChildStats{}, nil
	}
	data, err := os.ReadFile(l.Path)
	if err != nil {
		return ChildStats{}, fmt.Errorf("read child log: %w", err)
	}
	return parseChildLog(data), nil
}

func parseChildLog(data []byte) ChildStats {
	var st ChildStats
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		kb, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		st.Commands++
		st.PeakRSS = max(st.PeakRSS, kb*1024)
	}
	return st
}

// ProcessMemory is this process's resident set from /proc/self/status.
type ProcessMemory struct {
	RSS, PeakRSS int64 // VmRSS, VmHWM in bytes
}

// ReadProcessMemory reads VmRSS and VmHWM.
func ReadProcessMemory() (ProcessMemory, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return ProcessMemory{}, fmt.Errorf("read /proc/self/status: %w", err)
	}
	return parseStatus(data), nil
}

func parseStatus(data []byte) ProcessMemory {
	var m ProcessMemory
	for line := range strings.SplitSeq(string(data), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			m.RSS = kb * 1024
		case "VmHWM":
			m.PeakRSS = kb * 1024
		}
	}
	return m
}

// ResetPeakRSS resets VmHWM to the current RSS (Linux ≥ 4.0), so each
// scenario reports its own peak.
func ResetPeakRSS() error {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0o200)
}
