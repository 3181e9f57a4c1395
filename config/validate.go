package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kube-proxy/config/v1alpha1"
)

// ipvsSchedulers are the ipvs.scheduler values upstream accepts ("" means rr).
var ipvsSchedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"}

// Validate checks a defaulted configuration and returns every problem found,
// each prefixed with its field path, as one aggregate error (nil if valid).
func Validate(cfg *v1alpha1.KubeProxyConfiguration) error {
	return ValidateFields(cfg).ToAggregate()
}

// ValidateFields is Validate returning the individual field errors.
func ValidateFields(cfg *v1alpha1.KubeProxyConfiguration) field.ErrorList {
	var errs field.ErrorList
	mode := effectiveMode(cfg.Mode)
	errs = append(errs, validateMode(mode, field.NewPath("mode"))...)
	errs = append(errs, validateMasqueradeBit(cfg.IPTables.MasqueradeBit, field.NewPath("iptables", "masqueradeBit"))...)
	switch mode {
	case ModeIPTables:
		errs = append(errs, validateSyncPeriods(cfg.IPTables.SyncPeriod, cfg.IPTables.MinSyncPeriod, field.NewPath("iptables"))...)
	case ModeIPVS:
		errs = append(errs, validateIPVS(&cfg.IPVS, field.NewPath("ipvs"))...)
	case ModeNFTables:
		errs = append(errs, validateMasqueradeBit(cfg.NFTables.MasqueradeBit, field.NewPath("nftables", "masqueradeBit"))...)
		errs = append(errs, validateSyncPeriods(cfg.NFTables.SyncPeriod, cfg.NFTables.MinSyncPeriod, field.NewPath("nftables"))...)
	}
	errs = append(errs, validateConntrack(&cfg.Conntrack, field.NewPath("conntrack"))...)
	errs = append(errs, validateAddresses(cfg)...)
	errs = append(errs, validateDetectLocal(cfg)...)
	errs = append(errs, validateNodePortAddresses(cfg.NodePortAddresses, field.NewPath("nodePortAddresses"))...)
	errs = append(errs, validateMisc(cfg)...)
	return errs
}

func effectiveMode(m v1alpha1.ProxyMode) v1alpha1.ProxyMode {
	if m == "" {
		return ModeIPTables
	}
	return m
}

func validateMode(mode v1alpha1.ProxyMode, p *field.Path) field.ErrorList {
	switch mode {
	case ModeIPTables, ModeIPVS, ModeNFTables:
		return nil
	}
	return field.ErrorList{field.NotSupported(p, string(mode), []string{string(ModeIPTables), string(ModeIPVS), string(ModeNFTables)})}
}

func validateMasqueradeBit(bit *int32, p *field.Path) field.ErrorList {
	if bit != nil && (*bit < 0 || *bit > 31) {
		return field.ErrorList{field.Invalid(p, *bit, "must be within [0, 31]")}
	}
	return nil
}

func validateSyncPeriods(sync, minSync metav1.Duration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if sync.Duration <= 0 {
		errs = append(errs, field.Invalid(p.Child("syncPeriod"), sync.Duration.String(), "must be greater than 0"))
	}
	errs = append(errs, nonNegative(minSync, p.Child("minSyncPeriod"))...)
	// The ordering check is only meaningful once syncPeriod itself is valid.
	if sync.Duration > 0 && minSync.Duration > sync.Duration {
		errs = append(errs, field.Invalid(p.Child("syncPeriod"), sync.Duration.String(),
			fmt.Sprintf("must be greater than or equal to %s (%s)", p.Child("minSyncPeriod"), minSync.Duration)))
	}
	return errs
}

func nonNegative(d metav1.Duration, p *field.Path) field.ErrorList {
	if d.Duration < 0 {
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be greater than or equal to 0")}
	}
	return nil
}

func validateIPVS(c *v1alpha1.KubeProxyIPVSConfiguration, p *field.Path) field.ErrorList {
	errs := validateSyncPeriods(c.SyncPeriod, c.MinSyncPeriod, p)
	errs = append(errs, nonNegative(c.TCPTimeout, p.Child("tcpTimeout"))...)
	errs = append(errs, nonNegative(c.TCPFinTimeout, p.Child("tcpFinTimeout"))...)
	errs = append(errs, nonNegative(c.UDPTimeout, p.Child("udpTimeout"))...)
	if c.Scheduler != "" && !slices.Contains(ipvsSchedulers, c.Scheduler) {
		errs = append(errs, field.NotSupported(p.Child("scheduler"), c.Scheduler, ipvsSchedulers))
	}
	for i, s := range c.ExcludeCIDRs {
		if _, err := netip.ParsePrefix(s); err != nil {
			errs = append(errs, field.Invalid(p.Child("excludeCIDRs").Index(i), s, "must be a valid CIDR (e.g. 10.0.0.0/8)"))
		}
	}
	return errs
}

func validateConntrack(c *v1alpha1.KubeProxyConntrackConfiguration, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.MaxPerCore != nil && *c.MaxPerCore < 0 {
		errs = append(errs, field.Invalid(p.Child("maxPerCore"), *c.MaxPerCore, "must be greater than or equal to 0"))
	}
	if c.Min != nil && *c.Min < 0 {
		errs = append(errs, field.Invalid(p.Child("min"), *c.Min, "must be greater than or equal to 0"))
	}
	if c.TCPEstablishedTimeout != nil {
		errs = append(errs, nonNegative(*c.TCPEstablishedTimeout, p.Child("tcpEstablishedTimeout"))...)
	}
	if c.TCPCloseWaitTimeout != nil {
		errs = append(errs, nonNegative(*c.TCPCloseWaitTimeout, p.Child("tcpCloseWaitTimeout"))...)
	}
	errs = append(errs, nonNegative(c.UDPTimeout, p.Child("udpTimeout"))...)
	errs = append(errs, nonNegative(c.UDPStreamTimeout, p.Child("udpStreamTimeout"))...)
	return errs
}

