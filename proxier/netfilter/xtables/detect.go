package xtables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"time"

	"github.com/kproxy/kproxy/proxier/command"
)

// Choosing between iptables-nft and iptables-legacy as upstream's image
// does. kube-proxy's image runs kubernetes-sigs/iptables-wrappers, whose
// rule is:
//  1. kubelet (1.17 and later) creates KUBE-IPTABLES-HINT or
//     KUBE-KUBELET-CANARY in the mangle table: if iptables-nft-save -t
//     mangle or ip6tables-nft-save -t mangle shows one, use nft;
//  2. else if the full iptables-legacy-save or ip6tables-legacy-save shows
//     one, use legacy ("-t mangle" is not passed to legacy, because that
//     would make the kernel create the table);
//  3. else count the rule lines (starting with "-") of both families' saves:
//     legacy if it has more, nft otherwise (a tie, nothing at all, is nft).
// kproxy follows it with one difference in step 3 that cannot change the
// answer: iptables-nft-save of a 10k-service nat table runs for minutes and
// then crashes, so nft is counted table by table (nat last) only until it
// reaches legacy's count, not at all when legacy has no rules, and a save
// that times out counts as "at least as many" (only a huge table does that).

// kubeletHintRE finds kubelet's chains in iptables-save output (upstream's
// expression: a chain declaration starting with either name).
var kubeletHintRE = regexp.MustCompile(`(?m)^:(KUBE-IPTABLES-HINT|KUBE-KUBELET-CANARY)`)

// countTables are the tables step 3 counts for nft, cheapest first.
var countTables = []string{"filter", "mangle", "raw", "security", "nat"}

// DetectOptions configures DetectBackend.
type DetectOptions struct {
	// CommandPrefix is prepended to every command (tests run them in a netns).
	CommandPrefix []string
	// Timeout bounds each command (0: command.DefaultBase).
	Timeout time.Duration
	// Run runs argv (after the prefix) and returns its stdout; nil runs it
	// for real. Tests pass a fake.
	Run func(ctx context.Context, argv []string) ([]byte, error)
	// LookPath reports whether a binary is installed; nil is exec.LookPath.
	LookPath func(file string) (string, error)
}

// Detection is DetectBackend's answer and why, for the startup log.
type Detection struct {
	Backend Backend
	// Reason says which step decided.
	Reason string
	// Hint is the kubelet chain found (steps 1 and 2), "" otherwise.
	Hint string
	// LegacyRules and NFTRules are the rule lines counted in step 3, -1
	// when not counted; NFTRules stops at LegacyRules (see above), and
	// NFTCountTimedOut says a save timed out while counting.
	LegacyRules, NFTRules int
	NFTCountTimedOut      bool
}

// DetectBackend picks the iptables backend the node uses. It never fails:
// a command that fails counts as empty output, as in upstream's script; only
// a cancelled ctx is returned as an error.
func DetectBackend(ctx context.Context, opts DetectOptions) (Detection, error) {
	d := detector{opts: opts}
	d.init()
	det := d.detect(ctx)
	return det, ctx.Err()
}

type detector struct {
	opts DetectOptions
}

func (d *detector) init() {
	if d.opts.Timeout <= 0 {
		d.opts.Timeout = command.DefaultBase
	}
	if d.opts.LookPath == nil {
		d.opts.LookPath = exec.LookPath
	}
	if d.opts.Run == nil {
		d.opts.Run = func(ctx context.Context, argv []string) ([]byte, error) {
			full := append(append([]string(nil), d.opts.CommandPrefix...), argv...)
			res, err := command.Run(ctx, d.opts.Timeout, nil, full)
			return res.Stdout, err
		}
	}
}

func (d *detector) installed(bin string) bool {
	_, err := d.opts.LookPath(bin)
	return err == nil
}

func (d *detector) detect(ctx context.Context) Detection {
	det := Detection{LegacyRules: -1, NFTRules: -1}
	hasNFT, hasLegacy := d.installed("iptables-nft-save"), d.installed("iptables-legacy-save")
	switch {
	case !hasNFT && !hasLegacy:
		det.Reason = "neither iptables-nft nor iptables-legacy is installed: using iptables as installed"
		return det
	case !hasNFT:
		det.Backend, det.Reason = BackendLegacy, "only iptables-legacy is installed"
		return det
	case !hasLegacy:
		det.Backend, det.Reason = BackendNFT, "only iptables-nft is installed"
		return det
	}
	for _, save := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		out, _ := d.opts.Run(ctx, []string{save, "-t", "mangle"})
		if hint := kubeletHint(out); hint != "" {
			det.Backend, det.Hint = BackendNFT, hint
			det.Reason = "kubelet's " + hint + " chain is in iptables-nft (" + save + " -t mangle)"
			return det
		}
	}
	var legacy [][]byte
	for _, save := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		out, _ := d.opts.Run(ctx, []string{save})
		if hint := kubeletHint(out); hint != "" {
			det.Backend, det.Hint = BackendLegacy, hint
			det.Reason = "kubelet's " + hint + " chain is in iptables-legacy (" + save + ")"
			return det
		}
		legacy = append(legacy, out)
	}
	det.LegacyRules = countRules(legacy...)
	det.NFTRules, det.NFTCountTimedOut = d.countNFT(ctx, det.LegacyRules)
	if det.LegacyRules > det.NFTRules && !det.NFTCountTimedOut {
		det.Backend = BackendLegacy
		det.Reason = fmt.Sprintf("no kubelet chains; iptables-legacy holds more rules (%d) than iptables-nft (%d)",
			det.LegacyRules, det.NFTRules)
		return det
	}
	det.Backend = BackendNFT
	if det.NFTCountTimedOut {
		det.Reason = fmt.Sprintf("no kubelet chains; iptables-nft-save timed out while counting (a huge table), "+
			"so iptables-nft holds more rules than iptables-legacy (%d)", det.LegacyRules)
		return det
	}
	det.Reason = fmt.Sprintf("no kubelet chains; iptables-nft holds at least as many rules (%d counted) as iptables-legacy (%d)",
		det.NFTRules, det.LegacyRules)
	return det
}

// countNFT counts nft rule lines table by table until they reach limit.
func (d *detector) countNFT(ctx context.Context, limit int) (n int, timedOut bool) {
	for _, save := range []string{"iptables-nft-save", "ip6tables-nft-save"} {
		for _, table := range countTables {
			if n >= limit {
				return n, false
			}
			out, err := d.opts.Run(ctx, []string{save, "-t", table})
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return n, true
			}
			n += countRules(out)
		}
	}
	return n, false
}

func kubeletHint(save []byte) string {
	m := kubeletHintRE.FindSubmatch(save)
	if m == nil {
		return ""
	}
	return string(m[1])
}

// countRules counts lines starting with "-" (grep '^-' | wc -l).
func countRules(saves ...[]byte) int {
	n := 0
	for _, s := range saves {
		for line := range bytes.Lines(s) {
			if len(line) > 0 && line[0] == '-' {
				n++
			}
		}
	}
	return n
}
