// Package config loads, defaults and validates kproxy's configuration so that
// kproxy can replace kube-proxy without touching its deployment.
//
// The file format is upstream's only published one,
// kubeproxy.config.k8s.io/v1alpha1 KubeProxyConfiguration (the type from
// k8s.io/kube-proxy/config/v1alpha1), so the kube-proxy ConfigMap written by
// kubeadm (config.conf) is read as-is. The command-line flags are
// kube-proxy's, with the same names, help texts and precedence:
//
//   - with --config, every flag that maps to a config field is ignored except
//     --hostname-override, which overrides the file;
//   - without --config, upstream's defaults are overridden by the flags that
//     were set explicitly (pflag's Changed), and nothing is re-defaulted
//     afterwards, so an explicit zero stays zero exactly as upstream.
//
// Contract:
//
//   - LoadFile decodes strictly: unknown or duplicate fields are errors that
//     name the field path, and apiVersion/kind must be the v1alpha1 ones.
//     It does not default.
//   - Defaults fills unset fields with upstream's v1alpha1 defaults plus the
//     Linux platform defaults (mode iptables, detectLocalMode ClusterCIDR).
//     Nulls and zero durations in a file mean "use the default", as upstream.
//   - Validate returns every problem at once, each with its field path in the
//     Kubernetes style ("iptables.masqueradeBit: Invalid value: 32: ...").
//   - Resolve combines flags and file, defaults, validates and returns a
//     Config whose values are typed and ready to use (netip prefixes,
//     time.Duration, the masquerade mark string, the node-port addresses as
//     a netfilter.NodePortAddresses), plus the effective v1alpha1
//     object, which ConfigzJSON renders for /configz.
//
// Why this shape: the v1alpha1 object is the compatibility surface (file,
// /configz, --write-config-to) and stays the single source of truth; Config is
// a read-only projection so that the rest of kproxy never re-parses strings or
// re-implements upstream's mode-dependent field selection.
//
// Deliberate differences from upstream, kept small:
//
//   - an unknown field is an error (upstream falls back to lenient decoding
//     with a warning);
//   - a non-zero --healthz-port / --metrics-port replaces the port of the
//     corresponding bind address (upstream only appends it when missing,
//     which makes the flag a no-op with the default address).
//
// The package holds no global state and never logs.
package config
