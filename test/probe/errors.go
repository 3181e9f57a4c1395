package probe

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Outcome classes; test with errors.Is.
var (
	ErrRefused     = errors.New("refused")
	ErrUnreachable = errors.New("unreachable")
	ErrTimeout     = errors.New("timed out")
	ErrLocalDrop   = errors.New("dropped by the sender's own rules")
	ErrReset       = errors.New("connection reset")
	ErrUnsupported = errors.New("protocol not supported by this kernel")
)

// classify maps a socket error to its outcome class, or nil if it has none.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, unix.EHOSTUNREACH), errors.Is(err, unix.ENETUNREACH), errors.Is(err, unix.EACCES):
		return ErrUnreachable
	case errors.Is(err, unix.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	case errors.Is(err, unix.EPERM):
		return ErrLocalDrop
	case errors.Is(err, unix.ECONNRESET), errors.Is(err, unix.EPIPE):
		return ErrReset
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ESOCKTNOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return ErrUnsupported
	}
	return nil
}

// failure wraps err with where it happened and its outcome class.
func failure(t target, step string, err error) error {
	if class := classify(err); class != nil {
		return fmt.Errorf("%s %s from netns %q: %s: %w: %w", t.proto, t.addr, t.ns, step, class, err)
	}
	return fmt.Errorf("%s %s from netns %q: %s: %w", t.proto, t.addr, t.ns, step, err)
}
