#!/usr/bin/env bash
# The whole test suite: unit tests, then kernel tests in throwaway network
# namespaces. Runs as root; a tier that cannot run fails and says why.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

if [ "$(id -u)" -ne 0 ]; then
  echo "test: the suite needs root for its kernel tiers (network namespaces, netfilter); run it as root" >&2
  exit 1
fi
command -v go >/dev/null || { scripts/setup.sh; exit 1; } # says how to get Go

# One build configuration for everything the suite compiles: the qemu
# guest's test binaries and the pod server must be static (CGO_ENABLED=0),
# and so is the control-plane build (scripts/cluster-tools.sh). With cgo on
# for vet, build and the host tests, every package that imports net (all of
# client-go) would be compiled twice more on a cold machine.
export CGO_ENABLED=0

# The packages (setup.sh) and the qemu guest's assets are downloads and
# unpacking, little CPU: on a cold machine they are fetched while vet and
# the build compile. They apt-get one after the other, and cluster-tools.sh
# (which may apt-get too) waits for both.
echo "== packages and qemu guest assets (cached; in the background)"
(scripts/setup.sh && scripts/vm-assets.sh >/dev/null) &
assets_pid=$!
# The control plane's module downloads (about 550 MB) overlap the compiles too.
scripts/cluster-tools.sh prefetch &
prefetch_pid=$!

echo "== gofmt / go vet"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
go vet ./...

echo "== build"
make --no-print-directory build

# Heavy, cached prerequisites of the kernel tiers, prepared before go test so
# their first-time cost (kube-apiserver build ~10 min, guest kernel download)
# never races a test timeout.
if ! wait "$assets_pid"; then
  echo "test: installing packages or preparing the qemu guest assets failed (scripts/setup.sh, scripts/vm-assets.sh)" >&2
  exit 1
fi
if ! wait "$prefetch_pid"; then
  echo "test: downloading the control plane's modules failed (scripts/cluster-tools.sh prefetch)" >&2
  exit 1
fi
echo "== control-plane binaries (cached)"
scripts/cluster-tools.sh >/dev/null

# KPROXY_KERNEL_TESTS=require turns "skip: not root / tool missing" into failures,
# so CI never passes with a kernel tier silently skipped.
export KPROXY_KERNEL_TESTS=require
export KPROXY_BIN="$PWD/bin/kproxy"

# Namespaces of an earlier run that was killed (a go test timeout or SIGKILL
# runs no cleanup) are deleted by their recorded owner (test/testns); any
# other kpx- namespace already here is not this run's and is left alone.
go run ./test/cmd/kpx-netns-reap
before=$(ip netns list 2>/dev/null | awk '$1 ~ /^kpx-/ {print $1}' | sort || true)
if [ -n "$before" ]; then
  echo "test: kpx- network namespaces present before the run, not created by it (left alone):" $before >&2
fi

echo "== tests (unit; kernel: netns, qemu guest, control plane)"
# Under set -e a failing pipeline would end the script here, before the
# leftover check below: catch the status instead (pipefail makes it go
# test's when tee succeeds).
status=0
# The two long packages (the qemu guest, ~12 min; the netns e2e suite,
# ~12 min; they run side by side) are named first: go test builds and
# starts packages in the order given, so they no longer wait for every
# other test binary to compile.
go test -count=1 -timeout 20m ./test/vm ./test/e2e ./... 2>&1 | tee /tmp/kproxy-test.log || status=$?

# Runs after failing tests too: a failed test is the likeliest to leave a
# namespace behind.
# Every test binary has exited: a namespace still owned by one of them is a
# leak of this run (reported, then deleted so the next run starts clean).
if ! go run ./test/cmd/kpx-netns-reap -leaks; then
  [ "$status" -ne 0 ] || status=1
fi
left=$(comm -13 <(echo "$before") <(ip netns list 2>/dev/null | awk '$1 ~ /^kpx-/ {print $1}' | sort) || true)
if [ -n "$left" ]; then
  echo "test: network namespaces left behind:" $left >&2
  [ "$status" -ne 0 ] || status=1
fi
exit "$status"
