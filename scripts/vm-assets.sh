#!/usr/bin/env bash
# Prepares the assets of the qemu kernel tier (test/vm): Debian's kernel and a
# base initramfs holding busybox, the netfilter/IPVS/SCTP modules kproxy needs
# (with modules.dep built by depmod -b) and the guest userland (iptables
# legacy+nft, nft, ipset, ipvsadm, conntrack, iproute2, curl) with its shared
# libraries.
#
# Idempotent and cached under ${KPROXY_CACHE:-/var/cache/kproxy}/vm, keyed by
# the kernel package version, the host tools' versions and this script, so a
# second run only resolves versions and prints the paths.
#
# Output (stdout, one per line): kernel=PATH, initrd=PATH, kver=VERSION.
# Progress goes to stderr. Needs root when packages are missing.
set -euo pipefail
export LC_ALL=C

cache="${KPROXY_CACHE:-/var/cache/kproxy}/vm"
script_sum=$(sha256sum "$0" | cut -c1-12)
log() { echo "vm-assets: $*" >&2; }
die() { log "$*"; exit 1; }
work=""
trap '[ -z "$work" ] || rm -rf "$work"' EXIT

# Modules the guest loads, in this order (crc32c_generic first: it is a soft
# dependency of libcrc32c that busybox modprobe does not follow).
MODULES=(
  crc32c_generic libcrc32c
  nf_conntrack nf_nat nf_conntrack_netlink nf_reject_ipv4 nf_reject_ipv6
  ip_tables ip6_tables iptable_filter iptable_nat iptable_mangle iptable_raw
  ip6table_filter ip6table_nat ip6table_mangle ip6table_raw
  nf_tables nft_compat nft_chain_nat nft_ct nft_reject_inet nft_masq nft_nat
  nft_reject_ipv4 nft_reject_ipv6 nft_numgen nft_fib_ipv4 nft_fib_ipv6 nft_fib_inet
  x_tables xt_comment xt_statistic xt_recent xt_addrtype xt_mark xt_conntrack
  xt_MASQUERADE xt_nat xt_REDIRECT xt_tcpudp xt_sctp xt_set xt_multiport xt_physdev
  xt_CT xt_limit xt_state xt_ipvs ipt_REJECT ip6t_REJECT
  ip_set ip_set_hash_ip ip_set_hash_ipport ip_set_hash_ipportip
  ip_set_hash_ipportnet ip_set_bitmap_port ip_set_hash_net
  ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_sh
  ip_vs_dh ip_vs_sed ip_vs_nq ip_vs_mh ip_vs_fo ip_vs_ovf
  dummy veth bridge br_netfilter sctp
)

# Host commands the guest gets (with their libraries), and the packages that
# provide them. curl is for the e2e tests that query health-check node ports
# (test/e2e runs in the guest for IPVS mode); nft is what knftables runs in
# nftables mode (test/e2e's SCTP test runs in the guest in every mode).
TOOLS=(
  /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft
  /usr/sbin/ipset /usr/sbin/ipvsadm /usr/sbin/conntrack /usr/bin/ip /usr/bin/curl
)
# busybox-static is not installed (it would replace a host's busybox): its
# deb is downloaded and /bin/busybox taken from it.
HOST_PKGS=(qemu-system-x86 cpio kmod iptables nftables ipset ipvsadm conntrack iproute2 curl)

ensure_host_packages() {
  local missing=() p
  for p in "${HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]} and not root"
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  }
}

