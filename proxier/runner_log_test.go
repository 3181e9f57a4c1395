package proxier

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestChangedNamesAreSortedAndBounded(t *testing.T) {
	snap := &Snapshot{Changed: map[ServicePortName]struct{}{}}
	for i := range 13 {
		snap.Changed[ServicePortName{NamespacedName: types.NamespacedName{Namespace: "ns", Name: fmt.Sprintf("svc%02d", i)}, Port: "p"}] = struct{}{}
	}
	got := changedNames(snap, 3)
	if want := "ns/svc00:p,ns/svc01:p,ns/svc02:p,... and 10 more"; strings.Join(got, ",") != want {
		t.Errorf("changedNames = %v, want %s", got, want)
	}
	if got := changedNames(&Snapshot{}, 3); len(got) != 0 {
		t.Errorf("no changes: %v", got)
	}
}
