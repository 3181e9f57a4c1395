package vm

import (
	"bytes"
	"io/fs"
	"strconv"
	"strings"
	"testing"
)

type cpioMember struct {
	name string
	mode uint32
	data string
}

// readCPIO parses a newc archive (test-only reader) up to the trailer.
func readCPIO(t *testing.T, b []byte) []cpioMember {
	t.Helper()
	var out []cpioMember
	for off := 0; ; {
		if off%4 != 0 || len(b) < off+110 || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at offset %d", off)
		}
		field := func(i int) int {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatalf("field %d at %d: %v", i, off, err)
			}
			return int(v)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		dataOff := align4(off + 110 + namesize)
		if name == "TRAILER!!!" {
			return out
		}
		out = append(out, cpioMember{name, uint32(mode), string(b[dataOff : dataOff+size])})
		off = align4(dataOff + size)
	}
}

func align4(n int) int { return (n + 3) &^ 3 }

func TestCPIOWriterWritesParentsOnceThenFiles(t *testing.T) {
	var buf bytes.Buffer
	w := newCPIOWriter(&buf)
	w.addFile("/kpx/bin/x.test", 0o755, []byte("binary"))
	w.addFile("kpx/cmd", fs.FileMode(0o644), []byte("exec x\n"))
	w.addFile("/kpx/a/b/c", 0o600, nil)
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not a multiple of 4", buf.Len())
	}
	want := []cpioMember{
		{"kpx", cpioModeDir | 0o755, ""},
		{"kpx/bin", cpioModeDir | 0o755, ""},
		{"kpx/bin/x.test", cpioModeFile | 0o755, "binary"},
		{"kpx/cmd", cpioModeFile | 0o644, "exec x\n"},
		{"kpx/a", cpioModeDir | 0o755, ""},
		{"kpx/a/b", cpioModeDir | 0o755, ""},
		{"kpx/a/b/c", cpioModeFile | 0o600, ""},
	}
	got := readCPIO(t, buf.Bytes())
	if len(got) != len(want) {
		t.Fatalf("members = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("member %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseMarker(t *testing.T) {
	const m = "KPX-VM-EXIT-0123"
	tests := []struct {
		name, out, before string
		code              int
		found             bool
	}{
		{"exit 0", "boot\r\nhello\r\n" + m + ":0\r\n[ 4.9] reboot: Power down\r\n", "boot\nhello\n", 0, true},
		{"exit 7", "x\n" + m + ":7\n", "x\n", 7, true},
		{"kernel text on the same line", "x\n[ 3.1] msg" + m + ":1\n", "x\n[ 3.1] msg", 1, true},
		{"missing", "boot\nKernel panic\n", "boot\nKernel panic\n", -1, false},
		{"other run's marker", "KPX-VM-EXIT-ffff:0\n", "KPX-VM-EXIT-ffff:0\n", -1, false},
		{"no code", m + ":\n", m + ":\n", -1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, code, found := parseMarker(tt.out, m)
			if before != tt.before || code != tt.code || found != tt.found {
				t.Errorf("parseMarker = %q, %d, %v; want %q, %d, %v", before, code, found, tt.before, tt.code, tt.found)
			}
		})
	}
}

func TestGuestCommandQuotesArgsAndEnv(t *testing.T) {
	got := guestCommand(Options{
		Binary: "/tmp/build/ipvs.test",
		Args:   []string{"-test.run", "^TestA$|B", "it's"},
		Env:    []string{"A=b c"},
	})
	want := "export KPROXY_IN_VM=1\n" +
		"export 'A=b c'\n" +
		`exec '/kpx/bin/ipvs.test' '-test.run' '^TestA$|B' 'it'\''s'` + "\n"
	if got != want {
		t.Errorf("guestCommand =\n%s\nwant\n%s", got, want)
	}
}

func TestGuestCommandRunsEveryBinaryAndFailsIfAnyFails(t *testing.T) {
	got := guestCommand(Options{
		Binary: "/tmp/build/ipvs.test",
		Then:   []string{"/tmp/build/vs.test"},
		Args:   []string{"-test.v"},
	})
	want := "export KPROXY_IN_VM=1\n" +
		"rc=0\n" +
		"'/kpx/bin/ipvs.test' '-test.v' || rc=1\n" +
		"'/kpx/bin/vs.test' '-test.v' || rc=1\n" +
		"exit $rc\n"
	if got != want {
		t.Errorf("guestCommand =\n%s\nwant\n%s", got, want)
	}
}

func TestParseAssets(t *testing.T) {
	a, err := parseAssets("kernel=/c/vmlinuz\ninitrd=/c/base.cpio.gz\nkver=6.1.0-57-amd64\n")
	if err != nil || a != (Assets{Kernel: "/c/vmlinuz", Initrd: "/c/base.cpio.gz", KernelVersion: "6.1.0-57-amd64"}) {
		t.Errorf("parseAssets = %+v, %v", a, err)
	}
	if _, err := parseAssets("kernel=/c/vmlinuz\n"); err == nil || !strings.Contains(err.Error(), "initrd=") {
		t.Errorf("parseAssets without initrd: err = %v, want an error naming initrd=", err)
	}
}

func TestQEMUArgsNeverAddANetworkDevice(t *testing.T) {
	for _, kvm := range []bool{false, true} {
		args := strings.Join(qemuArgs(Assets{Kernel: "k"}, "i", withDefaults(Options{}), kvm), " ")
		if !strings.Contains(args, "-nic none") || strings.Contains(args, "-netdev") || strings.Contains(args, "-device") {
			t.Errorf("kvm=%v: qemu args %q must hold -nic none and no other network option", kvm, args)
		}
		if !strings.Contains(args, "-m 1G") || !strings.Contains(args, "-smp 1") {
			t.Errorf("kvm=%v: qemu args %q lack the default -m 1G -smp 1", kvm, args)
		}
	}
}
