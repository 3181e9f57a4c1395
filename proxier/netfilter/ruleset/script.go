package ruleset

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// Op is one kind of iptables-restore statement.
type Op int

// The statements iptables-restore accepts inside a table.
const (
	OpDeclare     Op = iota // :CHAIN POLICY [packets:bytes]
	OpAppend                // -A CHAIN rule
	OpInsert                // -I CHAIN [n] rule
	OpDelete                // -D CHAIN rule | -D CHAIN n
	OpFlush                 // -F [CHAIN]
	OpNewChain              // -N CHAIN
	OpDeleteChain           // -X [CHAIN]
	OpPolicy                // -P CHAIN POLICY
	OpList                  // -S [CHAIN]: prints rules, changes nothing
)

// Statement is one line of a table block.
type Statement struct {
	Line int
	Op   Op
	// Chain is "" for -F and -X without a chain (all chains of the table).
	Chain string
	// Policy is set for OpDeclare (PolicyNone for user chains) and OpPolicy.
	Policy string
	// Position is the 1-based rule number of OpInsert, or of OpDelete by number (Rule nil).
	Position int
	// Rule is set for OpAppend, OpInsert and OpDelete by rule specification.
	Rule *Rule
}

// TableBlock is one "*table" ... "COMMIT" block.
type TableBlock struct {
	Name       string
	Line       int
	Statements []Statement
}

// Script is parsed iptables-restore input (iptables-save output parses the same way).
type Script struct {
	Tables []TableBlock
}

// ParseError is an error at one input line (1-based).
type ParseError struct {
	Line int
	Err  error
}

func (e *ParseError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *ParseError) Unwrap() error { return e.Err }

// ParseRestore parses iptables-restore input or iptables-save output line
// by line as iptables-restore 1.8.9 does (xtables_restore_parse_line): a
// line is what fgets reads, newline included, and ends at a NUL byte; an
// empty line or one starting with "#" is skipped; "COMMIT" must stand alone
// at the start of its line; "*table" and ":chain" are recognized by their
// first byte, everything else inside a table is a statement split with
// SplitArgs (rule counters "[p:b]" are accepted). Lines longer than
// MaxLineLen are refused: iptables-restore would cut them in two. Rules are
// parsed with ParseRule for the given family.
func ParseRestore(data []byte, family v1.IPFamily) (*Script, error) {
	s := &Script{}
	var cur *TableBlock
	text := string(data)
	for lineNo := 1; text != ""; lineNo++ {
		line := text
		if i := strings.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i+1], text[i+1:]
		} else {
			text = ""
		}
		var err error
		cur, err = parseLine(s, cur, line, lineNo, family)
		if err != nil {
			return nil, &ParseError{Line: lineNo, Err: err}
		}
	}
	if cur != nil {
		return nil, &ParseError{Line: strings.Count(string(data), "\n") + 1, Err: errors.New("COMMIT expected")}
	}
	return s, nil
}

// parseLine handles one line (with its newline, if it had one) and returns
// the table block open after it.
func parseLine(s *Script, cur *TableBlock, line string, lineNo int, family v1.IPFamily) (*TableBlock, error) {
	if len(strings.TrimSuffix(line, "\n")) > MaxLineLen {
		return cur, fmt.Errorf("line longer than %d bytes", MaxLineLen)
	}
	if i := strings.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	switch {
	case line == "\n" || line == "" && cur == nil || strings.HasPrefix(line, "#"):
		return cur, nil
	case cur != nil && strings.HasPrefix(line, "COMMIT") && (len(line) == 6 || line[6] == '\n'):
		s.Tables = append(s.Tables, *cur)
		return nil, nil
	case cur == nil && line[0] == '*':
		return beginTable(line, lineNo)
	case cur == nil && strings.HasPrefix(line, "COMMIT"):
		return cur, errors.New("COMMIT outside a table")
	case cur == nil:
		return cur, errors.New("statement outside a table")
	case line == "":
		return cur, errors.New("empty statement")
	case line[0] == '*':
		return cur, errors.New("COMMIT expected before a new table")
	}
	st, err := parseStatement(line, family)
	st.Line = lineNo
	cur.Statements = append(cur.Statements, st)
	return cur, err
}

// restoreFields splits a "*table" or ":chain" line as iptables-restore
// does, with strtok on space, tab and newline.
func restoreFields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' })
}

func beginTable(line string, lineNo int) (*TableBlock, error) {
	name := ""
	if f := restoreFields(line[1:]); len(f) > 0 {
		name = f[0]
	}
	if !KnownTable(name) {
		return nil, fmt.Errorf("table %q does not exist", name)
	}
	return &TableBlock{Name: name, Line: lineNo}, nil
}

