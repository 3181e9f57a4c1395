package peerbench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

const (
	// Namespace holds the benchmark's Services and EndpointSlices.
	Namespace = "bench"
	// NodeName is the Node the proxies run as.
	NodeName = "kpx-bench-node"
	// NodeIP is the node's address (on the Node and in every proxy namespace).
	NodeIP = "192.168.50.1"
	// remoteNode is where the endpoints live, so that none is local.
	remoteNode = "kpx-bench-node2"
	// createWorkers bounds concurrent API writes while creating objects.
	createWorkers = 16
)

// serviceName is the name of service i (0-based).
func serviceName(i int) string { return fmt.Sprintf("svc-%05d", i) }

// endpointIP is endpoint j of service i: distinct addresses in 10.128.0.0/9.
func endpointIP(i, j, perService int) string {
	n := uint32(i*perService+j) + 1
	return netip.AddrFrom4([4]byte{10, 128 + byte(n>>16&0x7f), byte(n >> 8), byte(n)}).String()
}

// changedIP is the address change k writes: in changedRange, never an
// initial one.
func changedIP(k int) string {
	n := uint32(k) + 1
	return netip.AddrFrom4([4]byte{10, 200 + byte(n>>16&0x7), byte(n >> 8), byte(n)}).String()
}

func nodeObject(name string, ip string) *v1.Node {
	return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
		Status: v1.NodeStatus{Addresses: []v1.NodeAddress{{Type: v1.NodeInternalIP, Address: ip}}}}
}

func serviceObject(i int) *v1.Service {
	return &v1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: serviceName(i)},
		Spec: v1.ServiceSpec{Type: v1.ServiceTypeClusterIP,
			Ports: []v1.ServicePort{{Name: "p", Port: 80, Protocol: v1.ProtocolTCP}}},
	}
}

func sliceObject(i, perService int) *discovery.EndpointSlice {
	s := &discovery.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Namespace: Namespace, Name: serviceName(i) + "-a",
			Labels: map[string]string{discovery.LabelServiceName: serviceName(i)}},
		AddressType: discovery.AddressTypeIPv4,
		Ports: []discovery.EndpointPort{{Name: ptr.To("p"), Port: ptr.To(int32(8080)),
			Protocol: ptr.To(v1.ProtocolTCP)}},
	}
	for j := range perService {
		s.Endpoints = append(s.Endpoints, discovery.Endpoint{Addresses: []string{endpointIP(i, j, perService)},
			Conditions: discovery.EndpointConditions{Ready: ptr.To(true), Serving: ptr.To(true), Terminating: ptr.To(false)},
			NodeName:   ptr.To(remoteNode)})
	}
	return s
}

// createObjects writes the Nodes, the namespace, and services Services with
// one EndpointSlice of perService endpoints each.
func createObjects(ctx context.Context, client kubernetes.Interface, services, perService int) error {
	for _, n := range []*v1.Node{nodeObject(NodeName, NodeIP), nodeObject(remoteNode, "192.168.50.2")} {
		got, err := client.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create node %s: %w", n.Name, err)
		}
		got.Status = n.Status
		if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("node %s status: %w", n.Name, err)
		}
	}
	ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	return forEach(ctx, services, func(i int) error {
		if _, err := client.CoreV1().Services(Namespace).Create(ctx, serviceObject(i), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create service %s: %w", serviceName(i), err)
		}
		if _, err := client.DiscoveryV1().EndpointSlices(Namespace).Create(ctx, sliceObject(i, perService), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create endpointslice of %s: %w", serviceName(i), err)
		}
		return nil
	})
}

// forEach runs fn(0..n-1) on createWorkers goroutines and returns the first error.
func forEach(ctx context.Context, n int, fn func(i int) error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for range createWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		mu.Lock()
		failed := len(errs) > 0
		mu.Unlock()
		if failed {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

// changeEndpoint replaces the first endpoint of service i by address ip
// and returns when the update was sent (after reading the slice).
func changeEndpoint(ctx context.Context, client kubernetes.Interface, i int, ip string) (time.Time, error) {
	api := client.DiscoveryV1().EndpointSlices(Namespace)
	s, err := api.Get(ctx, serviceName(i)+"-a", metav1.GetOptions{})
	if err != nil {
		return time.Time{}, fmt.Errorf("get endpointslice of %s: %w", serviceName(i), err)
	}
	s.Endpoints[0].Addresses = []string{ip}
	sent := time.Now()
	if _, err := api.Update(ctx, s, metav1.UpdateOptions{}); err != nil {
		return sent, fmt.Errorf("update endpointslice of %s: %w", serviceName(i), err)
	}
	return sent, nil
}
