package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"
)

// etcdTimeout bounds one request to etcd's JSON gateway.
const etcdTimeout = 10 * time.Second

// UpdateInEtcd changes a stored object behind kube-apiserver's back: it
// reads /registry/<resource>/<namespace>/<name> from etcd (kube-apiserver's
// protobuf encoding, no encryption at rest), decodes it with client-go's
// scheme, calls mutate on it, and writes it back only if the key was not
// changed in between. It returns the etcd revision of the write.
//
// It exists to make changes while kube-apiserver is down (StopAPIServer):
// on restart kube-apiserver lists etcd and serves the change, as it would a
// write that another apiserver of an HA control plane accepted. The key must
// already exist, so a wrong resource name fails instead of writing a key
// nothing reads.
func (c *Cluster) UpdateInEtcd(ctx context.Context, resource, namespace, name string,
	mutate func(runtime.Object) error) (int64, error) {
	key := "/registry/" + resource + "/" + namespace + "/" + name
	stored, modRevision, err := c.etcdGet(ctx, key)
	if err != nil {
		return 0, err
	}
	codec := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme)
	obj, gvk, err := codec.Decode(stored, nil, nil)
	if err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	if err := mutate(obj); err != nil {
		return 0, fmt.Errorf("mutate %s: %w", key, err)
	}
	// kube-apiserver stores objects without a resourceVersion (it is the
	// etcd revision) and with their kind, which decoding into a typed
	// object drops.
	obj.GetObjectKind().SetGroupVersionKind(*gvk)
	if meta, ok := obj.(interface{ SetResourceVersion(string) }); ok {
		meta.SetResourceVersion("")
	}
	var value bytes.Buffer
	if err := codec.Encode(obj, &value); err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	return c.etcdPutIfUnchanged(ctx, key, value.Bytes(), modRevision)
}

// etcdKV is a key-value pair as etcd's JSON gateway spells it (bytes in
// base64, 64-bit integers as strings).
type etcdKV struct {
	Key         []byte `json:"key"`
	Value       []byte `json:"value"`
	ModRevision string `json:"mod_revision"`
}

// etcdGet returns a key's value and modification revision.
func (c *Cluster) etcdGet(ctx context.Context, key string) ([]byte, int64, error) {
	var resp struct {
		Kvs []etcdKV `json:"kvs"`
	}
	if err := c.etcdCall(ctx, "/v3/kv/range", map[string]any{"key": []byte(key)}, &resp); err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) != 1 {
		return nil, 0, fmt.Errorf("etcd key %s: %d values, want 1 (does the object exist?)", key, len(resp.Kvs))
	}
	rev, err := strconv.ParseInt(resp.Kvs[0].ModRevision, 10, 64)
	if err != nil {
		return nil, 0, fmt.Errorf("etcd key %s: mod_revision %q: %w", key, resp.Kvs[0].ModRevision, err)
	}
	return resp.Kvs[0].Value, rev, nil
}

// etcdPutIfUnchanged writes key in a transaction that requires its
// modification revision to still be modRevision, and returns the new revision.
func (c *Cluster) etcdPutIfUnchanged(ctx context.Context, key string, value []byte, modRevision int64) (int64, error) {
	txn := map[string]any{
		"compare": []map[string]any{{"key": []byte(key), "target": "MOD", "result": "EQUAL",
			"mod_revision": strconv.FormatInt(modRevision, 10)}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value}}},
	}
	var resp struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
		Succeeded bool `json:"succeeded"`
	}
	if err := c.etcdCall(ctx, "/v3/kv/txn", txn, &resp); err != nil {
		return 0, err
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("etcd key %s changed since revision %d", key, modRevision)
	}
	rev, err := strconv.ParseInt(resp.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("etcd txn on %s: revision %q: %w", key, resp.Header.Revision, err)
	}
	return rev, nil
}

// etcdCall posts a JSON request to etcd's gRPC gateway inside the namespace.
func (c *Cluster) etcdCall(ctx context.Context, path string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.etcdURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hresp, err := c.HTTPClient(etcdTimeout).Do(hreq)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(hresp.Body)
	if err != nil {
		return fmt.Errorf("etcd %s: %w", path, err)
	}
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: HTTP %d: %s", path, hresp.StatusCode, data)
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return errors.Join(fmt.Errorf("etcd %s: %w", path, err), fmt.Errorf("body: %s", data))
	}
	return nil
}

// HTTPClient is a plain HTTP client whose connections are made inside the
// cluster's namespace (IP literals only), one connection per request, as a
// load balancer's health probe makes them.
func (c *Cluster) HTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout:   timeout,
		Transport: &http.Transport{DialContext: dialerIn(c.Netns), DisableKeepAlives: true},
	}
}
