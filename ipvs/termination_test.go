package ipvs_test

import (
	"context"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/vs"
)

func TestGracefulTermination(t *testing.T) {
	type step struct {
		do   func(w *world)
		want []string // kernel state after do
		// wantQueued is the number of draining destinations after do.
		wantQueued int
		// setup steps check nothing.
		setup bool
	}
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	two := e(svc("a", "10.96.0.1"), ep("10.244.1.1"), ep("10.244.1.2"))
	one := e(svc("a", "10.96.0.1"), ep("10.244.1.1"))
	conns := func(n int) step {
		return step{setup: true, do: func(w *world) { must(w.t, w.h.SetConnections(k, dest("10.244.1.2", 8080, 0).DestKey, n, 0)) }}
	}
	process := func(w *world) {
		if _, err := w.p.ProcessTerminating(); err != nil {
			w.t.Fatal(err)
		}
	}
	draining := "TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1 -> 10.244.1.2:8080 w0"
	gone := "TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1"
	both := "TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1 -> 10.244.1.2:8080 w1"
	tests := []struct {
		name  string
		steps []step
	}{{
		name: "TCP with connections drains at weight 0 until they end",
		steps: []step{
			conns(2),
			{do: func(w *world) { w.sync(w.next(one)) }, want: []string{draining}, wantQueued: 1},
			{do: process, want: []string{draining}, wantQueued: 1},
			conns(0),
			{do: process, want: []string{gone}},
		},
	}, {
		name: "TCP with connections is deleted after the timeout",
		steps: []step{
			conns(1),
			{do: func(w *world) { w.sync(w.full(one)) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.clock.Advance(9 * time.Minute); process(w) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.clock.Advance(time.Minute); process(w) }, want: []string{gone}},
		},
	}, {
		name: "TCP without connections goes at once",
		steps: []step{
			{do: func(w *world) { w.sync(w.next(one)) }, want: []string{gone}},
		},
	}, {
		name: "a destination that comes back is restored to weight 1",
		steps: []step{
			conns(1),
			{do: func(w *world) { w.sync(w.next(one)) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.sync(w.next(two)) }, want: []string{both}},
			{do: func(w *world) { w.clock.Advance(time.Hour); process(w) }, want: []string{both}},
		},
	}, {
		name: "a restart requeues undesired weight-0 destinations",
		steps: []step{
			conns(1),
			{do: func(w *world) { w.sync(w.full(one)) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.restart(); w.sync(w.full(one)) }, want: []string{draining}, wantQueued: 1},
			conns(0),
			{do: process, want: []string{gone}},
		},
	}, {
		name: "a restart restores desired weight-0 destinations",
		steps: []step{
			conns(1),
			{do: func(w *world) { w.sync(w.full(one)) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.restart(); w.sync(w.full(two)) }, want: []string{both}},
		},
	}, {
		name: "deleting the service deletes draining destinations with it",
		steps: []step{
			conns(1),
			{do: func(w *world) { w.sync(w.full(one)) }, want: []string{draining}, wantQueued: 1},
			{do: func(w *world) { w.sync(w.next()) }, want: nil},
			{do: process, want: nil},
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			w.sync(w.next(two))
			for i, s := range tt.steps {
				s.do(w)
				if s.setup {
					continue
				}
				wantStrings(t, "kernel", w.state(), s.want)
				if n := queued(w.p); n != s.wantQueued {
					t.Errorf("step %d: %d destinations draining, want %d", i, n, s.wantQueued)
				}
			}
		})
	}
}

func queued(p *ipvs.Proxier) int {
	n := 0
	for _, ds := range p.Terminating() {
		n += len(ds)
	}
	return n
}

func TestUDPAndSCTPDestinationsGoAtOnce(t *testing.T) {
	for _, proto := range []v1.Protocol{v1.ProtocolUDP, v1.ProtocolSCTP} {
		t.Run(string(proto), func(t *testing.T) {
			w := newWorld(t)
			p, _ := vs.ProtocolFor(proto)
			w.sync(w.next(e(svcPort("a", "10.96.0.1", proto, 80, 53), ep("10.244.1.1"), ep("10.244.1.2"))))
			must(t, w.h.SetConnections(vsKey(p, "10.96.0.1", 80), dest("10.244.1.2", 53, 0).DestKey, 3, 3))
			w.sync(w.next(e(svcPort("a", "10.96.0.1", proto, 80, 53), ep("10.244.1.1"))))
			wantStrings(t, "kernel", w.state(), []string{p.String() + "/10.96.0.1:80 rr -> 10.244.1.1:53 w1"})
			if n := queued(w.p); n != 0 {
				t.Errorf("%d destinations draining, want 0", n)
			}
		})
	}
}

func TestRunTerminationProcessesOnEachTick(t *testing.T) {
	w := newWorld(t)
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	w.sync(w.next(e(svc("a", "10.96.0.1"), ep("10.244.1.1"), ep("10.244.1.2"))))
	must(t, w.h.SetConnections(k, dest("10.244.1.2", 8080, 0).DestKey, 1, 0))
	w.sync(w.next(e(svc("a", "10.96.0.1"), ep("10.244.1.1"))))
	must(t, w.h.SetConnections(k, dest("10.244.1.2", 8080, 0).DestKey, 0, 0))

	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan time.Time)
	reports := make(chan int, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.p.RunTermination(ctx, ticks, func(n int, err error) {
			if err != nil {
				t.Error(err)
			}
			reports <- n
		})
	}()
	ticks <- time.Now()
	if n := <-reports; n != 1 {
		t.Errorf("first pass deleted %d, want 1", n)
	}
	cancel()
	<-done
	if got := w.state(); !slices.Equal(got, []string{"TCP/10.96.0.1:80 rr -> 10.244.1.1:8080 w1"}) {
		t.Errorf("kernel = %q", got)
	}
}
