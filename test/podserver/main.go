package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
)

type config struct {
	name           string
	tcp, udp, sctp []int
	// http ports answer every HTTP request with the same line the TCP server
	// sends, so the demo can use curl.
	http []int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "podserver: %v\n", err)
		return 2
	}
	srv := &server{name: cfg.name, errs: stderr}
	if err := srv.listenAll(cfg); err != nil {
		fmt.Fprintf(stderr, "podserver %s: %v\n", cfg.name, err)
		return 1
	}
	fmt.Fprintf(stdout, "podserver %s ready\n", cfg.name)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	fs := flag.NewFlagSet("podserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "name to answer with (required)")
	tcp := fs.String("tcp", "", "comma-separated TCP ports")
	udp := fs.String("udp", "", "comma-separated UDP ports")
	sctp := fs.String("sctp", "", "comma-separated SCTP ports")
	httpPorts := fs.String("http", "", "comma-separated HTTP ports")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if *name == "" || strings.ContainsAny(*name, " \n") {
		return config{}, errors.New("-name is required and must be one word")
	}
	cfg := config{name: *name}
	var err error
	if cfg.tcp, err = parsePorts(*tcp); err != nil {
		return config{}, fmt.Errorf("-tcp: %w", err)
	}
	if cfg.udp, err = parsePorts(*udp); err != nil {
		return config{}, fmt.Errorf("-udp: %w", err)
	}
	if cfg.sctp, err = parsePorts(*sctp); err != nil {
		return config{}, fmt.Errorf("-sctp: %w", err)
	}
	if cfg.http, err = parsePorts(*httpPorts); err != nil {
		return config{}, fmt.Errorf("-http: %w", err)
	}
	if len(cfg.tcp)+len(cfg.udp)+len(cfg.sctp)+len(cfg.http) == 0 {
		return config{}, errors.New("no ports: give -tcp, -udp, -sctp or -http")
	}
	return cfg, nil
}

func parsePorts(list string) ([]int, error) {
	if list == "" {
		return nil, nil
	}
	var ports []int
	for _, field := range strings.Split(list, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad port %q", field)
		}
		ports = append(ports, p)
	}
	return ports, nil
}

type server struct {
	name string
	errs io.Writer
}

// listenAll binds every socket before serving any, so "ready" means ready.
func (s *server) listenAll(cfg config) error {
	var streams []net.Listener
	var datagrams []net.PacketConn
	var webs []net.Listener
	for _, family := range []string{"4", "6"} {
		for _, port := range cfg.http {
			l, err := net.Listen("tcp"+family, wildcard(family, port))
			if err != nil {
				return fmt.Errorf("http: %w", err)
			}
			webs = append(webs, l)
		}
		for _, port := range cfg.tcp {
			l, err := net.Listen("tcp"+family, wildcard(family, port))
			if err != nil {
				return fmt.Errorf("tcp: %w", err)
			}
			streams = append(streams, l)
		}
		for _, port := range cfg.udp {
			c, err := net.ListenPacket("udp"+family, wildcard(family, port))
			if err != nil {
				return fmt.Errorf("udp: %w", err)
			}
			datagrams = append(datagrams, c)
		}
		for _, port := range cfg.sctp {
			l, err := listenSCTP(family == "6", port)
			if err != nil {
				return fmt.Errorf("sctp: %w", err)
			}
			streams = append(streams, l)
		}
	}
	for _, l := range streams {
		go s.serveStream(l)
	}
	for _, c := range datagrams {
		go s.serveDatagrams(c)
	}
	for _, l := range webs {
		go func() { _ = http.Serve(l, s) }()
	}
	return nil
}

// wildcard is the all-addresses listen address; Go makes "tcp6"/"udp6"
// wildcard sockets IPv6-only, so the IPv4 socket gets the IPv4 clients.
func wildcard(family string, port int) string {
	if family == "6" {
		return fmt.Sprintf("[::]:%d", port)
	}
	return fmt.Sprintf("0.0.0.0:%d", port)
}

func (s *server) serveStream(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			fmt.Fprintf(s.errs, "podserver %s: accept on %s: %v\n", s.name, l.Addr(), err)
			return
		}
		go s.converse(c)
	}
}

// converse greets with the seen source, then echoes lines until the peer
// closes: long-lived connections are how tests see established flows survive.
func (s *server) converse(c net.Conn) {
	defer c.Close()
	if _, err := fmt.Fprintf(c, "%s %s\n", s.name, seen(c.RemoteAddr())); err != nil {
		return
	}
	lines := bufio.NewScanner(c)
	for lines.Scan() {
		if _, err := fmt.Fprintf(c, "%s %s\n", s.name, lines.Text()); err != nil {
			return
		}
	}
}

func (s *server) serveDatagrams(c net.PacketConn) {
	buf := make([]byte, 64*1024)
	for {
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			fmt.Fprintf(s.errs, "podserver %s: read on %s: %v\n", s.name, c.LocalAddr(), err)
			return
		}
		reply := fmt.Sprintf("%s %s\n", s.name, seen(from))
		if _, err := c.WriteTo([]byte(reply), from); err != nil {
			fmt.Fprintf(s.errs, "podserver %s: reply to %s: %v\n", s.name, from, err)
		}
	}
}

// seen formats a peer address as ip:port, without IPv4-in-IPv6 mapping.
func seen(a net.Addr) string {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return a.String()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).String()
}

// ServeHTTP answers "<name> <remote ip:port>" like the line protocol.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Connection", "close")
	fmt.Fprintf(w, "%s %s\n", s.name, r.RemoteAddr)
}
