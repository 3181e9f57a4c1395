package netfilter

import (
	"bytes"
	"maps"
	"slices"
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
		for c := range saved.Chains {
			touched[c] = true
		}
	}
	chains := slices.Sorted(maps.Keys(touched))
	b.WriteString("*" + s.table + "\n")
	for _, c := range chains {
		policy, existed := saved.Policy(c)
		switch {
		case builtinChains[c] && existed:
			b.WriteString(":" + c + " " + policy + " [0:0]\n")
		case !builtinChains[c]:
			writeChainDeclaration(b, c)
		}
	}
	for _, c := range chains {
		if builtinChains[c] && saved.HasChain(c) {
			b.WriteString("-F " + c + "\n")
		}
	}
	rules := map[string][]string{}
	for _, r := range saved.Rules {
		if touched[r.Chain] {
			rules[r.Chain] = append(rules[r.Chain], r.Line)
		}
	}
	for _, c := range chains {
		for _, r := range rules[c] {
			b.WriteString(r + "\n")
		}
	}
	for _, c := range chains {
		if !saved.HasChain(c) && !builtinChains[c] {
			b.WriteString("-X " + c + "\n")
		}
	}
	b.WriteString("COMMIT\n")
}

// writeChainDeclaration writes ":CHAIN - [0:0]", which creates or flushes a
// user chain under --noflush.
func writeChainDeclaration(b *bytes.Buffer, name string) {
	b.WriteString(":" + name + " - [0:0]\n")
}
