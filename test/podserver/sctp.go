package main

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// listenSCTP opens a one-to-one style SCTP listener (SOCK_STREAM,
// IPPROTO_SCTP) with raw syscalls, since the net package has no SCTP, and
// hands it to the net package, which treats it like any stream listener.
func listenSCTP(ipv6 bool, port int) (net.Listener, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr = &unix.SockaddrInet4{Port: port}
	if ipv6 {
		family = unix.AF_INET6
		sa = &unix.SockaddrInet6{Port: port}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.ESOCKTNOSUPPORT) {
		return nil, fmt.Errorf("this kernel does not support SCTP sockets (no CONFIG_IP_SCTP / sctp module): %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	f := os.NewFile(uintptr(fd), fmt.Sprintf("sctp:%d", port))
	defer f.Close() // net.FileListener dups the descriptor
	if err := configureSCTP(fd, ipv6, sa); err != nil {
		return nil, err
	}
	l, err := net.FileListener(f)
	if err != nil {
		return nil, fmt.Errorf("sctp listener on port %d: %w", port, err)
	}
	return l, nil
}

func configureSCTP(fd int, ipv6 bool, sa unix.Sockaddr) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		return fmt.Errorf("SO_REUSEADDR: %w", err)
	}
	if ipv6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fmt.Errorf("IPV6_V6ONLY: %w", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 128); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return nil
}
