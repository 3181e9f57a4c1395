package ruleset

import (
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// kubeJump is one of the jump rules kube-proxy inserts into a built-in chain
// (upstream iptablesJumpChains), in upstream order.
type kubeJump struct {
	table, from, to, comment string
	newOnly                  bool
}

var kubeJumps = []kubeJump{
	{"filter", "INPUT", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals", true},
	{"filter", "FORWARD", "KUBE-EXTERNAL-SERVICES", "kubernetes externally-visible service portals", true},
	{"filter", "INPUT", "KUBE-NODEPORTS", "kubernetes health check service ports", false},
	{"filter", "FORWARD", "KUBE-SERVICES", "kubernetes service portals", true},
	{"filter", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", true},
	{"filter", "FORWARD", "KUBE-FORWARD", "kubernetes forwarding rules", false},
	{"filter", "INPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", true},
	{"filter", "OUTPUT", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", true},
	{"filter", "FORWARD", "KUBE-PROXY-FIREWALL", "kubernetes load balancer firewall", true},
	{"nat", "OUTPUT", "KUBE-SERVICES", "kubernetes service portals", false},
	{"nat", "PREROUTING", "KUBE-SERVICES", "kubernetes service portals", false},
	{"nat", "POSTROUTING", "KUBE-POSTROUTING", "kubernetes postrouting rules", false},
}

// KubeProxyJumpArgs returns the arguments of kube-proxy's jump rule from a
// built-in chain to one of its chains, as kube-proxy writes it.
func KubeProxyJumpArgs(comment, to string, newOnly bool) []string {
	var args []string
	if newOnly {
		args = append(args, "-m", "conntrack", "--ctstate", "NEW")
	}
	return append(args, "-m", "comment", "--comment", comment, "-j", to)
}

// WithKubeProxyJumps returns a copy of the tables with kube-proxy's jump
// rules (reference 9.1) inserted at the top of the built-in chains, the way
// kube-proxy's full sync inserts them with "-I CHAIN 1", for every target
// chain that exists and is not jumped to from that built-in chain already.
// Tests use it to trace rules rendered without the jumps.
func WithKubeProxyJumps(tables map[string]*Table, family v1.IPFamily) (map[string]*Table, error) {
	out := make(map[string]*Table, len(tables))
	for name, t := range tables {
		out[name] = t.clone()
	}
	for _, j := range kubeJumps {
		t := out[j.table]
		if t == nil || t.Chain(j.to) == nil || t.Chain(j.from) == nil {
			continue
		}
		from := t.Chain(j.from)
		if slices.ContainsFunc(from.Rules, func(r Rule) bool { return r.TargetName() == j.to }) {
			continue
		}
		r, err := ParseRule(KubeProxyJumpArgs(j.comment, j.to, j.newOnly), family)
		if err != nil {
			return nil, fmt.Errorf("jump %s -> %s: %w", j.from, j.to, err)
		}
		from.Rules = slices.Insert(from.Rules, 0, r)
	}
	return out, nil
}
