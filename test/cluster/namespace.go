package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"runtime"

	"github.com/vishvananda/netns"

	"github.com/kproxy/kproxy/test/testns"
)

func randomPrefix() (string, error) {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random prefix: %w", err)
	}
	return "kpx-" + hex.EncodeToString(b), nil
}

// dialerIn returns a DialContext that connects from inside namespace ns
// while the calling process stays where it is. The dial runs on a goroutine
// locked to its OS thread, which enters ns only for the dial: the socket is
// created there and keeps belonging to ns afterwards. A thread that cannot
// switch back is not unlocked, so the runtime retires it instead of reusing
// it for unrelated goroutines.
func dialerIn(ns string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	path := testns.Path(ns)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		// Only IP literals: a host name would be resolved, and several
		// addresses raced, on other goroutines whose threads are not in ns.
		if host, _, err := net.SplitHostPort(addr); err != nil || net.ParseIP(host) == nil {
			return nil, fmt.Errorf("dial %q in %s: only ip:port addresses are supported", addr, ns)
		}
		return socketIn(path, func() (net.Conn, error) {
			d := net.Dialer{FallbackDelay: -1} // one address, dialed on this goroutine
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s in %s: %w", addr, ns, err)
			}
			return conn, nil
		})
	}
}

// socketIn runs open (which makes a socket) on a thread locked to namespace
// path, then brings the thread back: the socket keeps belonging to path. A
// thread that cannot switch back is not unlocked, so the runtime retires it
// instead of reusing it for unrelated goroutines.
func socketIn[T io.Closer](path string, open func() (T, error)) (T, error) {
	type result struct {
		sock T
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		sock, restored, err := onThreadIn(path, open)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{sock, err}
	}()
	r := <-done
	return r.sock, r.err
}

// onThreadIn must run on a locked thread; restored reports whether the
// thread is back in its original namespace.
func onThreadIn[T io.Closer](path string, open func() (T, error)) (sock T, restored bool, err error) {
	var zero T
	orig, err := netns.Get()
	if err != nil {
		return zero, true, fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	dest, err := netns.GetFromPath(path)
	if err != nil {
		return zero, true, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer dest.Close()
	if err := netns.Set(dest); err != nil {
		return zero, false, fmt.Errorf("enter netns %s: %w", path, err)
	}
	sock, openErr := open()
	if err := netns.Set(orig); err != nil {
		if openErr == nil {
			sock.Close()
		}
		return zero, false, fmt.Errorf("leave netns %s: %w", path, err)
	}
	if openErr != nil {
		return zero, true, openErr
	}
	return sock, true, nil
}
