package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kproxy/kproxy/test/testns"
)

// Fixed addressing inside the namespace.
const (
	// ServiceCIDR is kube-apiserver's --service-cluster-ip-range.
	ServiceCIDR = "10.96.0.0/12"
	// KubernetesServiceIP is the "kubernetes" Service's cluster IP (first of ServiceCIDR).
	KubernetesServiceIP = "10.96.0.1"

	defaultSecurePort   = 6443
	defaultEtcdPort     = 2379
	defaultReadyTimeout = 3 * time.Minute
	// defaultMemoryLimit is kube-apiserver's GOMEMLIMIT: a soft limit that
	// makes the Go GC work harder instead of letting the heap grow, which
	// keeps a test cluster at a few hundred MiB.
	defaultMemoryLimit = "512MiB"
	// tmpfsDir holds etcd's data; it is a tmpfs on Linux.
	tmpfsDir = "/dev/shm"
)

// Options configures Start. The zero value is valid.
type Options struct {
	// Prefix names the namespace "<Prefix>-cp"; default "kpx-<6 random hex>".
	Prefix string
	// Netns, when set, is an existing namespace to run in instead of a new
	// one (its loopback must be up); Start neither creates nor deletes it,
	// nor touches its links.
	Netns string
	// Binaries to run; zero means ResolveBinaries (environment or
	// scripts/cluster-tools.sh).
	Binaries Binaries
	// LogDir receives etcd.log and kube-apiserver.log and is kept by Close;
	// when empty, the logs live in the cluster's work directory and are
	// removed with it.
	LogDir string
	// SecurePort is kube-apiserver's port on 127.0.0.1; default 6443.
	SecurePort int
	// EtcdPort is etcd's client port on 127.0.0.1 (peer port: EtcdPort+1);
	// default 2379.
	EtcdPort int
	// ReadyTimeout bounds the wait for /readyz; default 3 minutes.
	ReadyTimeout time.Duration
	// MemoryLimit is kube-apiserver's GOMEMLIMIT; default 512MiB.
	MemoryLimit string
	// APIServerArgs are appended to kube-apiserver's flags (a later flag wins).
	APIServerArgs []string
}

// Cluster is a running control plane. Its exported fields are read-only.
type Cluster struct {
	// Netns is the network namespace etcd and kube-apiserver run in.
	Netns string
	// Server is kube-apiserver's URL inside Netns.
	Server string
	// Config is an admin (system:masters) client config whose connections
	// are made inside Netns; Client is built from it.
	Config *rest.Config
	Client kubernetes.Interface
	// Kubeconfig is an admin kubeconfig file for a process run inside Netns.
	Kubeconfig string
	// PKI is the cluster's key material; its files are in the work directory.
	PKI *PKI
	// LogDir holds etcd.log and kube-apiserver.log.
	LogDir string
	// Binaries are the programs that run.
	Binaries Binaries
	// StartupTime is how long Start took from creating the namespace to /readyz.
	StartupTime time.Duration

	ownNetns bool   // Netns was created by Start and is deleted by Close
	workDir  string // PKI, kubeconfigs, and logs unless Options.LogDir
	etcdDir  string // etcd data on tmpfs
	etcdURL  string // etcd's client URL inside Netns

	mu     sync.Mutex
	procs  []*process     // in start order; stopped in reverse
	relays []net.Listener // ServeAPIIn's listeners
	closed bool
}

// Start brings up etcd and kube-apiserver and waits until /readyz answers.
// On failure everything created is removed, and the error includes the
// tail of the processes' logs.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	opts, err := withDefaults(ctx, opts)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Netns: opts.Netns, Binaries: opts.Binaries, etcdURL: etcdURL(opts.EtcdPort),
		Server: "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.SecurePort))}
	if c.Netns == "" {
		c.Netns, c.ownNetns = opts.Prefix+"-cp", true
	}
	begin := time.Now()
	if err := c.start(ctx, opts); err != nil {
		logs := c.Logs(40)
		if cerr := c.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup after failed start: %w", cerr))
		}
		return nil, fmt.Errorf("start cluster in %s: %w\n%s", c.Netns, err, logs)
	}
	c.StartupTime = time.Since(begin)
	return c, nil
}

