package nftnl

import (
	"context"
	"testing"

	"sigs.k8s.io/knftables"
)

// fakeBase is baseTable in knftables' Fake.
func fakeBase(t *testing.T, f famText) *knftables.Fake {
	t.Helper()
	kf := knftables.IPv4Family
	if f.fam == IPv6 {
		kf = knftables.IPv6Family
	}
	fake := knftables.NewFake(kf, "kube-proxy")
	tx := fake.NewTransaction()
	tx.Add(&knftables.Table{})
	for _, s := range []string{"cluster-ips", "affinity-keep", "affinity-old", "affinity-re"} {
		tx.Add(&knftables.Set{Name: s, Type: f.addrType})
	}
	tx.Add(&knftables.Set{Name: "hairpin-connections", Type: f.addrType + " . " + f.addrType + " . inet_proto . inet_service"})
	for _, m := range []string{"service-ips", "firewall-ips", "no-endpoint-services"} {
		tx.Add(&knftables.Map{Name: m, Type: f.addrType + " . inet_proto . inet_service : verdict"})
	}
	for _, m := range []string{"service-nodeports", "no-endpoint-nodeports"} {
		tx.Add(&knftables.Map{Name: m, Type: "inet_proto . inet_service : verdict"})
	}
	for _, c := range []string{"reject-chain", "mark-for-masquerade", "old-chain", "ep-a", "ep-b", "svc-flush", "services"} {
		tx.Add(&knftables.Chain{Name: c})
	}
	tx.Add(&knftables.Element{Set: "cluster-ips", Key: []string{f.a1}})
	tx.Add(&knftables.Element{Set: "cluster-ips", Key: []string{f.a2}})
	tx.Add(&knftables.Element{Map: "service-ips", Key: []string{f.a1, "tcp", "80"}, Value: []string{"goto ep-a"}})
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatal(err)
	}
	return fake
}

// TestAppendToIsTheSameTransaction: a batch appended to a knftables
// transaction is the same nft text, and runs on the Fake; a batch the
// kernel rejects, the Fake rejects too.
func TestAppendToIsTheSameTransaction(t *testing.T) {
	for _, f := range famTexts() {
		fake := fakeBase(t, f)
		b := everyShapeBatch(f)
		appendAndRun(t, fake, b, f.ip)
		bad := NewBatch(f.fam, "kube-proxy")
		bad.AddRule("no-such-chain", Rule{Stmt: Drop{}})
		tx := fake.NewTransaction()
		bad.AppendTo(tx)
		if err := fake.Run(context.Background(), tx); !knftables.IsNotFound(err) {
			t.Errorf("%s: a rule into a missing chain on the Fake: got %v, want not found", f.ip, err)
		}
	}
}

// TestAppendToDeclaresTheFixedObjects: the fixed objects and rule shapes
// appended to a knftables transaction are the batch's nft text, and run on
// an empty Fake.
func TestAppendToDeclaresTheFixedObjects(t *testing.T) {
	for _, f := range famTexts() {
		kf := knftables.IPv4Family
		if f.fam == IPv6 {
			kf = knftables.IPv6Family
		}
		fake := knftables.NewFake(kf, "kube-proxy")
		b := everyObjectBatch(f)
		appendAndRun(t, fake, b, f.ip)
		if fake.Table.Counters["kept-counter"] == nil || fake.Table.Maps["gone"] != nil || fake.Table.Chains["reject-chain"] == nil {
			t.Errorf("%s: the Fake's table lacks declared objects or keeps deleted ones:\n%s", f.ip, fake.Dump())
		}
	}
}

// appendAndRun appends b to a transaction of fake, checks that the text is
// the batch's and TextSize its length, and runs it on the Fake.
func appendAndRun(t *testing.T, fake *knftables.Fake, b *Batch, ip string) {
	t.Helper()
	tx := fake.NewTransaction()
	b.AppendTo(tx)
	if tx.String() != b.String() {
		t.Fatalf("%s: transaction\n%s\ndiffers from the batch\n%s", ip, tx.String(), b.String())
	}
	if got, want := b.TextSize(), len(tx.String()); got != want {
		t.Fatalf("%s: TextSize %d, the transaction's text is %d bytes", ip, got, want)
	}
	if err := fake.Run(context.Background(), tx); err != nil {
		t.Fatalf("%s: the Fake refused the batch: %v", ip, err)
	}
}
