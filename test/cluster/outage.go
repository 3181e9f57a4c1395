package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// apiServerName is the process (and log file) name of kube-apiserver.
const apiServerName = "kube-apiserver"

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL) and leaves etcd
// running: an API outage as a control-plane upgrade or crash causes it.
// StartAPIServer brings it back.
func (c *Cluster) StopAPIServer() error {
	p, _, err := c.apiServer()
	if err != nil {
		return err
	}
	if err := p.stop(); err != nil {
		return fmt.Errorf("stop %s: %w", apiServerName, err)
	}
	return nil
}

// StartAPIServer restarts a kube-apiserver that StopAPIServer stopped, with
// the same command line, environment and PKI (tokens issued before stay
// valid), and waits until it is ready again or timeout passes. Its output goes
// to kube-apiserver-restarted.log in the log directory.
func (c *Cluster) StartAPIServer(ctx context.Context, timeout time.Duration) error {
	old, i, err := c.apiServer()
	if err != nil {
		return err
	}
	if done, _ := old.exited(); !done {
		return errors.New("start kube-apiserver: it is still running (call StopAPIServer first)")
	}
	// old.cmd.Args is "ip netns exec <ns> <argv...>"; old.cmd.Env already holds
	// the environment and the extra variables, and a later duplicate wins.
	argv := old.cmd.Args[4:]
	p, err := startProcess(c.Netns, apiServerName+"-restarted", c.LogDir, old.cmd.Env, argv...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	return c.waitReady(ctx, timeout)
}

// apiServer returns the current kube-apiserver process and its index in procs.
func (c *Cluster) apiServer() (*process, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, 0, errors.New("cluster is closed")
	}
	for i, p := range c.procs {
		if p.name == apiServerName || p.name == apiServerName+"-restarted" {
			return p, i, nil
		}
	}
	return nil, 0, errors.New("no kube-apiserver process")
}
