package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier"
)

// retiringBackend is a Backend that, like nftables mode, deletes flushed
// chains only later.
type retiringBackend struct {
	proxier.Backend
	retired int
	err     error
}

func (b *retiringBackend) RetireStaleChains(context.Context) error {
	b.retired++
	return b.err
}

func TestRetireStaleChainsAsksEveryFamily(t *testing.T) {
	v4, v6 := &retiringBackend{}, &retiringBackend{err: errors.New("nft: busy")}
	p := &proxy{families: []*familyProxy{{family: v1.IPv4Protocol, backend: v4}, {family: v1.IPv6Protocol, backend: v6},
		{family: v1.IPv4Protocol, backend: nil}}}
	errs := p.retireStaleChains(context.Background())
	if v4.retired != 1 || v6.retired != 1 {
		t.Fatalf("retired %d and %d times, want once each", v4.retired, v6.retired)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "IPv6: nft: busy") {
		t.Errorf("errs = %v, want IPv6's error named", errs)
	}
}
