package iptables

import (
	"bytes"
	"maps"
	"slices"
	"strings"
)

// builtinChains are the built-in chains of every table; a table has the ones
// its iptables-save lists with a policy.
var builtinChains = map[string]bool{"PREROUTING": true, "INPUT": true, "FORWARD": true, "OUTPUT": true, "POSTROUTING": true}

// touchedChains adds to touched every chain a block's statements create,
// flush, change or delete, and reports whether one of them applies to every
// chain of the table ("-F" or "-X" without a chain). It allocates only per
// distinct chain: the first nat block of a restore into an empty table
// names 110k chains at 10k services.
func touchedChains(block []byte, touched map[string]bool) (all bool) {
	touch := func(c []byte) {
		if len(c) > 0 && !touched[string(c)] {
			touched[string(c)] = true
		}
	}
	for len(block) > 0 {
		var line []byte
		line, block, _ = bytes.Cut(block, []byte("\n"))
		cmd, rest, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" "))
		if len(cmd) > 1 && cmd[0] == ':' {
			touch(cmd[1:])
			continue
		}
		first, rest, _ := bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
		switch string(cmd) {
		case "-A", "--append", "-I", "--insert", "-D", "--delete", "-R", "--replace", "-N", "--new-chain", "-P", "--policy":
			touch(first)
		case "-F", "--flush", "-X", "--delete-chain":
			if len(first) == 0 || first[0] == '-' {
				all = true
			} else {
				touch(first)
			}
		case "-E", "--rename-chain":
			second, _, _ := bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
			touch(first)
			touch(second)
		}
	}
	return all
}

// savedChains is what a table held: each chain's policy ("-" for user
// chains) and rule lines, as iptables-save or "iptables -S CHAIN" print
// them.
type savedChains struct {
	policy map[string]string
	rules  map[string][]string
}

func newSavedChains() *savedChains {
	return &savedChains{policy: map[string]string{}, rules: map[string][]string{}}
}

// addChain records an existing user chain and its rules (restore lines).
func (s *savedChains) addChain(chain string, rules []byte) {
	if _, ok := s.policy[chain]; !ok {
		s.policy[chain] = "-"
	}
	s.add(string(rules))
}

// add reads iptables-save output (":CHAIN POLICY [0:0]") or a chain
// listing ("-P CHAIN POLICY", "-N CHAIN"), and "-A" rules.
func (s *savedChains) add(text string) {
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		f := strings.Fields(line)
		switch {
		case len(f) >= 2 && strings.HasPrefix(f[0], ":"):
			s.policy[f[0][1:]] = f[1]
		case len(f) >= 3 && f[0] == "-P":
			s.policy[f[1]] = f[2]
		case len(f) >= 2 && f[0] == "-N":
			s.policy[f[1]] = "-"
		case len(f) >= 2 && f[0] == "-A":
			s.rules[f[1]] = append(s.rules[f[1]], line)
		}
	}
}

// undoInput is one restore that puts every snapshotted chain back.
func undoInput(snaps []*tableSnapshot) []byte {
	var b bytes.Buffer
	for _, s := range snaps {
		writeUndoBlock(&b, s)
	}
	return b.Bytes()
}

// writeUndoBlock declares (creates or flushes) the touched user chains,
// flushes touched built-in chains and resets their policy, refills every
// touched chain that existed with its saved rules, and deletes the touched
// user chains that did not exist. Declarations come first, so a saved rule
// may jump to any chain the input deleted.
func writeUndoBlock(b *bytes.Buffer, s *tableSnapshot) {
	touched, all := s.touched()
	saved := s.chains()
	if all {
		for c := range saved.policy {
			touched[c] = true
		}
	}
	chains := slices.Sorted(maps.Keys(touched))
	b.WriteString("*" + s.table + "\n")
	for _, c := range chains {
		policy, existed := saved.policy[c]
		switch {
		case builtinChains[c] && existed:
			b.WriteString(":" + c + " " + policy + " [0:0]\n")
		case !builtinChains[c]:
			writeChainLine(b, c)
		}
	}
	for _, c := range chains {
		if _, existed := saved.policy[c]; builtinChains[c] && existed {
			b.WriteString("-F " + c + "\n")
		}
	}
	for _, c := range chains {
		for _, r := range saved.rules[c] {
			b.WriteString(r + "\n")
		}
	}
	for _, c := range chains {
		if _, existed := saved.policy[c]; !existed && !builtinChains[c] {
			b.WriteString("-X " + c + "\n")
		}
	}
	b.WriteString("COMMIT\n")
}
