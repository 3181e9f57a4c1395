package testns

import (
	"os"
	"os/exec"
	"testing"
)

func TestParseStat(t *testing.T) {
	// Fields 3 and 22 after a command name holding spaces and ")".
	stat := "4242 (a) b (c)) Z 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	state, start, err := parseStat(stat)
	if err != nil || state != "Z" || start != 987654 {
		t.Fatalf("parseStat = %q, %d, %v; want Z, 987654", state, start, err)
	}
	if _, _, err := parseStat("4242 (a) S 1 2"); err == nil {
		t.Error("a short stat line parsed")
	}
}

func TestOwnerAlive(t *testing.T) {
	self, err := ownerOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !self.alive() {
		t.Error("this process is not alive by its own record")
	}
	if (owner{pid: self.pid, start: self.start + 1}).alive() {
		t.Error("a reused pid (other start time) counts as the owner")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatalf("run true (an exited process to check): %v", err)
	}
	if (owner{pid: cmd.Process.Pid, start: self.start}).alive() {
		t.Error("an exited process counts as alive")
	}
}

func TestOwnerRecordRoundTrip(t *testing.T) {
	saved := ownerDir
	ownerDir = t.TempDir()
	t.Cleanup(func() { ownerDir = saved })
	want := owner{pid: 123, start: 456}
	if err := writeOwner("kpx-x", want); err != nil {
		t.Fatal(err)
	}
	got, err := readOwner("kpx-x")
	if err != nil || got != want {
		t.Fatalf("readOwner = %+v, %v; want %+v", got, err, want)
	}
	if err := os.WriteFile(ownerFile("kpx-y"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readOwner("kpx-y"); err == nil {
		t.Error("a garbage record parsed")
	}
}

func TestNamesOutsideThePrefixAreRefused(t *testing.T) {
	for _, name := range []string{"node", "kpx-../x", "kpx-a b", ""} {
		if err := Add(name); err == nil {
			t.Errorf("Add(%q) accepted", name)
		}
		if err := Delete(name); err == nil {
			t.Errorf("Delete(%q) accepted", name)
		}
	}
}
