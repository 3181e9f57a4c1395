package ipvs_test

import (
	"testing"

	"github.com/kproxy/kproxy/ipvs"
)

func TestNewDryRunNeedsOut(t *testing.T) {
	if _, err := ipvs.NewDryRun(ipvs.DryRunOptions{}); err == nil {
		t.Error("NewDryRun accepted no Out")
	}
}
