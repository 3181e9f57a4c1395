package apivalidation

import (
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The name checks below are apimachinery's regular expressions written out
// by hand: validation runs for every event (100k objects at startup in a
// large cluster) and valid names must cost no allocation. On failure the
// apimachinery function is called for its exact message; a test compares
// both on many strings.

// isDNS1123Label is validation.IsDNS1123Label without the message:
// [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 bytes.
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123LabelMaxLength {
		return false
	}
	return isLabelRun(s)
}

// isLabelRun is [a-z0-9]([-a-z0-9]*[a-z0-9])? on a non-empty string.
func isLabelRun(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isDNS1123Subdomain is validation.IsDNS1123Subdomain without the message:
// labels as above joined by dots, at most 253 bytes.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if i == start || !isLabelRun(s[start:i]) {
				return false
			}
			start = i + 1
		}
	}
	return true
}

// isLabelValue is validation.IsValidLabelValue without the message: empty,
// or (([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]) of at most 63 bytes.
func isLabelValue(s string) bool {
	if len(s) > validation.LabelValueMaxLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && ((c != '-' && c != '_' && c != '.') || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// checkName appends the API server's errors for value at path when ok is
// false, with the messages of msgs (an apimachinery Is* function).
func checkName(errs field.ErrorList, ok bool, value string, msgs func(string) []string, path func() *field.Path) field.ErrorList {
	if ok {
		return errs
	}
	for _, m := range msgs(value) {
		errs = append(errs, field.Invalid(path(), value, m))
	}
	return errs
}

// validateMeta checks metadata.name (with nameOK / nameMsgs) and
// metadata.namespace, both required, as ValidateObjectMeta does.
func validateMeta(errs field.ErrorList, namespace, name string, nameOK func(string) bool, nameMsgs func(string) []string) field.ErrorList {
	if name == "" {
		errs = append(errs, field.Required(field.NewPath("metadata", "name"), "name or generateName is required"))
	} else {
		errs = checkName(errs, nameOK(name), name, nameMsgs, func() *field.Path { return field.NewPath("metadata", "name") })
	}
	if namespace == "" {
		return append(errs, field.Required(field.NewPath("metadata", "namespace"), ""))
	}
	return checkName(errs, isDNS1123Label(namespace), namespace, validation.IsDNS1123Label,
		func() *field.Path { return field.NewPath("metadata", "namespace") })
}
