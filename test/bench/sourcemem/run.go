package sourcemem

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2"

	"github.com/kproxy/kproxy/informers"
	"github.com/kproxy/kproxy/informers/apiclient/fromclientset"
	"github.com/kproxy/kproxy/proxier"
	"github.com/kproxy/kproxy/proxier/apivalidation"
)

// Options configures Measure.
type Options struct {
	Services  int
	Endpoints int
	// ResyncPeriod is the informers' resync period (kube-proxy's default
	// configSyncPeriod is 15m).
	ResyncPeriod time.Duration
	// Timeout bounds the wait for the first snapshot.
	Timeout time.Duration
	// AfterSnapshot, when set, runs after the live heap was measured,
	// with the pipeline still holding everything (e.g. to write a heap
	// profile).
	AfterSnapshot func() error
}

// Result is one measurement, in bytes of Go heap (runtime/metrics
// /memory/classes/heap/objects:bytes: live objects plus those not yet
// swept).
type Result struct {
	// Store is the heap the fake API server's objects take, before the
	// source starts: subtracted from the figures below.
	Store uint64
	// Live is what the pipeline keeps after the first snapshot, measured
	// after two forced collections.
	Live uint64
	// Peak is the highest heap seen (sampled every millisecond) from the
	// start of the source until the first snapshot was taken.
	Peak uint64
	// Allocated is the bytes allocated over the same span.
	Allocated uint64
	// Synced is the time from the start of the source to the end of the
	// first snapshot.
	Synced time.Duration
	// ServicePorts is the number of service ports in the first snapshot.
	ServicePorts int
}

// Measure feeds opts.Services Services with one EndpointSlice of
// opts.Endpoints endpoints each through the path cluster mode takes
// (client-go shared informers over a fake clientset, RunCluster, the
// validation handlers, one IPv4 Tracker) up to the first Snapshot, the
// state a first full sync renders from.
func Measure(ctx context.Context, opts Options) (Result, error) {
	var res Result
	client := fake.NewSimpleClientset(objects(opts)...)
	res.Store = heapAfterGC()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	peak := startPeakSampler(ctx)
	allocStart := readMetric("/gc/heap/allocs:bytes")
	start := time.Now()

	logger := klog.Background().V(1) // discards: nothing here is worth a line per object
	tracker := proxier.NewTracker(proxier.TrackerOptions{Family: v1.IPv4Protocol, NodeName: NodeName, Logger: logger})
	handlers := apivalidation.NewHandlers(apivalidation.HandlerOptions{Next: informers.HandlersOf(tracker), Logger: logger})
	var wg sync.WaitGroup
	srcErr := make(chan error, 1)
	wg.Go(func() {
		srcErr <- informers.RunCluster(ctx, informers.ClusterOptions{Client: fromclientset.New(client), NodeName: NodeName,
			ResyncPeriod: opts.ResyncPeriod, Handlers: handlers})
	})
	defer func() { cancel(); wg.Wait() }() // the source returns once ctx ends
	if err := waitInitialized(ctx, tracker, srcErr, opts.Timeout); err != nil {
		return res, err
	}
	snap := tracker.Snapshot()
	res.ServicePorts = snap.Len()
	res.Synced = time.Since(start)
	res.Allocated = readMetric("/gc/heap/allocs:bytes") - allocStart
	res.Peak = sub(peak(), res.Store)
	res.Live = sub(heapAfterGC(), res.Store)
	if opts.AfterSnapshot != nil {
		if err := opts.AfterSnapshot(); err != nil {
			return res, err
		}
	}
	runtime.KeepAlive(client)
	runtime.KeepAlive(tracker)
	if res.ServicePorts != opts.Services {
		return res, fmt.Errorf("first snapshot has %d service ports, want %d", res.ServicePorts, opts.Services)
	}
	return res, nil
}

func objects(opts Options) []kruntime.Object {
	objs := make([]kruntime.Object, 0, 2*opts.Services+1)
	objs = append(objs, Node())
	for i := range opts.Services {
		objs = append(objs, Service(i), EndpointSlice(i, opts.Endpoints))
	}
	return objs
}

func waitInitialized(ctx context.Context, tracker *proxier.Tracker, srcErr <-chan error, timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !tracker.Initialized() {
		select {
		case err := <-srcErr:
			return fmt.Errorf("source stopped before the initial listing: %w", err)
		case <-deadline:
			return errors.New("timed out waiting for the initial listing")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// startPeakSampler samples the heap every millisecond until ctx ends; the
// returned function reports the highest value so far.
func startPeakSampler(ctx context.Context) func() uint64 {
	var mu sync.Mutex
	var peak uint64
	sample := func() {
		v := readMetric("/memory/classes/heap/objects:bytes")
		mu.Lock()
		peak = max(peak, v)
		mu.Unlock()
	}
	go func() {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() uint64 {
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

func heapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	return readMetric("/memory/classes/heap/objects:bytes")
}

func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func sub(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}
