// Package cluster runs a real Kubernetes control plane for kproxy's cluster
// test tier: Debian's etcd and a kube-apiserver built from the pinned
// k8s.io/kubernetes release (scripts/cluster-tools.sh, module
// test/cluster/tools), both inside one network namespace with only loopback.
//
// Contract:
//
//   - Start creates the namespace "<prefix>-cp" (lo up, nothing else) unless
//     Options.Netns names an existing one, keeps etcd's data on tmpfs (on disk
//     etcd stalls for tens of seconds on this machine's storage), generates a
//     fresh PKI with Go's crypto, starts etcd and kube-apiserver with
//     "ip netns exec" in their own process groups, and returns once /readyz
//     answers ok and the default and kube-system namespaces exist. On any
//     failure it tears down what it made and returns an error that carries
//     the tail of the processes' logs.
//   - Nothing listens or dials outside the namespace. The admin client in
//     Cluster.Config dials 127.0.0.1 inside the namespace: each socket is
//     created on a locked OS thread switched into the namespace, so the test
//     process itself stays in its own namespace. Cluster.Kubeconfig is for a
//     process that runs inside the namespace (ip netns exec).
//   - Close stops the processes by process group id (SIGTERM, then SIGKILL),
//     kills anything else left in a namespace it created, deletes that
//     namespace and the tmpfs data, and is idempotent and safe after a partial
//     setup failure. It keeps the log directory when Options.LogDir was given.
//   - ServeAPIIn(ns) relays 127.0.0.1:port inside another namespace the
//     caller made to kube-apiserver (a TCP relay in the test process, no
//     link between the namespaces), so a second proxy in its own namespace
//     reads the same API with the same kubeconfig; Close stops the relays.
//   - StopAPIServer/StartAPIServer make an API outage with etcd kept
//     running; UpdateInEtcd changes a stored object behind kube-apiserver's
//     back (through etcd's JSON gateway, kube-apiserver's protobuf encoding),
//     so a test can make a change that exists only in storage while the API
//     is down. HTTPClient dials inside the namespace (health probes, etcd).
//   - The package does not import k8s.io/kubernetes: the binaries come from
//     the separate tools module (or KPROXY_ETCD_BIN / KPROXY_APISERVER_BIN).
//
// StartForTest is the testing wrapper: it skips (or fails under
// KPROXY_KERNEL_TESTS=require, test/kerneltest's policy) when the tier cannot run, closes the cluster on
// cleanup, and keeps and prints the logs of a failing test.
package cluster
