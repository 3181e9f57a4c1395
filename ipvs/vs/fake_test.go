package vs_test

import (
	"errors"
	"math"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/ipvs/vs"
)

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

func vsKey(proto vs.Protocol, a string, port uint16) vs.ServiceKey {
	return vs.ServiceKey{Addr: addr(a), Port: port, Protocol: proto}
}

func dest(a string, port uint16, weight int) vs.Destination {
	return vs.Destination{DestKey: vs.DestKey{Addr: addr(a), Port: port}, Weight: weight}
}

func TestFakeRejectsWhatTheKernelRejects(t *testing.T) {
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	missing := vsKey(vs.TCP, "10.96.0.9", 80)
	rr := vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}
	tests := []struct {
		name string
		op   func(f *vs.Fake) error
		want error
	}{
		{"duplicate virtual server", func(f *vs.Fake) error { return f.NewVirtualServer(rr) }, syscall.EEXIST},
		{"unknown scheduler", func(f *vs.Fake) error {
			return f.NewVirtualServer(vs.VirtualServer{ServiceKey: missing, Scheduler: "nope"})
		}, syscall.ENOENT},
		{"persistent with timeout 0", func(f *vs.Fake) error {
			return f.NewVirtualServer(vs.VirtualServer{ServiceKey: missing, Scheduler: "rr", Flags: vs.FlagPersistent})
		}, syscall.EINVAL},
		{"unknown protocol", func(f *vs.Fake) error {
			return f.NewVirtualServer(vs.VirtualServer{ServiceKey: vsKey(99, "10.96.0.9", 80), Scheduler: "rr"})
		}, syscall.EINVAL},
		{"get missing virtual server", func(f *vs.Fake) error { _, err := f.GetVirtualServer(missing); return err }, syscall.ESRCH},
		{"update missing virtual server", func(f *vs.Fake) error {
			return f.UpdateVirtualServer(vs.VirtualServer{ServiceKey: missing, Scheduler: "rr"})
		}, syscall.ESRCH},
		{"delete missing virtual server", func(f *vs.Fake) error { return f.DelVirtualServer(missing) }, syscall.ESRCH},
		{"destination on a missing virtual server", func(f *vs.Fake) error {
			return f.NewDestination(missing, dest("10.244.1.1", 80, 1))
		}, syscall.ESRCH},
		{"duplicate destination", func(f *vs.Fake) error { return f.NewDestination(k, dest("10.244.1.1", 8080, 1)) }, syscall.EEXIST},
		{"destination of the other family", func(f *vs.Fake) error { return f.NewDestination(k, dest("fd00::1", 80, 1)) }, syscall.EINVAL},
		{"negative weight", func(f *vs.Fake) error { return f.NewDestination(k, dest("10.244.1.2", 80, -1)) }, syscall.EINVAL},
		{"update missing destination", func(f *vs.Fake) error { return f.UpdateDestination(k, dest("10.244.1.2", 80, 1)) }, syscall.ENOENT},
		{"delete missing destination", func(f *vs.Fake) error { return f.DelDestination(k, dest("10.244.1.2", 80, 1).DestKey) }, syscall.ENOENT},
		{"scheduler limited by options", func(f *vs.Fake) error {
			return f.UpdateVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "mh"})
		}, syscall.ENOENT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := vs.NewFake(vs.FakeOptions{Schedulers: []string{"rr", "wrr"}})
			if err := f.NewVirtualServer(rr); err != nil {
				t.Fatal(err)
			}
			if err := f.NewDestination(k, dest("10.244.1.1", 8080, 1)); err != nil {
				t.Fatal(err)
			}
			if err := tt.op(f); !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestFakeKeepsConnectionsAcrossUpdates(t *testing.T) {
	f := vs.NewFake(vs.FakeOptions{})
	k := vsKey(vs.TCP, "10.96.0.1", 80)
	d := dest("10.244.1.1", 8080, 1)
	if err := errors.Join(f.NewVirtualServer(vs.VirtualServer{ServiceKey: k, Scheduler: "rr"}),
		f.NewDestination(k, d), f.SetConnections(k, d.DestKey, 2, 3)); err != nil {
		t.Fatal(err)
	}
	d.Weight = 0
	if err := f.UpdateDestination(k, d); err != nil {
		t.Fatal(err)
	}
	ds, err := f.ListDestinations(k)
	if err != nil || len(ds) != 1 || ds[0].Weight != 0 || ds[0].ActiveConnections != 2 || ds[0].InactiveConnections != 3 {
		t.Errorf("destinations = %+v, %v; want weight 0 with 2/3 connections", ds, err)
	}
}

func TestFakeTimeoutsBehaveAsTheKernel(t *testing.T) {
	const hz = 250
	maxSecs := time.Duration(math.MaxInt32/hz) * time.Second
	def := vs.DefaultKernelTimeouts()
	tests := []struct {
		name    string
		set     vs.Timeouts
		want    vs.Timeouts
		wantErr error
	}{
		{"zero keeps every value", vs.Timeouts{}, def, nil},
		{"each field set", vs.Timeouts{TCP: time.Hour, TCPFin: time.Minute, UDP: 5 * time.Second},
			vs.Timeouts{TCP: time.Hour, TCPFin: time.Minute, UDP: 5 * time.Second}, nil},
		{"whole seconds kept", vs.Timeouts{TCP: 1500 * time.Millisecond}, vs.Timeouts{TCP: time.Second, TCPFin: def.TCPFin, UDP: def.UDP}, nil},
		{"under a second is zero", vs.Timeouts{UDP: 500 * time.Millisecond}, def, nil},
		{"INT_MAX/HZ seconds accepted", vs.Timeouts{TCP: maxSecs}, vs.Timeouts{TCP: maxSecs, TCPFin: def.TCPFin, UDP: def.UDP}, nil},
		{"over INT_MAX/HZ seconds rejected", vs.Timeouts{TCP: maxSecs + time.Second}, def, syscall.EINVAL},
		{"negative rejected, nothing applied", vs.Timeouts{TCP: time.Hour, UDP: -time.Second}, def, syscall.EINVAL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := vs.NewFake(vs.FakeOptions{HZ: hz})
			if err := f.SetTimeouts(tt.set); !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("SetTimeouts(%s) = %v, want %v", tt.set, err, tt.wantErr)
			}
			if got, _ := f.GetTimeouts(); got != tt.want {
				t.Errorf("timeouts = %s, want %s", got, tt.want)
			}
		})
	}
}
