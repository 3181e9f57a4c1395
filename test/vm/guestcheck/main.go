// Command guestcheck runs inside the test/vm guest and checks the kernel
// features kproxy's kernel tiers need: IPVS with ipvsadm, ipset, iptables
// rules (both the nft and legacy backends), nftables rules through nft,
// conntrack, SCTP sockets, veth and bridge links. It prints "kernel <release>", one "check <name>: ok" or
// "check <name>: FAIL: <reason>" line per check, and exits 1 if any failed.
// Everything but the SCTP socket happens in a network namespace it creates.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

const ns = "kpxvm-check"

// restoreRules uses the matches and targets kproxy's rules use.
const restoreRules = `*filter
:KUBE-TEST-FILTER - [0:0]
-A KUBE-TEST-FILTER -m conntrack --ctstate INVALID -j DROP
-A KUBE-TEST-FILTER -d 10.96.0.9/32 -p tcp -m comment --comment "ns/svc:p has no endpoints" -m tcp --dport 80 -j REJECT --reject-with icmp-port-unreachable
-A KUBE-TEST-FILTER -m mark --mark 0x4000/0x4000 -j ACCEPT
-A KUBE-TEST-FILTER -m set --match-set KUBE-TEST-SET dst,dst -j ACCEPT
COMMIT
*nat
:KUBE-TEST-SVC - [0:0]
:KUBE-TEST-SEP - [0:0]
:KUBE-TEST-POST - [0:0]
-A KUBE-TEST-SVC -d 10.96.0.1/32 -p tcp -m comment --comment "ns/svc:http cluster IP" -m tcp --dport 80 -m statistic --mode random --probability 0.50000000000 -j KUBE-TEST-SEP
-A KUBE-TEST-SVC -p udp -m udp --dport 53 -m recent --name KUBE-TEST-SEP --rcheck --seconds 10800 --reap -j KUBE-TEST-SEP
-A KUBE-TEST-SVC -p sctp -m sctp --dport 3868 -m addrtype --dst-type LOCAL -j KUBE-TEST-SEP
-A KUBE-TEST-SEP -s 10.244.1.11/32 -j MARK --or-mark 0x4000
-A KUBE-TEST-SEP -p tcp -m recent --set --name KUBE-TEST-SEP --mask 255.255.255.255 --rsource -m tcp -j DNAT --to-destination 10.244.1.11:8080
-A KUBE-TEST-POST -m mark ! --mark 0x4000/0x4000 -j RETURN
-A KUBE-TEST-POST -j MARK --xor-mark 0x4000
-A KUBE-TEST-POST -j MASQUERADE --random-fully
COMMIT
`

// nftRuleset uses the expressions kproxy's nftables mode writes (each needs
// its module loaded): dynamic sets with timeouts, verdict maps, numgen DNAT
// maps, marks, masquerade, ct state and status, fib and reject, in both
// families.
const nftRuleset = `table ip kpx-check {
	set affinity { type ipv4_addr; flags dynamic,timeout; timeout 3h; }
	map no-endpoints { type ipv4_addr . inet_proto . inet_service : verdict; elements = { 10.96.0.9 . tcp . 80 : goto reject-chain } }
	chain reject-chain { reject; }
	chain sep { ip saddr 10.244.1.11 mark set mark or 0x4000; update @affinity { ip saddr }; meta l4proto sctp dnat to 10.244.1.11:8080; }
	chain svc { meta l4proto sctp dnat ip addr . port to numgen random mod 2 map { 0 : 10.244.1.11 . 8080, 1 : 10.244.1.12 . 8080 }; }
	chain nat-prerouting { type nat hook prerouting priority dstnat; ip daddr 10.96.0.2 jump sep; ip daddr 10.96.0.1 jump svc; }
	chain nat-postrouting { type nat hook postrouting priority srcnat; mark and 0x4000 == 0 return; mark set mark xor 0x4000 masquerade fully-random; }
	chain filter-input { type filter hook input priority filter; ct state new ip daddr . meta l4proto . th dport vmap @no-endpoints; fib daddr type local ip daddr != 127.0.0.0/8 counter accept; }
	chain filter-forward { type filter hook forward priority filter; ct status dnat accept; ct state invalid drop; }
}
table ip6 kpx-check {
	chain filter-input { type filter hook input priority filter; fib daddr type local ip6 daddr fd00::9 reject; }
}
`

