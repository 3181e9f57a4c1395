package objectfuzz

import "testing"

// Fuzz is the body of an object fuzzer: it adds the seeds, then extra, to
// f's corpus (Go's engine adds the files under testdata/fuzz/<name> itself)
// and runs check on each input as a Case.
func Fuzz(f *testing.F, extra []Case, check func(t *testing.T, c Case)) {
	for _, c := range append(Seeds(), extra...) {
		f.Add(c.NS, c.Name, c.PortName, c.SvcType, c.Protocol, c.Port, c.NodePort, c.HC, c.ClusterIPs, c.ExternalIP,
			c.LBIP, c.SourceRanges, c.Flags, c.Affinity, c.SliceName, c.SvcLabel, c.AddressType, c.EPAddrs, c.EPPortName,
			c.EPPort, c.NodeName)
	}
	f.Fuzz(func(t *testing.T, ns, name, portName string, svcType uint8, protocol string, port, nodePort, hc int32,
		clusterIPs, externalIP, lbIP, sourceRanges string, flags uint8, affinity int32,
		sliceName, svcLabel, addressType, epAddrs, epPortName string, epPort int32, nodeName string) {
		check(t, Case{ns, name, portName, svcType, protocol, port, nodePort, hc, clusterIPs, externalIP, lbIP,
			sourceRanges, flags, affinity, sliceName, svcLabel, addressType, epAddrs, epPortName, epPort, nodeName})
	})
}
