package cluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// tokenLifetime is what Token asks for; kube-apiserver's minimum is 10 minutes.
const tokenLifetime = 3600

// credentials are what a kubeconfig user authenticates with.
type credentials struct {
	certFile, keyFile string // client certificate
	token             string // bearer token
}

// writeKubeconfig writes a one-context kubeconfig for server, trusting the
// cluster CA (embedded, so the file stands alone).
func writeKubeconfig(path, server string, pki *PKI, cred credentials) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["kproxy-test"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: pki.CACert}
	cfg.AuthInfos["user"] = &clientcmdapi.AuthInfo{
		ClientCertificate: cred.certFile, ClientKey: cred.keyFile, Token: cred.token}
	cfg.Contexts["kproxy-test"] = &clientcmdapi.Context{Cluster: "kproxy-test", AuthInfo: "user"}
	cfg.CurrentContext = "kproxy-test"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// Token returns a bound token for namespace/serviceAccount through the
// TokenRequest API (valid for an hour; the ServiceAccount must exist).
func (c *Cluster) Token(ctx context.Context, namespace, serviceAccount string) (string, error) {
	req := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: new(int64(tokenLifetime)),
	}}
	resp, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, serviceAccount, req, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("token for %s/%s: %w", namespace, serviceAccount, err)
	}
	return resp.Status.Token, nil
}

// ConfigForToken is a client config that authenticates with a bearer token
// (see Token) and dials inside the namespace.
func (c *Cluster) ConfigForToken(token string) *rest.Config {
	cfg := c.restConfig()
	cfg.BearerToken = token
	return cfg
}

// ClientForToken is a clientset for ConfigForToken(token).
func (c *Cluster) ClientForToken(token string) (kubernetes.Interface, error) {
	client, err := kubernetes.NewForConfig(c.ConfigForToken(token))
	if err != nil {
		return nil, fmt.Errorf("client with token: %w", err)
	}
	return client, nil
}

// WriteTokenKubeconfig writes <name>.kubeconfig into the cluster's work
// directory, authenticating with token, for a process run inside the
// namespace (e.g. kproxy with the deploy/ ServiceAccount), and returns its
// path. The file is removed by Close.
func (c *Cluster) WriteTokenKubeconfig(name, token string) (string, error) {
	if name == "" || filepath.Base(name) != name {
		return "", fmt.Errorf("kubeconfig name %q: must be a plain file name", name)
	}
	path := filepath.Join(c.workDir, name+".kubeconfig")
	if err := writeKubeconfig(path, c.Server, c.PKI, credentials{token: token}); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return path, nil
}
