package ipvs_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kproxy/kproxy/ipvs"
	"github.com/kproxy/kproxy/ipvs/rules"
	"github.com/kproxy/kproxy/proxier/netfilter"
)

func TestDryRunPrintsPlanWithoutAKernel(t *testing.T) {
	var out bytes.Buffer
	d, err := ipvs.NewDryRun(ipvs.DryRunOptions{
		Options: ipvs.Options{NodePorts: netfilter.NodePortMatch{All: true},
			Netfilter: &ipvs.NetfilterOptions{Rules: rules.Options{MasqueradeMark: mark}}},
		Local: addrs("127.0.0.1", nodeIP), Out: &out,
	})
	if err != nil {
		t.Fatal(err)
	}
	snap := snapshot(
		e(svc("a", "172.30.0.1", withNodePort(30080), withEndpoints("10.244.0.2:8080", "10.244.1.3:8080"))),
		e(svc("s", "172.30.0.2", withAffinity(600), withEndpoints("10.244.0.4:8080"))),
	)
	if _, err := d.Sync(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"# kproxy --dry-run: IPv4 IPVS virtual servers (ipvsadm -Ln)\n",
		"TCP  172.30.0.1:80 rr\n  -> 10.244.0.2:8080",
		"  -> 10.244.1.3:8080              Masq    1      0          0\n",
		"TCP  192.168.1.10:30080 rr\n",
		"TCP  172.30.0.2:80 rr persistent 600\n",
		"# kproxy --dry-run: IPv4 kube-ipvs0 addresses\n172.30.0.1/32\n172.30.0.2/32\n",
		"add KUBE-CLUSTER-IP 172.30.0.1,tcp:80\n",
		"add KUBE-NODE-PORT-TCP 30080\n",
		"# kproxy --dry-run: IPv4 iptables-restore --noflush input\n*mangle\n:KUBE-PROXY-CANARY - [0:0]\nCOMMIT\n*nat\n",
		`-I PREROUTING 1 -m comment --comment "kubernetes service portals" -j KUBE-SERVICES`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "127.0.0.1:30080") {
		t.Errorf("NodePort virtual server on loopback:\n%s", got)
	}
}

func TestNewDryRunNeedsOut(t *testing.T) {
	if _, err := ipvs.NewDryRun(ipvs.DryRunOptions{}); err == nil {
		t.Error("NewDryRun accepted no Out")
	}
}
