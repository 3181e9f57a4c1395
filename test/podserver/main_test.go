package main

import (
	"bufio"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    config
		wantErr string
	}{
		{[]string{"-name", "pod-1", "-tcp", "8080,80", "-udp", "5353", "-sctp", "9000"},
			config{name: "pod-1", tcp: []int{8080, 80}, udp: []int{5353}, sctp: []int{9000}}, ""},
		{[]string{"-tcp", "80"}, config{}, "-name"},
		{[]string{"-name", "two words", "-tcp", "80"}, config{}, "-name"},
		{[]string{"-name", "pod-1"}, config{}, "no ports"},
		{[]string{"-name", "pod-1", "-tcp", "80,x"}, config{}, "-tcp"},
		{[]string{"-name", "pod-1", "-udp", "70000"}, config{}, "-udp"},
	}
	for _, tt := range tests {
		got, err := parseFlags(tt.args, io.Discard)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) err = %v, want mention of %q", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got.name != tt.want.name || !slices.Equal(got.tcp, tt.want.tcp) ||
			!slices.Equal(got.udp, tt.want.udp) || !slices.Equal(got.sctp, tt.want.sctp) {
			t.Errorf("parseFlags(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestSeenUnmapsIPv4(t *testing.T) {
	tests := []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("10.244.1.12"), Port: 40000}, "10.244.1.12:40000"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.168.50.3"), Port: 1}, "192.168.50.3:1"},
		{&net.UDPAddr{IP: net.ParseIP("fd00:50::2"), Port: 53}, "[fd00:50::2]:53"},
	}
	for _, tt := range tests {
		if got := seen(tt.addr); got != tt.want {
			t.Errorf("seen(%v) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// TestConverseGreetsThenEchoes runs the stream protocol over an in-memory
// pipe: a greeting naming the pod and the peer, then one echo per line.
func TestConverseGreetsThenEchoes(t *testing.T) {
	serverEnd, client := net.Pipe()
	defer client.Close()
	srv := &server{name: "pod-1", errs: io.Discard}
	go srv.converse(serverEnd)
	lines := bufio.NewReader(client)
	read := func() string {
		t.Helper()
		line, err := lines.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return line
	}
	if got := read(); got != "pod-1 pipe\n" {
		t.Errorf("greeting = %q", got)
	}
	for _, msg := range []string{"ping-1", "hello there"} {
		if _, err := io.WriteString(client, msg+"\n"); err != nil {
			t.Fatal(err)
		}
		if got, want := read(), "pod-1 "+msg+"\n"; got != want {
			t.Errorf("echo = %q, want %q", got, want)
		}
	}
}