var countersRE = regexp.MustCompile(`^\[\d+:\d+\]$`)

func parseStatement(line string, family v1.IPFamily) (Statement, error) {
	if line[0] == ':' {
		return parseDeclare(line)
	}
	args, err := SplitArgs(line)
	if err != nil {
		return Statement{}, err
	}
	if len(args) > 0 && countersRE.MatchString(args[0]) {
		args = args[1:]
	}
	if len(args) == 0 {
		return Statement{}, errors.New("empty statement")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-A", "--append":
		return parseRuleStatement(OpAppend, rest, family, false)
	case "-I", "--insert":
		return parseRuleStatement(OpInsert, rest, family, true)
	case "-D", "--delete":
		return parseRuleStatement(OpDelete, rest, family, true)
	case "-F", "--flush", "-X", "--delete-chain", "-N", "--new-chain":
		return parseChainStatement(cmd, rest)
	case "-S", "--list-rules":
		if len(rest) > 1 {
			return Statement{}, errors.New("-S takes at most a chain")
		}
		st := Statement{Op: OpList}
		if len(rest) == 1 {
			st.Chain = rest[0]
		}
		return st, nil
	case "-P", "--policy":
		if len(rest) != 2 || (rest[1] != "ACCEPT" && rest[1] != "DROP") {
			return Statement{}, errors.New("-P needs a chain and ACCEPT or DROP")
		}
		return Statement{Op: OpPolicy, Chain: rest[0], Policy: rest[1]}, nil
	}
	return Statement{}, fmt.Errorf("unknown command %q", cmd)
}

// parseDeclare parses ":CHAIN POLICY [packets:bytes]".
func parseDeclare(line string) (Statement, error) {
	f := restoreFields(line[1:])
	if len(f) < 2 || len(f) > 3 || (len(f) == 3 && !countersRE.MatchString(f[2])) {
		return Statement{}, fmt.Errorf("bad chain declaration %q", line)
	}
	if err := CheckChainName(f[0]); err != nil {
		return Statement{}, err
	}
	if f[1] != PolicyNone && f[1] != "ACCEPT" && f[1] != "DROP" {
		return Statement{}, fmt.Errorf("bad policy %q", f[1])
	}
	return Statement{Op: OpDeclare, Chain: f[0], Policy: f[1]}, nil
}

// CheckChainName rejects names the kernel or iptables would refuse.
func CheckChainName(name string) error {
	switch {
	case name == "":
		return errors.New("empty chain name")
	case len(name) > MaxChainNameLen:
		return fmt.Errorf("chain name %q too long (must be under %d chars)", name, MaxChainNameLen+1)
	case name[0] == '-' || name[0] == '!' || strings.ContainsAny(name, " \t\n\v\f\r\"'"):
		return fmt.Errorf("invalid chain name %q", name)
	case name == "ACCEPT" || name == "DROP" || name == "RETURN" || name == "QUEUE":
		return fmt.Errorf("invalid chain name %q: a standard target", name)
	}
	return nil
}

func parseRuleStatement(op Op, rest []string, family v1.IPFamily, numbered bool) (Statement, error) {
	if len(rest) == 0 {
		return Statement{}, errors.New("missing chain name")
	}
	st := Statement{Op: op, Chain: rest[0]}
	rest = rest[1:]
	if numbered && len(rest) > 0 {
		if n, err := strconv.Atoi(rest[0]); err == nil {
			if n < 1 {
				return Statement{}, fmt.Errorf("invalid rule number %q", rest[0])
			}
			st.Position, rest = n, rest[1:]
			if op == OpDelete {
				if len(rest) > 0 {
					return Statement{}, errors.New("-D takes a rule number or a rule, not both")
				}
				return st, nil
			}
		}
	}
	if op == OpInsert && st.Position == 0 {
		st.Position = 1
	}
	r, err := ParseRule(rest, family)
	if err != nil {
		return Statement{}, err
	}
	st.Rule = &r
	return st, nil
}

func parseChainStatement(cmd string, rest []string) (Statement, error) {
	var op Op
	switch cmd {
	case "-F", "--flush":
		op = OpFlush
	case "-X", "--delete-chain":
		op = OpDeleteChain
	default:
		op = OpNewChain
	}
	if len(rest) > 1 || (op == OpNewChain && len(rest) == 0) {
		return Statement{}, fmt.Errorf("%s takes one chain name", cmd)
	}
	st := Statement{Op: op}
	if len(rest) == 1 {
		st.Chain = rest[0]
		if op == OpNewChain {
			if err := CheckChainName(st.Chain); err != nil {
				return Statement{}, err
			}
		}
	}
	return st, nil
}
