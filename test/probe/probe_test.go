package probe

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		line    string
		want    Answer
		wantErr bool
	}{
		{"pod-1 10.244.1.12:40000\n", Answer{Pod: "pod-1", SeenSource: "10.244.1.12", SeenPort: 40000}, false},
		{"node2-pod-1 [fd00:50::2]:1234", Answer{Pod: "node2-pod-1", SeenSource: "fd00:50::2", SeenPort: 1234}, false},
		{"pod-1", Answer{}, true},
		{"pod-1 10.244.1.12", Answer{}, true},
		{"pod-1 10.244.1.12:1 extra", Answer{}, true},
	}
	for _, tt := range tests {
		got, err := parseAnswer(tt.line)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseAnswer(%q) = %+v, %v; want %+v, error %v", tt.line, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFailureClassifiesErrno(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{unix.ECONNREFUSED, ErrRefused},
		{unix.EHOSTUNREACH, ErrUnreachable},
		{unix.ENETUNREACH, ErrUnreachable},
		{unix.EACCES, ErrUnreachable},
		{unix.ETIMEDOUT, ErrTimeout},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ErrTimeout},
		{unix.EPERM, ErrLocalDrop},
		{unix.ECONNRESET, ErrReset},
		{unix.EPROTONOSUPPORT, ErrUnsupported},
	}
	tgt := target{ns: "kpx-x-client", proto: "tcp", addr: "10.96.0.1:80"}
	for _, tt := range tests {
		err := failure(tgt, "connect", tt.err)
		if !errors.Is(err, tt.want) || !errors.Is(err, tt.err) {
			t.Errorf("failure(%v) = %v; want it to match %v and keep the cause", tt.err, err, tt.want)
		}
		if !strings.Contains(err.Error(), "kpx-x-client") || !strings.Contains(err.Error(), "10.96.0.1:80") {
			t.Errorf("failure(%v) = %q; want namespace and address in the message", tt.err, err)
		}
	}
	if err := failure(tgt, "parse", errors.New("garbage")); errors.Is(err, ErrTimeout) || errors.Is(err, ErrRefused) {
		t.Errorf("unclassified error got a class: %v", err)
	}
}

func TestNewTargetValidates(t *testing.T) {
	tests := []struct {
		name    string
		addr    string
		timeout time.Duration
		opts    []Option
		wantErr string
	}{
		{"ok", "10.96.0.1:80", time.Second, []Option{Src("192.168.50.3")}, ""},
		{"ipv6 ok", "[fd00:96::1]:80", time.Second, nil, ""},
		{"hostname", "kubernetes:443", time.Second, nil, "ip:port"},
		{"no timeout", "10.96.0.1:80", 0, nil, "timeout"},
		{"bad source", "10.96.0.1:80", time.Second, []Option{Src("nope")}, "source address"},
		{"family mismatch", "10.96.0.1:80", time.Second, []Option{Src("fd00:50::3")}, "family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTarget("ns", "tcp", tt.addr, tt.timeout, tt.opts)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want mention of %q", err, tt.wantErr)
			}
		})
	}
}

func TestNsPath(t *testing.T) {
	if got := nsPath("kpx-1-node"); got != "/var/run/netns/kpx-1-node" {
		t.Errorf("nsPath(name) = %q", got)
	}
	if got := nsPath("/proc/1/ns/net"); got != "/proc/1/ns/net" {
		t.Errorf("nsPath(abs) = %q", got)
	}
}
