package e2e

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"

	"github.com/kproxy/kproxy/test/netns"
)

// ipvsVirtualServer is one virtual server of `ipvsadm -Ln` with its destinations.
type ipvsVirtualServer struct {
	scheduler string
	flags     string // the rest of the line, e.g. "persistent 600"
	dests     map[string]ipvsDestLine
}

// ipvsDestLine is one "  -> addr  Forward Weight ActiveConn InActConn" line.
type ipvsDestLine struct {
	forward                  string
	weight, active, inactive int
}

// ipvsadmHeader is what ipvsadm -Ln prints before the virtual servers.
var ipvsadmHeader = []string{
	"Prot LocalAddress:Port Scheduler Flags",
	"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
}

// parseIPVSAdm parses `ipvsadm -Ln` output into virtual servers keyed by
// "PROTO addr:port" (e.g. "TCP 10.96.0.10:80"). It fails on a line it does
// not understand, so a format change shows up as such.
func parseIPVSAdm(out string) (map[string]ipvsVirtualServer, error) {
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[0], "IP Virtual Server version ") ||
		lines[1] != ipvsadmHeader[0] || lines[2] != ipvsadmHeader[1] {
		return nil, fmt.Errorf("ipvsadm -Ln header is not %q:\n%s", ipvsadmHeader, out)
	}
	vss := map[string]ipvsVirtualServer{}
	var cur *ipvsVirtualServer
	for _, line := range lines[3:] {
		f := strings.Fields(line)
		switch {
		case len(f) >= 3 && slices.Contains([]string{"TCP", "UDP", "SCTP"}, f[0]) &&
			strings.HasPrefix(line, f[0]+"  "+f[1]+" "+f[2]):
			vs := ipvsVirtualServer{scheduler: f[2], flags: strings.Join(f[3:], " "), dests: map[string]ipvsDestLine{}}
			vss[f[0]+" "+f[1]] = vs
			cur = &vs
		case len(f) == 6 && f[0] == "->" && strings.HasPrefix(line, "  -> ") && cur != nil:
			d, err := parseIPVSDest(f)
			if err != nil {
				return nil, fmt.Errorf("line %q: %w", line, err)
			}
			cur.dests[f[1]] = d
		default:
			return nil, fmt.Errorf("unexpected ipvsadm -Ln line %q", line)
		}
	}
	return vss, nil
}

func parseIPVSDest(f []string) (ipvsDestLine, error) {
	d := ipvsDestLine{forward: f[2]}
	for i, p := range []*int{&d.weight, &d.active, &d.inactive} {
		n, err := strconv.Atoi(f[3+i])
		if err != nil {
			return d, err
		}
		*p = n
	}
	return d, nil
}

// ipvsadm runs and parses `ipvsadm -Ln` in the node namespace.
func (e *env) ipvsadm() map[string]ipvsVirtualServer {
	e.t.Helper()
	out := e.run(e.w.Node, "ipvsadm", "-Ln")
	vss, err := parseIPVSAdm(out)
	if err != nil {
		e.t.Fatal(err)
	}
	return vss
}

// ipsetListing is one set of `ipset list`.
type ipsetListing struct {
	typ     string
	members []string // sorted
}

// parseIPSetList parses `ipset list` into sets keyed by name.
func parseIPSetList(out string) (map[string]ipsetListing, error) {
	sets := map[string]ipsetListing{}
	name, inMembers := "", false
	for _, line := range strings.Split(out, "\n") {
		switch {
		case line == "":
			inMembers = false
		case strings.HasPrefix(line, "Name: "):
			name, inMembers = strings.TrimPrefix(line, "Name: "), false
			sets[name] = ipsetListing{}
		case name == "":
			return nil, fmt.Errorf("ipset list: %q before any Name:", line)
		case strings.HasPrefix(line, "Type: "):
			s := sets[name]
			s.typ = strings.TrimPrefix(line, "Type: ")
			sets[name] = s
		case line == "Members:":
			inMembers = true
		case inMembers:
			s := sets[name]
			s.members = append(s.members, line)
			sets[name] = s
		}
	}
	for n, s := range sets {
		slices.Sort(s.members)
		sets[n] = s
	}
	return sets, nil
}

