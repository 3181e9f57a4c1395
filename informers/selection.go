package informers

import (
	"k8s.io/apimachinery/pkg/fields"
)

const (
	// LabelServiceProxyName marks a Service (and, copied by the EndpointSlice
	// controller, its slices) as handled by another proxy implementation.
	LabelServiceProxyName = "service.kubernetes.io/service-proxy-name"
	// LabelHeadless marks the EndpointSlices of headless Services.
	LabelHeadless = "service.kubernetes.io/headless"

	// ProxyLabelSelector is the label selector kube-proxy lists and watches
	// Services and EndpointSlices with: objects owned by another proxy and
	// headless slices are never seen.
	ProxyLabelSelector = "!" + LabelServiceProxyName + ",!" + LabelHeadless
)

// isProxied reports whether an object with these labels passes
// ProxyLabelSelector. The API server applies the selector; evaluating it
// again on the client keeps the contract when a server (or a fake) does not,
// and lets the manifest source share the rule.
func isProxied(objLabels map[string]string) bool {
	if _, ok := objLabels[LabelServiceProxyName]; ok {
		return false
	}
	_, headless := objLabels[LabelHeadless]
	return !headless
}

// nodeFieldSelector selects exactly one Node by name.
func nodeFieldSelector(nodeName string) string {
	return fields.OneTermEqualSelector("metadata.name", nodeName).String()
}
