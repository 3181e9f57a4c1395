package main

import (
	"runtime/debug"
)

// defaultGCPercent is kproxy's GOGC unless the environment sets one. At
// 10,000 services × 10 endpoints the live heap is about 80 MB (informer
// caches, the change tracker, the nftables mirror); Go's default of 100
// lets the heap double that before collecting, which made the process's
// peak RSS about 220 MB. At 50 it peaked at 187-191 MB (kpx-nft-bench),
// for more frequent collections during a full sync, which took no longer
// (it allocates little since batches are framed in place).
const defaultGCPercent = 50

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
