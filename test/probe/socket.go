package probe

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsDir is where "ip netns add" mounts named namespaces.
const netnsDir = "/var/run/netns"

// nsPath resolves a namespace name; an absolute path is used as is.
func nsPath(ns string) string {
	if filepath.IsAbs(ns) {
		return ns
	}
	return filepath.Join(netnsDir, ns)
}

// socketIn creates a non-blocking socket inside namespace ns ("" means the
// caller's namespace).
func socketIn(ns string, family, sotype, proto int) (int, error) {
	flags := sotype | unix.SOCK_NONBLOCK | unix.SOCK_CLOEXEC
	if ns == "" {
		return unix.Socket(family, flags, proto)
	}
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		fd, restored, err := socketOnThread(nsPath(ns), family, flags, proto)
		if restored {
			runtime.UnlockOSThread()
		} // else: exit locked, and the runtime retires the tainted thread
		done <- result{fd, err}
	}()
	r := <-done
	return r.fd, r.err
}

// socketOnThread must run on a locked thread. restored reports whether the
// thread is back in its original namespace and may be reused.
func socketOnThread(path string, family, flags, proto int) (fd int, restored bool, err error) {
	orig, err := netns.Get()
	if err != nil {
		return -1, true, fmt.Errorf("current netns: %w", err)
	}
	defer orig.Close()
	dest, err := netns.GetFromPath(path)
	if err != nil {
		return -1, true, fmt.Errorf("open netns %s: %w", path, err)
	}
	defer dest.Close()
	if err := netns.Set(dest); err != nil {
		return -1, false, fmt.Errorf("enter netns %s: %w", path, err)
	}
	fd, sockErr := unix.Socket(family, flags, proto)
	if err := netns.Set(orig); err != nil {
		if sockErr == nil {
			unix.Close(fd)
		}
		return -1, false, fmt.Errorf("leave netns %s: %w", path, err)
	}
	return fd, true, sockErr
}

func sockaddr(ap netip.AddrPort) unix.Sockaddr {
	if ap.Addr().Is4() {
		return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
	}
	return &unix.SockaddrInet6{Addr: ap.Addr().As16(), Port: int(ap.Port())}
}

func family(a netip.Addr) int {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// setRecvErr turns on (or off) IP_RECVERR / IPV6_RECVERR. While it is on,
// an ICMP error that arrives while connect(2) still holds the socket (the
// whole round trip through veths can happen inside the syscall) is queued
// for us instead of only being remembered as a "soft" error until the next
// SYN retransmission a second later; and a connected UDP socket reports
// non-fatal ICMP errors such as host-unreachable instead of ignoring them.
func setRecvErr(fd int, a netip.Addr, on bool) error {
	v := 0
	if on {
		v = 1
	}
	if a.Is4() {
		return unix.SetsockoptInt(fd, unix.SOL_IP, unix.IP_RECVERR, v)
	}
	return unix.SetsockoptInt(fd, unix.SOL_IPV6, unix.IPV6_RECVERR, v)
}

// waitConnected waits for a non-blocking connect to finish and returns its
// outcome: nil, the socket or queued ICMP error, or ETIMEDOUT at the deadline.
func waitConnected(fd int, deadline time.Time) error {
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
	for {
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return unix.ETIMEDOUT
		}
		n, err := unix.Poll(fds, int(remaining.Milliseconds())+1)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		soErr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("SO_ERROR: %w", err)
		}
		if soErr != 0 {
			return unix.Errno(soErr)
		}
		if fds[0].Revents&unix.POLLERR != 0 {
			if queued := queuedError(fd); queued != nil {
				return queued
			}
		}
		if fds[0].Revents&unix.POLLOUT != 0 {
			return nil
		}
	}
}

// queuedError pops one error from the socket's error queue (see setRecvErr).
func queuedError(fd int) error {
	buf := make([]byte, 256)
	oob := make([]byte, 256)
	_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
	if err != nil {
		return nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil
	}
	for _, m := range msgs {
		isV4 := m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR
		isV6 := m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR
		if (isV4 || isV6) && len(m.Data) >= 4 {
			// struct sock_extended_err starts with __u32 ee_errno.
			if errno := binary.NativeEndian.Uint32(m.Data[:4]); errno != 0 {
				return unix.Errno(errno)
			}
		}
	}
	return nil
}

// fileConn hands a connected socket to the net package (which dups it) and
// closes the original descriptor.
func fileConn(fd int, name string) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("wrap socket: %w", err)
	}
	return c, nil
}
