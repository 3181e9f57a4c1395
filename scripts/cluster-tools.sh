#!/usr/bin/env bash
# Provides the binaries of the cluster test tier (test/cluster): etcd from
# Debian's etcd-server package, kube-apiserver and kube-proxy built from the
# k8s.io/kubernetes module pinned in test/cluster/tools/go.mod.
#
# Idempotent: a package already installed is not touched and binaries already
# in the cache are not rebuilt, so later runs cost nothing (15 ms). Measured
# on 2 shared cores, in a cold scripts/test.sh (empty Go caches): 317 s, as
# it reuses the packages vet compiled (see the build flags below); a rebuild
# into an empty KPROXY_CACHE with a warm Go build cache takes about 11 s.
#
# Output (stdout), one per line, for test/cluster to parse:
#   etcd=/usr/bin/etcd
#   kube-apiserver=/var/cache/kproxy/cluster/v1.37.2/kube-apiserver
#   kube-proxy=/var/cache/kproxy/cluster/v1.37.2/kube-proxy
# Progress goes to stderr. `cluster-tools.sh prefetch` only downloads the
# modules of the build and prints nothing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/test/cluster/tools"
export PATH="$PATH:/usr/local/go/bin"

kube_cmds="k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-proxy"

log() { echo "cluster-tools: $*" >&2; }

# install_etcd installs etcd-server without letting the package start an etcd
# service in the root network namespace (policy-rc.d 101 = "do not start").
install_etcd() {
  if command -v etcd >/dev/null 2>&1; then return; fi
  if [ "$(id -u)" -ne 0 ]; then
    log "etcd missing and not root: cannot apt-get install etcd-server"
    exit 1
  fi
  log "installing etcd-server"
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -qq --no-install-recommends etcd-server >/dev/null; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
  fi
  if [ -n "$added" ]; then rm -f "$policy"; fi
}

# kube_version reads the pinned k8s.io/kubernetes version from the tools module.
kube_version() {
  awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 } $1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2 }' \
    "$tools/go.mod" | head -n1
}

# build_kube builds both binaries into $1 unless they are already there. The
# build goes to a temporary directory first so an interrupted build never
# leaves a half-written binary in the cache.
build_kube() {
  local out="$1" version="$2"
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-proxy" ]; then return; fi
  mkdir -p "$out"
  build_tmp="$(mktemp -d "$out/.build.XXXXXX")"
  trap 'rm -rf "$build_tmp"' EXIT
  local major minor
  major="${version#v}"; major="${major%%.*}"
  minor="${version#v*.}"; minor="${minor%%.*}"
  local pkg=k8s.io/component-base/version
  local ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  log "building kube-apiserver and kube-proxy $version (first build: several minutes)"
  local start=$SECONDS
  # No -trimpath and CGO_ENABLED=0, as scripts/test.sh builds the main
  # module, and the tools module pins the versions the main module uses of
  # what both build (client-go, apimachinery, x/net, protobuf, ...): the
  # packages the suite has just compiled come from the Go build cache
  # instead of being compiled a second time.
  (cd "$tools" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off nice -n 10 \
    go build -buildvcs=false -ldflags "$ldflags" -o "$build_tmp/" $kube_cmds)
  mv "$build_tmp/kube-apiserver" "$build_tmp/kube-proxy" "$out/"
  log "built in $((SECONDS - start))s"
}

# prefetch downloads the modules the build needs, and nothing else (no
# package install, no build): scripts/test.sh runs it in the background
# while it compiles the main module, so the build later finds them on disk.
prefetch() {
  local out
  out="${KPROXY_CACHE:-/var/cache/kproxy}/cluster/$(kube_version)"
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-proxy" ]; then return; fi
  (cd "$tools" && GOFLAGS=-mod=readonly GOWORK=off go list -deps $kube_cmds >/dev/null)
}

main() {
  if [ "${1:-}" = prefetch ]; then prefetch; return; fi
  install_etcd
  command -v go >/dev/null 2>&1 || { log "Go is required to build kube-apiserver"; exit 1; }
  local version out
  version="$(kube_version)"
  [ -n "$version" ] || { log "no k8s.io/kubernetes version in $tools/go.mod"; exit 1; }
  out="${KPROXY_CACHE:-/var/cache/kproxy}/cluster/$version"
  mkdir -p "$out"
  # Tests of several packages may ask at once: one builds, the others wait.
  exec 9>"$out/.lock"
  flock 9
  build_kube "$out" "$version"
  echo "etcd=$(command -v etcd)"
  echo "kube-apiserver=$out/kube-apiserver"
  echo "kube-proxy=$out/kube-proxy"
}

main "$@"
