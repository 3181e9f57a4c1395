package healthcheck

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/proxier/metrics"
)

// ToBeDeletedTaint is the taint the Cluster Autoscaler puts on a node it is
// about to delete; such a node fails /healthz so load balancers drain it.
const ToBeDeletedTaint = "ToBeDeletedByClusterAutoscaler"

// FamilyHealth is the health of one IP family's proxier.
type FamilyHealth struct {
	LastUpdated time.Time `json:"lastUpdated"`
	Healthy     bool      `json:"healthy"`
}

// Status is the /healthz and /livez JSON body, field for field as upstream.
type Status struct {
	// LastUpdated is the most recent Updated time of any family; handlers
	// replace it by "now" when healthy, for compatibility with old releases.
	LastUpdated time.Time `json:"lastUpdated"`
	CurrentTime time.Time `json:"currentTime"`
	// NodeEligible is set only in /healthz responses.
	NodeEligible *bool                        `json:"nodeEligible,omitempty"`
	Healthy      bool                         `json:"healthy"`
	Status       map[v1.IPFamily]FamilyHealth `json:"status,omitempty"`
}

// ProxyHealthOptions configures a ProxyHealth.
type ProxyHealthOptions struct {
	// SyncPeriod is the proxier's sync period; the health timeout is twice it.
	SyncPeriod time.Duration
	// Metrics, when set, counts /healthz and /livez responses.
	Metrics *metrics.Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ProxyHealth tracks proxier and node health and serves /healthz and /livez.
// It is safe for concurrent use.
type ProxyHealth struct {
	healthTimeout time.Duration
	metrics       *metrics.Metrics
	now           func() time.Time

	mu           sync.Mutex
	lastUpdated  map[v1.IPFamily]time.Time
	oldestQueued map[v1.IPFamily]time.Time
	nodeEligible bool
}

// NewProxyHealth returns a ProxyHealth. The node is ineligible until SyncNode
// is called with an eligible Node.
func NewProxyHealth(opts ProxyHealthOptions) *ProxyHealth {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &ProxyHealth{
		healthTimeout: 2 * opts.SyncPeriod,
		metrics:       opts.Metrics,
		now:           now,
		lastUpdated:   make(map[v1.IPFamily]time.Time),
		oldestQueued:  make(map[v1.IPFamily]time.Time),
	}
}

// QueuedUpdate records that the family's proxier has changes to apply. Only
// the oldest pending queue time counts.
func (h *ProxyHealth) QueuedUpdate(family v1.IPFamily) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, pending := h.oldestQueued[family]; !pending {
		h.oldestQueued[family] = h.now()
	}
}

// Updated records that the family's proxier applied everything queued.
func (h *ProxyHealth) Updated(family v1.IPFamily) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.oldestQueued, family)
	h.lastUpdated[family] = h.now()
}

// SyncNode records this node's eligibility: a missing Node, a Node being
// deleted, or one tainted ToBeDeletedByClusterAutoscaler is ineligible.
func (h *ProxyHealth) SyncNode(node *v1.Node) {
	eligible := nodeEligible(node)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nodeEligible = eligible
}

func nodeEligible(node *v1.Node) bool {
	if node == nil || node.DeletionTimestamp != nil {
		return false
	}
	for _, taint := range node.Spec.Taints {
		if taint.Key == ToBeDeletedTaint {
			return false
		}
	}
	return true
}

// NodeEligible reports the eligibility recorded by the last SyncNode.
func (h *ProxyHealth) NodeEligible() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nodeEligible
}

// Health returns the proxiers' health (node eligibility not included). As
// upstream, a family is judged only once it has been Updated at least once,
// so a proxier waiting for its first sync counts as healthy.
func (h *ProxyHealth) Health() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	st := Status{Healthy: true, CurrentTime: now, Status: make(map[v1.IPFamily]FamilyHealth)}
	for family, updated := range h.lastUpdated {
		if updated.After(st.LastUpdated) {
			st.LastUpdated = updated
		}
		queued, pending := h.oldestQueued[family]
		healthy := !pending || now.Sub(queued) < h.healthTimeout
		st.Status[family] = FamilyHealth{LastUpdated: updated, Healthy: healthy}
		st.Healthy = st.Healthy && healthy
	}
	return st
}

// Healthy reports whether every proxier is healthy (node eligibility not
// included); health-check node ports report it as serviceProxyHealthy.
func (h *ProxyHealth) Healthy() bool {
	return h.Health().Healthy
}

// Handler serves /healthz and /livez.
func (h *ProxyHealth) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", h.serveHealthz)
	mux.HandleFunc("/livez", h.serveLivez)
	return mux
}

// Serve listens on addr and serves Handler until ctx is done.
func (h *ProxyHealth) Serve(ctx context.Context, addr string) error {
	return ListenAndServe(ctx, addr, h.Handler())
}

func (h *ProxyHealth) serveHealthz(w http.ResponseWriter, _ *http.Request) {
	st := h.Health()
	eligible := h.NodeEligible()
	st.NodeEligible = &eligible
	var counter *prometheus.CounterVec
	if h.metrics != nil {
		counter = h.metrics.ProxyHealthzTotal
	}
	h.writeStatus(w, st, st.Healthy && eligible, counter)
}

func (h *ProxyHealth) serveLivez(w http.ResponseWriter, _ *http.Request) {
	st := h.Health()
	var counter *prometheus.CounterVec
	if h.metrics != nil {
		counter = h.metrics.ProxyLivezTotal
	}
	h.writeStatus(w, st, st.Healthy, counter)
}

func (h *ProxyHealth) writeStatus(w http.ResponseWriter, st Status, healthy bool, counter *prometheus.CounterVec) {
	code := http.StatusServiceUnavailable
	if healthy {
		code = http.StatusOK
		// Old releases reported the last sync-loop run even without changes,
		// so a healthy proxy reports a recent lastUpdated.
		st.LastUpdated = h.now()
	}
	if counter != nil {
		counter.WithLabelValues(strconv.Itoa(code)).Inc()
	}
	body, _ := json.Marshal(st) // cannot fail: only times, bools and strings
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
