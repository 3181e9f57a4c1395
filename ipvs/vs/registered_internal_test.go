package vs

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestHasGenlFamily(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		want    bool
		wantErr error
	}{
		{"registered", nil, true, nil},
		// What the kernel answers when ip_vs is neither built in nor loaded.
		{"not registered", syscall.ENOENT, false, nil},
		{"not registered, wrapped", fmt.Errorf("genl: %w", syscall.ENOENT), false, nil},
		{"lookup refused", syscall.EPERM, false, syscall.EPERM},
		{"socket failure", syscall.EMFILE, false, syscall.EMFILE},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked string
			got, err := hasGenlFamily(func(name string) (*netlink.GenlFamily, error) {
				asked = name
				if tt.err != nil {
					return nil, tt.err
				}
				return &netlink.GenlFamily{Name: name, ID: 42}, nil
			})
			if asked != "IPVS" {
				t.Errorf("looked up family %q, want IPVS", asked)
			}
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Errorf("hasGenlFamily = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
