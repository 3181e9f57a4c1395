package apiclient

import (
	"errors"
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ClientOptions mirrors kube-proxy's clientConnection settings plus the
// --kubeconfig and --master flags.
type ClientOptions struct {
	// Kubeconfig is a kubeconfig file path; empty means none.
	Kubeconfig string
	// Master overrides the API server address of the kubeconfig.
	Master string
	// ContentType is the content type of requests (e.g.
	// "application/vnd.kubernetes.protobuf"); empty keeps client-go's default.
	ContentType string
	// AcceptContentTypes is the Accept header; empty keeps client-go's default.
	AcceptContentTypes string
	// QPS and Burst rate-limit the client; zero keeps client-go's defaults.
	QPS   float32
	Burst int
	// UserAgent identifies the client; empty keeps client-go's default.
	UserAgent string
}

// NewClient builds an API client from a kubeconfig and/or master address,
// or, when neither is given, from the in-cluster ServiceAccount environment.
func NewClient(opts ClientOptions) (API, error) {
	cfg, err := restConfig(opts)
	if err != nil {
		return nil, err
	}
	cfg.ContentType = opts.ContentType
	cfg.AcceptContentTypes = opts.AcceptContentTypes
	cfg.QPS = opts.QPS
	cfg.Burst = opts.Burst
	if opts.UserAgent != "" {
		cfg.UserAgent = opts.UserAgent
	}
	return newRESTAPI(cfg)
}

func restConfig(opts ClientOptions) (*rest.Config, error) {
	if opts.Kubeconfig == "" && opts.Master == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no kubeconfig or master given, and not running in a cluster "+
				"(use --kubeconfig, --master or --manifests): %w", err)
		}
		return cfg, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}
	overrides := &clientcmd.ConfigOverrides{ClusterInfo: clientcmdapi.Cluster{Server: opts.Master}}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load client config (kubeconfig %q, master %q): %w", opts.Kubeconfig, opts.Master, err)
	}
	if cfg.Host == "" {
		return nil, errors.New("client config has no API server address")
	}
	return cfg, nil
}
