package informers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// Objects is what a set of manifest files holds: every Service,
// EndpointSlice and Node, in file order, with API-server defaults applied,
// and every valid ServiceCIDR. No selection is applied; see Select.
type Objects struct {
	Services       []*v1.Service
	EndpointSlices []*discovery.EndpointSlice
	Nodes          []*v1.Node
	// ServiceCIDRs are the networking.k8s.io/v1 ServiceCIDRs that pass
	// ValidateServiceCIDR (nftables mode drops traffic to their unallocated
	// addresses).
	ServiceCIDRs []*networkingv1.ServiceCIDR
	// Ignored lists the documents of kinds the proxy does not use.
	Ignored []IgnoredObject
	// Rejected lists the ServiceCIDRs the API server would refuse; they
	// are left out of ServiceCIDRs.
	Rejected []RejectedObject
}

// IgnoredObject describes a manifest document that was skipped.
type IgnoredObject struct {
	Location   string // "file: document N"
	APIVersion string
	Kind       string
	Name       string
}

// RejectedObject is a manifest object left out because it is invalid.
type RejectedObject struct {
	Location string // "file: document N (line L)"
	Kind     string
	Name     string
	// Reason is what validation found, as the API server words it.
	Reason string
}

// DocumentError is a manifest document that could not be decoded.
type DocumentError struct {
	File     string
	Document int // 1-based position of the YAML document in the file
	Line     int // 1-based line where the document starts
	Item     int // 1-based position in a List's items; 0 outside lists
	Err      error
}

func (e *DocumentError) Error() string {
	return fmt.Sprintf("%s: %s", e.location(), e.Err)
}

func (e *DocumentError) Unwrap() error { return e.Err }

func (e *DocumentError) location() string {
	s := fmt.Sprintf("%s: document %d (line %d)", e.File, e.Document, e.Line)
	if e.Item > 0 {
		s += fmt.Sprintf(", item %d", e.Item)
	}
	return s
}

// manifestExtensions are the file name endings read from a directory.
var manifestExtensions = []string{".yaml", ".yml", ".json"}

// manifestFile is one file's name and content, as read.
type manifestFile struct {
	name string
	data []byte
}

// LoadManifests reads Services, EndpointSlices, Nodes and ServiceCIDRs from path: a single
// file, or the *.yaml, *.yml and *.json files directly inside a directory
// (hidden names are skipped, symbolic links followed). Documents of other
// kinds are listed in Objects.Ignored; a document that cannot be decoded is
// a *DocumentError.
func LoadManifests(path string) (*Objects, error) {
	files, err := readManifestFiles(path)
	if err != nil {
		return nil, err
	}
	return parseManifests(files)
}

// manifestLimits bound what one read of --manifests may hold. The files are
// untrusted input: without a bound, a huge file (or one that keeps growing)
// would exhaust kproxy's memory on every node it is given to.
type manifestLimits struct {
	perFile, total int64
}

// The limits of a real read are far above any real cluster (10k Services
// with 10 endpoints each are about 15 MB of YAML) and far below a node's memory.
const (
	maxManifestFileBytes = 256 << 20
	maxManifestBytes     = 1 << 30
)

func readManifestFiles(path string) ([]manifestFile, error) {
	return readManifestFilesLimited(path, manifestLimits{perFile: maxManifestFileBytes, total: maxManifestBytes})
}

func readManifestFilesLimited(path string, limits manifestLimits) ([]manifestFile, error) {
	names, err := manifestFileNames(path)
	if err != nil {
		return nil, err
	}
	files := make([]manifestFile, 0, len(names))
	var total int64
	for _, name := range names {
		data, err := readLimited(name, limits.perFile)
		if err != nil {
			return nil, fmt.Errorf("read manifest: %w", err)
		}
		if total += int64(len(data)); total > limits.total {
			return nil, fmt.Errorf("read manifests: %s: more than %d bytes in all", path, limits.total)
		}
		files = append(files, manifestFile{name: name, data: data})
	}
	return files, nil
}

// readLimited reads a regular file of at most limit bytes. A FIFO or device
// is refused before it is opened, so reading it cannot block or never end.
func readLimited(name string, limit int64) ([]byte, error) {
	st, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%s)", name, st.Mode().Type())
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return data, nil
}