func validateAddresses(cfg *v1alpha1.KubeProxyConfiguration) field.ErrorList {
	var errs field.ErrorList
	if _, err := netip.ParseAddr(cfg.BindAddress); err != nil {
		errs = append(errs, field.Invalid(field.NewPath("bindAddress"), cfg.BindAddress, "must be a valid IP address"))
	}
	// An empty address disables the server.
	if cfg.HealthzBindAddress != "" {
		errs = append(errs, validateHostPort(cfg.HealthzBindAddress, field.NewPath("healthzBindAddress"))...)
	}
	if cfg.MetricsBindAddress != "" {
		errs = append(errs, validateHostPort(cfg.MetricsBindAddress, field.NewPath("metricsBindAddress"))...)
	}
	return errs
}

func validateHostPort(addr string, p *field.Path) field.ErrorList {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return field.ErrorList{field.Invalid(p, addr, "must be IP:port")}
	}
	var errs field.ErrorList
	if _, err := netip.ParseAddr(host); err != nil {
		errs = append(errs, field.Invalid(p, addr, "must be IP:port with a valid IP"))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		errs = append(errs, field.Invalid(p, addr, "must be IP:port with a port within [1, 65535]"))
	}
	return errs
}

func validateDetectLocal(cfg *v1alpha1.KubeProxyConfiguration) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, validateClusterCIDR(cfg.ClusterCIDR, field.NewPath("clusterCIDR"))...)
	p := field.NewPath("detectLocalMode")
	switch mode := cfg.DetectLocalMode; mode {
	case "", LocalModeClusterCIDR, LocalModeNodeCIDR:
	case LocalModeBridgeInterface:
		if strings.TrimSpace(cfg.DetectLocal.BridgeInterface) == "" {
			errs = append(errs, field.Required(field.NewPath("detectLocal", "bridgeInterface"),
				"must be set when detectLocalMode is BridgeInterface"))
		}
	case LocalModeInterfaceNamePrefix:
		if strings.TrimSpace(cfg.DetectLocal.InterfaceNamePrefix) == "" {
			errs = append(errs, field.Required(field.NewPath("detectLocal", "interfaceNamePrefix"),
				"must be set when detectLocalMode is InterfaceNamePrefix"))
		}
	default:
		errs = append(errs, field.NotSupported(p, string(mode), []string{string(LocalModeClusterCIDR),
			string(LocalModeNodeCIDR), string(LocalModeBridgeInterface), string(LocalModeInterfaceNamePrefix)}))
	}
	return errs
}

func validateClusterCIDR(value string, p *field.Path) field.ErrorList {
	if value == "" {
		return nil
	}
	const example = "(e.g. 10.100.0.0/16 or 10.100.0.0/16,fde4:8dba:82e1::/48)"
	prefixes, err := parseCIDRList(value)
	if err != nil {
		return field.ErrorList{field.Invalid(p, value, "must be a comma-separated list of valid CIDRs "+example)}
	}
	if len(prefixes) > 2 || (len(prefixes) == 2 && prefixes[0].Addr().Is4() == prefixes[1].Addr().Is4()) {
		return field.ErrorList{field.Invalid(p, value, "must hold at most one CIDR per IP family "+example)}
	}
	return nil
}

// parseCIDRList parses a comma-separated CIDR list, tolerating spaces.
func parseCIDRList(value string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range strings.Split(value, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("parse CIDR %q: %w", s, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func validateNodePortAddresses(entries []string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range entries {
		if _, err := ParseNodePortAddresses([]string{e}); err != nil {
			errs = append(errs, field.Invalid(p.Index(i), e,
				`must be a valid CIDR or one of "primary", "localhost", "all"`))
		}
	}
	return errs
}

func validateMisc(cfg *v1alpha1.KubeProxyConfiguration) field.ErrorList {
	var errs field.ErrorList
	if cfg.ConfigSyncPeriod.Duration <= 0 {
		errs = append(errs, field.Invalid(field.NewPath("configSyncPeriod"), cfg.ConfigSyncPeriod.Duration.String(), "must be greater than 0"))
	}
	if adj := cfg.OOMScoreAdj; adj != nil && (*adj < -1000 || *adj > 1000) {
		errs = append(errs, field.Invalid(field.NewPath("oomScoreAdj"), *adj, "must be within [-1000, 1000]"))
	}
	if cfg.ClientConnection.Burst < 0 {
		errs = append(errs, field.Invalid(field.NewPath("clientConnection", "burst"), cfg.ClientConnection.Burst, "must be greater than or equal to 0"))
	}
	if !validPortRange(cfg.PortRange) {
		errs = append(errs, field.Invalid(field.NewPath("portRange"), cfg.PortRange, "must be a valid port range (e.g. 300-2000)"))
	}
	return errs
}

// validPortRange accepts "", "low-high" and "base+size" (the field is unused
// since the userspace proxy was removed; it is checked only as upstream does).
func validPortRange(s string) bool {
	s = strings.TrimSpace(s)
	if s == "" {
		return true
	}
	sep := strings.IndexAny(s, "-+")
	if sep < 0 {
		return validPort(s)
	}
	a, b := s[:sep], s[sep+1:]
	if !validPort(a) {
		return false
	}
	if s[sep] == '+' {
		n, err := strconv.Atoi(b)
		base, _ := strconv.Atoi(a)
		return err == nil && n >= 0 && base+n <= 65536
	}
	lo, _ := strconv.Atoi(a)
	hi, err := strconv.Atoi(b)
	return err == nil && hi >= lo && hi <= 65535
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}
