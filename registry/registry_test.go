package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/s3server"
)

const (
	accessKey = "registry-test"
	secretKey = "registry-test-secret"
	bucket    = "models"
)

// newRegistry starts an s3server over a temporary directory and returns a
// registry on it (bucket not yet created) and a raw client.
func newRegistry(t *testing.T) (*Registry, *minio.Client) {
	t.Helper()
	srv, err := s3server.New(s3server.Config{
		Dir:       t.TempDir(),
		AccessKey: accessKey,
		SecretKey: secretKey,
		Logger:    slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	client, err := minio.New(strings.TrimPrefix(ts.URL, "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(accessKey, secretKey, ""),
		Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := New(client, bucket)
	if err := reg.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return reg, client
}

func testMetadata(name, version string) Metadata {
	return Metadata{
		Name:      name,
		Version:   version,
		CreatedAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC),
		Objective: "reg:squarederror",
		Features: features.Spec{
			Version:      features.Version,
			Names:        features.FareFeatures,
			PaymentVocab: []string{"Cash", "Credit Card"},
			CompanyVocab: []string{"Flash Cab"},
		},
		ReferenceProfile: json.RawMessage(`{"features":{"trip_miles":{"bins":[0,1,2]}}}`),
		Metrics:          map[string]float64{"rmse": 3.25, "mae": 1.5},
		Params:           json.RawMessage(`{"max_depth":6,"eta":0.1}`),
		TrainingDataURI:  "s3://datasets/trips/2026-02/",
		Lineage: Lineage{
			WorkflowID: "retrain-fare-2026-03-01", RunID: "run-1", TriggerType: "drift",
			TriggerID: "drift-42", Reason: "psi above 0.2", DatasetURI: "s3://datasets/trips/2026-02/",
			ParentVersion: "v1",
		},
	}
}

func model(s string) []byte { return []byte(`{"learner":{"name":"` + s + `"}}`) }

func put(t *testing.T, reg *Registry, name, version string, m []byte) Metadata {
	t.Helper()
	meta, err := reg.Put(context.Background(), testMetadata(name, version), m)
	if err != nil {
		t.Fatalf("put %s/%s: %v", name, version, err)
	}
	return meta
}

func TestPutGetRoundTrip(t *testing.T) {
	reg, client := newRegistry(t)
	ctx := context.Background()
	m := model("fare-v2")
	stored := put(t, reg, "fare", "v2", m)
	if stored.SHA256 != sha256Hex(m) || stored.SizeBytes != int64(len(m)) {
		t.Errorf("put returned sha256 %s size %d", stored.SHA256, stored.SizeBytes)
	}

	meta, got, err := reg.Get(ctx, "fare", "v2")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, m) {
		t.Errorf("model = %s", got)
	}
	want := testMetadata("fare", "v2")
	want.SHA256, want.SizeBytes = sha256Hex(m), int64(len(m))
	if !sameMetadata(t, meta, want) {
		t.Errorf("metadata = %+v\nwant %+v", meta, want)
	}
	if err := meta.Features.Init(); err != nil {
		t.Errorf("stored feature spec does not init: %v", err)
	}
	if mm, err := reg.GetMetadata(ctx, "fare", "v2"); err != nil || !sameMetadata(t, mm, want) {
		t.Errorf("GetMetadata = %+v, %v", mm, err)
	}
	// The layout other tools rely on.
	for _, k := range []string{"fare/v2/model.json", "fare/v2/metadata.json"} {
		st, err := client.StatObject(ctx, bucket, k, minio.StatObjectOptions{})
		if err != nil {
			t.Errorf("stat %s: %v", k, err)
		} else if st.ContentType != "application/json" {
			t.Errorf("%s content type %q", k, st.ContentType)
		}
	}
	if u := reg.URI("fare", "v2"); u != "s3://models/fare/v2/" {
		t.Errorf("URI = %s", u)
	}
	// The metadata is snake_case JSON.
	obj, err := client.GetObject(ctx, bucket, "fare/v2/metadata.json", minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.NewDecoder(obj).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	obj.Close()
	for _, k := range []string{"name", "version", "created_at", "objective", "features", "reference_profile", "metrics", "params", "training_data_uri", "sha256", "size_bytes", "lineage"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("metadata.json lacks %q", k)
		}
	}
	if l, _ := raw["lineage"].(map[string]any); l["parent_version"] != "v1" || l["trigger_type"] != "drift" {
		t.Errorf("lineage = %v", raw["lineage"])
	}
}

func sameMetadata(t *testing.T, a, b Metadata) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}

func TestPutIdempotentAndImmutable(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	first := put(t, reg, "fare", "v1", model("a"))

	// The same model again, even with other metadata, returns what is stored.
	again := testMetadata("fare", "v1")
	again.Metrics = map[string]float64{"rmse": 99}
	again.CreatedAt = time.Time{}
	got, err := reg.Put(ctx, again, model("a"))
	if err != nil {
		t.Fatalf("repeated put: %v", err)
	}
	if !sameMetadata(t, got, first) {
		t.Errorf("repeated put returned %+v, want the stored %+v", got, first)
	}

	_, err = reg.Put(ctx, testMetadata("fare", "v1"), model("b"))
	if !errors.Is(err, ErrVersionExists) {
		t.Fatalf("put of a different model: %v, want ErrVersionExists", err)
	}
	if !strings.Contains(err.Error(), "fare/v1") {
		t.Errorf("error does not say which version: %v", err)
	}
	if _, m, err := reg.Get(ctx, "fare", "v1"); err != nil || !bytes.Equal(m, model("a")) {
		t.Errorf("after refused put: %s, %v", m, err)
	}

	// Concurrent writers of one version: one model wins, writers of the
	// same bytes succeed, the others get ErrVersionExists.
	const n = 8
	var wg sync.WaitGroup
	results := make([]error, n)
	metas := make([]Metadata, n)
	for i := range n {
		wg.Go(func() {
			metas[i], results[i] = reg.Put(ctx, testMetadata("fare", "v9"), model(fmt.Sprint(i%2)))
		})
	}
	wg.Wait()
	meta, stored, err := reg.Get(ctx, "fare", "v9")
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range results {
		same := bytes.Equal(model(fmt.Sprint(i%2)), stored)
		switch {
		case same && (err != nil || metas[i].SHA256 != meta.SHA256):
			t.Errorf("writer %d of the winning model: %v", i, err)
		case !same && !errors.Is(err, ErrVersionExists):
			t.Errorf("writer %d of the losing model: %v, want ErrVersionExists", i, err)
		}
	}
}

func TestPutCompletesInterruptedVersion(t *testing.T) {
	reg, client := newRegistry(t)
	ctx := context.Background()
	// A writer that stopped after model.json.
	m := model("half")
	if _, err := client.PutObject(ctx, bucket, "tip/v1/model.json", bytes.NewReader(m), int64(len(m)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if vs, err := reg.Versions(ctx, "tip"); err != nil || len(vs) != 0 {
		t.Errorf("incomplete version listed: %q, %v", vs, err)
	}
	if _, err := reg.GetMetadata(ctx, "tip", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("incomplete version: %v, want ErrNotFound", err)
	}
	if _, err := reg.Put(ctx, testMetadata("tip", "v1"), model("other")); !errors.Is(err, ErrVersionExists) {
		t.Errorf("completing with another model: %v, want ErrVersionExists", err)
	}
	put(t, reg, "tip", "v1", m)
	if _, got, err := reg.Get(ctx, "tip", "v1"); err != nil || !bytes.Equal(got, m) {
		t.Errorf("completed version: %s, %v", got, err)
	}
}

func TestChecksumMismatch(t *testing.T) {
	reg, client := newRegistry(t)
	ctx := context.Background()
	put(t, reg, "fare", "v1", model("good"))
	// Replace model.json behind the registry's back.
	bad := model("tampered")
	if _, err := client.PutObject(ctx, bucket, "fare/v1/model.json", bytes.NewReader(bad), int64(len(bad)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	_, _, err := reg.Get(ctx, "fare", "v1")
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("get tampered: %v, want ErrChecksum", err)
	}
	for _, s := range []string{"s3://models/fare/v1/model.json", sha256Hex(bad), sha256Hex(model("good"))} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	// Gone altogether.
	if err := client.RemoveObject(ctx, bucket, "fare/v1/model.json", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Get(ctx, "fare", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get without model.json: %v, want ErrNotFound", err)
	}
}

func TestNotFound(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	put(t, reg, "fare", "v1", model("a"))
	if _, _, err := reg.Get(ctx, "fare", "v2"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get: %v", err)
	}
	if _, err := reg.GetMetadata(ctx, "tip", "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetMetadata: %v", err)
	}
	if _, _, err := reg.Promote(ctx, "fare", "v2", "", ChampionChange{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("Promote: %v", err)
	}
	if _, err := reg.Champion(ctx, "fare"); !errors.Is(err, ErrNoChampion) {
		t.Errorf("Champion: %v", err)
	}
	for _, bad := range [][2]string{{"", "v1"}, {"fare", ""}, {"fa/re", "v1"}, {"fare", ".."}, {"fare", "champion.json"}} {
		if _, err := reg.Put(ctx, testMetadata(bad[0], bad[1]), model("x")); err == nil {
			t.Errorf("Put(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}

func TestListing(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	for _, v := range []string{"v10", "v2", "v1"} {
		put(t, reg, "fare", v, model(v))
	}
	put(t, reg, "big-tipper", "20260301T120000Z", model("t"))
	if _, _, err := reg.Promote(ctx, "fare", "v2", "", ChampionChange{}); err != nil {
		t.Fatal(err)
	}
	vs, err := reg.Versions(ctx, "fare")
	if err != nil || !slices.Equal(vs, []string{"v1", "v2", "v10"}) {
		t.Errorf("Versions = %q, %v", vs, err)
	}
	if vs, err := reg.Versions(ctx, "nothing"); err != nil || len(vs) != 0 {
		t.Errorf("Versions of unknown model = %q, %v", vs, err)
	}
	ms, err := reg.Models(ctx)
	if err != nil || !slices.Equal(ms, []string{"big-tipper", "fare"}) {
		t.Errorf("Models = %q, %v", ms, err)
	}
}

func TestPromote(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2", "v3"} {
		put(t, reg, "fare", v, model(v))
	}
	at := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	c, changed, err := reg.Promote(ctx, "fare", "v1", "", ChampionChange{Reason: "first", WorkflowID: "wf-1", PromotedAt: at})
	if err != nil || !changed {
		t.Fatalf("first promote: %v, changed %v", err, changed)
	}
	if c.Version != "v1" || c.Reason != "first" || c.WorkflowID != "wf-1" || !c.PromotedAt.Equal(at) || len(c.History) != 1 {
		t.Errorf("champion = %+v", c)
	}
	got, err := reg.Champion(ctx, "fare")
	if err != nil || !got.PromotedAt.Equal(c.PromotedAt) || got.Version != "v1" || len(got.History) != 1 {
		t.Errorf("Champion = %+v, %v", got, err)
	}

	// A retry of the same promotion changes nothing.
	again, changed, err := reg.Promote(ctx, "fare", "v1", "", ChampionChange{Reason: "retry"})
	if err != nil || changed || again.Reason != "first" || len(again.History) != 1 {
		t.Errorf("repeated promote: %+v, changed %v, %v", again, changed, err)
	}

	// A stale expectation conflicts and says what the champion is.
	_, _, err = reg.Promote(ctx, "fare", "v2", "", ChampionChange{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"v1"`) {
		t.Errorf("promote expecting none: %v, want ErrConflict naming v1", err)
	}
	_, _, err = reg.Promote(ctx, "fare", "v2", "v3", ChampionChange{})
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), `"v3"`) {
		t.Errorf("promote expecting v3: %v, want ErrConflict", err)
	}

	c, changed, err = reg.Promote(ctx, "fare", "v2", "v1", ChampionChange{Reason: "better rmse"})
	if err != nil || !changed || c.Version != "v2" {
		t.Fatalf("promote v2: %+v %v %v", c, changed, err)
	}
	// Rollback: promote the older version, expecting the current one.
	c, changed, err = reg.Promote(ctx, "fare", "v1", "v2", ChampionChange{Reason: "rollback: error rate"})
	if err != nil || !changed || c.Version != "v1" {
		t.Fatalf("rollback: %+v %v %v", c, changed, err)
	}
	var trail []string
	for _, h := range c.History {
		trail = append(trail, h.Previous+">"+h.Version)
		if h.PromotedAt.IsZero() {
			t.Errorf("history entry without time: %+v", h)
		}
	}
	if !slices.Equal(trail, []string{">v1", "v1>v2", "v2>v1"}) {
		t.Errorf("history = %q", trail)
	}
}

func TestPromoteConcurrent(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	const n = 8
	for i := range n + 1 {
		put(t, reg, "fare", fmt.Sprintf("v%d", i), model(fmt.Sprint(i)))
	}
	race := func(expected string, target func(i int) string) string {
		t.Helper()
		var wg sync.WaitGroup
		changed := make([]bool, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, changed[i], errs[i] = reg.Promote(ctx, "fare", target(i), expected, ChampionChange{Reason: fmt.Sprint("promoter ", i)})
			})
		}
		wg.Wait()
		winner := ""
		for i := range n {
			switch {
			case changed[i]:
				if winner != "" {
					t.Errorf("expecting %q: both %s and %s won", expected, winner, target(i))
				}
				winner = target(i)
			case !errors.Is(errs[i], ErrConflict):
				t.Errorf("expecting %q: promoter %d: %v, want ErrConflict", expected, i, errs[i])
			}
		}
		if winner == "" {
			t.Fatalf("expecting %q: nobody won", expected)
		}
		c, err := reg.Champion(ctx, "fare")
		if err != nil || c.Version != winner {
			t.Errorf("champion %+v, %v; winner %s", c, err, winner)
		}
		return winner
	}
	// No champion yet: creation races on If-None-Match.
	first := race("", func(i int) string { return fmt.Sprintf("v%d", i+1) })
	// Then replacement races on If-Match.
	race(first, func(i int) string {
		if v := fmt.Sprintf("v%d", i+1); v != first {
			return v
		}
		return "v0"
	})

	// Promoters of the same version: one changes it, the others see it done.
	c, _ := reg.Champion(ctx, "fare")
	target := "v0"
	if c.Version == "v0" {
		target = "v1"
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range n {
		wg.Go(func() {
			got, changed, err := reg.Promote(ctx, "fare", target, c.Version, ChampionChange{})
			if err != nil || got.Version != target {
				t.Errorf("same-version promoter: %+v, %v", got, err)
			}
			mu.Lock()
			if changed {
				wins++
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d same-version promoters changed the champion, want 1", wins)
	}
}

func TestHistoryBounded(t *testing.T) {
	reg, _ := newRegistry(t)
	ctx := context.Background()
	put(t, reg, "fare", "a", model("a"))
	put(t, reg, "fare", "b", model("b"))
	cur := ""
	const promotions = MaxHistory + 7
	for i := range promotions {
		next := "a"
		if cur == "a" {
			next = "b"
		}
		_, changed, err := reg.Promote(ctx, "fare", next, cur, ChampionChange{Reason: fmt.Sprint("promotion ", i)})
		if err != nil || !changed {
			t.Fatalf("promotion %d: %v", i, err)
		}
		cur = next
	}
	c, err := reg.Champion(ctx, "fare")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.History) != MaxHistory {
		t.Fatalf("history has %d entries, want %d", len(c.History), MaxHistory)
	}
	if first, last := c.History[0].Reason, c.History[MaxHistory-1].Reason; first != fmt.Sprint("promotion ", promotions-MaxHistory) || last != fmt.Sprint("promotion ", promotions-1) {
		t.Errorf("history runs from %q to %q", first, last)
	}
}

func TestNaturalCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"v2", "v10", -1},
		{"v10", "v2", 1},
		{"v1", "v1", 0},
		{"v01", "v1", 1},
		{"v1", "v1a", -1},
		{"20260301T120000Z", "20260302T000000Z", -1},
		{"a", "b", -1},
		{"model-9-rc", "model-10-rc", -1},
	}
	for _, tt := range tests {
		if got := naturalCompare(tt.a, tt.b); got != tt.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}
