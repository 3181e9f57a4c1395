package nft

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"sigs.k8s.io/knftables"

	"github.com/kproxy/kproxy/proxier/command"
)

// Binary is the nft command knftables runs (found in PATH).
const Binary = "nft"

// ErrNotInstalled is what Open returns (wrapped) when there is no nft in
// PATH: then the host has no nftables rules of kube-proxy's to manage, and
// a caller that only cleans up skips the job (a node without nft must still
// start in iptables mode).
var ErrNotInstalled = errors.New("nft is not installed")

// Options configure Open.
type Options struct {
	// Family and Table are the Interface's defaults, both set or both
	// empty (an Interface that names the table of every object, as
	// netfilter.CleanupNFTablesMode needs).
	Family knftables.Family
	Table  string
	// Timeout bounds every nft command; zero means command.DefaultBase.
	Timeout time.Duration
	// Knftables are passed to knftables.New (EmulateDestroy, UseNetlink…).
	Knftables []knftables.Option
}

// Open returns a knftables.Interface whose every command has a deadline.
// It first runs `nft --version` itself, through proxier/command (killed
// with its process group at the deadline), so a missing, broken or hanging
// nft is found with a bounded wait and a clear error; then knftables.New,
// which runs `nft --version` and `nft --check` once more without a context
// of its own, is waited for at most Timeout (a hang there ends the wait
// with a *command.TimeoutError, though that nft cannot be killed from
// here). Every later call (Run, Check, List*) runs with the caller's
// context bounded by Timeout, which kills nft when it passes.
//
// Open runs nft in the calling process's network namespace: it must not be
// called from a goroutine locked to another namespace's thread, since
// knftables.New runs on a goroutine of its own.
func Open(ctx context.Context, opts Options) (knftables.Interface, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = command.DefaultBase
	}
	if _, err := Version(ctx, timeout); err != nil {
		return nil, err
	}
	nft, err := newWithin(ctx, opts, timeout)
	if err != nil {
		return nil, err
	}
	return timed{Interface: nft, timeout: timeout}, nil
}

// Version returns the first line of `nft --version` ("nftables v1.0.6
// (Lester Gooch #5)"), run with the timeout; ErrNotInstalled (wrapped) when
// nft is not in PATH.
func Version(ctx context.Context, timeout time.Duration) (string, error) {
	path, err := exec.LookPath(Binary)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotInstalled, err)
	}
	res, err := command.Run(ctx, timeout, nil, []string{path, "--version"})
	if err != nil {
		return "", fmt.Errorf("run %s --version: %w: %s", path, err, strings.TrimSpace(res.Stderr))
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(res.Stdout)), "\n")
	return line, nil
}

// newWithin is knftables.New, waited for at most timeout.
func newWithin(ctx context.Context, opts Options, timeout time.Duration) (knftables.Interface, error) {
	type result struct {
		nft knftables.Interface
		err error
	}
	done := make(chan result, 1)
	go func() {
		nft, err := knftables.New(opts.Family, opts.Table, opts.Knftables...)
		done <- result{nft, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("set up nftables: %w", r.err)
		}
		return r.nft, nil
	case <-timer.C:
		return nil, fmt.Errorf("set up nftables: %w", &command.TimeoutError{Command: "nft --check (knftables.New)", After: timeout})
	case <-ctx.Done():
		return nil, fmt.Errorf("set up nftables: %w", ctx.Err())
	}
}

// timed bounds every command of the Interface it wraps by timeout.
type timed struct {
	knftables.Interface
	timeout time.Duration
}

// within runs f with ctx bounded by t.timeout; when the deadline (not the
// caller's context) ended it, the error is a *command.TimeoutError.
func within[T any](ctx context.Context, t timed, what string, f func(context.Context) (T, error)) (T, error) {
	bounded, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	v, err := f(bounded)
	if err != nil && ctx.Err() == nil && bounded.Err() != nil {
		err = fmt.Errorf("%w: %w", &command.TimeoutError{Command: Binary + " " + what, After: t.timeout}, err)
	}
	return v, err
}

func (t timed) Run(ctx context.Context, tx *knftables.Transaction) error {
	_, err := within(ctx, t, "-f -", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, t.Interface.Run(ctx, tx)
	})
	return err
}

func (t timed) Check(ctx context.Context, tx *knftables.Transaction) error {
	_, err := within(ctx, t, "--check -f -", func(ctx context.Context) (struct{}, error) {
		return struct{}{}, t.Interface.Check(ctx, tx)
	})
	return err
}

func (t timed) ListAll(ctx context.Context) (map[string][]string, error) {
	return within(ctx, t, "list", t.Interface.ListAll)
}

func (t timed) List(ctx context.Context, objectType string) ([]string, error) {
	return within(ctx, t, "list", func(ctx context.Context) ([]string, error) {
		return t.Interface.List(ctx, objectType)
	})
}

func (t timed) ListRules(ctx context.Context, chain string) ([]*knftables.Rule, error) {
	return within(ctx, t, "list", func(ctx context.Context) ([]*knftables.Rule, error) {
		return t.Interface.ListRules(ctx, chain)
	})
}

func (t timed) ListElements(ctx context.Context, objectType, name string) ([]*knftables.Element, error) {
	return within(ctx, t, "list", func(ctx context.Context) ([]*knftables.Element, error) {
		return t.Interface.ListElements(ctx, objectType, name)
	})
}

func (t timed) ListCounters(ctx context.Context) ([]*knftables.Counter, error) {
	return within(ctx, t, "list", t.Interface.ListCounters)
}
