// Package nftlisting normalizes the output of "nft list table" so that two
// listings of the same rules compare equal whatever order the kernel and
// the programs that wrote them happened to produce. The differential test
// of kproxy's nftables mode against upstream kube-proxy
// (test/e2e/cluster_nft_test.go) and the nftables benchmark use it.
//
// Contract of Normalize:
//
//   - Order that carries no meaning is made canonical: the chains, sets,
//     maps and flowtables of a table are sorted by kind and name; the
//     elements of a set or map ("elements = { ... }", which nft may spread
//     over several lines) are written one per line, sorted; the elements of
//     an anonymous set or map inside a rule ("{ a, b }") are sorted.
//   - Rule order inside a chain is kept: it is meaningful.
//   - Values that depend on the run and not on the rules are zeroed or
//     removed: counters ("counter packets N bytes M"), rule handles
//     ("# handle N", from nft -a), and the "expires" time of set elements
//     with a timeout.
//   - Nothing else is masked: a node IP, a chain name or a comment that
//     differs shows up in a diff. A listing it cannot parse (an unbalanced
//     brace, text outside a table) is an error, never a silently empty
//     result.
package nftlisting
