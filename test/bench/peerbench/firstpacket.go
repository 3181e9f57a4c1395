package peerbench

import (
	"context"
	"fmt"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// firstPacketProbes is how many connections are timed per service.
const firstPacketProbes = 30

// clusterIP returns service i's ClusterIP.
func (r *runner) clusterIP(ctx context.Context, i int) (string, error) {
	svc, err := r.client.CoreV1().Services(Namespace).Get(ctx, serviceName(i), metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("get %s: %w", serviceName(i), err)
	}
	return svc.Spec.ClusterIP, nil
}

// firstPacket times connections from ns to the first and the last
// service, alternating, and returns the medians.
func (r *runner) firstPacket(ctx context.Context, ns string) (first, last time.Duration, err error) {
	ips := make([]string, 2)
	for k, i := range []int{0, r.opts.Services - 1} {
		if ips[k], err = r.clusterIP(ctx, i); err != nil {
			return 0, 0, err
		}
	}
	times := make([][]time.Duration, 2)
	for range firstPacketProbes {
		for k, ip := range ips {
			start := time.Now()
			if _, err := connect(ns, ip); err != nil {
				return 0, 0, fmt.Errorf("connect to %s: %w (namespace state in %s)", ip, err, r.dumpState(ctx, ns))
			}
			times[k] = append(times[k], time.Since(start))
		}
	}
	for _, ts := range times {
		slices.Sort(ts)
	}
	return times[0][len(times[0])/2], times[1][len(times[1])/2], nil
}
