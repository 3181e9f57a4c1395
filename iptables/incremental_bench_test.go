package iptables

import (
	"context"
	"testing"
)

// discardRestorer accepts every input and saves empty tables, so a
// benchmark measures only the Go side of a sync.
type discardRestorer struct{}

func (discardRestorer) Restore(context.Context, []byte) error { return nil }
func (discardRestorer) Save(context.Context, string) ([]byte, error) {
	return []byte("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), nil
}

// ListChain finds no chain, as in empty tables.
func (discardRestorer) ListChain(context.Context, string, string) ([]byte, error) { return nil, nil }

func BenchmarkSyncPartial10kServicesOneChanged(b *testing.B) {
	w := scaleWorld(b, 10000, 10)
	p, err := New(Options{Restorer: discardRestorer{}, Render: testOptions()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if _, err := p.Sync(ctx, w.Snapshot()); err != nil {
		b.Fatal(err)
	}
	snap := w.ApplyService(scaleService(1), scaleEndpoints(1, 9)...).Snapshot()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := p.Sync(ctx, snap); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSyncFull10kServicesIntoEmptyTables(b *testing.B) {
	snap := scaleWorld(b, 10000, 10).Snapshot()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		p, err := New(Options{Restorer: discardRestorer{}, Render: testOptions()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Sync(ctx, snap); err != nil {
			b.Fatal(err)
		}
	}
}
