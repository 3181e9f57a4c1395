package healthcheck

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// ProxyHealthChecker reports kproxy's own health to the health-check node
// ports. *ProxyHealth implements it.
type ProxyHealthChecker interface {
	Healthy() bool
}

// ServiceHealthOptions configures a ServiceHealth.
type ServiceHealthOptions struct {
	// Addresses are the node addresses to listen on for each health-check
	// node port (nodePortAddresses); empty means all addresses of all families.
	Addresses []netip.Addr
	// Proxy is consulted on every request; nil means always healthy.
	Proxy ProxyHealthChecker
	// OnServeError, when set, is told about a server that stopped with an
	// error after it was started (listen errors are returned by SyncServices).
	OnServeError func(svc types.NamespacedName, err error)
}

// ServiceHealth runs the per-Service health-check node port servers. It is
// safe for concurrent use.
type ServiceHealth struct {
	opts ServiceHealthOptions

	mu      sync.RWMutex
	servers map[types.NamespacedName]*serviceServer
	counts  map[types.NamespacedName]int
}

type serviceServer struct {
	port      int32
	srv       *http.Server
	listeners []net.Listener
}

// NewServiceHealth returns a ServiceHealth with no servers.
func NewServiceHealth(opts ServiceHealthOptions) *ServiceHealth {
	return &ServiceHealth{
		opts:    opts,
		servers: make(map[types.NamespacedName]*serviceServer),
		counts:  make(map[types.NamespacedName]int),
	}
}

// SyncServices makes the set of servers equal to ports (Service → its
// healthCheckNodePort; zero ports are ignored). Servers of removed Services or
// changed ports are closed; missing ones are opened. A Service whose
// listener cannot be opened is reported in the returned error (one wrapped
// error per Service, naming it), left without a server, and retried on the
// next call; other Services are not affected.
func (s *ServiceHealth) SyncServices(ports map[types.NamespacedName]int32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, srv := range s.servers {
		if port, ok := ports[name]; !ok || port != srv.port {
			srv.close()
			delete(s.servers, name)
		}
	}
	var errs []error
	for name, port := range ports {
		if port == 0 || s.servers[name] != nil {
			continue
		}
		srv, err := s.open(name, port)
		if err != nil {
			errs = append(errs, fmt.Errorf("health check node port %d for service %s: %w", port, name, err))
			continue
		}
		s.servers[name] = srv
	}
	return errors.Join(errs...)
}

// SyncEndpoints sets the number of local ready endpoints per Service; Services
// not in counts report zero.
func (s *ServiceHealth) SyncEndpoints(counts map[types.NamespacedName]int) {
	next := make(map[types.NamespacedName]int, len(counts))
	for name, n := range counts {
		next[name] = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = next
}

// Ports returns the Services that currently have a server, with their ports.
func (s *ServiceHealth) Ports() map[types.NamespacedName]int32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[types.NamespacedName]int32, len(s.servers))
	for name, srv := range s.servers {
		out[name] = srv.port
	}
	return out
}

// Close stops every server.
func (s *ServiceHealth) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, srv := range s.servers {
		srv.close()
		delete(s.servers, name)
	}
}

func (s *ServiceHealth) listenAddrs(port int32) []string {
	p := strconv.Itoa(int(port))
	if len(s.opts.Addresses) == 0 {
		return []string{net.JoinHostPort("", p)}
	}
	addrs := make([]string, 0, len(s.opts.Addresses))
	for _, ip := range s.opts.Addresses {
		addrs = append(addrs, net.JoinHostPort(ip.String(), p))
	}
	return addrs
}

// open listens on every address first, so a partial failure leaves nothing open.
func (s *ServiceHealth) open(name types.NamespacedName, port int32) (*serviceServer, error) {
	srv := &serviceServer{
		port: port,
		srv:  &http.Server{Handler: s.handler(name), ReadHeaderTimeout: readHeaderTimeout},
	}
	for _, addr := range s.listenAddrs(port) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			srv.close()
			return nil, err
		}
		srv.listeners = append(srv.listeners, ln)
	}
	for _, ln := range srv.listeners {
		go s.serve(name, srv.srv, ln)
	}
	return srv, nil
}

func (s *ServiceHealth) serve(name types.NamespacedName, srv *http.Server, ln net.Listener) {
	err := srv.Serve(ln)
	if err != nil && !errors.Is(err, http.ErrServerClosed) && s.opts.OnServeError != nil {
		s.opts.OnServeError(name, err)
	}
}

// close releases the ports synchronously: the listeners are closed here, not
// only by the serving goroutines, so a port can be reopened at once.
func (srv *serviceServer) close() {
	_ = srv.srv.Close()
	for _, ln := range srv.listeners {
		_ = ln.Close()
	}
}

// serviceHealthBody is upstream's health-check node port body.
type serviceHealthBody struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (s *ServiceHealth) handler(name types.NamespacedName) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.RLock()
		count := s.counts[name]
		s.mu.RUnlock()
		var body serviceHealthBody
		body.Service.Namespace, body.Service.Name = name.Namespace, name.Name
		body.LocalEndpoints = count
		body.ServiceProxyHealthy = s.opts.Proxy == nil || s.opts.Proxy.Healthy()
		// Upstream writes the same document indented with tabs, no trailing newline.
		out, _ := json.MarshalIndent(body, "", "\t") // cannot fail: strings, int, bool
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(count))
		if count > 0 && body.ServiceProxyHealthy {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(out)
	})
}
