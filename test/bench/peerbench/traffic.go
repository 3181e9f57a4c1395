package peerbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/kproxy/kproxy/test/probe"
)

const (
	// endpointRange holds every initial endpoint address; it is routed to
	// the node namespace itself, where one pod server ("endpoint") answers
	// for all of them.
	endpointRange = "10.128.0.0/12"
	// changedRange holds the addresses endpoint changes write; it is routed
	// to the pod namespace, where a pod server named changedServer answers
	// for all of them, so that a connection tells whether the proxy already
	// sends traffic to a changed endpoint.
	changedRange  = "10.200.0.0/13"
	changedServer = "changed"
	// clientIP is the source of the benchmark's connections: an address in
	// the cluster CIDR, as a pod's, so that neither mode masquerades them
	// (masquerading a connection to a local address would pick lo's
	// 127.0.0.1, which the kernel then drops as martian).
	clientIP = "10.244.0.1"
	// connectTimeout bounds one benchmark connection.
	connectTimeout = 2 * time.Second
)

// prepareTraffic routes the endpoint addresses as described above, routes
// service addresses out of eth0 (so that a connection to a ClusterIP gets as
// far as the proxy's DNAT), and starts the two pod servers on port 8080.
// stop ends them.
func (r *runner) prepareTraffic(ctx context.Context, node, pod string) (stop func(), err error) {
	for _, argv := range [][]string{
		{"ip", "-n", node, "route", "add", "local", endpointRange, "dev", "lo"},
		{"ip", "-n", node, "addr", "add", clientIP + "/32", "dev", "lo"},
		{"ip", "-n", node, "route", "add", changedRange, "dev", "eth0"},
		{"ip", "-n", node, "route", "add", "default", "dev", "eth0"},
		{"ip", "-n", pod, "route", "add", "local", changedRange, "dev", "lo"},
		{"ip", "-n", pod, "route", "add", "default", "dev", "eth0"},
	} {
		if _, err := run(ctx, argv...); err != nil {
			return nil, err
		}
	}
	var servers []*proxyProcess
	stop = func() {
		for _, s := range servers {
			s.stop(5 * time.Second)
		}
	}
	for _, s := range []struct{ ns, name string }{{node, "endpoint"}, {pod, changedServer}} {
		p, err := startProxy(s.ns, r.opts.Podserver, r.logPath(s.ns+"-podserver"), "-name", s.name, "-tcp", "8080")
		if err != nil {
			stop()
			return nil, err
		}
		servers = append(servers, p)
	}
	return stop, nil
}

// connect makes one connection from the node namespace to ip:80 and
// returns the name of the pod server that answered.
func connect(ns, ip string) (string, error) {
	a, err := probe.TCP(ns, net.JoinHostPort(ip, "80"), connectTimeout, probe.Src(clientIP))
	return a.Pod, err
}

// maxChangeFailures is how many failed connections one endpoint change may
// see before the round gives up on it.
const maxChangeFailures = 20

// waitChanged connects to ip:80 back to back until the changed endpoint
// answers: one of the service's endpoints in ten, picked at random, so the
// detection itself costs about ten connections (a few ms). It returns how
// many connections failed meanwhile (the first failure's namespace state is
// dumped): a proxy should never refuse a service whose endpoints change.
func (r *runner) waitChanged(ctx context.Context, p *proxyProcess, ns, ip string) (failed int, err error) {
	deadline := time.Now().Add(r.opts.Timeout)
	for time.Now().Before(deadline) {
		if err := p.exited(); err != nil {
			return failed, err
		}
		if ctx.Err() != nil {
			return failed, ctx.Err()
		}
		name, err := connect(ns, ip)
		if err != nil {
			if failed++; failed == 1 {
				r.opts.Log("connect to %s while its endpoints change: %v (namespace state in %s)", ip, err, r.dumpState(ctx, ns))
			}
			if failed > maxChangeFailures {
				return failed, fmt.Errorf("connect to %s: %w (%d failures)", ip, err, failed)
			}
			continue
		}
		if name == changedServer {
			return failed, nil
		}
	}
	return failed, fmt.Errorf("%s never answered from the changed endpoint within %v", ip, r.opts.Timeout)
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

// connLoop connects to one service every 10 ms until stopped.
type connLoop struct {
	quit         chan struct{}
	done         chan struct{}
	conns, fails int
}

func startConnLoop(ns, ip string) *connLoop {
	l := &connLoop{quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for {
			select {
			case <-l.quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			l.conns++
			if _, err := connect(ns, ip); err != nil {
				l.fails++
			}
		}
	}()
	return l
}

// stop ends the loop and returns how many connections it made and how
// many of them failed.
func (l *connLoop) stop() (conns, fails int) {
	close(l.quit)
	<-l.done
	return l.conns, l.fails
}