// ipvsListingObjects are the services TestIPVSAdmAndIPSetListing programs.
func ipvsListingObjects(w *netns.World) []any {
	client := w.Addrs.ClientV4.String()
	web := service("web", "10.96.0.10", withNodePort(30080))
	ext := service("ext", "10.96.0.11", withExternalIPs(externalIP))
	lb := service("lb", "10.96.0.12", withLoadBalancer(lbIngressIP, 30081, client+"/32"))
	local := service("local", "10.96.0.13", withLoadBalancer("192.168.60.101", 30083), withExternalLocal(testHCNP))
	sticky := service("sticky", "10.96.0.14", withAffinity(600))
	dns := service("dns", "10.96.0.15", withProtocol(v1.ProtocolUDP), withNodePort(30084))
	return []any{
		web, slice(web, "a", endpoint(w, w.Pods[0]), endpoint(w, w.Pods[1]), endpoint(w, w.RemotePods[0])),
		ext, slice(ext, "a", endpoint(w, w.Pods[0])),
		lb, slice(lb, "a", endpoint(w, w.Pods[2])),
		local, slice(local, "a", endpoint(w, w.Pods[2]), endpoint(w, w.RemotePods[1])),
		sticky, slice(sticky, "a", endpoint(w, w.Pods[1])),
		dns, slice(dns, "a", endpoint(w, w.Pods[1])),
	}
}

// TestIPVSAdmAndIPSetListing checks kproxy's IPVS state as operators read
// it: `ipvsadm -Ln` virtual server and destination lines (scheduler,
// persistence, Masq, weight, a real connection counted as active) per
// service kind and traffic policy, `ipset list` with upstream's set names,
// types and exact members, and the addresses bound to kube-ipvs0.
func TestIPVSAdmAndIPSetListing(t *testing.T) {
	requireIPVSMode(t)
	t.Parallel()
	e := newEnv(t, envOptions{})
	w := e.w
	e.start(ipvsListingObjects(w)...)
	e.waitAnswer(w.Client, nodeAddr(w, 30080))
	e.waitHealthCheck(testHCNP, http.StatusOK, 1)

	conn := e.openLongLived(w.Pods[2].Netns, "10.96.0.10:80", 1)[0]
	e.checkIPVSAdm(conn.First.Pod)
	e.checkIPSets()
	addrs := e.run(w.Node, "ip", "-4", "-o", "addr", "show", "dev", "kube-ipvs0")
	for _, ip := range []string{"10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14", "10.96.0.15",
		externalIP, lbIngressIP, "192.168.60.101"} {
		if !strings.Contains(addrs, " "+ip+"/32 ") {
			t.Errorf("kube-ipvs0 lacks %s/32:\n%s", ip, addrs)
		}
	}
}

