package vs

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/vishvananda/netlink"
)

// genlFamilyName is the generic netlink family the ip_vs module registers.
const genlFamilyName = "IPVS"

// KernelHasIPVS reports whether this kernel has IPVS: whether its generic
// netlink family is registered (ip_vs built in or loaded). A kernel without
// it answers the lookup with ENOENT, which is (false, nil); any other
// failure is an error.
//
// It exists because NewKernelHandle cannot tell: github.com/moby/ipvs
// runs `modprobe ip_vs` and looks the family up once per process, and when
// that fails it logs an error of its own (through logrus, not returned),
// hands out a handle anyway and answers every list with nothing. Code that
// only cleans up asks this first and opens no handle on such a kernel: with
// ip_vs not loaded there are no virtual servers, and nothing is loaded or
// logged just to find that out.
func KernelHasIPVS() (bool, error) {
	return hasGenlFamily(netlink.GenlFamilyGet)
}

// hasGenlFamily is KernelHasIPVS over a family lookup.
func hasGenlFamily(get func(name string) (*netlink.GenlFamily, error)) (bool, error) {
	_, err := get(genlFamilyName)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, syscall.ENOENT):
		return false, nil
	}
	return false, fmt.Errorf("look up the %s generic netlink family: %w", genlFamilyName, err)
}
