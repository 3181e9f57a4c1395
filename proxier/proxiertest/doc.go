// Package proxiertest builds the snapshots that backend tests sync, the way
// production builds them: Services, EndpointSlices and the Node go through
// apivalidation's handlers and the real proxier.Tracker, so endpoint
// categorization (traffic policies, topology, terminating fallback) is the
// production code's and never re-implemented in a test.
//
// Objects are made with Service, Endpoint and SliceFor and their options;
// a World applies them and hands out snapshots:
//
//	w := proxiertest.NewWorld(t, proxiertest.WorldOptions{})
//	svc := proxiertest.Service("ns", "web", proxiertest.ClusterIP("10.0.0.10"))
//	w.Apply(svc, proxiertest.SliceFor(svc, proxiertest.Endpoint("10.1.0.1")))
//	snap := w.Snapshot() // the first one is full
//	w.ApplyService(svc, proxiertest.Endpoint("10.1.0.2"))
//	snap = w.Snapshot() // partial: Changed names web's port
//
// As production's, a snapshot is valid until the next Snapshot of its
// World: reading it later panics.
//
// The package is for tests only; nothing in production imports it.
package proxiertest
