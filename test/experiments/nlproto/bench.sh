#!/bin/bash
# bench.sh NS REPS: interleaved per-invocation wall-clock and CPU
# (perf stat task-clock) times, process start included, of nft -f vs the
# netlink writer, for the 3-line partial sync and for the 6-line one
# (plus three elements). Prints medians in ms. On a loaded machine the
# CPU figures are the steadier ones.
set -eu
ns=$1 reps=${2:-20}
bin=${NLPROTO_BIN:-/tmp/nlproto}
partial=${PARTIAL:?set PARTIAL to a partial transaction, e.g. DIR/tx-2.nft (see README)}
eq=${EQ:-$(dirname "$0")/eq-ip.nft}
nlflags=${NLFLAGS:-} # e.g. "-family ip6" (with PARTIAL and EQ for ip6)
out=$(mktemp -d)
wall() { # name cmd...: append one wall time and one CPU time (µs)
	local name=$1; shift
	local t0 t1
	t0=$(date +%s%N)
	perf stat -x, -e task-clock -o "$out/stat" -- "$@" >/dev/null
	t1=$(date +%s%N)
	echo $(( (t1 - t0) / 1000 )) >>"$out/$name"
	awk -F, '/task-clock/ {printf "%d\n", $1 * 1000}' "$out/stat" >>"$out/$name.cpu"
}
for ((i = 0; i < reps; i++)); do
	wall nft-partial ip netns exec "$ns" nft -f "$partial"
	wall netlink-partial "$bin" -netns "$ns" $nlflags -parts chain,rule
	wall nft-6line ip netns exec "$ns" nft -f "$eq"
	wall netlink-6line "$bin" -netns "$ns" $nlflags
done
for f in nft-partial netlink-partial nft-6line netlink-6line; do
	for f in $f $f.cpu; do
	sort -n "$out/$f" | awk -v n="$f" '{a[NR]=$1} END {printf "%-16s median %7.1f ms  min %7.1f  max %7.1f  (n=%d)\n", n, a[int((NR+1)/2)]/1000, a[1]/1000, a[NR]/1000, NR}'
	done
done
rm -r "$out"
