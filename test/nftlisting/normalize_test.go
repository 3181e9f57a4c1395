package nftlisting

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readSample(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustNormalize(t *testing.T, listing string) string {
	t.Helper()
	got, err := Normalize(listing)
	if err != nil {
		t.Fatalf("Normalize: %v\n%s", err, listing)
	}
	return got
}

// The captured listing (nft 1.0.6, kernel order) in its canonical form.
const wantCanonical = `table ip kube-proxy {
	comment "rules for kube-proxy"
	chain endpoint-A {
		ip saddr 10.180.0.4 jump mark-for-masquerade
		meta l4proto tcp dnat to 10.180.0.4:80
	}
	chain endpoint-B {
		meta l4proto tcp dnat to 10.180.0.5:80
	}
	chain fw {
		ip saddr != { 1.2.3.4, 203.0.113.0/25, 5.6.7.8 } drop
		counter packets 0 bytes 0
	}
	chain mark-for-masquerade {
		meta mark set meta mark | 0x00004000
	}
	chain nat-prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		jump services
	}
	chain reject-chain {
		reject
	}
	chain services {
		ip daddr . meta l4proto . th dport vmap @service-ips
	}
	chain svc {
		ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 jump mark-for-masquerade
		numgen random mod 2 vmap { 0 : goto endpoint-A, 1 : goto endpoint-B }
	}
	map no-endpoint-services {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "vmap to drop or reject packets to services with no endpoints"
		elements = {
			172.30.0.46 . tcp . 80 comment "ns6/svc6:p80" : goto reject-chain
		}
	}
	map service-ips {
		type ipv4_addr . inet_proto . inet_service : verdict
		comment "ClusterIP, ExternalIP and LoadBalancer IP traffic"
		elements = {
			172.30.0.41 . tcp . 80 : goto svc,
			172.30.0.42 . udp . 53 : goto svc,
			172.30.0.43 . sctp . 80 : goto svc,
			172.30.0.44 . tcp . 80 : goto svc,
			192.168.99.33 . tcp . 80 : goto svc
		}
	}
	set affinity-X {
		type ipv4_addr
		flags dynamic,timeout
		timeout 3h
		elements = {
			10.0.0.9
		}
	}
	set cluster-ips {
		type ipv4_addr
		comment "Active ClusterIPs"
		elements = {
			10.96.0.1,
			172.30.0.41,
			172.30.0.44
		}
	}
}
`

func TestNormalizeCapturedListing(t *testing.T) {
	if got := mustNormalize(t, readSample(t, "listing.txt")); got != wantCanonical {
		t.Errorf("Normalize(listing.txt) =\n%s\nwant\n%s", got, wantCanonical)
	}
}

// The same rules listed with handles (nft -a), and written in another
// order with other counters and expiry times, normalize to the same text.
func TestNormalizeIgnoresOrderAndRunValues(t *testing.T) {
	want := mustNormalize(t, readSample(t, "listing.txt"))
	for _, name := range []string{"listing-handles.txt", "listing-reordered.txt"} {
		if got := mustNormalize(t, readSample(t, name)); got != want {
			t.Errorf("Normalize(%s) differs from Normalize(listing.txt):\n%s", name, got)
		}
	}
}

// Differences in what the rules do survive normalization.
func TestNormalizeKeepsMeaningfulDifferences(t *testing.T) {
	base := readSample(t, "listing.txt")
	want := mustNormalize(t, base)
	for _, tc := range []struct{ name, from, to string }{
		{"rule order in a chain", "\t\tip saddr 10.180.0.4 jump mark-for-masquerade\n\t\tmeta l4proto tcp dnat to 10.180.0.4:80",
			"\t\tmeta l4proto tcp dnat to 10.180.0.4:80\n\t\tip saddr 10.180.0.4 jump mark-for-masquerade"},
		{"map element verdict", "172.30.0.41 . tcp . 80 : goto svc", "172.30.0.41 . tcp . 80 : goto fw"},
		{"set element", "10.96.0.1, 172.30.0.41", "10.96.0.2, 172.30.0.41"},
		{"element comment", `comment "ns6/svc6:p80"`, `comment "ns6/svc6:p81"`},
		{"anonymous set element", "5.6.7.8", "5.6.7.9"},
		{"vmap pairing", "0 : goto endpoint-A, 1 : goto endpoint-B", "0 : goto endpoint-B, 1 : goto endpoint-A"},
		{"chain name", "chain endpoint-B {", "chain endpoint-C {"},
		{"base chain priority", "priority dstnat;", "priority dstnat - 10;"},
		{"table comment", `comment "rules for kube-proxy"`, `comment "rules"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := strings.Replace(base, tc.from, tc.to, 1)
			if changed == base {
				t.Fatalf("sample has no %q", tc.from)
			}
			if got := mustNormalize(t, changed); got == want {
				t.Errorf("changing %q to %q does not show after normalization", tc.from, tc.to)
			}
		})
	}
}

func TestNormalizeSeveralTables(t *testing.T) {
	v4 := "table ip kube-proxy {\n\tset b {\n\t\ttype ipv4_addr\n\t}\n\tchain a {\n\t}\n}\n"
	v6 := "table ip6 kube-proxy {\n\tchain a {\n\t\tip6 daddr fd00::1 drop\n\t}\n}\n"
	want := "table ip kube-proxy {\n\tchain a {\n\t}\n\tset b {\n\t\ttype ipv4_addr\n\t}\n}\n" + v6
	if got := mustNormalize(t, v4+v6); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestNormalizeRejectsWhatItCannotParse(t *testing.T) {
	for name, listing := range map[string]string{
		"text outside a table":      "chain a {\n}\n",
		"table never closed":        "table ip t {\n\tchain a {\n\t}\n",
		"chain never closed":        "table ip t {\n\tchain a {\n\t\tdrop\n",
		"elements never closed":     "table ip t {\n\tset s {\n\t\telements = { 1.2.3.4,\n\t}\n}\n",
		"stray brace in a rule":     "table ip t {\n\tchain a {\n\t\tip saddr 1.2.3.4 } drop\n\t}\n}\n",
		"block header without name": "table ip t {\n\tchain {\n\t}\n}\n",
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := Normalize(listing); err == nil {
				t.Errorf("Normalize succeeded:\n%s", got)
			}
		})
	}
}

func TestNormalizeEmptyListing(t *testing.T) {
	if got := mustNormalize(t, ""); got != "" {
		t.Errorf("Normalize(\"\") = %q", got)
	}
}

// Two runs of upstream kube-proxy v1.37.2 (nftables mode) on the same
// objects, captured by test/e2e's TestClusterNFTUpstreamScenario with
// KPROXY_E2E_NFT_DUMP: the kernel lists their chains and elements in
// different orders, and normalization makes them equal.
func TestNormalizeUpstreamRuns(t *testing.T) {
	run1, run2 := readSample(t, "upstream-run1.nft"), readSample(t, "upstream-run2.nft")
	if run1 == run2 {
		t.Fatal("samples are identical; the test needs two differently ordered listings")
	}
	got1, got2 := mustNormalize(t, run1), mustNormalize(t, run2)
	if got1 != got2 {
		t.Errorf("two upstream runs differ after normalization:\n%s\n---\n%s", got1, got2)
	}
	for _, want := range []string{
		"table ip kube-proxy {\n", "table ip6 kube-proxy {\n",
		"\t\telements = {\n\t\t\t10.96.0.1,\n\t\t\t10.96.0.10,\n",
		"\t\t\t10.244.1.11 . 10.244.1.11 . tcp . 8080,\n",
	} {
		if !strings.Contains(got1, want) {
			t.Errorf("normalized upstream listing lacks %q:\n%s", want, got1)
		}
	}
	if n, m := strings.Count(got1, "\tchain "), strings.Count(run1, "\tchain "); n != m {
		t.Errorf("normalized listing has %d chains, the raw one %d", n, m)
	}
}
