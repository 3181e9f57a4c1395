package vm

import (
	"slices"
	"testing"
)

func TestParseBenchScales(t *testing.T) {
	tests := []struct {
		in      string
		want    []BenchScale
		wantErr bool
	}{
		{"1000:5,10000:2", []BenchScale{{1000, 5}, {10000, 2}}, false},
		{" 20 ", []BenchScale{{20, 1}}, false},
		{"", nil, true},
		{"x:1", nil, true},
		{"100:0", nil, true},
		{"-5", nil, true},
	}
	for _, tt := range tests {
		got, err := ParseBenchScales(tt.in)
		if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
			t.Errorf("ParseBenchScales(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestBenchReportKeepsTablesOnly(t *testing.T) {
	console := "kpx-init: booting\n[    1.2] kernel noise\nround 1 ipvs full sync 1s\n" +
		"kproxy ipvs sync: 20 services\n  full  1  0.5s\n[    9.9] more noise\nround 2 ipvs full sync 1s\n\nipvs partial syncs: ok\n"
	want := "kproxy ipvs sync: 20 services\n  full  1  0.5s\n\nipvs partial syncs: ok\n"
	if got := benchReport(console); got != want {
		t.Errorf("benchReport =\n%q\nwant\n%q", got, want)
	}
}

func TestBenchArgsTurnOffChildStatsAndPassModes(t *testing.T) {
	args := benchArgs(benchDefaults(BenchOptions{}), BenchScale{Services: 20, Rounds: 0})
	for _, pair := range [][2]string{{"-services", "20"}, {"-endpoints", "10"}, {"-rounds", "1"},
		{"-mode", "ipvs,iptables"}, {"-skip", "resync,restart,plain"}, {"-partials", "5"}} {
		i := slices.Index(args, pair[0])
		if i < 0 || i+1 >= len(args) || args[i+1] != pair[1] {
			t.Errorf("args %v lack %s %s", args, pair[0], pair[1])
		}
	}
	if !slices.Contains(args, "-no-child-stats") {
		t.Errorf("args %v lack -no-child-stats (the guest's time is busybox's)", args)
	}
}
