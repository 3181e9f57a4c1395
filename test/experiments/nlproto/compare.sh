#!/bin/bash
# compare.sh BASE.nft EQUIV.nft FAMILY [nlproto flags…]: loads BASE into
# two fresh namespaces, applies EQUIV with nft -f in one and the netlink
# writer in the other, and diffs `nft list table FAMILY kube-proxy`.
# Example (10k services, ~15 s per load):
#   ./compare.sh DIR/tx-1.nft eq-ip.nft ip
#   ./compare.sh small-base-ip6.nft eq-ip6.nft ip6 -family ip6
#   ./compare.sh shapes-base.nft shapes.nft ip -shapes
set -eu
base=$1 eq=$2 fam=$3
shift 3
bin=${NLPROTO_BIN:-/tmp/nlproto}
a=kpx-nlp-cmp-nft-$$ b=kpx-nlp-cmp-nl-$$
out=$(mktemp -d)
cleanup() { ip netns del "$a" 2>/dev/null || true; ip netns del "$b" 2>/dev/null || true; rm -r "$out"; }
trap cleanup EXIT
for ns in "$a" "$b"; do
	ip netns add "$ns"
	ip netns exec "$ns" nft -f "$base"
done
ip netns exec "$a" nft -f "$eq"
"$bin" -netns "$b" "$@"
ip netns exec "$a" nft list table "$fam" kube-proxy >"$out/nft.txt"
ip netns exec "$b" nft list table "$fam" kube-proxy >"$out/netlink.txt"
if diff -u "$out/nft.txt" "$out/netlink.txt"; then
	echo "IDENTICAL ($(wc -l <"$out/nft.txt") lines)"
else
	exit 1
fi
