package apivalidation

import (
	"strconv"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// validateClusterIPs checks clusterIP, clusterIPs and ipFamilies as
// ValidateServiceClusterIPsRelatedFields does. A Service read from an old
// object with clusterIP but no clusterIPs is taken as clusterIPs
// [clusterIP], as the API server's defaulting on read does.
func validateClusterIPs(errs field.ErrorList, spec *v1.ServiceSpec, typ v1.ServiceType) field.ErrorList {
	ips := spec.ClusterIPs
	switch {
	case spec.ClusterIP != "" && len(ips) == 0:
		ips = []string{spec.ClusterIP}
	case spec.ClusterIP != "" && ips[0] != spec.ClusterIP:
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs"), ips, "first value must match `clusterIP`"))
	case spec.ClusterIP == "" && len(ips) != 0:
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs"), ips, "must be empty when `clusterIP` is not specified"))
	}
	errs = validateIPFamilies(errs, spec.IPFamilies)
	headless := len(ips) == 1 && ips[0] == v1.ClusterIPNone
	if headless && (typ == v1.ServiceTypeLoadBalancer || typ == v1.ServiceTypeNodePort) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), ips[0],
			"may not be set to 'None' for "+string(typ)+" services"))
	}
	var families []v1.IPFamily
	invalid := false
	for i, s := range ips {
		if i == 0 && s == v1.ClusterIPNone {
			if len(ips) > 1 {
				invalid = true
				errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs"), ips, "'None' must be the first and only value"))
			}
			continue
		}
		a, err := ParseAddr(s)
		if err != nil {
			invalid = true
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), s,
				"must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
			continue
		}
		families = append(families, familyOf(a))
	}
	if len(ips) > 2 {
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs"), ips, "may only hold up to 2 values"))
	}
	if invalid || headless {
		return errs
	}
	if len(families) == 2 && families[0] == families[1] {
		errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs"), ips, "may specify no more than one IP for each IP family"))
	}
	for i := range min(len(families), len(spec.IPFamilies)) {
		if families[i] != spec.IPFamilies[i] {
			errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), ips[i],
				"expected an "+string(spec.IPFamilies[i])+" value as indicated by `ipFamilies["+strconv.Itoa(i)+"]`"))
		}
	}
	return errs
}

func validateIPFamilies(errs field.ErrorList, families []v1.IPFamily) field.ErrorList {
	for i, f := range families {
		if f != v1.IPv4Protocol && f != v1.IPv6Protocol {
			errs = append(errs, field.NotSupported(field.NewPath("spec", "ipFamilies").Index(i), f,
				[]string{string(v1.IPv4Protocol), string(v1.IPv6Protocol)}))
		}
		for j := range i {
			if families[j] == f {
				errs = append(errs, field.Duplicate(field.NewPath("spec", "ipFamilies").Index(i), f))
				break
			}
		}
	}
	return errs
}
