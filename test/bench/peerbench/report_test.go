package peerbench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSummarizeTakesMediansPerPeer(t *testing.T) {
	peers := []Peer{{Name: "upstream"}, {Name: "kproxy"}}
	ms := time.Millisecond
	samples := []Sample{
		{Peer: "upstream", Full: 3 * time.Second, Endpoint: []time.Duration{40 * ms, 60 * ms}, RSSTree: 100 << 20},
		{Peer: "kproxy", Full: time.Second, Endpoint: []time.Duration{5 * ms}, RSSTree: 50 << 20, Children: true},
		{Peer: "upstream", Full: 5 * time.Second, Endpoint: []time.Duration{50 * ms}, RSSTree: 120 << 20},
		{Peer: "upstream", Full: 4 * time.Second, Endpoint: []time.Duration{500 * ms}},
		{Peer: "kproxy", Err: errors.New("exited")},
	}
	sums := Summarize(samples, peers)
	up, kp := sums[0], sums[1]
	if up.Rounds != 3 || up.Failed != 0 || kp.Rounds != 1 || kp.Failed != 1 {
		t.Fatalf("rounds: upstream %d/%d, kproxy %d/%d", up.Rounds, up.Failed, kp.Rounds, kp.Failed)
	}
	if up.Full != 4*time.Second || up.Endpoint != 60*ms || up.EndpointMax != 500*ms || up.RSSTree != 120<<20 {
		t.Errorf("upstream summary %+v", up)
	}
	if !kp.Children || kp.Full != time.Second {
		t.Errorf("kproxy summary %+v", kp)
	}
	var b strings.Builder
	if err := Write(&b, "title", sums); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"kproxy ÷ upstream", "0.25 ×", "1 (1)", "–"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestRatioPairsMatchModes(t *testing.T) {
	sums := []Summary{{Peer: "upstream"}, {Peer: "kproxy"}, {Peer: "upstream-iptables"}, {Peer: "kproxy-iptables"}}
	got := ratioPairs(sums)
	if len(got) != 2 || got[0] != [2]int{1, 0} || got[1] != [2]int{3, 2} {
		t.Errorf("ratioPairs = %v", got)
	}
	if got := ratioPairs(sums[:1]); len(got) != 0 {
		t.Errorf("ratioPairs(upstream only) = %v", got)
	}
}

func TestMetricsParsing(t *testing.T) {
	m := metrics(`# HELP x
kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv4"} 1.5
kubeproxy_sync_full_proxy_rules_duration_seconds_count{ip_family="IPv4"} 3
kubeproxy_sync_full_proxy_rules_duration_seconds_sum{ip_family="IPv6"} 100
kubeproxy_sync_proxy_rules_last_timestamp_seconds{ip_family="IPv4"} 1.7e+09
`)
	h := m.histogram(metricFull)
	if mean, n := h.meanSince(histogram{sum: 0.5, count: 1}); n != 2 || mean != 500*time.Millisecond {
		t.Errorf("meanSince = %v, %d", mean, n)
	}
	if last, ok := m.lastSync(); !ok || last.Unix() != 1_700_000_000 {
		t.Errorf("lastSync = %v, %v", last, ok)
	}
	if _, ok := m.value(metricPartial + "_sum"); ok {
		t.Error("absent metric reported present")
	}
}

func TestAddresses(t *testing.T) {
	if got := endpointIP(0, 0, 10); got != "10.128.0.1" {
		t.Errorf("endpointIP(0,0) = %s", got)
	}
	if got := endpointIP(29999, 9, 10); got != "10.132.147.224" {
		t.Errorf("endpointIP(29999,9) = %s", got)
	}
	if got := changedIP(255); got != "10.200.1.0" {
		t.Errorf("changedIP(255) = %s", got)
	}
}
