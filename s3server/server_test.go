package s3server

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/signer"
)

const (
	testAccessKey = "taxi-test"
	testSecretKey = "taxi-test-secret"
	testBucket    = "models"
)

// testLogWriter sends server logs to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTestServer(t testing.TB, dir string) *Server {
	t.Helper()
	srv, err := New(Config{
		Dir:       dir,
		AccessKey: testAccessKey,
		SecretKey: testSecretKey,
		Buckets:   []string{testBucket},
		Logger:    slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return srv
}

// serve starts srv over HTTP, with h wrapping its handler if not nil, and
// returns the endpoint (host:port) and a function stopping it.
func serve(t testing.TB, srv *Server, wrap func(http.Handler) http.Handler) (string, func()) {
	t.Helper()
	h := srv.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://"), ts.Close
}

func newClient(t testing.TB, endpoint, accessKey, secretKey string, opts ...func(*minio.Options)) *minio.Client {
	t.Helper()
	o := &minio.Options{
		Creds:      credentials.NewStaticV4(accessKey, secretKey, ""),
		Region:     "us-east-1",
		MaxRetries: 1,
	}
	for _, f := range opts {
		f(o)
	}
	c, err := minio.New(endpoint, o)
	if err != nil {
		t.Fatalf("minio.New: %v", err)
	}
	return c
}

func startClient(t testing.TB) (*minio.Client, *Server, string) {
	t.Helper()
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	endpoint, _ := serve(t, srv, nil)
	return newClient(t, endpoint, testAccessKey, testSecretKey), srv, dir
}

func md5Hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

func put(t testing.TB, c *minio.Client, key string, body []byte, opts minio.PutObjectOptions) minio.UploadInfo {
	t.Helper()
	info, err := c.PutObject(context.Background(), testBucket, key, bytes.NewReader(body), int64(len(body)), opts)
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return info
}

func get(t testing.TB, c *minio.Client, key string) []byte {
	t.Helper()
	obj, err := c.GetObject(context.Background(), testBucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return b
}

func listKeys(t testing.TB, c *minio.Client, opts minio.ListObjectsOptions) []string {
	t.Helper()
	var keys []string
	for o := range c.ListObjects(context.Background(), testBucket, opts) {
		if o.Err != nil {
			t.Fatalf("list %+v: %v", opts, o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

func errCode(err error) (int, string) {
	e := minio.ToErrorResponse(err)
	return e.StatusCode, e.Code
}

func TestObjectRoundTrip(t *testing.T) {
	c, _, _ := startClient(t)
	ctx := context.Background()
	// Spaces, '+', '=', '&' and non-ASCII exercise the signature's path
	// encoding.
	keys := []string{"plain.json", "dir/sub dir/ü+x=1&y (2).json"}
	for i, key := range keys {
		body := []byte(fmt.Sprintf(`{"n":%d}`, i))
		info := put(t, c, key, body, minio.PutObjectOptions{
			ContentType:  "application/json",
			UserMetadata: map[string]string{"Run-Id": "run-7"},
		})
		if info.ETag != md5Hex(body) {
			t.Errorf("put %s: ETag %q, want %q", key, info.ETag, md5Hex(body))
		}
		if got := get(t, c, key); !bytes.Equal(got, body) {
			t.Errorf("get %s = %q, want %q", key, got, body)
		}
		st, err := c.StatObject(ctx, testBucket, key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("stat %s: %v", key, err)
		}
		if st.ETag != md5Hex(body) || st.Size != int64(len(body)) || st.ContentType != "application/json" || st.UserMetadata["Run-Id"] != "run-7" {
			t.Errorf("stat %s = etag %q size %d type %q meta %v", key, st.ETag, st.Size, st.ContentType, st.UserMetadata)
		}
		// Headers that only describe the upload are not kept with the object.
		for _, h := range []string{"X-Amz-Content-Sha256", "X-Amz-Date", "X-Amz-Decoded-Content-Length"} {
			if v := st.Metadata.Get(h); v != "" {
				t.Errorf("stat %s: header %s = %q kept", key, h, v)
			}
		}
		if enc := st.Metadata.Get("Content-Encoding"); enc != "" {
			t.Errorf("stat %s: Content-Encoding %q", key, enc)
		}
	}
	if got := listKeys(t, c, minio.ListObjectsOptions{Recursive: true}); !slices.Equal(got, []string{keys[1], keys[0]}) {
		t.Errorf("list = %q", got)
	}
	// One removed alone, the other in a multi-object delete.
	if err := c.RemoveObject(ctx, testBucket, keys[0], minio.RemoveObjectOptions{}); err != nil {
		t.Fatalf("remove %s: %v", keys[0], err)
	}
	objs := make(chan minio.ObjectInfo, 1)
	objs <- minio.ObjectInfo{Key: keys[1]}
	close(objs)
	for e := range c.RemoveObjects(ctx, testBucket, objs, minio.RemoveObjectsOptions{}) {
		t.Fatalf("remove %s: %v", e.ObjectName, e.Err)
	}
	for _, key := range keys {
		_, err := c.StatObject(ctx, testBucket, key, minio.StatObjectOptions{})
		if status, code := errCode(err); status != http.StatusNotFound || code != "NoSuchKey" {
			t.Errorf("stat removed %s: %v (%d %s)", key, err, status, code)
		}
	}
	if got := listKeys(t, c, minio.ListObjectsOptions{}); len(got) != 0 {
		t.Errorf("list after removing everything = %q, want nothing (no empty directories as prefixes)", got)
	}
	// Presigned GET.
	body := []byte("presigned")
	put(t, c, "p/object", body, minio.PutObjectOptions{})
	u, err := c.PresignedGetObject(ctx, testBucket, "p/object", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(u.String())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, body) {
		t.Errorf("presigned GET: %d %q", resp.StatusCode, got)
	}
	tampered := strings.Replace(u.String(), "p/object", "p/other", 1)
	resp, err = http.Get(tampered)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-minio-error-code") != "SignatureDoesNotMatch" {
		t.Errorf("tampered presigned GET: %d %s", resp.StatusCode, resp.Header.Get("x-minio-error-code"))
	}
}

func TestListing(t *testing.T) {
	c, _, _ := startClient(t)
	ctx := context.Background()
	all := []string{"a.txt", "a/b", "a/c/d", "a/c/e", "b", "c/x"}
	for _, k := range all {
		put(t, c, k, []byte(k), minio.PutObjectOptions{})
	}
	tests := []struct {
		opts minio.ListObjectsOptions
		want []string
	}{
		// Key order is byte order: "a.txt" < "a/b" because '.' < '/'.
		{minio.ListObjectsOptions{Recursive: true}, all},
		{minio.ListObjectsOptions{}, []string{"a.txt", "a/", "b", "c/"}},
		{minio.ListObjectsOptions{Prefix: "a/"}, []string{"a/b", "a/c/"}},
		{minio.ListObjectsOptions{Prefix: "a/c/"}, []string{"a/c/d", "a/c/e"}},
		{minio.ListObjectsOptions{Prefix: "a"}, []string{"a.txt", "a/"}},
		{minio.ListObjectsOptions{Prefix: "nothing/here/"}, nil},
		{minio.ListObjectsOptions{Prefix: "a/", Recursive: true}, []string{"a/b", "a/c/d", "a/c/e"}},
		// One key per page: the continuation must neither repeat nor skip.
		{minio.ListObjectsOptions{Recursive: true, MaxKeys: 1}, all},
		{minio.ListObjectsOptions{MaxKeys: 1}, []string{"a.txt", "a/", "b", "c/"}},
		{minio.ListObjectsOptions{MaxKeys: 2, UseV1: true}, []string{"a.txt", "a/", "b", "c/"}},
		{minio.ListObjectsOptions{Recursive: true, StartAfter: "a/c/d"}, []string{"a/c/e", "b", "c/x"}},
	}
	for _, tt := range tests {
		// Within a page minio-go yields objects before prefixes, as S3
		// returns them in separate lists; the order across pages is checked
		// by the one-key pages.
		got := listKeys(t, c, tt.opts)
		if tt.opts.MaxKeys != 1 {
			slices.Sort(got)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("list %+v = %q, want %q", tt.opts, got, tt.want)
		}
	}
	// An object cannot also be a directory of others in a directory store;
	// that is refused with a clear error.
	for _, k := range []string{"a", "b/y"} {
		_, err := c.PutObject(ctx, testBucket, k, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
		if status, code := errCode(err); status != http.StatusBadRequest || code != "InvalidArgument" {
			t.Errorf("put %s: %v (%d %s), want 400 InvalidArgument", k, err, status, code)
		}
	}
	for _, k := range []string{"x//y", "x/../y", "./y"} {
		_, err := c.PutObject(ctx, testBucket, k, bytes.NewReader([]byte("x")), 1, minio.PutObjectOptions{})
		if status, _ := errCode(err); status != http.StatusBadRequest {
			t.Errorf("put %q: %v (%d), want 400", k, err, status)
		}
	}
	// Deleting a key that is only a prefix of others deletes nothing.
	if err := c.RemoveObject(ctx, testBucket, "a/c", minio.RemoveObjectOptions{}); err != nil {
		t.Errorf("remove prefix-only key: %v", err)
	}
	if got := listKeys(t, c, minio.ListObjectsOptions{Recursive: true}); !slices.Equal(got, all) {
		t.Errorf("list after refused puts = %q", got)
	}
	// Subresources gofakes3 would treat as object writes are refused.
	err := c.RemoveObjectTagging(ctx, testBucket, "b", minio.RemoveObjectTaggingOptions{})
	if status, code := errCode(err); status != http.StatusNotImplemented {
		t.Errorf("remove tagging: %v (%d %s), want 501", err, status, code)
	}
	if got := get(t, c, "b"); string(got) != "b" {
		t.Errorf("b = %q after tagging request", got)
	}
}

// countUploads counts multipart part uploads and completions.
type countUploads struct {
	parts, completions atomic.Int64
}

func (c *countUploads) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Has("uploadId") && q.Has("partNumber") && r.Method == http.MethodPut {
			c.parts.Add(1)
		}
		if q.Has("uploadId") && r.Method == http.MethodPost {
			c.completions.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

func TestMultipartUpload(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	var counts countUploads
	endpoint, _ := serve(t, srv, counts.wrap)
	c := newClient(t, endpoint, testAccessKey, testSecretKey)
	ctx := context.Background()

	body := make([]byte, 17<<20+12345)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	// A plain reader (no ReaderAt) makes minio-go upload the parts in turn.
	info, err := c.PutObject(ctx, testBucket, "big/model.json", io.MultiReader(bytes.NewReader(body)), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if counts.parts.Load() < 2 || counts.completions.Load() != 1 {
		t.Fatalf("parts %d, completions %d: want a multipart upload", counts.parts.Load(), counts.completions.Load())
	}
	st, err := c.StatObject(ctx, testBucket, "big/model.json", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Size != int64(len(body)) || st.ContentType != "application/json" {
		t.Errorf("stat: size %d type %q", st.Size, st.ContentType)
	}
	if info.ETag != st.ETag {
		t.Errorf("ETag from upload %q, from stat %q: a client could not use it in If-Match", info.ETag, st.ETag)
	}
	if got := get(t, c, "big/model.json"); !bytes.Equal(got, body) {
		t.Fatalf("content differs after multipart upload (%d bytes, want %d)", len(got), len(body))
	}

	// Conditions hold for multipart uploads too: refused at initiation
	// when they already fail, and checked again at completion.
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	_, err = c.PutObject(ctx, testBucket, "big/model.json", bytes.NewReader(body), int64(len(body)), opts)
	if status, code := errCode(err); status != http.StatusPreconditionFailed || code != "PreconditionFailed" {
		t.Errorf("multipart put with If-None-Match over existing: %v (%d %s)", err, status, code)
	}
	// The parallel path (ReaderAt) with a matching If-Match replaces it.
	body2 := bytes.Repeat([]byte("m"), 17<<20)
	opts = minio.PutObjectOptions{}
	opts.SetMatchETag(st.ETag)
	info2, err := c.PutObject(ctx, testBucket, "big/model.json", bytes.NewReader(body2), int64(len(body2)), opts)
	if err != nil {
		t.Fatalf("multipart put with matching If-Match: %v", err)
	}
	if info2.ETag != md5Hex(body2) {
		t.Errorf("ETag %q, want MD5 %q", info2.ETag, md5Hex(body2))
	}
	if got := get(t, c, "big/model.json"); !bytes.Equal(got, body2) {
		t.Errorf("content differs after second multipart upload")
	}
}

func TestConditionalWrites(t *testing.T) {
	c, _, _ := startClient(t)
	ctx := context.Background()
	is412 := func(t *testing.T, what string, err error) {
		t.Helper()
		status, code := errCode(err)
		if status != http.StatusPreconditionFailed || code != "PreconditionFailed" {
			t.Errorf("%s: %v (status %d, code %q), want 412 PreconditionFailed", what, err, status, code)
		}
	}
	putOpts := func(match, noneMatch string) minio.PutObjectOptions {
		var o minio.PutObjectOptions
		if match != "" {
			o.SetMatchETag(match)
		}
		if noneMatch != "" {
			o.SetMatchETagExcept(noneMatch)
		}
		return o
	}
	try := func(key, body string, o minio.PutObjectOptions) (minio.UploadInfo, error) {
		return c.PutObject(ctx, testBucket, key, strings.NewReader(body), int64(len(body)), o)
	}

	v1, err := try("champion.json", "one", putOpts("", "*"))
	if err != nil {
		t.Fatalf("create with If-None-Match *: %v", err)
	}
	_, err = try("champion.json", "two", putOpts("", "*"))
	is412(t, "If-None-Match * over existing", err)

	v2, err := try("champion.json", "two", putOpts(v1.ETag, ""))
	if err != nil {
		t.Fatalf("If-Match current ETag: %v", err)
	}
	_, err = try("champion.json", "three", putOpts(v1.ETag, ""))
	is412(t, "If-Match stale ETag", err)
	_, err = try("missing.json", "x", putOpts(v1.ETag, ""))
	is412(t, "If-Match on missing object", err)
	_, err = try("champion.json", "three", putOpts("", v2.ETag))
	is412(t, "If-None-Match current ETag", err)
	if _, err := try("champion.json", "three", putOpts("", v1.ETag)); err != nil {
		t.Errorf("If-None-Match other ETag: %v", err)
	}
	if got := get(t, c, "champion.json"); string(got) != "three" {
		t.Errorf("content %q, want three", got)
	}
	if _, err := c.StatObject(ctx, testBucket, "missing.json", minio.StatObjectOptions{}); err == nil {
		t.Errorf("failed conditional put created missing.json")
	}

	// Racing writers with the same condition: exactly one wins.
	race := func(t *testing.T, key, round string, opts func() minio.PutObjectOptions) {
		t.Helper()
		const n = 12
		var wins atomic.Int64
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				_, err := try(key, fmt.Sprintf("%s writer %d", round, i), opts())
				switch status, _ := errCode(err); {
				case err == nil:
					wins.Add(1)
				case status != http.StatusPreconditionFailed:
					t.Errorf("writer %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Errorf("%s: %d writers won, want 1", key, wins.Load())
		}
	}
	race(t, "race/create.json", "create", func() minio.PutObjectOptions { return putOpts("", "*") })
	st, err := c.StatObject(ctx, testBucket, "race/create.json", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	race(t, "race/create.json", "replace", func() minio.PutObjectOptions { return putOpts(st.ETag, "") })

	// Reads honour If-Match too; minio-go relies on it when an object is
	// read with more than one request (Stat, then Read).
	cur, err := c.StatObject(ctx, testBucket, "champion.json", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var gopts minio.GetObjectOptions
	gopts.SetMatchETag(v1.ETag)
	_, err = c.StatObject(ctx, testBucket, "champion.json", minio.StatObjectOptions(gopts))
	is412(t, "stat with stale If-Match", err)
	obj, err := c.GetObject(ctx, testBucket, "champion.json", gopts)
	if err == nil {
		_, err = io.ReadAll(obj)
		obj.Close()
	}
	is412(t, "get with stale If-Match", err)
	gopts.SetMatchETag(cur.ETag)
	if obj, err := c.GetObject(ctx, testBucket, "champion.json", gopts); err != nil {
		t.Error(err)
	} else if b, err := io.ReadAll(obj); err != nil || string(b) != "three" {
		t.Errorf("get with current If-Match: %q, %v", b, err)
	}
	obj, err = c.GetObject(ctx, testBucket, "champion.json", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := obj.Stat(); err != nil {
		t.Fatal(err)
	}
	if _, err := try("champion.json", "a longer replacement", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(obj)
	is412(t, "read of an object replaced after Stat", err)
	obj.Close()

	// Conditional delete.
	err = c.RemoveObject(ctx, testBucket, "champion.json", minio.RemoveObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := try("champion.json", "again", putOpts("", "*")); err != nil {
		t.Errorf("create after delete: %v", err)
	}
}

func TestCredentials(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	endpoint, _ := serve(t, srv, nil)
	good := newClient(t, endpoint, testAccessKey, testSecretKey)
	put(t, good, "k", []byte("v"), minio.PutObjectOptions{})
	ctx := context.Background()

	tests := []struct {
		name      string
		client    *minio.Client
		status    int
		code      string
		inMessage string
	}{
		{"wrong access key", newClient(t, endpoint, "someone-else", testSecretKey), 403, "InvalidAccessKeyId", "someone-else"},
		{"wrong secret", newClient(t, endpoint, testAccessKey, "wrong-secret"), 403, "SignatureDoesNotMatch", "secret"},
		{"anonymous", newClient(t, endpoint, "", ""), 403, "AccessDenied", "anonymous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client
			ops := map[string]error{}
			_, ops["put"] = c.PutObject(ctx, testBucket, "k2", strings.NewReader("x"), 1, minio.PutObjectOptions{})
			_, ops["stat"] = c.StatObject(ctx, testBucket, "k", minio.StatObjectOptions{})
			obj, err := c.GetObject(ctx, testBucket, "k", minio.GetObjectOptions{})
			if err == nil {
				_, err = io.ReadAll(obj)
				obj.Close()
			}
			ops["get"] = err
			for o := range c.ListObjects(ctx, testBucket, minio.ListObjectsOptions{}) {
				ops["list"] = o.Err
				break
			}
			for op, err := range ops {
				e := minio.ToErrorResponse(err)
				if e.StatusCode != tt.status || e.Code != tt.code || !strings.Contains(e.Message, tt.inMessage) {
					t.Errorf("%s: %v (status %d, code %q, message %q), want %d %s", op, err, e.StatusCode, e.Code, e.Message, tt.status, tt.code)
				}
			}
		})
	}
	if _, err := good.StatObject(ctx, testBucket, "k2", minio.StatObjectOptions{}); err == nil {
		t.Errorf("refused put created k2")
	}
}

type sha256Hasher struct{ hash.Hash }

func (sha256Hasher) Close() {}

// signedStream builds a streaming-signed PUT of body, as minio-go sends it
// over plain HTTP, and returns the request with its encoded body.
func signedStream(t *testing.T, endpoint, key string, body []byte) (*http.Request, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+endpoint+"/"+testBucket+"/"+key, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req = signer.StreamingSignV4(req, testAccessKey, testSecretKey, "", "us-east-1", int64(len(body)), time.Now().UTC(), sha256Hasher{sha256.New()})
	encoded, err := io.ReadAll(req.Body)
	if err != nil {
		t.Fatal(err)
	}
	return req, encoded
}

func TestStreamingSignatures(t *testing.T) {
	c, srv, _ := startClient(t)
	endpoint, _ := serve(t, srv, nil)
	put(t, c, "obj", []byte("original"), minio.PutObjectOptions{})

	body := bytes.Repeat([]byte("0123456789abcdef"), 10000) // several 64 KiB chunks
	send := func(req *http.Request, encoded []byte) *http.Response {
		t.Helper()
		req.Body = io.NopCloser(bytes.NewReader(encoded))
		req.ContentLength = int64(len(encoded))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	req, encoded := signedStream(t, endpoint, "obj", body)
	i := bytes.Index(encoded, []byte("0123456789abcdef"))
	tampered := slices.Clone(encoded)
	tampered[i+100000] ^= 1
	if resp := send(req, tampered); resp.StatusCode != http.StatusForbidden || resp.Header.Get("x-minio-error-code") != "SignatureDoesNotMatch" {
		t.Errorf("tampered chunk: %d %s", resp.StatusCode, resp.Header.Get("x-minio-error-code"))
	}
	truncated := encoded[:len(encoded)-200]
	if resp := send(req, truncated); resp.StatusCode/100 != 4 {
		t.Errorf("truncated stream: %d", resp.StatusCode)
	}
	// A refused upload leaves the previous object as it was.
	if got := get(t, c, "obj"); string(got) != "original" {
		t.Errorf("after refused uploads obj = %.20q", got)
	}
	if resp := send(req, encoded); resp.StatusCode != http.StatusOK {
		t.Fatalf("intact stream: %d", resp.StatusCode)
	}
	if got := get(t, c, "obj"); !bytes.Equal(got, body) {
		t.Errorf("obj differs after streaming upload")
	}

	// Unsigned payload with a trailing CRC32C checksum, as minio-go sends
	// parts with TrailingHeaders and DisableContentSha256.
	tc := newClient(t, endpoint, testAccessKey, testSecretKey, func(o *minio.Options) { o.TrailingHeaders = true })
	big := bytes.Repeat(body, 40) // 6.4 MB: two 5 MiB parts
	info, err := tc.PutObject(context.Background(), testBucket, "trailer", bytes.NewReader(big), int64(len(big)),
		minio.PutObjectOptions{DisableContentSha256: true, PartSize: 5 << 20})
	if err != nil {
		t.Fatalf("put with trailing checksum: %v", err)
	}
	if got := get(t, c, "trailer"); !bytes.Equal(got, big) || info.ETag != md5Hex(big) {
		t.Errorf("object with trailing checksum differs")
	}

	// A trailing checksum that does not match the body is refused.
	data := []byte("checksummed payload")
	crc := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	good := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc))
	bad := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc+1))
	for _, tt := range []struct {
		sum    string
		status int
	}{{bad, http.StatusBadRequest}, {good, http.StatusOK}} {
		req, err := http.NewRequest(http.MethodPut, "http://"+endpoint+"/"+testBucket+"/crc", bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Amz-Content-Sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
		req = signer.SignV4Trailer(*req, testAccessKey, testSecretKey, "", "us-east-1",
			http.Header{"X-Amz-Checksum-Crc32c": {tt.sum}})
		enc, err := io.ReadAll(req.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp := send(req, enc); resp.StatusCode != tt.status {
			t.Errorf("trailing checksum %s: status %d, want %d", tt.sum, resp.StatusCode, tt.status)
		}
	}
	if got := get(t, c, "crc"); !bytes.Equal(got, data) {
		t.Errorf("crc = %q", got)
	}
}

func TestRestartKeepsObjects(t *testing.T) {
	dir := t.TempDir()
	srv := newTestServer(t, dir)
	endpoint, stop := serve(t, srv, nil)
	c := newClient(t, endpoint, testAccessKey, testSecretKey)
	objects := map[string][]byte{
		"fare/v1/model.json":    []byte(`{"learner":{}}`),
		"fare/v1/metadata.json": []byte(`{"name":"fare"}`),
		"fare/champion.json":    []byte(`{"version":"v1"}`),
		"tip/v3/model.json":     bytes.Repeat([]byte("t"), 3<<20), // spooled to a file
	}
	for k, b := range objects {
		put(t, c, k, b, minio.PutObjectOptions{ContentType: "application/json", UserMetadata: map[string]string{"Sha": md5Hex(b)}})
	}
	before := map[string]minio.ObjectInfo{}
	for o := range c.ListObjects(context.Background(), testBucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		before[o.Key] = o
	}
	stop()

	srv2 := newTestServer(t, dir)
	endpoint2, _ := serve(t, srv2, nil)
	c2 := newClient(t, endpoint2, testAccessKey, testSecretKey)
	var after []string
	for o := range c2.ListObjects(context.Background(), testBucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		after = append(after, o.Key)
		if b := before[o.Key]; b.ETag != o.ETag || b.Size != o.Size || !b.LastModified.Equal(o.LastModified) {
			t.Errorf("listing %s after restart: %+v, before %+v", o.Key, o, b)
		}
	}
	if len(after) != len(objects) {
		t.Errorf("after restart listed %q, want %d objects", after, len(objects))
	}
	for k, b := range objects {
		st, err := c2.StatObject(context.Background(), testBucket, k, minio.StatObjectOptions{})
		if err != nil {
			t.Fatalf("stat %s after restart: %v", k, err)
		}
		if st.ETag != md5Hex(b) || st.ContentType != "application/json" || st.UserMetadata["Sha"] != md5Hex(b) {
			t.Errorf("stat %s after restart: etag %q type %q meta %v", k, st.ETag, st.ContentType, st.UserMetadata)
		}
		if got := get(t, c2, k); !bytes.Equal(got, b) {
			t.Errorf("%s differs after restart", k)
		}
	}
	// The ETag read after restart still serves for a conditional write.
	st, _ := c2.StatObject(context.Background(), testBucket, "fare/champion.json", minio.StatObjectOptions{})
	var o minio.PutObjectOptions
	o.SetMatchETag(st.ETag)
	if _, err := c2.PutObject(context.Background(), testBucket, "fare/champion.json", strings.NewReader("{}"), 2, o); err != nil {
		t.Errorf("If-Match with ETag read after restart: %v", err)
	}
}

func TestServeShutsDownOnCancel(t *testing.T) {
	srv := newTestServer(t, t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	c := newClient(t, ln.Addr().String(), testAccessKey, testSecretKey)
	put(t, c, "k", []byte("v"), minio.PutObjectOptions{})
	resp, err := http.Get("http://" + ln.Addr().String() + "/minio/health/live")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("still listening after shutdown")
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for _, cfg := range []Config{
		{AccessKey: "a", SecretKey: "b"},
		{Dir: t.TempDir(), SecretKey: "b"},
		{Dir: t.TempDir(), AccessKey: "a", SecretKey: "b", Buckets: []string{"Bad_Bucket"}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func TestETagMatches(t *testing.T) {
	tests := []struct {
		cond, etag string
		want       bool
	}{
		{"*", "abc", true},
		{`"abc"`, "abc", true},
		{"abc", "abc", true},
		{`W/"abc"`, "abc", true},
		{`"x", "abc"`, "abc", true},
		{`"abd"`, "abc", false},
	}
	for _, tt := range tests {
		if got := etagMatches(tt.cond, tt.etag); got != tt.want {
			t.Errorf("etagMatches(%q, %q) = %v", tt.cond, tt.etag, got)
		}
	}
}

func TestValidateKey(t *testing.T) {
	for key, ok := range map[string]bool{
		"a": true, "a/b/c.json": true, "ü x+y": true,
		"": false, "/a": false, "a/": false, "a//b": false, "a/./b": false, "../a": false,
		strings.Repeat("k", maxKeyLen): true, strings.Repeat("k", maxKeyLen+1): false,
		"a\x00b": false, "\xff": false,
	} {
		if got := validateKey(key) == nil; got != ok {
			t.Errorf("validateKey(%q) ok = %v, want %v", key, got, ok)
		}
	}
}

func TestRequestTime(t *testing.T) {
	dir := t.TempDir()
	signing := newTestServer(t, dir)
	endpoint, _ := serve(t, signing, nil)
	c := newClient(t, endpoint, testAccessKey, testSecretKey)
	put(t, c, "k", []byte("v"), minio.PutObjectOptions{})
	u, err := c.PresignedGetObject(context.Background(), testBucket, "k", time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}

	// A second server over the same directory whose clock is ahead.
	ahead := newTestServer(t, dir)
	ahead.now = func() time.Time { return time.Now().Add(time.Hour) }
	endpoint2, _ := serve(t, ahead, nil)
	_, err = newClient(t, endpoint2, testAccessKey, testSecretKey).StatObject(context.Background(), testBucket, "k", minio.StatObjectOptions{})
	if status, code := errCode(err); status != http.StatusForbidden || code != "RequestTimeTooSkewed" {
		t.Errorf("skewed request: %v (%d %s)", err, status, code)
	}
	resp, err := http.Get(strings.Replace(u.String(), endpoint, endpoint2, 1))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("x-minio-error-desc"), "expired") {
		t.Errorf("expired presigned URL: %d %s", resp.StatusCode, resp.Header.Get("x-minio-error-desc"))
	}
}
