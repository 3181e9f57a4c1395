// Command kpx-demo is `make demo`: it builds an isolated world of network
// namespaces (a node, pods on a bridge, an external client), runs kproxy in
// the node namespace with example manifests, shows curl answers spreading over
// the pods through a ClusterIP and a NodePort, prints KUBE-SERVICES, and
// removes everything it created. Nothing touches the machine's own namespace.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/kproxy/kproxy/test/netns"
)

func main() {
	kproxy := flag.String("kproxy", "bin/kproxy", "kproxy binary")
	manifests := flag.String("manifests", "deploy/examples/demo", "manifests to proxy")
	requests := flag.Int("requests", 9, "curl requests per path")
	flag.Parse()
	if err := run(*kproxy, *manifests, *requests); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run(kproxyBin, manifests string, requests int) error {
	if reason := netns.SkipReason(); reason != "" {
		return fmt.Errorf("%s", reason)
	}
	kproxyBin, err := filepath.Abs(kproxyBin)
	if err != nil {
		return err
	}
	manifests, err = filepath.Abs(manifests)
	if err != nil {
		return err
	}
	step("Creating a namespace world: node, 3 pods on a bridge, a second node, an external client")
	w, err := netns.NewWorld(netns.Options{})
	if err != nil {
		return err
	}
	defer func() {
		step("Cleaning up: stopping processes, deleting namespaces " + w.Prefix + "-*")
		if err := w.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", err)
		}
	}()
	stopOnSignal(w)
	if err := startPods(w); err != nil {
		return err
	}
	step("Starting kproxy in " + w.Node + " with " + manifests)
	if _, err := w.Start(w.Node, kproxyBin, "--manifests", manifests, "--hostname-override", "kpx-node",
		"--cluster-cidr", "10.244.0.0/16", "-v", "2"); err != nil {
		return err
	}
	if err := waitForRules(w); err != nil {
		return err
	}
	show(w, "ClusterIP 10.96.0.10:80 from pod-1", w.Pods[0].Netns, "http://10.96.0.10/", requests)
	show(w, "NodePort 192.168.50.1:30080 from the external client", w.Client, "http://192.168.50.1:30080/", requests)
	step("iptables -t nat -S KUBE-SERVICES (in the node namespace)")
	out, err := w.Exec(w.Node, "iptables", "-t", "nat", "-S", "KUBE-SERVICES")
	fmt.Print(indent(string(out)))
	if err != nil {
		return err
	}
	step("curl 127.0.0.1:10249/proxyMode (in the node namespace)")
	out, _ = w.Exec(w.Node, "curl", "-s", "--max-time", "2", "http://127.0.0.1:10249/proxyMode")
	fmt.Println(indent(string(out)))
	return nil
}

func startPods(w *netns.World) error {
	dir, err := os.MkdirTemp("", "kpx-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	step("Building and starting a server in every pod (HTTP on 8080, UDP on 5353)")
	bin, err := netns.BuildPodserver(context.Background(), dir)
	if err != nil {
		return err
	}
	_, err = w.StartPodservers(bin, netns.ServerPorts{HTTP: []int{8080}, UDP: []int{5353}})
	return err
}

func waitForRules(w *netns.World) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := w.Exec(w.Node, "iptables", "-t", "nat", "-S", "KUBE-SERVICES")
		if strings.Contains(string(out), "demo/web:http cluster IP") {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("kproxy did not program demo/web within 30s")
}

// show runs curl from a namespace several times and prints who answered.
func show(w *netns.World, title, ns, url string, n int) {
	step(fmt.Sprintf("%s: %d x curl %s", title, n, url))
	counts := map[string]int{}
	for i := 0; i < n; i++ {
		out, err := w.Exec(ns, "curl", "-s", "--max-time", "2", url)
		line := strings.TrimSpace(string(out))
		if err != nil {
			line = "error: " + err.Error()
		}
		fmt.Println("    " + line)
		counts[strings.Fields(line + " ?")[0]]++
	}
	pods := make([]string, 0, len(counts))
	for p := range counts {
		pods = append(pods, p)
	}
	sort.Strings(pods)
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s=%d", p, counts[p]))
	}
	fmt.Println("    answered by: " + strings.Join(parts, " "))
}

func stopOnSignal(w *netns.World) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ch
		_ = w.Close()
		os.Exit(130)
	}()
}

func step(s string) { fmt.Println("==> " + s) }

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