// checkIPVSAdm compares ipvsadm -Ln with the listing objects; activePod
// holds the one open connection to 10.96.0.10:80.
func (e *env) checkIPVSAdm(activePod string) {
	e.t.Helper()
	w := e.w
	ep := func(pods ...netns.Pod) []string {
		var out []string
		for _, p := range pods {
			out = append(out, podEndpoint(p))
		}
		slices.Sort(out)
		return out
	}
	webEPs := ep(w.Pods[0], w.Pods[1], w.RemotePods[0])
	want := []struct {
		vs, flags string
		dests     []string
	}{
		{"TCP 10.96.0.10:80", "", webEPs},
		{"TCP " + nodeAddr(w, 30080), "", webEPs},
		{"TCP " + externalIP + ":80", "", ep(w.Pods[0])},
		{"TCP 10.96.0.12:80", "", ep(w.Pods[2])},
		{"TCP " + lbIngressIP + ":80", "", ep(w.Pods[2])},
		{"TCP " + nodeAddr(w, 30081), "", ep(w.Pods[2])},
		// externalTrafficPolicy Local: the cluster IP keeps every endpoint, external addresses only local ones.
		{"TCP 10.96.0.13:80", "", ep(w.Pods[2], w.RemotePods[1])},
		{"TCP 192.168.60.101:80", "", ep(w.Pods[2])},
		{"TCP " + nodeAddr(w, 30083), "", ep(w.Pods[2])},
		{"TCP 10.96.0.14:80", "persistent 600", ep(w.Pods[1])},
		{"UDP 10.96.0.15:80", "", ep(w.Pods[1])},
		{"UDP " + nodeAddr(w, 30084), "", ep(w.Pods[1])},
	}
	vss := e.ipvsadm()
	for _, c := range want {
		vs, ok := vss[c.vs]
		if !ok {
			e.t.Errorf("ipvsadm -Ln has no virtual server %s", c.vs)
			continue
		}
		if vs.scheduler != "rr" || vs.flags != c.flags {
			e.t.Errorf("%s: scheduler %q flags %q, want rr %q", c.vs, vs.scheduler, vs.flags, c.flags)
		}
		if got := slices.Sorted(maps.Keys(vs.dests)); !slices.Equal(got, c.dests) {
			e.t.Errorf("%s: destinations %v, want %v", c.vs, got, c.dests)
		}
		for addr, d := range vs.dests {
			if d.forward != "Masq" || d.weight != 1 {
				e.t.Errorf("%s -> %s: %s weight %d, want Masq weight 1", c.vs, addr, d.forward, d.weight)
			}
		}
	}
	pod, _ := w.Pod(activePod)
	if d := vss["TCP 10.96.0.10:80"].dests[podEndpoint(pod)]; d.active < 1 {
		e.t.Errorf("open connection to %s not counted: TCP 10.96.0.10:80 -> %s has ActiveConn %d",
			activePod, podEndpoint(pod), d.active)
	}
	if e.t.Failed() {
		e.t.Logf("ipvsadm -Ln:\n%s", e.run(w.Node, "ipvsadm", "-Ln"))
	}
}

// checkIPSets compares `ipset list` with upstream's sets for the listing objects.
func (e *env) checkIPSets() {
	e.t.Helper()
	w := e.w
	loop := func(p netns.Pod, proto string) string {
		return fmt.Sprintf("%s,%s:%d,%s", p.IPv4, proto, podPort, p.IPv4)
	}
	client := w.Addrs.ClientV4.String()
	want := map[string]ipsetListing{
		"KUBE-CLUSTER-IP": {"hash:ip,port", []string{"10.96.0.10,tcp:80", "10.96.0.11,tcp:80", "10.96.0.12,tcp:80",
			"10.96.0.13,tcp:80", "10.96.0.14,tcp:80", "10.96.0.15,udp:80"}},
		// Local endpoints only: hairpin traffic from a pod to itself.
		"KUBE-LOOP-BACK": {"hash:ip,port,ip", []string{loop(w.Pods[0], "tcp"), loop(w.Pods[1], "tcp"),
			loop(w.Pods[1], "udp"), loop(w.Pods[2], "tcp")}},
		"KUBE-EXTERNAL-IP":               {"hash:ip,port", []string{externalIP + ",tcp:80"}},
		"KUBE-EXTERNAL-IP-LOCAL":         {"hash:ip,port", nil},
		"KUBE-LOAD-BALANCER":             {"hash:ip,port", []string{lbIngressIP + ",tcp:80", "192.168.60.101,tcp:80"}},
		"KUBE-LOAD-BALANCER-LOCAL":       {"hash:ip,port", []string{"192.168.60.101,tcp:80"}},
		"KUBE-LOAD-BALANCER-FW":          {"hash:ip,port", []string{lbIngressIP + ",tcp:80"}},
		"KUBE-LOAD-BALANCER-SOURCE-CIDR": {"hash:ip,port,net", []string{lbIngressIP + ",tcp:80," + client}},
		// Empty: the node's own address is not in the source ranges.
		"KUBE-LOAD-BALANCER-SOURCE-IP": {"hash:ip,port,ip", nil},
		"KUBE-NODE-PORT-TCP":           {"bitmap:port", []string{"30080", "30081", "30083"}},
		"KUBE-NODE-PORT-LOCAL-TCP":     {"bitmap:port", []string{"30083"}},
		"KUBE-NODE-PORT-UDP":           {"bitmap:port", []string{"30084"}},
		"KUBE-HEALTH-CHECK-NODE-PORT":  {"bitmap:port", []string{strconv.Itoa(testHCNP)}},
		"KUBE-IPVS-IPS": {"hash:ip", []string{"10.96.0.10", "10.96.0.11", "10.96.0.12", "10.96.0.13", "10.96.0.14",
			"10.96.0.15", lbIngressIP, "192.168.60.101", externalIP}},
	}
	out := e.run(w.Node, "ipset", "list")
	sets, err := parseIPSetList(out)
	if err != nil {
		e.t.Fatal(err)
	}
	for name, ws := range want {
		slices.Sort(ws.members)
		got, ok := sets[name]
		switch {
		case !ok:
			e.t.Errorf("ipset list has no set %s", name)
		case got.typ != ws.typ:
			e.t.Errorf("ipset %s: type %q, want %q", name, got.typ, ws.typ)
		case !slices.Equal(got.members, ws.members):
			e.t.Errorf("ipset %s: members %q, want %q", name, got.members, ws.members)
		}
	}
	if e.t.Failed() {
		e.t.Logf("ipset list:\n%s", out)
	}
}

