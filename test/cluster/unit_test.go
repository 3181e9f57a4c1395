package cluster

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/kerneltest"
	"github.com/kproxy/kproxy/test/testns"
)

func parseCert(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("no PEM block in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func TestNewPKI(t *testing.T) {
	ips := []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(KubernetesServiceIP)}
	p, err := NewPKI(ips, []string{"localhost", "kubernetes.default.svc"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, p.CACert))
	tests := []struct {
		name   string
		cert   []byte
		usage  x509.ExtKeyUsage
		dns    string // checked with VerifyHostname when set
		groups []string
	}{
		{name: "serving by IP", cert: p.ServingCert, usage: x509.ExtKeyUsageServerAuth, dns: "127.0.0.1"},
		{name: "serving by service IP", cert: p.ServingCert, usage: x509.ExtKeyUsageServerAuth, dns: KubernetesServiceIP},
		{name: "serving by name", cert: p.ServingCert, usage: x509.ExtKeyUsageServerAuth, dns: "kubernetes.default.svc"},
		{name: "admin client", cert: p.AdminCert, usage: x509.ExtKeyUsageClientAuth, groups: []string{"system:masters"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cert := parseCert(t, tt.cert)
			opts := x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{tt.usage}, DNSName: tt.dns}
			if _, err := cert.Verify(opts); err != nil {
				t.Errorf("verify: %v", err)
			}
			if tt.groups != nil && !slices.Equal(cert.Subject.Organization, tt.groups) {
				t.Errorf("organization = %v, want %v", cert.Subject.Organization, tt.groups)
			}
		})
	}
	for name, key := range map[string][]byte{"serving": p.ServingKey, "admin": p.AdminKey, "sa": p.SAKey} {
		block, _ := pem.Decode(key)
		if block == nil {
			t.Fatalf("%s key: no PEM block", name)
		}
		if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Errorf("%s key: %v", name, err)
		}
	}
	block, _ := pem.Decode(p.SAPublicKey)
	if block == nil {
		t.Fatal("sa public key: no PEM block")
	}
	if _, err := x509.ParsePKIXPublicKey(block.Bytes); err != nil {
		t.Errorf("sa public key: %v", err)
	}
}

