package peerbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kproxy/kproxy/test/probe"
)

const (
	// firstPacketProbes is how many connections are timed per service.
	firstPacketProbes = 30
	// endpointRange holds every endpoint address; routed to the namespace
	// itself for the first-packet scenario, where one pod server answers.
	endpointRange = "10.128.0.0/9"
	// clientIP is the source of the timed connections: an address in the
	// cluster CIDR, as a pod's, so that neither mode masquerades them
	// (masquerading a connection to a local address would pick lo's
	// 127.0.0.1, which the kernel then drops as martian).
	clientIP = "10.244.0.1"
)

// prepareFirstPacket makes every endpoint address local to ns (a local
// route, no addresses), routes service addresses out of eth0 (so that a
// connection to a ClusterIP gets as far as the proxy's DNAT), and starts
// the pod server on port 8080, which answers for every endpoint.
func (r *runner) prepareFirstPacket(ctx context.Context, ns string) (*proxyProcess, error) {
	for _, args := range [][]string{
		{"route", "add", "local", endpointRange, "dev", "lo"},
		{"addr", "add", clientIP + "/32", "dev", "lo"},
		{"route", "add", "default", "dev", "eth0"},
	} {
		if _, err := run(ctx, append([]string{"ip", "-n", ns}, args...)...); err != nil {
			return nil, err
		}
	}
	return startProxy(ns, r.opts.Podserver, r.logPath(ns+"-podserver"), "-name", "endpoint", "-tcp", "8080")
}

// firstPacket times connections from ns to the first and the last
// service, alternating, and returns the medians.
func (r *runner) firstPacket(ctx context.Context, ns string) (first, last time.Duration, err error) {
	if r.firstIP == "" {
		ips := make([]string, 2)
		for k, i := range []int{0, r.opts.Services - 1} {
			svc, err := r.client.CoreV1().Services(Namespace).Get(ctx, serviceName(i), metav1.GetOptions{})
			if err != nil {
				return 0, 0, fmt.Errorf("get %s: %w", serviceName(i), err)
			}
			ips[k] = svc.Spec.ClusterIP
		}
		r.firstIP, r.lastIP = ips[0], ips[1]
	}
	var firsts, lasts []time.Duration
	for range firstPacketProbes {
		for _, target := range []struct {
			ip  string
			out *[]time.Duration
		}{{r.firstIP, &firsts}, {r.lastIP, &lasts}} {
			start := time.Now()
			if _, err := probe.TCP(ns, net.JoinHostPort(target.ip, "80"), 2*time.Second, probe.Src(clientIP)); err != nil {
				return 0, 0, fmt.Errorf("connect to %s: %w (namespace state in %s)", target.ip, err, r.dumpState(ctx, ns))
			}
			*target.out = append(*target.out, time.Since(start))
		}
	}
	slices.Sort(firsts)
	slices.Sort(lasts)
	return firsts[len(firsts)/2], lasts[len(lasts)/2], nil
}

// dumpState writes what a failed connection needs explaining (rules,
// routes, conntrack) to a file in the work directory and returns its path.
func (r *runner) dumpState(ctx context.Context, ns string) string {
	path := r.logPath(ns + "-state")
	var b []byte
	for _, argv := range [][]string{{"iptables-save"}, {"nft", "list", "ruleset"}, {"ip", "route", "show", "table", "all"},
		{"ip", "addr"}, {"conntrack", "-L"}} {
		out, err := inNetns(ctx, ns, argv...)
		b = fmt.Appendf(b, "### %v (err %v)\n%s\n", argv, err, out)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err.Error()
	}
	return path
}
