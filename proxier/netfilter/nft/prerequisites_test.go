package nft_test

import (
	"strings"
	"testing"

	"github.com/kproxy/kproxy/proxier/netfilter/nft"
)

func TestCheckPrerequisites(t *testing.T) {
	const newNFT, newKernel = "nftables v1.0.6 (Lester Gooch #5)", "6.18.44-fc-v1147"
	cases := []struct {
		name string
		host nft.Host
		// wantErr: substrings of the error; none means no error.
		wantErr []string
	}{
		{"this machine's versions", nft.Host{KernelRelease: newKernel, NFTVersion: newNFT}, nil},
		{"exactly the minimums", nft.Host{KernelRelease: "5.13.0-1-amd64", NFTVersion: "nftables v1.0.1 (Fearless Fosdick #3)"}, nil},
		{"kernel 5.13 without patch level", nft.Host{KernelRelease: "5.13", NFTVersion: newNFT}, nil},
		{"Debian 11 kernel", nft.Host{KernelRelease: "5.10.0-28-amd64", NFTVersion: newNFT},
			[]string{"requires kernel 5.13 or later", "5.10.0-28-amd64", nft.SkipKernelCheckEnv}},
		{"old kernel, check skipped", nft.Host{KernelRelease: "5.10.0-28-amd64", NFTVersion: newNFT, SkipKernelCheck: true}, nil},
		{"unreadable kernel, check skipped", nft.Host{KernelRelease: "weird", NFTVersion: newNFT, SkipKernelCheck: true}, nil},
		{"kernel 4.19 with a plus", nft.Host{KernelRelease: "4.19.0+", NFTVersion: newNFT}, []string{"requires kernel 5.13"}},
		{"nft 1.0.0", nft.Host{KernelRelease: newKernel, NFTVersion: "nftables v1.0.0 (Fearless Fosdick #2)"},
			[]string{"requires nft 1.0.1 or later, found 1.0.0"}},
		{"nft 0.9.8 on a new kernel", nft.Host{KernelRelease: newKernel, NFTVersion: "nftables v0.9.8 (E.D.S.)"},
			[]string{"requires nft 1.0.1"}},
		{"old nft is not excused by the kernel skip", nft.Host{KernelRelease: newKernel, NFTVersion: "nftables v0.9.8 (E.D.S.)", SkipKernelCheck: true},
			[]string{"requires nft 1.0.1"}},
		{"nft 1.1.1", nft.Host{KernelRelease: newKernel, NFTVersion: "nftables v1.1.1 (Commodore Bullmoose #2)"}, nil},
		{"not nft's output", nft.Host{KernelRelease: newKernel, NFTVersion: "iptables v1.8.9 (nf_tables)"},
			[]string{"cannot read the nft version"}},
		{"no nft version", nft.Host{KernelRelease: newKernel}, []string{"cannot read the nft version"}},
		{"unreadable kernel", nft.Host{KernelRelease: "", NFTVersion: newNFT}, []string{"kernel release"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := nft.CheckPrerequisites(tc.host)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("CheckPrerequisites(%+v) = %v, want nil", tc.host, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("CheckPrerequisites(%+v) = nil, want an error with %q", tc.host, tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestParseRelease(t *testing.T) {
	cases := []struct {
		in   string
		want nft.Release
		bad  bool
	}{
		{in: "6.18.44-fc-v1147", want: nft.Release{6, 18, 44}},
		{in: "5.13", want: nft.Release{5, 13, 0}},
		{in: "4.19.0+", want: nft.Release{4, 19, 0}},
		{in: "1.0.6 (Lester Gooch #5)", want: nft.Release{1, 0, 6}},
		{in: "5.", bad: true},
		{in: "5", bad: true},
		{in: "1.2.3.4", bad: true},
		{in: "", bad: true},
		{in: "v1.0.6", bad: true},
	}
	for _, tc := range cases {
		got, err := nft.ParseRelease(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseRelease(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}

func TestReleaseLess(t *testing.T) {
	for _, tc := range []struct {
		a, b nft.Release
		want bool
	}{
		{nft.Release{5, 10, 200}, nft.Release{5, 13, 0}, true},
		{nft.Release{5, 13, 0}, nft.Release{5, 13, 0}, false},
		{nft.Release{6, 0, 0}, nft.Release{5, 13, 0}, false},
		{nft.Release{1, 0, 0}, nft.Release{1, 0, 1}, true},
	} {
		if got := tc.a.Less(tc.b); got != tc.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