type check struct {
	name string
	run  func() error
}

func main() {
	os.Exit(run())
}

func run() int {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		fmt.Printf("kernel %s\n", utsString(u.Release[:]))
	}
	// lo must be up: IPVS refuses real servers (EINVAL) in a namespace
	// without a local routing table.
	if err := sh("sh", "-c", "/usr/bin/ip netns add "+ns+" && /usr/bin/ip -n "+ns+" link set lo up"); err != nil {
		fmt.Printf("check netns: FAIL: %v\n", err)
		return 1
	}
	defer sh("ip", "netns", "del", ns) //nolint:errcheck // the guest is thrown away anyway
	failed := 0
	for _, c := range checks() {
		if err := c.run(); err != nil {
			failed++
			fmt.Printf("check %s: FAIL: %v\n", c.name, err)
			continue
		}
		fmt.Printf("check %s: ok\n", c.name)
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func checks() []check {
	return []check{
		{"ipvs", inNS("ipvsadm", "-A", "-t", "10.96.0.1:80", "-s", "rr")},
		{"ipvs-real-server", inNS("ipvsadm", "-a", "-t", "10.96.0.1:80", "-r", "10.244.1.11:8080", "-m")},
		{"ipvs-schedulers", ipvsSchedulers},
		{"ipset", ipsets},
		{"iptables-nft", restore("iptables-nft-restore")},
		{"iptables-legacy", restore("iptables-legacy-restore")},
		{"nftables", nftables},
		{"conntrack", inNS("conntrack", "-L")},
		{"sctp-socket", sctpSocket},
		{"veth-bridge", vethBridge},
	}
}

func ipvsSchedulers() error {
	for i, s := range []string{"wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"} {
		if err := inNS("ipvsadm", "-A", "-u", fmt.Sprintf("10.96.1.%d:53", i+1), "-s", s)(); err != nil {
			return fmt.Errorf("scheduler %s: %w", s, err)
		}
	}
	return nil
}

func ipsets() error {
	sets := [][]string{
		{"KUBE-TEST-SET", "hash:ip,port"},
		{"KUBE-TEST-IP", "hash:ip"},
		{"KUBE-TEST-IPPORTIP", "hash:ip,port,ip"},
		{"KUBE-TEST-IPPORTNET", "hash:ip,port,net"},
		{"KUBE-TEST-NET", "hash:net"},
		{"KUBE-TEST-PORT", "bitmap:port", "range", "0-65535"},
	}
	for _, s := range sets {
		if err := inNS(append([]string{"ipset", "create"}, s...)...)(); err != nil {
			return err
		}
	}
	return inNS("ipset", "add", "KUBE-TEST-SET", "10.96.0.1,tcp:80")()
}

func restore(cmd string) func() error {
	return func() error {
		c := exec.Command("ip", "netns", "exec", ns, cmd, "--noflush")
		c.Stdin = strings.NewReader(restoreRules)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", cmd, err, strings.TrimSpace(string(out)))
		}
		return nil
	}
}

func nftables() error {
	c := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	c.Stdin = strings.NewReader(nftRuleset)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("nft -f: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return inNS("nft", "list", "table", "ip", "kpx-check")()
}

func sctpSocket() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_SCTP)
	if err != nil {
		return fmt.Errorf("socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP): %w", err)
	}
	return syscall.Close(fd)
}

func vethBridge() error {
	steps := [][]string{
		{"ip", "link", "add", "kpxbr0", "type", "bridge"},
		{"ip", "link", "add", "kpxv0", "type", "veth", "peer", "name", "kpxv1"},
		{"ip", "link", "set", "kpxv0", "master", "kpxbr0"},
		{"ip", "link", "add", "kube-ipvs0", "type", "dummy"},
		{"ip", "link", "set", "kpxbr0", "up"},
		{"sysctl", "-w", "net.bridge.bridge-nf-call-iptables=1"},
	}
	for _, s := range steps {
		if err := inNS(s...)(); err != nil {
			return err
		}
	}
	return nil
}

func inNS(args ...string) func() error {
	return func() error {
		return sh(append([]string{"ip", "netns", "exec", ns}, args...)...)
	}
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func utsString(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
