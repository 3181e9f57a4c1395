package netns

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// PodserverPackage is the import path of the pod server program.
const PodserverPackage = "github.com/kproxy/kproxy/test/podserver"

// podserverReady is printed by the pod server once every listener is bound.
const podserverReady = "ready"

// podserverStartTimeout bounds the wait for a pod server's ready line.
const podserverStartTimeout = 10 * time.Second

// ServerPorts are the ports a pod server listens on, on all addresses of
// both families.
type ServerPorts struct {
	TCP, UDP, SCTP []int
	// HTTP ports answer every request with "<pod> <seen source>" (for curl).
	HTTP []int
}

// BuildPodserver compiles the pod server into outDir with "go build" and
// returns the binary's path. It must run inside the kproxy module (tests and
// the demo do).
func BuildPodserver(ctx context.Context, outDir string) (string, error) {
	bin := filepath.Join(outDir, "podserver")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, PodserverPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w: %s", PodserverPackage, err, out)
	}
	return bin, nil
}

// PodserverArgs is the command line that runs bin as pod's server.
func PodserverArgs(bin string, pod Pod, ports ServerPorts) []string {
	argv := []string{bin, "-name", pod.Name}
	for _, f := range []struct {
		flag  string
		ports []int
	}{{"-tcp", ports.TCP}, {"-udp", ports.UDP}, {"-sctp", ports.SCTP}, {"-http", ports.HTTP}} {
		if len(f.ports) > 0 {
			argv = append(argv, f.flag, joinPorts(f.ports))
		}
	}
	return argv
}

func joinPorts(ports []int) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// StartPodserver runs the pod server in pod's namespace and waits until it
// listens on every port.
func (w *World) StartPodserver(bin string, pod Pod, ports ServerPorts) (*Process, error) {
	p, err := w.Start(pod.Netns, PodserverArgs(bin, pod, ports)...)
	if err != nil {
		return nil, err
	}
	if err := p.WaitOutput(podserverReady, podserverStartTimeout); err != nil {
		return nil, fmt.Errorf("pod server in %s: %w", pod.Name, err)
	}
	return p, nil
}

// StartPodservers starts a pod server in every pod of the world (node and
// node2), all on the same ports. The processes are killed by Close.
func (w *World) StartPodservers(bin string, ports ServerPorts) ([]*Process, error) {
	pods := w.AllPods()
	procs := make([]*Process, 0, len(pods))
	for _, pod := range pods {
		p, err := w.Start(pod.Netns, PodserverArgs(bin, pod, ports)...)
		if err != nil {
			return nil, err
		}
		procs = append(procs, p)
	}
	// Wait after starting all of them so their start-ups overlap.
	for i, p := range procs {
		if err := p.WaitOutput(podserverReady, podserverStartTimeout); err != nil {
			return nil, fmt.Errorf("pod server in %s: %w", pods[i].Name, err)
		}
	}
	return procs, nil
}
