package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// readyPoll is how often /readyz is asked while the control plane starts.
const readyPoll = 250 * time.Millisecond

// etcdURL is http://127.0.0.1:port (plain HTTP: only loopback in the namespace).
func etcdURL(port int) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// etcdArgs is a single-member etcd on loopback with its data on tmpfs.
func etcdArgs(bin, dataDir string, port int) []string {
	client, peer := etcdURL(port), etcdURL(port+1)
	return []string{bin,
		"--name=default",
		"--data-dir=" + dataDir,
		"--listen-client-urls=" + client,
		"--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer,
		"--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--initial-cluster-state=new",
		"--quota-backend-bytes=" + strconv.Itoa(512<<20),
		"--logger=zap",
		"--log-level=warn",
	}
}

// apiServerArgs: loopback only, so --endpoint-reconciler-type=none (the
// "kubernetes" Service cannot point at 127.0.0.1) and an explicit
// --advertise-address (there is no other interface to pick one from).
func apiServerArgs(bin, certDir string, p PKIFiles, opts Options) []string {
	args := []string{bin,
		"--etcd-servers=" + etcdURL(opts.EtcdPort),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(opts.SecurePort),
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=" + p.CACert,
		"--tls-cert-file=" + p.ServingCert,
		"--tls-private-key-file=" + p.ServingKey,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p.SAPublicKey,
		"--service-account-signing-key-file=" + p.SAKey,
		"--cert-dir=" + certDir, // unused: the serving certificate is given
		"--profiling=false",
		"--shutdown-delay-duration=0s",
		"--v=0",
	}
	return append(args, opts.APIServerArgs...)
}

func (c *Cluster) startEtcd(opts Options) error {
	p, err := startProcess(c.Netns, "etcd", c.LogDir, nil, etcdArgs(c.Binaries.Etcd, c.etcdDir, opts.EtcdPort)...)
	if err != nil {
		return err
	}
	c.addProcess(p)
	return nil
}

func (c *Cluster) startAPIServer(opts Options) error {
	env := []string{"GOMEMLIMIT=" + opts.MemoryLimit}
	p, err := startProcess(c.Netns, "kube-apiserver", c.LogDir, env,
		apiServerArgs(c.Binaries.APIServer, c.workDir, c.PKI.Files, opts)...)
	if err != nil {
		return err
	}
	c.addProcess(p)
	return nil
}

// restConfig is a client config for kube-apiserver that dials inside the
// namespace and trusts the cluster CA; the caller adds credentials.
func (c *Cluster) restConfig() *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.PKI.CACert},
		Dial:            dialerIn(c.Netns),
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
	}
}

func (c *Cluster) buildClients() error {
	cfg := c.restConfig()
	cfg.CertData, cfg.KeyData = c.PKI.AdminCert, c.PKI.AdminKey
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	c.Config, c.Client = cfg, client
	return nil
}

// waitReady polls until /readyz answers ok and the system namespaces exist,
// a process exits, or timeout.
func (c *Cluster) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := c.exitedProcess(); err != nil {
			return err
		}
		last = c.readyOnce(ctx)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready within %v: %w (last: %v)", timeout, ctx.Err(), last)
		case <-time.After(readyPoll):
		}
	}
}

// readyOnce checks /readyz and the system namespaces once. kube-apiserver
// creates those namespaces itself shortly after it starts; waiting for them
// lets callers create objects right away.
func (c *Cluster) readyOnce(ctx context.Context) error {
	body, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Raw()
	if err != nil {
		return err
	}
	if string(body) != "ok" {
		return fmt.Errorf("/readyz: %q", body)
	}
	for _, ns := range []string{metav1.NamespaceDefault, metav1.NamespaceSystem} {
		if _, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	return nil
}

// exitedProcess returns an error naming a process that has already exited.
func (c *Cluster) exitedProcess() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		if done, err := p.exited(); done {
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fmt.Errorf("%s exited during startup: %w", p.name, err)
		}
	}
	return nil
}
