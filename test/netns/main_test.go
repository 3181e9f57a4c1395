package netns_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kproxy/kproxy/test/netns"
)

// podserverBin is built once per test binary by TestMain (root only).
var podserverBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	if netns.SkipReason() == "" {
		dir, err := os.MkdirTemp("", "kpx-podserver-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if podserverBin, err = netns.BuildPodserver(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return m.Run()
}
