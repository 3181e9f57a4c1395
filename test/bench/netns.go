package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/kproxy/kproxy/test/testns"
)

// Namespaces creates network namespaces named kpx-bench-<random> and
// remembers them so DeleteAll can remove every one, also after a failure.
type Namespaces struct {
	mu    sync.Mutex
	names []string
}

// Create adds a new, empty network namespace and returns its name.
func (n *Namespaces) Create(ctx context.Context) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random namespace name: %w", err)
	}
	name := "kpx-bench-" + hex.EncodeToString(b[:])
	if err := testns.Add(name); err != nil {
		return "", err
	}
	n.mu.Lock()
	n.names = append(n.names, name)
	n.mu.Unlock()
	return name, nil
}

// Delete removes one namespace created by Create (and its rules with it).
func (n *Namespaces) Delete(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for i, c := range n.names {
		if c == name {
			n.names = append(n.names[:i], n.names[i+1:]...)
			return deleteNamespace(name)
		}
	}
	return fmt.Errorf("namespace %s was not created here", name)
}

// DeleteAll removes every namespace still present; it uses no context so it
// also runs after an interrupt.
func (n *Namespaces) DeleteAll() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, name := range n.names {
		errs = append(errs, deleteNamespace(name))
	}
	n.names = nil
	return errors.Join(errs...)
}

func deleteNamespace(name string) error { return testns.Delete(name) }

// Prefix is the command prefix that runs a command inside namespace name.
func Prefix(name string) []string { return []string{"ip", "netns", "exec", name} }
