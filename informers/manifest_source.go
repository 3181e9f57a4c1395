package informers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/klog/v2"
)

// DefaultPollInterval is how often RunManifests looks for changes.
const DefaultPollInterval = time.Second

// ManifestOptions configures RunManifests.
type ManifestOptions struct {
	// Path is a manifest file or a directory of them (see LoadManifests).
	Path string
	// NodeName selects this node's Node object; when empty, the only Node
	// in the manifests (if there is exactly one) is used.
	NodeName string
	// Handlers receive the events, from a single goroutine.
	Handlers Handlers
	// PollInterval is how often files are checked; 0 means DefaultPollInterval.
	PollInterval time.Duration
	// Logger receives V(2) read summaries and ignored objects. The zero
	// value discards.
	Logger klog.Logger
	// OnError, when set, receives errors of re-reads (which keep the
	// previous state); otherwise they are logged.
	OnError func(error)
	// OnServiceCIDRs, when set, receives the ranges of the manifests'
	// valid ServiceCIDR objects, as RunServiceCIDRs's OnChange does from an
	// API server (ServiceCIDRPrefixes): after the first read's objects and
	// before its Synced calls, so the first sync has them, then after each
	// applied re-read that changes them. It is called on the handlers'
	// goroutine.
	OnServiceCIDRs func([]netip.Prefix)
}

func (o ManifestOptions) validate() error {
	var errs []error
	if o.Path == "" {
		errs = append(errs, errors.New("manifest source: Path is required"))
	}
	if err := o.Handlers.validate("manifest source"); err != nil {
		errs = append(errs, err)
	}
	if o.PollInterval < 0 {
		errs = append(errs, fmt.Errorf("manifest source: PollInterval %v is negative", o.PollInterval))
	}
	return errors.Join(errs...)
}

// RunManifests feeds opts.Handlers from manifest files as informers would
// from an API server. The first read must succeed (otherwise its error is
// returned); its objects are added, then the three Synced calls follow.
// Afterwards the files are re-read every PollInterval and differences are
// delivered as Add, Update and Delete calls. A re-read that fails keeps the
// previous state and is reported once through OnError or the Logger, so a
// broken edit never removes working services. It returns nil when ctx is
// done; handler calls happen only on the calling goroutine.
func RunManifests(ctx context.Context, opts ManifestOptions) error {
	if err := opts.validate(); err != nil {
		return err
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = DefaultPollInterval
	}
	src := &manifestSource{opts: opts, events: opts.Handlers.events()}
	files, err := readManifestFiles(opts.Path)
	if err != nil {
		return err
	}
	if err := src.apply(files); err != nil {
		return err
	}
	src.processed = src.digest(files, nil)
	src.observed = src.processed
	src.events.synced()

	ticker := time.NewTicker(opts.PollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			src.poll()
		}
	}
}

// manifestSource holds what has been delivered to the handlers.
type manifestSource struct {
	opts       ManifestOptions
	events     sourceEvents
	generation uint64
	services   objectSet[*v1.Service]
	slices     objectSet[*discovery.EndpointSlice]
	node       objectSet[*v1.Node]
	// cidrs were last given to OnServiceCIDRs (cidrsSent: at all).
	cidrs     []netip.Prefix
	cidrsSent bool
	// processed is the digest of the last read acted upon (applied or
	// reported); observed is the digest seen by the latest poll.
	processed, observed string
}

// poll re-reads the files. A change is acted upon once two consecutive
// polls see the same content, so a file caught half-written is not applied.
func (s *manifestSource) poll() {
	files, err := readManifestFiles(s.opts.Path)
	digest := s.digest(files, err)
	settling := digest != s.observed
	s.observed = digest
	if digest == s.processed || settling {
		return
	}
	s.processed = digest
	if err == nil {
		err = s.apply(files)
	}
	if err != nil {
		s.report(fmt.Errorf("re-read manifests, keeping previous state: %w", err))
	}
}

func (s *manifestSource) report(err error) {
	if s.opts.OnError != nil {
		s.opts.OnError(err)
		return
	}
	s.opts.Logger.Error(err, "Manifest change not applied")
}

// digest identifies a read: the file set and contents, or the read error.
func (s *manifestSource) digest(files []manifestFile, readErr error) string {
	if readErr != nil {
		return "error: " + readErr.Error()
	}
	h := sha256.New()
	for _, f := range files {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// apply parses files and delivers the differences from the current state.
// Nothing is delivered unless the whole read is valid.
func (s *manifestSource) apply(files []manifestFile) error {
	all, err := parseManifests(files)
	if err != nil {
		return err
	}
	objs := all.Select(s.opts.NodeName)
	services, err := newObjectSet(objs.Services)
	if err != nil {
		return fmt.Errorf("serialize services: %w", err)
	}
	slices, err := newObjectSet(objs.EndpointSlices)
	if err != nil {
		return fmt.Errorf("serialize endpoint slices: %w", err)
	}
	node, err := newObjectSet(objs.Nodes)
	if err != nil {
		return fmt.Errorf("serialize node: %w", err)
	}
	s.generation++
	s.services = reconcile(s.services, services, s.generation, s.events.services)
	s.slices = reconcile(s.slices, slices, s.generation, s.events.slices)
	s.node = reconcile(s.node, node, s.generation, s.events.node)
	s.logRead(all, objs)
	s.deliverServiceCIDRs(objs.ServiceCIDRs)
	return nil
}

// deliverServiceCIDRs gives OnServiceCIDRs the ranges when they differ
// from the last ones given (always on the first read).
func (s *manifestSource) deliverServiceCIDRs(scs []*networkingv1.ServiceCIDR) {
	if s.opts.OnServiceCIDRs == nil {
		return
	}
	cidrs := ServiceCIDRPrefixes(scs, s.opts.Logger)
	if s.cidrsSent && slices.Equal(cidrs, s.cidrs) {
		return
	}
	s.cidrs, s.cidrsSent = cidrs, true
	s.opts.OnServiceCIDRs(slices.Clone(cidrs))
}

func (s *manifestSource) logRead(all, selected *Objects) {
	// An object the API server would refuse is a mistake in the files:
	// said at the default verbosity, once per read that applies it.
	for _, r := range all.Rejected {
		s.opts.Logger.Info("Ignoring invalid manifest object", "location", r.Location,
			"kind", r.Kind, "name", r.Name, "errors", r.Reason)
	}
	logger := s.opts.Logger.V(2)
	if !logger.Enabled() {
		return
	}
	for _, ig := range all.Ignored {
		logger.Info("Ignoring manifest object of unused kind", "location", ig.Location,
			"apiVersion", ig.APIVersion, "kind", ig.Kind, "name", ig.Name)
	}
	nodeName := ""
	if len(selected.Nodes) == 1 {
		nodeName = selected.Nodes[0].Name
	}
	logger.Info("Read manifests", "path", s.opts.Path, "generation", s.generation,
		"services", len(selected.Services), "endpointSlices", len(selected.EndpointSlices),
		"node", nodeName, "nodesInManifests", len(all.Nodes), "serviceCIDRs", len(selected.ServiceCIDRs),
		"filteredOut", len(all.Services)+len(all.EndpointSlices)-len(selected.Services)-len(selected.EndpointSlices))
}