func withDefaults(ctx context.Context, opts Options) (Options, error) {
	var err error
	if opts.Prefix == "" && opts.Netns == "" {
		if opts.Prefix, err = randomPrefix(); err != nil {
			return opts, err
		}
	}
	if strings.ContainsAny(opts.Prefix+opts.Netns, "/ \t\n") {
		return opts, fmt.Errorf("options: Prefix %q / Netns %q must be plain names", opts.Prefix, opts.Netns)
	}
	if opts.SecurePort == 0 {
		opts.SecurePort = defaultSecurePort
	}
	if opts.EtcdPort == 0 {
		opts.EtcdPort = defaultEtcdPort
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = defaultReadyTimeout
	}
	if opts.MemoryLimit == "" {
		opts.MemoryLimit = defaultMemoryLimit
	}
	if opts.Binaries.Etcd == "" || opts.Binaries.APIServer == "" {
		if opts.Binaries, err = ResolveBinaries(ctx); err != nil {
			return opts, fmt.Errorf("cluster binaries: %w", err)
		}
	}
	return opts, nil
}

// start runs the setup steps in order; Start cleans up when one fails.
func (c *Cluster) start(ctx context.Context, opts Options) error {
	if err := c.prepareFiles(opts); err != nil {
		return err
	}
	if c.ownNetns {
		if err := testns.Add(c.Netns); err != nil {
			return err
		}
	}
	if err := c.startEtcd(opts); err != nil {
		return err
	}
	if err := c.startAPIServer(opts); err != nil {
		return err
	}
	if err := c.buildClients(); err != nil {
		return err
	}
	return c.waitReady(ctx, opts.ReadyTimeout)
}

// prepareFiles makes the work directory, the PKI, the admin kubeconfig, the
// log directory and etcd's tmpfs data directory.
func (c *Cluster) prepareFiles(opts Options) error {
	var err error
	if c.workDir, err = os.MkdirTemp("", c.Netns+"-"); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	c.LogDir = opts.LogDir
	if c.LogDir == "" {
		c.LogDir = filepath.Join(c.workDir, "logs")
	}
	if err := os.MkdirAll(c.LogDir, 0o755); err != nil {
		return fmt.Errorf("log directory: %w", err)
	}
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP(KubernetesServiceIP)}
	dns := []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
		"kubernetes.default.svc.cluster.local"}
	if c.PKI, err = NewPKI(ips, dns); err != nil {
		return err
	}
	if err := c.PKI.Write(c.workDir); err != nil {
		return err
	}
	c.Kubeconfig = filepath.Join(c.workDir, "admin.kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Server, c.PKI, credentials{certFile: c.PKI.Files.AdminCert,
		keyFile: c.PKI.Files.AdminKey}); err != nil {
		return err
	}
	if c.etcdDir, err = os.MkdirTemp(tmpfsDir, c.Netns+"-etcd-"); err != nil {
		return fmt.Errorf("etcd data directory on tmpfs: %w", err)
	}
	return nil
}

func (c *Cluster) addProcess(p *process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.procs = append(c.procs, p)
}

// Logs returns the last n lines of each process's log.
func (c *Cluster) Logs(n int) string {
	c.mu.Lock()
	procs := append([]*process(nil), c.procs...)
	c.mu.Unlock()
	var b strings.Builder
	for _, p := range procs {
		b.WriteString(p.tail(n))
		b.WriteString("\n")
	}
	return b.String()
}

// Close stops the processes (reverse start order, by process group), kills
// whatever else remains in a namespace Start created, deletes it, and
// removes etcd's data and the work directory. It is idempotent and reports
// every step that failed.
func (c *Cluster) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	procs, relays := c.procs, c.relays
	c.mu.Unlock()

	var errs []error
	for _, ln := range relays {
		ln.Close()
	}
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].stop(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.ownNetns {
		if err := testns.Delete(c.Netns); err != nil {
			errs = append(errs, err)
		}
	}
	for _, dir := range []string{c.etcdDir, c.workDir} {
		if dir == "" {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}