func TestPKIWrite(t *testing.T) {
	p, err := NewPKI([]net.IP{net.ParseIP("127.0.0.1")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := p.Write(dir); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p.Files.AdminKey)
	if err != nil || string(got) != string(p.AdminKey) {
		t.Errorf("admin key file: %v, content matches: %v", err, string(got) == string(p.AdminKey))
	}
	if fi, err := os.Stat(p.Files.SAKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("sa key file mode: %v, %v; want 0600", fi, err)
	}
}

func TestParseToolsOutput(t *testing.T) {
	tests := []struct {
		name    string
		out     string
		want    Binaries
		wantErr bool
	}{
		{name: "all", out: "etcd=/usr/bin/etcd\nkube-apiserver=/c/kube-apiserver\nkube-proxy=/c/kube-proxy\n",
			want: Binaries{Etcd: "/usr/bin/etcd", APIServer: "/c/kube-apiserver", KubeProxy: "/c/kube-proxy"}},
		{name: "noise ignored", out: "building...\netcd=/e\nkube-apiserver=/a\n",
			want: Binaries{Etcd: "/e", APIServer: "/a"}},
		{name: "no apiserver", out: "etcd=/e\n", wantErr: true},
		{name: "empty", out: "", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseToolsOutput([]byte(tt.out))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestAPIServerArgs(t *testing.T) {
	opts := Options{SecurePort: 7443, EtcdPort: 3379, APIServerArgs: []string{"--v=4"}}
	files := PKIFiles{CACert: "/p/ca.crt", ServingCert: "/p/s.crt", ServingKey: "/p/s.key", SAKey: "/p/sa.key",
		SAPublicKey: "/p/sa.pub"}
	args := apiServerArgs("/bin/kube-apiserver", "/w", files, opts)
	for _, want := range []string{
		"--etcd-servers=http://127.0.0.1:3379",
		"--bind-address=127.0.0.1",
		"--secure-port=7443",
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=Node,RBAC",
		"--client-ca-file=/p/ca.crt",
		"--tls-cert-file=/p/s.crt",
		"--tls-private-key-file=/p/s.key",
		"--service-account-key-file=/p/sa.pub",
		"--service-account-signing-key-file=/p/sa.key",
	} {
		if !slices.Contains(args, want) {
			t.Errorf("kube-apiserver args lack %s: %v", want, args)
		}
	}
	if args[len(args)-1] != "--v=4" {
		t.Errorf("extra args must come last (a later flag wins): %v", args)
	}
	etcd := strings.Join(etcdArgs("/usr/bin/etcd", "/dev/shm/x", 3379), " ")
	for _, want := range []string{"--listen-client-urls=http://127.0.0.1:3379", "--listen-peer-urls=http://127.0.0.1:3380",
		"--data-dir=/dev/shm/x"} {
		if !strings.Contains(etcd, want) {
			t.Errorf("etcd args lack %s: %s", want, etcd)
		}
	}
}

func TestDialerInRejectsHostNames(t *testing.T) {
	// A host name would be resolved and dialed on goroutines outside the
	// namespace; the dialer refuses before touching any namespace.
	dial := dialerIn("kpx-does-not-exist")
	for _, addr := range []string{"localhost:6443", "kubernetes.default:443", "no-port"} {
		if _, err := dial(context.Background(), "tcp", addr); err == nil ||
			!strings.Contains(err.Error(), "only ip:port") {
			t.Errorf("dial %q: err = %v, want a refusal", addr, err)
		}
	}
}

func TestDecodeManifestDeployFiles(t *testing.T) {
	var kinds []string
	for _, name := range []string{"serviceaccount.yaml", "rbac.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "deploy", name))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifest(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, o := range objs {
			kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		}
	}
	want := []string{"ServiceAccount/kproxy", "ClusterRoleBinding/kproxy:node-proxier"}
	if !slices.Equal(kinds, want) {
		t.Errorf("decoded %v, want %v", kinds, want)
	}
	if _, err := decodeManifest([]byte("metadata: {name: x}\n")); err == nil {
		t.Error("a document without kind must be rejected")
	}
}

// TestCloseRemovesEverything starts a cluster with a kept log directory,
// closes it, and checks that processes, namespace and data are gone and the
// logs remain. Its startup is the "warm" one when run after the API test.
func TestCloseRemovesEverything(t *testing.T) {
	logDir := t.TempDir()
	c := StartForTest(t, Options{LogDir: logDir})
	t.Logf("control plane ready in %v", c.StartupTime.Round(time.Millisecond))
	pids := make([]int, 0, len(c.procs))
	for _, p := range c.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still exists after Close (kill 0: %v)", pid, err)
		}
	}
	for _, path := range []string{testns.Path(c.Netns), c.etcdDir, c.workDir} {
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still exists after Close (%v)", path, err)
		}
	}
	for _, name := range []string{"etcd.log", "kube-apiserver.log"} {
		if fi, err := os.Stat(filepath.Join(logDir, name)); err != nil || fi.Size() == 0 {
			t.Errorf("log %s not kept: %v", name, err)
		}
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestStartFailureCleansUp gives Start programs that exit at once: it must
// say which one exited, and leave no namespace or tmpfs data behind.
func TestStartFailureCleansUp(t *testing.T) {
	if reason := SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	prefix, err := randomPrefix()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := Start(ctx, Options{Prefix: prefix, Binaries: Binaries{Etcd: "/bin/sleep", APIServer: "/bin/false"}})
	if err == nil {
		c.Close()
		t.Fatal("Start succeeded with /bin/false as kube-apiserver")
	}
	if !strings.Contains(err.Error(), "exited during startup") {
		t.Errorf("error = %v, want it to name the process that exited", err)
	}
	if _, err := os.Stat(testns.Path(prefix + "-cp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("namespace %s-cp left behind (%v)", prefix, err)
	}
	left, _ := filepath.Glob(filepath.Join(tmpfsDir, prefix+"-cp-etcd-*"))
	if len(left) != 0 {
		t.Errorf("etcd data left behind: %v", left)
	}
}

// TestStartInExistingNamespace runs the control plane in a namespace the
// caller owns (e.g. a netns World's node, so kproxy there reaches 127.0.0.1):
// Close must stop the processes and leave the namespace in place.
func TestStartInExistingNamespace(t *testing.T) {
	if reason := SkipReason(); reason != "" {
		kerneltest.SkipOrFail(t, reason)
	}
	prefix, err := randomPrefix()
	if err != nil {
		t.Fatal(err)
	}
	ns := prefix + "-own"
	if err := testns.Add(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := testns.Delete(ns); err != nil {
			t.Errorf("remove %s: %v", ns, err)
		}
	})
	c := StartForTest(t, Options{Netns: ns})
	if c.Netns != ns {
		t.Fatalf("cluster runs in %s, want %s", c.Netns, ns)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if _, err := os.Stat(testns.Path(ns)); err != nil {
		t.Errorf("caller's namespace %s removed by Close: %v", ns, err)
	}
	out, err := exec.Command("ip", "netns", "pids", ns).Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Errorf("processes left in %s after Close: %q (%v)", ns, out, err)
	}
}
