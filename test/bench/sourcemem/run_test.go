package sourcemem

import (
	"context"
	"testing"
	"time"
)

// TestMeasureSmall keeps the harness working: a small world goes through
// the pipeline and every service port reaches the first snapshot.
func TestMeasureSmall(t *testing.T) {
	res, err := Measure(context.Background(), Options{Services: 20, Endpoints: 3, Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if res.ServicePorts != 20 || res.Allocated == 0 {
		t.Errorf("Measure = %+v, want 20 service ports and some allocation", res)
	}
}
