package netfilter

// LocalDetector holds the iptables matches that tell pod traffic from other
// traffic (upstream LocalTrafficDetector), e.g. {"-s", "10.0.0.0/8"} and
// {"!", "-s", "10.0.0.0/8"}. Empty slices are the no-op detector: no
// off-cluster ClusterIP masquerade rule and no ETP=Local pod short-circuit
// (iptables mode), and masquerading by source ClusterIP (IPVS mode).
type LocalDetector struct {
	IfLocal    []string
	IfNotLocal []string
}

// Implemented reports whether the detector matches anything (upstream IsImplemented).
func (d *LocalDetector) Implemented() bool { return len(d.IfLocal) > 0 && len(d.IfNotLocal) > 0 }
