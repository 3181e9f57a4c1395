package addresses_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/kproxy/kproxy/ipvs/addresses"
)

// manager is what the differential script drives: a Manager that can also
// remove its device (cleanup), as Netlink and Fake can.
type manager interface {
	addresses.Manager
	RemoveDevice() error
}

// step is one operation of the script and its outcome, as a string.
type step struct {
	name string
	do   func(m manager) string
}

func outcome(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

func listed(addrs []netip.Addr, err error) string {
	if err != nil {
		return "error"
	}
	return fmt.Sprint(addrs)
}

func bind(a string) step {
	return step{"bind " + a, func(m manager) string { return outcome(m.Bind(netip.MustParseAddr(a))) }}
}

func unbind(a string) step {
	return step{"unbind " + a, func(m manager) string { return outcome(m.Unbind(netip.MustParseAddr(a))) }}
}

var (
	ensure = step{"ensure device", func(m manager) string { return outcome(m.EnsureDevice()) }}
	bound  = step{"bound", func(m manager) string { return listed(m.Bound()) }}
	local  = step{"local", func(m manager) string { return listed(m.Local()) }}
	remove = step{"remove device", func(m manager) string { return outcome(m.RemoveDevice()) }}
)

// script is the life of kube-ipvs0: binding before the device exists
// fails, binding twice and unbinding a missing address do not, the
// device's addresses are not local ones, removing it drops its addresses.
func script() []step {
	return []step{
		bound, bind("10.96.0.1"), unbind("10.96.0.1"), ensure, ensure,
		bind("10.96.0.1"), bind("10.96.0.1"), bind("10.96.0.2"), bound, local,
		unbind("10.96.0.9"), unbind("10.96.0.2"), bound,
		remove, bound, bind("10.96.0.1"), remove, local,
	}
}

// run plays the script on m and returns each step's outcome.
func run(m manager) []string {
	var out []string
	for _, s := range script() {
		out = append(out, s.name+": "+s.do(m))
	}
	return out
}

func TestFakeFollowsTheScript(t *testing.T) {
	f := addresses.NewFake(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.10"))
	want := []string{
		"bound: []", "bind 10.96.0.1: error", "unbind 10.96.0.1: ok", "ensure device: ok", "ensure device: ok",
		"bind 10.96.0.1: ok", "bind 10.96.0.1: ok", "bind 10.96.0.2: ok", "bound: [10.96.0.1 10.96.0.2]",
		"local: [127.0.0.1 192.168.1.10]",
		"unbind 10.96.0.9: ok", "unbind 10.96.0.2: ok", "bound: [10.96.0.1]",
		"remove device: ok", "bound: []", "bind 10.96.0.1: error", "remove device: ok", "local: [127.0.0.1 192.168.1.10]",
	}
	if got := run(f); !slices.Equal(got, want) {
		t.Errorf("fake:\n got %q\nwant %q", got, want)
	}
	if n := f.Calls()["Bind"]; n != 5 {
		t.Errorf("Calls()[Bind] = %d, want 5", n)
	}
}