# resolve_packages prints "KERNELPKG VERSION BUSYBOXVERSION": the versioned
# kernel package linux-image-amd64 depends on, and busybox-static's candidate.
# apt-cache takes about a second, so the answer is remembered until the apt
# lists change.
resolve_packages() {
  local stamp memo
  stamp=$(stat -c '%n %Y %s' /var/lib/apt/lists/*Packages* 2>/dev/null | sha256sum | cut -c1-16)
  memo="$cache/resolved-$stamp"
  if [ ! -s "$memo" ]; then
    apt-cache show --no-all-versions linux-image-amd64 busybox-static 2>/dev/null |
      awk '/^Package:/ {pkg = $2}
           pkg == "busybox-static" && /^Version:/ {bb = $2}
           pkg == "linux-image-amd64" && /^Depends:/ {
             for (i = 2; i <= NF; i++) if ($i ~ /^linux-image-[0-9]/) {img = $i; ver = $(i+2); sub(/\)$/, "", ver)}
           }
           END {if (img != "" && bb != "") print img, ver, bb}' >"$memo.tmp"
    mv "$memo.tmp" "$memo"
    find "$cache" -maxdepth 1 -name 'resolved-*' ! -name "resolved-$stamp" -delete
  fi
  cat "$memo"
}

cache_key() {
  local img=$1 ver=$2 bb=$3
  {
    echo "$img=$ver busybox-static=$bb"
    dpkg-query -W -f='${Package}=${Version}\n' "${HOST_PKGS[@]}"
    echo "script=$script_sum"
  } | sha256sum | cut -c1-16
}

# deb_name is apt-get download's file name for package $1 version $2.
deb_name() { echo "${1}_${2/:/%3a}_amd64.deb"; }

# download_deb fetches package $1 version $2 into the cache, prints its path.
download_deb() {
  local pkg=$1 ver=$2 debs="$cache/debs" f
  f="$debs/$(deb_name "$pkg" "$ver")"
  mkdir -p "$debs"
  if [ ! -s "$f" ]; then
    log "downloading $pkg $ver"
    (cd "$debs" && apt-get download -qq "$pkg=$ver" >/dev/null 2>&1) ||
      { apt-get update -qq >/dev/null; (cd "$debs" && apt-get download -qq "$pkg=$ver" >/dev/null); }
  fi
  [ -s "$f" ] || die "apt-get download $pkg=$ver left no $f"
  echo "$f"
}

# modules_closure prints the relative paths of MODULES and their dependencies
# in the extracted tree $1 for kernel $2, skipping built-in modules.
modules_closure() {
  local root=$1 kver=$2 m
  for m in "${MODULES[@]}"; do
    modprobe -d "$root" -S "$kver" --show-depends "$m" 2>/dev/null |
      awk '$1 == "insmod" {print $2}' || log "module $m: not found or built in"
  done | sed "s|^$root/lib/modules/$kver/||" | sort -u
}

stage_modules() {
  local x=$1 kver=$2 out=$3 rel
  depmod -b "$x" "$kver"
  mkdir -p "$out/lib/modules/$kver"
  cp "$x/lib/modules/$kver/modules.order" "$x/lib/modules/$kver/modules.builtin"* "$out/lib/modules/$kver/"
  modules_closure "$x" "$kver" | while read -r rel; do
    mkdir -p "$out/lib/modules/$kver/$(dirname "$rel")"
    cp "$x/lib/modules/$kver/$rel" "$out/lib/modules/$kver/$rel"
  done
  # Compressed modules are unpacked: busybox modprobe may lack the decompressor.
  find "$out/lib/modules/$kver" -name '*.ko.xz' -exec xz -d {} +
  find "$out/lib/modules/$kver" -name '*.ko.zst' -exec zstd -q --rm -d {} +
  depmod -b "$out" "$kver"
  printf '%s\n' "${MODULES[@]}" >"$out/etc/kpx-modules"
}

copy_with_libs() {
  local out=$1 f lib
  shift
  for f in "$@"; do
    mkdir -p "$out$(dirname "$f")"
    cp -L "$f" "$out$f"
    for lib in $(ldd "$f" 2>/dev/null | awk '/=>/ {print $3} !/=>/ && $1 ~ /^\// {print $1}'); do
      [ -e "$out$lib" ] && continue
      mkdir -p "$out$(dirname "$lib")"
      cp -L "$lib" "$out$lib"
    done
  done
}

stage_userland() {
  local out=$1 bbdeb=$2 xt=/usr/lib/x86_64-linux-gnu/xtables n
  mkdir -p "$out"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,run,tmp,var,lib64,kpx}
  ln -s ../run "$out/var/run"
  dpkg-deb --fsys-tarfile "$bbdeb" | tar -xO ./bin/busybox >"$out/bin/busybox"
  chmod 0755 "$out/bin/busybox"
  copy_with_libs "$out" "${TOOLS[@]}" "$xt"/*.so
  local fam sfx
  for fam in iptables ip6tables; do
    for sfx in "" -save -restore; do
      ln -s xtables-nft-multi "$out/usr/sbin/$fam-nft$sfx"
      ln -s xtables-legacy-multi "$out/usr/sbin/$fam-legacy$sfx"
      # Default backend: nft, like the host's iptables 1.8.9 (see test/vm).
      ln -s xtables-nft-multi "$out/usr/sbin/$fam$sfx"
    done
  done
  ln -s ../../usr/bin/ip "$out/sbin/ip"
  cp /etc/protocols /etc/services /etc/ethertypes "$out/etc/" 2>/dev/null || true
  echo 'root:x:0:0:root:/root:/bin/sh' >"$out/etc/passwd"
  echo 'root:x:0:' >"$out/etc/group"
  install -m 0755 /dev/stdin "$out/init" <<'EOF'
#!/bin/busybox sh
# kproxy test guest: mount, load modules, run /kpx/cmd, print the marker, power off.
/bin/busybox --install -s
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mkdir -p /run/netns
for m in $(cat /etc/kpx-modules); do
  modprobe "$m" 2>/dev/null || grep -q "/$m.ko" "/lib/modules/$(uname -r)/modules.builtin" ||
    echo "kpx-init: modprobe $m failed"
done
ip link set lo up
cd /kpx
code=127
if [ -f /kpx/cmd ]; then
  sh /kpx/cmd </dev/null
  code=$?
fi
echo "$(cat /kpx/marker 2>/dev/null || echo KPX-VM-EXIT):$code"
sync
poweroff -f
reboot -f
EOF
}

build_assets() {
  local img=$1 ver=$2 bb=$3 dir=$4 deb bbdeb x out kver
  deb=$(download_deb "$img" "$ver")
  bbdeb=$(download_deb busybox-static "$bb")
  rm -rf "$cache"/extract.* # left by a killed run; we hold the lock
  x=$(mktemp -d "$cache/extract.XXXXXX")
  work=$x
  log "extracting $(basename "$deb")"
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards './boot/vmlinuz-*' './lib/modules/*' 2>/dev/null ||
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$x" --wildcards './boot/vmlinuz-*' './usr/lib/modules/*'
  [ -d "$x/lib/modules" ] || { mkdir -p "$x/lib"; mv "$x/usr/lib/modules" "$x/lib/modules"; }
  kver=$(ls "$x/lib/modules" | head -1)
  out="$x/root"
  stage_userland "$out" "$bbdeb"
  stage_modules "$x" "$kver" "$out"
  mkdir -p "$dir.tmp"
  cp "$x/boot/vmlinuz-$kver" "$dir.tmp/vmlinuz"
  (cd "$out" && find . | cpio -o -H newc --quiet -R 0:0) | gzip -1 >"$dir.tmp/base.cpio.gz"
  echo "$kver" >"$dir.tmp/kver"
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  rm -rf "$x"
}

main() {
  ensure_host_packages
  local img ver bb key dir
  mkdir -p "$cache"
  exec 9>"$cache/.lock"
  flock 9
  read -r img ver bb < <(resolve_packages) || true
  [ -n "${bb:-}" ] || die "cannot resolve linux-image-amd64 and busybox-static in apt's lists (apt-get update?)"
  key=$(cache_key "$img" "$ver" "$bb")
  dir="$cache/k-$key"
  if [ ! -f "$dir/base.cpio.gz" ]; then
    build_assets "$img" "$ver" "$bb" "$dir"
    # Older keys and kernel packages are stale now.
    find "$cache" -mindepth 1 -maxdepth 1 -type d -name 'k-*' ! -name "k-$key" -exec rm -rf {} +
    find "$cache/debs" -name '*.deb' ! -name "$(deb_name "$img" "$ver")" ! -name "$(deb_name busybox-static "$bb")" -delete
  fi
  echo "kernel=$dir/vmlinuz"
  echo "initrd=$dir/base.cpio.gz"
  echo "kver=$(cat "$dir/kver")"
}

main "$@"
