package ruleset

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
)

// TestSplitArgs pins the tokenizer to what iptables-restore 1.8.9 did with
// the same lines (checked in a network namespace, then read back with
// iptables-save).
func TestSplitArgs(t *testing.T) {
	tests := []struct {
		line    string
		want    []string
		wantErr bool
	}{
		{line: `-A X -j ACCEPT`, want: []string{"-A", "X", "-j", "ACCEPT"}},
		{line: "  -A\tX   -j  ACCEPT \n", want: []string{"-A", "X", "-j", "ACCEPT"}},
		{line: `-m comment --comment "ns1/svc1:p80 cluster IP" -j X`, want: []string{"-m", "comment", "--comment", "ns1/svc1:p80 cluster IP", "-j", "X"}},
		{line: `--comment "it\'s \"q\""`, want: []string{"--comment", `it's "q"`}},
		{line: `--comment ""`, want: []string{"--comment", ""}},
		{line: `--comment "" -j X`, want: []string{"--comment", "", "-j", "X"}},
		// A closing quote ends the argument; an opening one does not.
		{line: `--comment "a"b -j X`, want: []string{"--comment", "a", "b", "-j", "X"}},
		{line: `--comment ab"cd ef" -j X`, want: []string{"--comment", "abcd ef", "-j", "X"}},
		// Outside quotes a backslash is literal; inside, it takes the next byte.
		{line: `--comment a\rb`, want: []string{"--comment", `a\rb`}},
		{line: `--comment "a\rb\\"`, want: []string{"--comment", `arb\`}},
		// CR is not a blank; tab is, outside quotes.
		{line: "--comment a\rb", want: []string{"--comment", "a\rb"}},
		{line: "--comment \"a\tb\"", want: []string{"--comment", "a\tb"}},
		// An open quote keeps the rest of the line, newline included.
		{line: "--comment \"open -j ACCEPT\n", want: []string{"--comment", "open -j ACCEPT\n"}},
		{line: `--comment "open`, want: []string{"--comment", "open"}},
		// The line ends at NUL, even inside quotes.
		{line: "--comment \"ab\x00cd\" -j ACCEPT\n", want: []string{"--comment", "ab"}},
		// Bytes are bytes: invalid UTF-8 passes through unchanged.
		{line: "--comment \"\xff\xfeab\"", want: []string{"--comment", "\xff\xfeab"}},
		{line: "--comment " + strings.Repeat("x", MaxArgLen), want: []string{"--comment", strings.Repeat("x", MaxArgLen)}},
		{line: "--comment " + strings.Repeat("x", MaxArgLen+1), wantErr: true},
		{line: strings.Repeat("x ", MaxArgs), want: slices.Repeat([]string{"x"}, MaxArgs)},
		{line: strings.Repeat("x ", MaxArgs+1), wantErr: true},
	}
	for _, tt := range tests {
		got, err := SplitArgs(tt.line)
		if (err != nil) != tt.wantErr {
			t.Errorf("SplitArgs(%q) error = %v, wantErr %v", tt.line, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && !slices.Equal(got, tt.want) {
			t.Errorf("SplitArgs(%q) = %q, want %q", tt.line, got, tt.want)
		}
	}
}

// TestQuoteArgRoundTrip checks that what iptables-save prints for a string
// splits back into the same bytes, for every byte value but NUL (a C
// string ends there) and newline (iptables-save would break the line).
func TestQuoteArgRoundTrip(t *testing.T) {
	var all []byte
	for c := 1; c < 256; c++ {
		if c != '\n' {
			all = append(all, byte(c))
		}
	}
	for _, s := range []string{string(all), "a b", `x"y\z'w`, "\xc3\x28", "ns/svc:p -> 10.0.0.1:80", ""} {
		got, err := SplitArgs("--comment " + QuoteArg(s))
		if err != nil || len(got) != 2 || got[1] != s {
			t.Errorf("SplitArgs(QuoteArg(%q)) = %q, %v", s, got, err)
		}
	}
}

func TestQuoteArg(t *testing.T) {
	tests := map[string]string{
		"x":                     "x",
		"KUBE-SEP_1":            "KUBE-SEP_1",
		"ns1/svc1:p80":          `"ns1/svc1:p80"`,
		"a b":                   `"a b"`,
		`it's "q"`:              `"it\'s \"q\""`,
		"":                      `""`,
		`back\slash`:            `"back\\slash"`,
		"kubernetes forwarding": `"kubernetes forwarding"`,
		"\xff":                  "\"\xff\"",
		"a\tb":                  "\"a\tb\"",
	}
	for in, want := range tests {
		if got := QuoteArg(in); got != want {
			t.Errorf("QuoteArg(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestParseRuleSaveForm checks the display form against what iptables-save
// 1.8.9 printed for the same input (captured in a network namespace).
func TestParseRuleSaveForm(t *testing.T) {
	tests := []struct {
		family v1.IPFamily
		in     string
		want   string
	}{
		{"", `-m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O`,
			`-p tcp -m comment --comment "ns1/svc1:p80" -m tcp --dport 3001 -j KUBE-EXT-XPGD46QRK7WJZT7O`},
		{"", `-m comment --comment "ns1/svc1:p80 cluster IP" -m tcp -p tcp -d 172.30.0.41 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ`,
			`! -s 10.0.0.0/8 -d 172.30.0.41/32 -p tcp -m comment --comment "ns1/svc1:p80 cluster IP" -m tcp --dport 80 -j KUBE-MARK-MASQ`},
		{"", `-j MARK --or-mark 0x00004000`, `-j MARK --set-xmark 0x4000/0x4000`},
		{"", `-j MARK --xor-mark 0x4000`, `-j MARK --set-xmark 0x4000/0x0`},
		{"", `-j MARK --set-mark 0x4000`, `-j MARK --set-xmark 0x4000/0xffffffff`},
		{"", `-j MARK --and-mark 0x4000`, `-j MARK --set-xmark 0x0/0xffffbfff`},
		{"", `-m mark ! --mark 0x4000/0x4000 -j RETURN`, `-m mark ! --mark 0x4000/0x4000 -j RETURN`},
		{"", `-m mark --mark 0x4000 -j RETURN`, `-m mark --mark 0x4000 -j RETURN`},
		{"", `-m statistic --mode random --probability 0.3333333333 -j X`, `-m statistic --mode random --probability 0.33333333349 -j X`},
		{"", `-m statistic --mode random --probability 0.0010000000 -j X`, `-m statistic --mode random --probability 0.00100000016 -j X`},
		{"", `-j MASQUERADE --random-fully`, `-j MASQUERADE --random-fully`},
		{"", `-m tcp -p tcp -d 172.30.0.46 --dport 80 -j REJECT`, `-d 172.30.0.46/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable`},
		{"", `-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`,
			`! -s 127.0.0.0/8 -d 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP`},
		{"", `-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`, `-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`},
		{"", `-m addrtype ! --dst-type LOCAL -m tcp -p tcp --dport 3001 -j DROP`, `-p tcp -m addrtype ! --dst-type LOCAL -m tcp --dport 3001 -j DROP`},
		{"", `-i eth0+ ! -o veth1 -m sctp -p sctp --dport 80 --sport 1000:2000 -j ACCEPT`, `-i eth0+ ! -o veth1 -p sctp -m sctp --sport 1000:2000 --dport 80 -j ACCEPT`},
		{"", `-p tcp --dport 99`, `-p tcp -m tcp --dport 99`},
		{"", `-m recent --name KUBE-SEP-X --set -m tcp -p tcp -j DNAT --to-destination 10.180.0.2:80`,
			`-p tcp -m recent --set --name KUBE-SEP-X --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.180.0.2:80`},
		{"", `-m recent --name KUBE-SEP-X --rcheck --seconds 10800 --reap -j KUBE-SEP-X`,
			`-m recent --rcheck --seconds 10800 --reap --name KUBE-SEP-X --mask 255.255.255.255 --rsource -j KUBE-SEP-X`},
		{v1.IPv6Protocol, `-m recent --name S2 --set -p tcp -j DNAT --to-destination [fd00::2]:80`,
			`-p tcp -m recent --set --name S2 --mask ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff --rsource -j DNAT --to-destination [fd00::2]:80`},
		{v1.IPv6Protocol, `-d fd00::3 -j REJECT`, `-d fd00::3/128 -j REJECT --reject-with icmp6-port-unreachable`},
		{"", `-s 10.1.2.3/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`,
			`-s 10.0.0.0/8 -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"`},
	}
	for _, tt := range tests {
		args, err := SplitArgs(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ParseRule(args, tt.family)
		if err != nil {
			t.Errorf("ParseRule(%s): %v", tt.in, err)
			continue
		}
		if got := r.SaveLine(); got != tt.want {
			t.Errorf("ParseRule(%s).SaveLine()\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

func TestParseRuleStructure(t *testing.T) {
	args, _ := SplitArgs(`-m comment --comment "x y" -m tcp -p tcp ! -d 172.30.0.41 --dport 80 -i veth+ -m statistic --mode random --probability 0.25 -j DNAT --to-destination 10.1.0.1:8080`)
	r, err := ParseRule(args, v1.IPv4Protocol)
	if err != nil {
		t.Fatal(err)
	}
	if r.Comment() != "x y" || r.Destination == nil || !r.Destination.Negated ||
		r.Destination.Prefix != netip.MustParsePrefix("172.30.0.41/32") || r.Protocol.Name != "tcp" {
		t.Errorf("basic fields wrong: %+v", r)
	}
	if !r.InIface.Matches("veth123") || r.InIface.Matches("eth0") {
		t.Errorf("interface wildcard wrong: %+v", r.InIface)
	}
	pm, ok := r.Matches[1].(*PortMatch)
	if !ok || pm.DPort == nil || !pm.DPort.Contains(80) || pm.DPort.Contains(81) {
		t.Errorf("port match wrong: %#v", r.Matches[1])
	}
	sm, ok := r.Matches[2].(*StatisticMatch)
	if !ok || sm.Stored() != 1<<29 {
		t.Errorf("statistic match wrong: %#v", r.Matches[2])
	}
	d, ok := r.Target.(*DNATTarget)
	if !ok || d.Destination() != "10.1.0.1:8080" {
		t.Errorf("target wrong: %#v", r.Target)
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		family v1.IPFamily
		in     string
		want   string
	}{
		{"", `--bogus 1 -j ACCEPT`, `unknown option "--bogus"`},
		{"", `-m nosuchmatch -j ACCEPT`, `couldn't load match`},
		{v1.IPv4Protocol, `-d fd00::1 -j ACCEPT`, `not found`},
		{v1.IPv6Protocol, `-d 10.0.0.1 -j ACCEPT`, `not found`},
		{v1.IPv6Protocol, `-p tcp -j DNAT --to-destination 10.0.0.1:80`, `not found`},
		{"", `-j DNAT --to-destination 1.2.3.4:80`, `port specification`},
		{"", `-j DNAT`, `--to-destination`},
		{"", `-m tcp --dport 80 -j ACCEPT`, `needs "-p tcp"`},
		{"", `-p udp -m tcp --dport 80 -j ACCEPT`, `needs "-p tcp"`},
		{"", `-m statistic --mode random -j X`, `--probability`},
		{"", `-m statistic --mode nth --every 2 -j X`, `not modelled`},
		{"", `-m statistic --mode random --probability 1.5 -j X`, `bad probability`},
		{"", `-m mark --mark zz -j X`, `bad mark`},
		{"", `-m conntrack --ctstate BOGUS -j X`, `bad ctstate`},
		{"", `-m addrtype --dst-type NOPE -j X`, `unknown address type`},
		{"", `-m recent --name X -j X`, `needs one of`},
		{"", `-m recent --rcheck --reap -j X`, `--reap needs --seconds`},
		{"", `-j MARK`, `needs an option`},
		{"", `-j MARK --or-mark 0x1/0x1`, `takes no mask`},
		{"", `-j REJECT --reject-with icmp6-no-route`, `unknown reject type`},
		{"", `-s 10.0.0.1 -s 10.0.0.2 -j X`, `multiple -s`},
		{"", `-p bogus -j X`, `unknown protocol`},
		{"", `-j X -j Y`, `multiple -j`},
		{"", `-i averyveryverylongname0 -j X`, `invalid interface`},
		{"", `-d`, `requires an argument`},
		{"", `ACCEPT`, `unknown argument`},
		{"", `! -m tcp`, `unexpected "!"`},
	}
	for _, tt := range tests {
		args, err := SplitArgs(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		_, err = ParseRule(args, tt.family)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseRule(%s) error = %v, want it to contain %q", tt.in, err, tt.want)
		}
	}
}
