package ruleset

import "strings"

// SavedTable indexes what kproxy reads back from the kernel: one table of
// iptables-save output, or chain listings ("iptables -t T -S CHAIN": "-P
// CHAIN POLICY" or "-N CHAIN", then "-A" rules). It records which chains
// exist, the policy of the built-in ones, and every rule's chain and jump
// target, without parsing the rules themselves: a 10k-service nat table is
// 30 MB, and ParseRestore would both cost too much and refuse matches its
// model does not know, which other software may have added.
//
// The input is converted to a string once and every name and rule line is
// a substring of it, so a large save costs one copy, not one per line.
// Rules are split with SplitArgs only when they hold a double quote (a
// comment), so a comment cannot pass for "-j CHAIN".
type SavedTable struct {
	// Chains holds every chain declared or listed.
	Chains map[string]struct{}
	// Rules are the "-A" lines in input order.
	Rules []SavedRule
	// Text is the iptables-save output ParseSave read ("" after
	// NewSavedTable, and not extended by Add).
	Text string
	// policies holds the policy of built-in chains.
	policies map[string]string
}

// SavedRule is one "-A" line.
type SavedRule struct {
	// Line is the rule as saved ("-A CHAIN ...").
	Line  string
	Chain string
	// Target is the argument of the first -j or -g, "" if none (or if the
	// line cannot be split as iptables-restore would).
	Target string
}

// NewSavedTable returns an empty table to Add listings to.
func NewSavedTable() *SavedTable {
	return &SavedTable{Chains: map[string]struct{}{}, policies: map[string]string{}}
}

// ParseSave reads one table of iptables-save output.
func ParseSave(data []byte) *SavedTable {
	t := NewSavedTable()
	t.Text = t.add(data)
	return t
}

// Add reads more iptables-save output or chain listings into t.
func (t *SavedTable) Add(data []byte) { t.add(data) }

func (t *SavedTable) add(data []byte) (text string) {
	text = string(data)
	for line := range strings.Lines(text) {
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, ":"):
			name, rest, _ := strings.Cut(line[1:], " ")
			policy, _, _ := strings.Cut(rest, " ")
			t.addChain(name, !strings.HasPrefix(rest, PolicyNone), policy)
		case strings.HasPrefix(line, "-N "), strings.HasPrefix(line, "-P "):
			name, rest, _ := strings.Cut(line[3:], " ")
			policy, _, _ := strings.Cut(rest, " ")
			t.addChain(name, line[1] == 'P', policy)
		case strings.HasPrefix(line, "-A "):
			if r, ok := parseSavedRule(line); ok {
				t.Rules = append(t.Rules, r)
			}
		}
	}
	return text
}

func (t *SavedTable) addChain(name string, builtin bool, policy string) {
	if name == "" {
		return
	}
	t.Chains[name] = struct{}{}
	if builtin {
		t.policies[name] = policy
	}
}

// HasChain reports whether the chain was declared or listed.
func (t *SavedTable) HasChain(chain string) bool {
	_, ok := t.Chains[chain]
	return ok
}

// BuiltIn reports whether the chain is a built-in chain (it has a policy).
func (t *SavedTable) BuiltIn(chain string) bool {
	_, ok := t.policies[chain]
	return ok
}

// Policy is the chain's policy: ACCEPT or DROP for a built-in chain,
// PolicyNone for a user chain; ok is false for a chain not seen.
func (t *SavedTable) Policy(chain string) (policy string, ok bool) {
	if p, builtin := t.policies[chain]; builtin {
		return p, true
	}
	if t.HasChain(chain) {
		return PolicyNone, true
	}
	return "", false
}

// HasRule reports whether a rule line ("-A CHAIN ...") is saved exactly so.
func (t *SavedTable) HasRule(line string) bool {
	for i := range t.Rules {
		if t.Rules[i].Line == line {
			return true
		}
	}
	return false
}

// parseSavedRule finds the chain and the -j/-g target of a saved rule. Only
// rules with a quoted comment need the quote-aware split; a line that
// iptables-restore could not split keeps its chain and has no target.
func parseSavedRule(line string) (SavedRule, bool) {
	quoted := strings.Contains(line, "\"")
	if quoted {
		if args, err := SplitArgs(line); err == nil {
			if len(args) < 2 {
				return SavedRule{}, false
			}
			return SavedRule{Line: line, Chain: args[1], Target: targetOf(args[2:])}, true
		}
	}
	// strings.Fields allocates only the slice; names stay substrings of line.
	args := strings.Fields(line)
	if len(args) < 2 {
		return SavedRule{}, false
	}
	r := SavedRule{Line: line, Chain: args[1]}
	if !quoted {
		r.Target = targetOf(args[2:])
	}
	return r, true
}

func targetOf(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "-j" || args[i] == "-g" {
			return args[i+1]
		}
	}
	return ""
}