// TestParseIPVSAdmAndIPSetList checks the listing parsers on real output
// captured in the guest (no root needed): fields, flags, and that an
// unknown ipvsadm line is an error rather than silently skipped.
func TestParseIPVSAdmAndIPSetList(t *testing.T) {
	const ipvsadmOut = "IP Virtual Server version 1.2.1 (size=4096)\n" + "Prot LocalAddress:Port Scheduler Flags\n" +
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n" +
		"TCP  10.96.0.10:80 rr\n" +
		"  -> 10.244.1.11:8080             Masq    1      2          3         \n" +
		"UDP  10.96.0.14:80 sh persistent 600\n" +
		"  -> 10.244.2.11:8080             Masq    0      0          1         \n"
	vss, err := parseIPVSAdm(ipvsadmOut)
	if err != nil {
		t.Fatal(err)
	}
	if vs := vss["TCP 10.96.0.10:80"]; vs.scheduler != "rr" || vs.flags != "" ||
		vs.dests["10.244.1.11:8080"] != (ipvsDestLine{"Masq", 1, 2, 3}) {
		t.Errorf("TCP 10.96.0.10:80 = %+v", vs)
	}
	if vs := vss["UDP 10.96.0.14:80"]; vs.scheduler != "sh" || vs.flags != "persistent 600" ||
		vs.dests["10.244.2.11:8080"] != (ipvsDestLine{"Masq", 0, 0, 1}) {
		t.Errorf("UDP 10.96.0.14:80 = %+v", vs)
	}
	if _, err := parseIPVSAdm(ipvsadmOut + "FWM  7 rr\n"); err == nil {
		t.Error("parseIPVSAdm accepted an unknown line")
	}

	sets, err := parseIPSetList("Name: KUBE-CLUSTER-IP\nType: hash:ip,port\nRevision: 6\nMembers:\n" +
		"10.96.0.11,tcp:80\n10.96.0.10,tcp:80\n\nName: KUBE-EXTERNAL-IP-LOCAL\nType: hash:ip,port\nMembers:\n")
	if err != nil {
		t.Fatal(err)
	}
	if s := sets["KUBE-CLUSTER-IP"]; s.typ != "hash:ip,port" ||
		!slices.Equal(s.members, []string{"10.96.0.10,tcp:80", "10.96.0.11,tcp:80"}) {
		t.Errorf("KUBE-CLUSTER-IP = %+v", s)
	}
	if s, ok := sets["KUBE-EXTERNAL-IP-LOCAL"]; !ok || s.typ != "hash:ip,port" || len(s.members) != 0 {
		t.Errorf("KUBE-EXTERNAL-IP-LOCAL = %+v (present %v)", s, ok)
	}
}
