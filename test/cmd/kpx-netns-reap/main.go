// kpx-netns-reap deletes the network namespaces that kproxy's tests,
// benchmarks or demo created (package test/testns) and whose creating
// process is gone: a test binary killed by a timeout or SIGKILL runs none
// of its cleanups. scripts/test.sh runs it before the suite (namespaces of
// an earlier, killed run) and with -leaks after it (then every orphan is a
// namespace this run leaked, and the exit status is 1).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/kproxy/kproxy/test/testns"
)

func main() {
	leaks := flag.Bool("leaks", false, "report reaped namespaces as leaks of the run that just ended (exit 1)")
	flag.Parse()
	reaped, err := testns.ReapOrphans()
	for _, o := range reaped {
		if *leaks {
			fmt.Fprintf(os.Stderr, "kpx-netns-reap: leaked by pid %d, deleted: %s\n", o.Owner, o.Name)
		} else {
			fmt.Printf("kpx-netns-reap: left by pid %d (gone), deleted: %s\n", o.Owner, o.Name)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kpx-netns-reap:", err)
		os.Exit(1)
	}
	if *leaks && len(reaped) > 0 {
		os.Exit(1)
	}
}
