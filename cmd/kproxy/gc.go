package main

import (
	"runtime/debug"
)

// defaultGCPercent is kproxy's GOGC unless the environment sets one. At
// 10,000 services × 10 endpoints the live heap is about 80 MB (informer
// caches, the change tracker, the nftables mirror) and about 95 MB during
// a full sync; Go's default of 100 lets the heap double that before
// collecting (main-process peak RSS about 220 MB, kpx-nft-bench). The heap
// peaks during the first full sync, which allocates about 250 MB of short-
// lived data. TestKernelTiming10k, heap peak and first full sync (2 runs):
// GOGC=50 123/123 MB, 4.0/4.5 s; 25 101/103 MB, 4.2/3.8 s; 15 98 MB, 4.4 s;
// 10 94 MB, 5.3 s. Below 25 the heap is mostly live and collections only
// cost time.
const defaultGCPercent = 25

// tuneGC sets the garbage collector's target to defaultGCPercent unless
// GOGC is set (an operator's choice wins, GOGC=off included), and returns
// the target in force and where it came from.
func tuneGC(getenv func(string) string) (percent int, source string) {
	if v := getenv("GOGC"); v != "" {
		return currentGCPercent(), "GOGC"
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent, "default"
}

func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}
