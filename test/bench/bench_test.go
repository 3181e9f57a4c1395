package bench

import (
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []int
		want int
	}{
		{"empty", nil, 0},
		{"one", []int{7}, 7},
		{"odd unsorted", []int{9, 1, 5}, 5},
		{"even takes the mean of the middle two", []int{4, 1, 10, 2}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Median(tc.in, func(x int) int { return x }); got != tc.want {
				t.Errorf("Median(%v) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseChildLogTakesPeakAndSkipsNoise(t *testing.T) {
	log := "0.51 20480 ip netns exec x iptables-save -t nat\n" +
		"Command exited with non-zero status 1\n" +
		"1.02 53000 ip netns exec x iptables-restore --noflush\n"
	got := parseChildLog([]byte(log))
	if got.Commands != 2 || got.PeakRSS != 53000*1024 {
		t.Errorf("parseChildLog = %+v, want 2 commands, peak 53000 kB", got)
	}
}

func TestParseStatus(t *testing.T) {
	got := parseStatus([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\nThreads:\t4\n"))
	if got.RSS != 1024*1024 || got.PeakRSS != 2048*1024 {
		t.Errorf("parseStatus = %+v", got)
	}
}

func TestWorldSnapshotHasEveryServiceAndEndpoint(t *testing.T) {
	w, err := NewWorld(WorldOptions{Services: 300, Endpoints: 10})
	if err != nil {
		t.Fatal(err)
	}
	snap := w.NewTracker().Snapshot()
	if snap.Len() != 300 || snap.Family != v1.IPv4Protocol {
		t.Fatalf("snapshot has %d services of %s, want 300 IPv4", snap.Len(), snap.Family)
	}
	seen := map[string]bool{}
	for name := range snap.All() {
		eps := snap.Endpoints(name)
		if len(eps.Cluster) != 10 {
			t.Fatalf("%s has %d cluster endpoints, want 10", name, len(eps.Cluster))
		}
		for _, e := range eps.All {
			if seen[e.IP.String()] {
				t.Fatalf("endpoint address %s used twice", e.IP)
			}
			seen[e.IP.String()] = true
		}
	}
}

func TestChangeEndpointAndDeleteProducePartialChanges(t *testing.T) {
	w, err := NewWorld(WorldOptions{Services: 5, Endpoints: 3})
	if err != nil {
		t.Fatal(err)
	}
	tr := w.NewTracker()
	tr.Snapshot()
	tr.OnEndpointSliceUpdate(w.Slices[1], w.ChangeEndpoint(1))
	if snap := tr.Snapshot(); len(snap.Changed) != 1 {
		t.Errorf("endpoint change: %d service ports changed, want 1", len(snap.Changed))
	}
	tr.OnEndpointSliceDelete(w.Slices[2])
	snap := tr.Snapshot()
	if len(snap.Changed) != 1 {
		t.Errorf("slice delete: %d service ports changed, want 1", len(snap.Changed))
	}
	for n := range snap.Changed {
		if eps := snap.Endpoints(n); eps != nil && eps.HasAny {
			t.Errorf("%s still has endpoints after its slice was deleted", n)
		}
	}
}

func TestSummarizeRatiosAgainstPlain(t *testing.T) {
	samples := []Sample{
		{Scenario: ScenarioFull, Sync: 2 * time.Second},
		{Scenario: ScenarioFull, Sync: 4 * time.Second},
		{Scenario: ScenarioFull, Sync: 3 * time.Second},
		{Scenario: ScenarioPlain, Sync: time.Second},
		{Scenario: ScenarioRestart, Err: errDeadline{}},
	}
	sums := Summarize(samples)
	if len(sums) != 3 || sums[0].Scenario != ScenarioFull || sums[0].Sync != 3*time.Second || sums[0].VsPlain != 3 {
		t.Fatalf("Summarize = %+v", sums)
	}
	if sums[1].Scenario != ScenarioRestart || sums[1].N != 0 || sums[1].Failed != 1 || sums[1].VsPlain != 0 {
		t.Errorf("failed scenario summary = %+v", sums[1])
	}
}

type errDeadline struct{}

func (errDeadline) Error() string { return "deadline" }

func TestPlainInputMergesBlocksAndDropsListing(t *testing.T) {
	in := "*filter\n:A - [0:0]\nCOMMIT\n*nat\n-S\n:B - [0:0]\n-A B -j RETURN\nCOMMIT\n*nat\n-I OUTPUT 1 -j B\nCOMMIT\n"
	want := "*filter\n:A - [0:0]\nCOMMIT\n*nat\n:B - [0:0]\n-A B -j RETURN\n-I OUTPUT 1 -j B\nCOMMIT\n"
	if got := string(PlainInput([]byte(in))); got != want {
		t.Errorf("PlainInput =\n%s\nwant\n%s", got, want)
	}
}
