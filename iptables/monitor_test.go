package iptables_test

import (
	"context"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/iptables"
	"github.com/kproxy/kproxy/iptables/ruleset"
)

func TestMonitorNoticesFlushedCanary(t *testing.T) {
	fake := ruleset.NewFake(ruleset.FakeOptions{Family: v1.IPv4Protocol})
	ctx := context.Background()
	if err := fake.Restore(ctx, []byte("*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	if ok, err := iptables.CanaryPresent(ctx, fake); err != nil || !ok {
		t.Fatalf("canary present = %v, %v; want true", ok, err)
	}
	missing := make(chan struct{}, 1)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go iptables.Monitor(mctx, iptables.MonitorOptions{Restorer: fake, Interval: 5 * time.Millisecond,
		OnMissing: func() {
			select {
			case missing <- struct{}{}:
			default:
			}
		}})
	select {
	case <-missing:
		t.Fatal("OnMissing called while the canary exists")
	case <-time.After(50 * time.Millisecond):
	}
	if err := fake.Restore(ctx, []byte("*mangle\n-X KUBE-PROXY-CANARY\nCOMMIT\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-missing:
	case <-time.After(5 * time.Second):
		t.Fatal("OnMissing not called after the canary was deleted")
	}
}
