package ipset

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/command"
)

// ExecOptions configure Exec.
type ExecOptions struct {
	// Command runs ipset; nil means {"ipset"}. Tests use
	// {"ip", "netns", "exec", NS, "ipset"}.
	Command []string
	// Timeouts bounds each run: Base (0: command.DefaultBase) plus PerMB
	// (0: command.DefaultPerMB) per MiB of a restore's batch. A run that
	// overruns is killed and fails with a *command.TimeoutError.
	Timeouts command.Timeouts
}

// Exec is the real Interface: it runs the ipset binary, once per Restore
// (`ipset -exist restore` with the batch on stdin) and once per List
// (`ipset list -o save`).
type Exec struct {
	cmd      []string
	timeouts command.Timeouts
}

var _ Interface = (*Exec)(nil)

// NewExec returns an Exec; it runs nothing.
func NewExec(opts ExecOptions) *Exec {
	cmd := opts.Command
	if len(cmd) == 0 {
		cmd = []string{"ipset"}
	}
	return &Exec{cmd: slices.Clone(cmd), timeouts: opts.Timeouts.WithDefaults()}
}

func (e *Exec) run(ctx context.Context, stdin string, args ...string) ([]byte, error) {
	full := append(slices.Clone(e.cmd), args...)
	var in []byte
	if stdin != "" {
		in = []byte(stdin)
	}
	res, err := command.Run(ctx, e.timeouts.For(len(in)), in, full)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", strings.Join(full, " "), err, strings.TrimSpace(res.Stderr))
	}
	return res.Stdout, nil
}

// Restore runs the batch in one `ipset -exist restore`. ipset stops at the
// first failing line and may keep the lines before it: after an error the
// caller must re-list (Syncer does).
func (e *Exec) Restore(ctx context.Context, b *Batch) error {
	if b.Len() == 0 {
		return nil
	}
	if _, err := e.run(ctx, b.Script(), "-exist", "restore"); err != nil {
		return fmt.Errorf("ipset restore: %w", err)
	}
	return nil
}

// List runs `ipset list -o save` and parses it.
func (e *Exec) List(ctx context.Context) (map[string]*Contents, error) {
	out, err := e.run(ctx, "", "list", "-o", "save")
	if err != nil {
		return nil, fmt.Errorf("ipset list: %w", err)
	}
	return ParseSave(out), nil
}

// ParseSave reads `ipset save` / `ipset list -o save` output. The
// family of a bitmap:port set is empty (ipset prints none).
func ParseSave(data []byte) map[string]*Contents {
	sets := map[string]*Contents{}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		switch f[0] {
		case "create":
			spec := Spec{Name: f[1], Type: Type(f[2])}
			if i := slices.Index(f, "family"); i > 0 && i+1 < len(f) {
				spec.Family = v1.IPv4Protocol
				if f[i+1] == "inet6" {
					spec.Family = v1.IPv6Protocol
				}
			}
			sets[f[1]] = &Contents{Spec: spec}
		case "add":
			if s, ok := sets[f[1]]; ok {
				s.Members = append(s.Members, f[2])
			}
		}
	}
	for _, s := range sets {
		slices.Sort(s.Members)
	}
	return sets
}
