package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"

	"github.com/kproxy/kproxy/test/testns"
)

// ServeAPIIn makes kube-apiserver reachable from another network namespace
// ns (created by the caller, loopback up) at the same address as in the
// cluster's own: it listens on Server's 127.0.0.1:port inside ns and relays
// every connection, byte for byte, to kube-apiserver. TLS ends at
// kube-apiserver, so Kubeconfig and token kubeconfigs work unchanged for a
// process run in ns. No link joins the namespaces: the relay is this
// process, whose sockets are each created inside its namespace. Close stops
// the relay.
func (c *Cluster) ServeAPIIn(ns string) error {
	u, err := url.Parse(c.Server)
	if err != nil {
		return fmt.Errorf("server %q: %w", c.Server, err)
	}
	ln, err := listenIn(ns, u.Host)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		ln.Close()
		return errors.New("cluster closed")
	}
	c.relays = append(c.relays, ln)
	c.mu.Unlock()
	go relay(ln, u.Host, dialerIn(c.Netns))
	return nil
}

// relay accepts on ln until it is closed and copies each connection to a
// new one dialed to addr.
func relay(ln net.Listener, addr string, dial func(context.Context, string, string) (net.Conn, error)) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer in.Close()
			out, err := dial(context.Background(), "tcp", addr)
			if err != nil {
				return
			}
			defer out.Close()
			done := make(chan struct{}, 2)
			pipe := func(dst, src net.Conn) {
				io.Copy(dst, src)
				if tcp, ok := dst.(*net.TCPConn); ok {
					tcp.CloseWrite()
				}
				done <- struct{}{}
			}
			go pipe(out, in)
			go pipe(in, out)
			<-done
			<-done
		}()
	}
}

// listenIn listens on addr inside namespace ns; see dialerIn for how the
// socket is created there without moving the process.
func listenIn(ns, addr string) (net.Listener, error) {
	return socketIn(testns.Path(ns), func() (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %s in %s: %w", addr, ns, err)
		}
		return ln, nil
	})
}
