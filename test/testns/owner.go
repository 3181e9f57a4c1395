package testns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// owner identifies a process across pid reuse: its pid and its start time
// (clock ticks since boot, /proc/<pid>/stat field 22).
type owner struct {
	pid   int
	start uint64
}

func ownerFile(name string) string { return filepath.Join(ownerDir, name) }

// ownerOf reads the identity of a running process.
func ownerOf(pid int) (owner, error) {
	start, err := startTime(pid)
	if err != nil {
		return owner{}, err
	}
	return owner{pid: pid, start: start}, nil
}

// alive reports whether the recorded process still runs: the same pid
// with the same start time, not exiting (a zombie's cleanups will not run).
func (o owner) alive() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", o.pid))
	if err != nil {
		return false
	}
	state, start, err := parseStat(string(b))
	return err == nil && start == o.start && state != "Z" && state != "X"
}

func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	_, start, err := parseStat(string(b))
	return start, err
}

// parseStat takes the state (field 3) and the start time (field 22) of a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and
// may hold spaces and ")", so fields are counted from the last ")".
func parseStat(stat string) (state string, start uint64, err error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return "", 0, errors.New("stat: no command name")
	}
	fields := strings.Fields(stat[i+1:])
	const startField = 22 - 3 // fields[0] is field 3, the state
	if len(fields) <= startField {
		return "", 0, fmt.Errorf("stat: %d fields after the command name", len(fields))
	}
	start, err = strconv.ParseUint(fields[startField], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("stat: start time: %w", err)
	}
	return fields[0], start, nil
}

func writeOwner(name string, o owner) error {
	if err := os.MkdirAll(ownerDir, 0o755); err != nil {
		return fmt.Errorf("owner records: %w", err)
	}
	data := fmt.Sprintf("%d %d\n", o.pid, o.start)
	if err := os.WriteFile(ownerFile(name), []byte(data), 0o644); err != nil {
		return fmt.Errorf("owner record of %s: %w", name, err)
	}
	return nil
}

func readOwner(name string) (owner, error) {
	b, err := os.ReadFile(ownerFile(name))
	if err != nil {
		return owner{}, fmt.Errorf("owner record of %s: %w", name, err)
	}
	var o owner
	if _, err := fmt.Sscanf(string(b), "%d %d", &o.pid, &o.start); err != nil || o.pid <= 0 {
		return owner{}, fmt.Errorf("owner record of %s: %q is not \"pid start\"", name, strings.TrimSpace(string(b)))
	}
	return o, nil
}