func manifestFileNames(path string) ([]string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read manifests: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest directory: %w", err)
	}
	var names []string
	for _, entry := range entries {
		if strings.HasPrefix(entry.Name(), ".") || !hasManifestExtension(entry.Name()) {
			continue
		}
		name := filepath.Join(path, entry.Name())
		// Stat follows links: ConfigMap volumes present files as symlinks.
		if st, err := os.Stat(name); err != nil || !st.Mode().IsRegular() {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func hasManifestExtension(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	for _, want := range manifestExtensions {
		if ext == want {
			return true
		}
	}
	return false
}

func parseManifests(files []manifestFile) (*Objects, error) {
	p := &manifestParser{objs: &Objects{}, seen: map[string]string{}}
	for _, f := range files {
		for i, doc := range splitDocuments(f.data) {
			loc := &DocumentError{File: f.name, Document: i + 1, Line: doc.line}
			if err := p.decodeDocument(doc.data, loc); err != nil {
				return nil, err
			}
		}
	}
	return p.objs, nil
}

type document struct {
	line int
	data []byte
}

// splitDocuments cuts a YAML stream at "---" separator lines, remembering
// where each document starts so that errors can point at it.
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine := 0, 1
	line := 1
	for offset := 0; offset < len(data); line++ {
		end := bytes.IndexByte(data[offset:], '\n')
		next := len(data)
		if end >= 0 {
			next = offset + end + 1
		}
		if isDocumentSeparator(data[offset:next]) {
			docs = appendDocument(docs, data[start:offset], startLine)
			start, startLine = next, line+1
		}
		offset = next
	}
	return appendDocument(docs, data[start:], startLine)
}

func isDocumentSeparator(line []byte) bool {
	if !bytes.HasPrefix(line, []byte("---")) {
		return false
	}
	rest := bytes.TrimSpace(line[3:])
	return len(rest) == 0 || rest[0] == '#'
}

// appendDocument keeps documents holding more than whitespace and comments.
func appendDocument(docs []document, data []byte, line int) []document {
	for _, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) > 0 && l[0] != '#' {
			return append(docs, document{line: line, data: data})
		}
	}
	return docs
}

// manifestParser accumulates decoded objects and rejects duplicates.
type manifestParser struct {
	objs *Objects
	seen map[string]string // kind/namespace/name -> location
}

func (p *manifestParser) decodeDocument(data []byte, loc *DocumentError) error {
	raw, err := yaml.YAMLToJSON(data)
	if err != nil {
		return withLocation(loc, fmt.Errorf("invalid YAML: %w", err))
	}
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil
	}
	return p.decodeObject(raw, metav1.TypeMeta{}, loc)
}

// decodeObject decodes one JSON object; inherited supplies apiVersion and
// kind to items of typed lists (e.g. ServiceList), which may omit them.
func (p *manifestParser) decodeObject(raw []byte, inherited metav1.TypeMeta, loc *DocumentError) error {
	if len(raw) == 0 || raw[0] != '{' {
		return withLocation(loc, errors.New("document is not an object"))
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return withLocation(loc, fmt.Errorf("decode apiVersion/kind: %w", err))
	}
	if tm.Kind == "" {
		tm.Kind = inherited.Kind
	}
	if tm.APIVersion == "" {
		tm.APIVersion = inherited.APIVersion
	}
	if tm.Kind == "" {
		return withLocation(loc, errors.New("object has no kind"))
	}
	if strings.HasSuffix(tm.Kind, "List") && loc.Item == 0 {
		return p.decodeList(raw, tm, loc)
	}
	return p.decodeTyped(raw, tm, loc)
}

func (p *manifestParser) decodeList(raw []byte, tm metav1.TypeMeta, loc *DocumentError) error {
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		return withLocation(loc, fmt.Errorf("decode %s: %w", tm.Kind, err))
	}
	var itemType metav1.TypeMeta
	if tm.Kind != "List" {
		itemType = metav1.TypeMeta{APIVersion: tm.APIVersion, Kind: strings.TrimSuffix(tm.Kind, "List")}
	}
	for i, item := range list.Items {
		itemLoc := *loc
		itemLoc.Item = i + 1
		if err := p.decodeObject(bytes.TrimSpace(item), itemType, &itemLoc); err != nil {
			return err
		}
	}
	return nil
}

func withLocation(loc *DocumentError, err error) error {
	e := *loc
	e.Err = err
	return &e
}
