// Package vm runs kernel tests inside a throwaway qemu virtual machine booted
// with Debian's kernel (linux-image-amd64), for the kernel features this
// machine's own kernel lacks: IPVS, SCTP sockets, loadable modules.
//
// Assets: scripts/vm-assets.sh downloads and extracts the kernel package,
// keeps only the netfilter/nftables/IPVS/ipset/SCTP/bridge modules kproxy
// needs (with modules.dep built by depmod -b) and packs them with busybox and
// the guest userland (iptables nft and legacy, nft, ipset, ipvsadm, conntrack,
// iproute2, curl and their libraries) into a base initramfs, cached under
// ${KPROXY_CACHE:-/var/cache/kproxy}/vm. PrepareAssets runs it;
// KPROXY_VM_KERNEL and KPROXY_VM_INITRD override it.
//
// Run appends a second, uncompressed cpio archive holding a static binary
// (build it with CGO_ENABLED=0), its command line and extra files, boots
// qemu-system-x86_64 with a serial console and no network device at all
// (-nic none), and reads the result from the console: the base /init mounts
// proc, sys, dev and tmpfs, loads the modules (crc32c_generic first, since
// busybox modprobe ignores libcrc32c's soft dependency), brings lo up, runs
// the binary in /kpx with KPROXY_IN_VM=1 set, prints a per-run random marker
// followed by the exit code, and powers the guest off. The guest's iptables
// is iptables-nft; iptables-legacy* and iptables-nft* are both present.
//
// Guest gotchas: busybox sh runs its own applets before PATH, so a shell
// script (used as Binary) must call /usr/bin/ip, not ip, for iproute2; Go
// programs' exec.Command finds the real tools. IPVS refuses real servers
// (EINVAL) in a network namespace whose lo is down: bring lo up first.
//
// Acceleration: KVM is used only when /dev/kvm exists and the guest kernel
// actually boots with it (to its no-root-file-system panic, within 5 s):
// nested KVM can abort qemu at vCPU setup or never run the kernel at all.
// Otherwise qemu uses software emulation (TCG), about 10 s per boot.
// KPROXY_VM_ACCEL=kvm or tcg skips the probe.
//
// The qemu process is killed by its pid when the timeout expires or the
// context is cancelled. RunGoTest compiles a package's tests into a static
// test binary and runs it in the guest with -test.run and -test.v.
//
// Network safety: the guest has no network device, so nothing it does can
// reach the host or beyond; the host side only starts qemu.
package vm
