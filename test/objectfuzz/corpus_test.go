package objectfuzz

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestReadCorpusFileDecodesWhatTheFuzzerWrites: the forms Go's fuzzing
// engine writes (escaped strings, byte and rune literals, negative numbers)
// decode in the fuzz functions' argument order.
func TestReadCorpusFileDecodesWhatTheFuzzerWrites(t *testing.T) {
	want := Seeds()[1] // a name with a quote and a newline
	want.SvcType, want.Affinity, want.Flags = 'A', -5, 0x21
	lines := []string{"go test fuzz v1", `string("ns1")`, `string("q\"uote\n-A INPUT -j ACCEPT")`, `string("http")`,
		`byte('A')`, `string("TCP")`, "int32(80)", "int32(30080)", "int32(30999)", `string("10.96.0.10,fd00::10")`,
		`string("192.168.99.1")`, `string("1.2.3.4")`, `string("203.0.113.0/24")`, "uint8(33)", "int32(-5)",
		`string("svc1-abc")`, `string("svc1")`, `string("IPv4")`, `string("10.180.0.1,10.180.0.2")`, `string("http")`,
		"rune('\\x1f')", `string("node-a")`}
	want.EPPort = 0x1f
	path := filepath.Join(t.TempDir(), "entry")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCorpusFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", got, want)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines[:21], "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCorpusFile(path); err == nil {
		t.Error("20 values accepted, want an error")
	}
}

func TestReadCorpusReadsTheCheckedInCorpus(t *testing.T) {
	cases, err := ReadCorpus(filepath.Join("..", "..", CorpusDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 20 {
		t.Fatalf("corpus %s: %d entries, want the checked-in corpus", CorpusDir, len(cases))
	}
}
