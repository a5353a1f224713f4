package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.temporal.io/sdk/temporal"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/feast"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/s3server"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

const (
	testDatasetBucket = "datasets"
	testFeatureBucket = "features"
)

// sample is the shipped trips as labelled rows, sorted by pickup: the
// messages the replayer publishes (as system.SampleRows builds them; system
// imports this package).
var sample struct {
	once  sync.Once
	rows  []dataset.Row
	areas *geo.Areas
	loc   *time.Location
	err   error
}

func sampleRows(t *testing.T, n int) ([]dataset.Row, *geo.Areas, *time.Location) {
	t.Helper()
	sample.once.Do(func() {
		if sample.loc, sample.err = time.LoadLocation("America/Chicago"); sample.err != nil {
			return
		}
		if sample.areas, sample.err = geo.LoadCommunityAreas(); sample.err != nil {
			return
		}
		trips, err := tripdata.Load(sample.loc)
		if err != nil {
			sample.err = err
			return
		}
		tripdata.SortByStart(trips)
		for i := range trips {
			sample.rows = append(sample.rows, dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])})
		}
	})
	if sample.err != nil {
		t.Fatal(sample.err)
	}
	return slices.Clone(sample.rows[:n]), sample.areas, sample.loc
}

// startS3 serves the S3 protocol over HTTP from a temporary directory.
func startS3(t *testing.T) *minio.Client {
	t.Helper()
	srv, err := s3server.New(s3server.Config{
		Dir: t.TempDir(), AccessKey: "taxi-test", SecretKey: "taxi-test-secret",
		Buckets: []string{testDatasetBucket, testFeatureBucket},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	mc, err := minio.New(strings.TrimPrefix(ts.URL, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4("taxi-test", "taxi-test-secret", ""), Region: "us-east-1", MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return mc
}

func testActivities(t *testing.T, mc *minio.Client, areas *geo.Areas, loc *time.Location, fc *feast.Client) *Activities {
	return &Activities{
		S3: mc, DatasetBucket: testDatasetBucket, FeatureBucket: testFeatureBucket,
		Areas: areas, Location: loc, Feast: fc,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

// putSnapshot writes rows as SnapshotDataset does: sorted, the newest
// holdout fraction in holdout.parquet, under <model>/<id>/.
func putSnapshot(t *testing.T, mc *minio.Client, id string, rows []dataset.Row, holdout float64) MaterializeInput {
	t.Helper()
	rows = slices.Clone(rows)
	sortRows(rows)
	nHold := int(math.Round(float64(len(rows)) * holdout))
	prefix := "fare/" + id + "/"
	for _, part := range []struct {
		key  string
		rows []dataset.Row
	}{{"train.parquet", rows[:len(rows)-nHold]}, {"holdout.parquet", rows[len(rows)-nHold:]}} {
		b, err := dataset.Encode(part.rows)
		if err != nil {
			t.Fatal(err)
		}
		putObject(t, mc, testDatasetBucket, prefix+part.key, b)
	}
	return MaterializeInput{
		DatasetURI: "s3://" + testDatasetBucket + "/" + prefix,
		From:       rows[0].Ride.PickupDatetime,
		To:         rows[len(rows)-1].Ride.PickupDatetime,
	}
}

func putObject(t *testing.T, mc *minio.Client, bucket, key string, b []byte) {
	t.Helper()
	if _, err := mc.PutObject(context.Background(), bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
}

func getObject(t *testing.T, mc *minio.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := mc.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	return b
}

// readTable reads a Parquet file back into its schema and rows of column
// name → value (string, int64, float64, time.Time; nil for null).
func readTable(t *testing.T, b []byte) (*arrow.Schema, []map[string]any) {
	t.Helper()
	tbl, err := pqarrow.ReadTable(context.Background(), bytes.NewReader(b), parquet.NewReaderProperties(memory.DefaultAllocator),
		pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	rows := make([]map[string]any, tbl.NumRows())
	for i := range rows {
		rows[i] = map[string]any{}
	}
	for c := 0; c < int(tbl.NumCols()); c++ {
		col := tbl.Column(c)
		i := 0
		for _, chunk := range col.Data().Chunks() {
			for j := 0; j < chunk.Len(); j, i = j+1, i+1 {
				var v any
				if !chunk.IsNull(j) {
					switch a := chunk.(type) {
					case *array.String:
						v = a.Value(j)
					case *array.Int64:
						v = a.Value(j)
					case *array.Float64:
						v = a.Value(j)
					case *array.Timestamp:
						v = a.Value(j).ToTime(arrow.Microsecond).UTC()
					default:
						t.Fatalf("column %s: unexpected type %s", col.Name(), chunk.DataType())
					}
				}
				rows[i][col.Name()] = v
			}
		}
	}
	return tbl.Schema(), rows
}

func sameSchema(t *testing.T, got, want *arrow.Schema) {
	t.Helper()
	if len(got.Fields()) != len(want.Fields()) {
		t.Fatalf("schema has %d columns, want %d:\n%s", len(got.Fields()), len(want.Fields()), got)
	}
	for i, f := range want.Fields() {
		g := got.Field(i)
		if g.Name != f.Name || !arrow.TypeEqual(g.Type, f.Type) || g.Nullable != f.Nullable {
			t.Errorf("column %d is %s %s (nullable %v), want %s %s (nullable %v)", i, g.Name, g.Type, g.Nullable, f.Name, f.Type, f.Nullable)
		}
	}
}

// nullFloat and the others map the transform's "unknown" values to the
// table's null.
func nullFloat(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

func nullArea(a int) any {
	if a <= 0 {
		return nil
	}
	return int64(a)
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullPtr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// expectedAreaStats is what the aggregates streamer would emit for the 1-hour
// window of an area starting on the hour, from the features records of the
// trips, with the streamer's own Result.
func expectedAreaStats(t *testing.T, rows []dataset.Row, areas *geo.Areas, loc *time.Location) []map[string]any {
	t.Helper()
	type acc struct {
		count, nDur, nFare int
		sumDur, sumFare    float64
	}
	type key struct {
		area  int
		start int64
	}
	accs := map[key]*acc{}
	for i := range rows {
		r := &rows[i]
		row := features.Transform(rides.FeatureTrip(&r.Ride, areas), loc)
		msg := rides.FeaturesMessage(r.Ride.TripID, r.Ride.PickupDatetime, &row)
		if msg.PickupCommunityArea == 0 {
			continue
		}
		k := key{msg.PickupCommunityArea, msg.Timestamp.Unix() / 3600 * 3600}
		a := accs[k]
		if a == nil {
			a = &acc{}
			accs[k] = a
		}
		a.count++
		if msg.TripDurationSeconds != nil {
			a.sumDur += *msg.TripDurationSeconds
			a.nDur++
		}
		if msg.FareAmount != nil {
			a.sumFare += *msg.FareAmount
			a.nFare++
		}
	}
	var out []map[string]any
	for k, a := range accs {
		m := aggregates.Result(aggregates.Key{Size: time.Hour, Area: k.area, Start: k.start}, a.count, a.sumDur, a.nDur, a.sumFare, a.nFare, nil)
		o := map[string]any{
			features.PickupArea: int64(m.AreaID), colEventTimestamp: m.WindowEnd, colTripCount: int64(m.TripCount),
			colAvgFare: any(m.AvgFare), colAvgTripDuration: any(m.AvgTripDuration),
		}
		// The streamer writes 0 for an average over no values; the table null.
		if a.nFare == 0 {
			o[colAvgFare] = nil
		}
		if a.nDur == 0 {
			o[colAvgTripDuration] = nil
		}
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		ti, tj := out[i][colEventTimestamp].(time.Time), out[j][colEventTimestamp].(time.Time)
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return out[i][features.PickupArea].(int64) < out[j][features.PickupArea].(int64)
	})
	return out
}

func closeTo(a, b any) bool {
	x, ok1 := a.(float64)
	y, ok2 := b.(float64)
	if !ok1 || !ok2 {
		if ta, ok := a.(time.Time); ok {
			tb, ok := b.(time.Time)
			return ok && ta.Equal(tb)
		}
		return a == b
	}
	return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y))
}

func TestMaterializeFeaturesWritesTheOfflineTables(t *testing.T) {
	rows, areas, loc := sampleRows(t, 2000)
	mc := startS3(t)
	a := testActivities(t, mc, areas, loc, nil)
	in := putSnapshot(t, mc, "retrain_fare_manual-0a1b2c3d", rows, 0.2)
	ctx := context.Background()

	res, err := a.MaterializeFeatures(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	tripKey := "trip_features/dataset=retrain_fare_manual-0a1b2c3d/part-0.parquet"
	areaKey := "area_stats/dataset=retrain_fare_manual-0a1b2c3d/part-0.parquet"
	if res != (MaterializeResult{OfflineURI: "s3://features/" + tripKey, Rows: len(rows), Feast: false}) {
		t.Fatalf("result %+v", res)
	}

	// Trip features: one row per trip, by pickup, with the values serving
	// sees (the features record, decoded back into a row), and the labels.
	tripBytes := getObject(t, mc, testFeatureBucket, tripKey)
	schema, got := readTable(t, tripBytes)
	sameSchema(t, schema, tripFeaturesSchema())
	if len(got) != len(rows) {
		t.Fatalf("%d trip rows, want %d", len(got), len(rows))
	}
	sorted := slices.Clone(rows)
	sortRows(sorted)
	created := sorted[len(sorted)-1].Ride.PickupDatetime
	nulls := map[string]int{}
	for i := range sorted {
		r := &sorted[i]
		row := features.Transform(rides.FeatureTrip(&r.Ride, areas), loc)
		msg := rides.FeaturesMessage(r.Ride.TripID, r.Ride.PickupDatetime, &row)
		serving := rides.Row(&msg)
		bigTipper := int64(0)
		if r.Actual.Tips > 0.2*r.Actual.Fare {
			bigTipper = 1
		}
		want := map[string]any{
			colTripID: r.Ride.TripID, colEventTimestamp: r.Ride.PickupDatetime.UTC(), colCreatedTimestamp: created.UTC(),
			features.TripMiles: nullFloat(serving.TripMiles), features.TripSeconds: nullPtr(msg.TripDurationSeconds),
			features.AvgSpeedMph: nullPtr(msg.AvgSpeedMph), features.PickupHour: int64(serving.PickupHour),
			features.PickupDayOfWeek: int64(serving.PickupDayOfWeek), features.PickupMonth: int64(serving.PickupMonth),
			features.PickupArea: nullArea(serving.PickupArea), features.DropoffArea: nullArea(serving.DropoffArea),
			features.PaymentType: nullString(serving.PaymentType), features.Company: nullString(serving.Company),
			features.Fare: nullPtr(msg.FareAmount), colActualFare: r.Actual.Fare, colTips: r.Actual.Tips, colBigTipper: bigTipper,
		}
		for k, v := range want {
			if !closeTo(got[i][k], v) {
				t.Fatalf("trip %d (%s) %s = %v, want %v", i, r.Ride.TripID, k, got[i][k], v)
			}
			if v == nil {
				nulls[k]++
			}
		}
	}
	t.Logf("null values in the trip table: %v", nulls)

	// Area statistics: the streamer's 1-hour windows starting on the hour.
	areaBytes := getObject(t, mc, testFeatureBucket, areaKey)
	schema, gotAreas := readTable(t, areaBytes)
	sameSchema(t, schema, areaStatsSchema())
	wantAreas := expectedAreaStats(t, rows, areas, loc)
	if len(gotAreas) != len(wantAreas) || len(wantAreas) == 0 {
		t.Fatalf("%d area-hour rows, want %d", len(gotAreas), len(wantAreas))
	}
	for i, w := range wantAreas {
		w[colCreatedTimestamp] = created.UTC()
		for k, v := range w {
			if !closeTo(gotAreas[i][k], v) {
				t.Fatalf("area row %d %s = %v, want %v (row %v)", i, k, gotAreas[i][k], v, gotAreas[i])
			}
		}
	}

	// A retry writes the same bytes to the same objects, and nothing else.
	if _, err := a.MaterializeFeatures(ctx, in); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(getObject(t, mc, testFeatureBucket, tripKey), tripBytes) || !bytes.Equal(getObject(t, mc, testFeatureBucket, areaKey), areaBytes) {
		t.Error("a retry wrote different tables")
	}
	var keys []string
	for o := range mc.ListObjects(ctx, testFeatureBucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if want := []string{areaKey, tripKey}; !slices.Equal(keys, want) {
		t.Errorf("feature bucket holds %v, want %v", keys, want)
	}
}

func nonRetryable(err error) (string, bool) {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.NonRetryable() {
		return ae.Type(), true
	}
	return "", false
}

func TestMaterializeFeaturesRefusesBadDatasets(t *testing.T) {
	rows, areas, loc := sampleRows(t, 50)
	mc := startS3(t)
	a := testActivities(t, mc, areas, loc, nil)
	good := putSnapshot(t, mc, "good", rows, 0.2)
	putObject(t, mc, testDatasetBucket, "fare/corrupt/train.parquet", []byte("not parquet"))
	putObject(t, mc, testDatasetBucket, "fare/corrupt/holdout.parquet", []byte("not parquet"))
	empty, err := dataset.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	putObject(t, mc, testDatasetBucket, "fare/empty/train.parquet", empty)
	putObject(t, mc, testDatasetBucket, "fare/empty/holdout.parquet", empty)

	for _, tc := range []struct {
		uri, kind string
	}{
		{"s3://datasets/fare/missing/", ErrTypeBadDataset},
		{"s3://no-such-bucket/fare/x/", ErrTypeBadDataset},
		{"s3://datasets/fare/corrupt/", ErrTypeBadDataset},
		{"s3://datasets/fare/empty/", ErrTypeBadDataset},
		{"s3://datasets/fare/good/train.parquet", ErrTypeInvalidInput},
		{"s3://datasets/", ErrTypeInvalidInput},
		{"https://datasets/fare/good/", ErrTypeInvalidInput},
		{"s3://datasets/fare/a=b/", ErrTypeInvalidInput},
	} {
		_, err := a.MaterializeFeatures(context.Background(), MaterializeInput{DatasetURI: tc.uri})
		if kind, ok := nonRetryable(err); !ok || kind != tc.kind {
			t.Errorf("%s: got %v, want non-retryable %s", tc.uri, err, tc.kind)
		}
	}
	bad := good
	bad.From, bad.To = good.To, good.From
	if _, err := a.MaterializeFeatures(context.Background(), bad); err == nil {
		t.Error("from after to accepted")
	}
}

// fakeFeast answers the feature server's endpoints with its documented
// request shapes and error bodies, for a repo of the given feature views
// and push sources (source → the columns its views need), and records what
// it was sent.
type fakeFeast struct {
	t     *testing.T
	views map[string]bool
	push  map[string][]string
	// fail, when not 0, is the status every request is answered with.
	fail     int
	failBody string

	mu   sync.Mutex
	reqs []fakeRequest
}

type fakeRequest struct{ Method, Path, Body string }

func (f *fakeFeast) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

func feastErrorBody(class, msg string) string {
	inner, _ := json.Marshal(map[string]string{"module": "feast.errors", "class": class, "message": msg})
	outer, _ := json.Marshal(string(inner))
	return string(outer)
}

func (f *fakeFeast) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.reqs = append(f.reqs, fakeRequest{r.Method, r.URL.Path, string(body)})
	f.mu.Unlock()
	answer := func(status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	if f.fail != 0 {
		answer(f.fail, f.failBody)
		return
	}
	missing := func(field string) {
		answer(422, fmt.Sprintf(`{"detail":[{"type":"missing","loc":["body",%q],"msg":"Field required","input":%s}]}`, field, body))
	}
	var req struct {
		StartTS        *string          `json:"start_ts"`
		EndTS          *string          `json:"end_ts"`
		FeatureViews   []string         `json:"feature_views"`
		PushSourceName *string          `json:"push_source_name"`
		DF             map[string][]any `json:"df"`
		To             *string          `json:"to"`
	}
	if r.Method == http.MethodPost {
		if err := json.Unmarshal(body, &req); err != nil {
			answer(422, `{"detail":[{"type":"json_invalid","loc":["body",0],"msg":"JSON decode error"}]}`)
			return
		}
	}
	validTime := func(s string) bool { _, err := time.Parse(time.RFC3339Nano, s); return err == nil }
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/health":
		answer(200, "")
	case r.Method == http.MethodPost && (r.URL.Path == "/materialize" || r.URL.Path == "/materialize-incremental"):
		if r.URL.Path == "/materialize" && req.StartTS == nil {
			missing("start_ts")
			return
		}
		if req.EndTS == nil {
			missing("end_ts")
			return
		}
		if (req.StartTS != nil && !validTime(*req.StartTS)) || !validTime(*req.EndTS) {
			answer(500, `"Unknown string format"`)
			return
		}
		for _, v := range req.FeatureViews {
			if !f.views[v] {
				answer(404, feastErrorBody("FeatureViewNotFoundException", "Feature view "+v+" does not exist in project taxi_mlops"))
				return
			}
		}
		answer(200, "null")
	case r.Method == http.MethodPost && r.URL.Path == "/push":
		if req.PushSourceName == nil {
			missing("push_source_name")
			return
		}
		if req.DF == nil {
			missing("df")
			return
		}
		cols, ok := f.push[*req.PushSourceName]
		if !ok {
			answer(404, feastErrorBody("PushSourceNotFoundException", "Unable to find push source '"+*req.PushSourceName+"'."))
			return
		}
		if req.To != nil && *req.To != "online" && *req.To != "offline" && *req.To != "online_and_offline" {
			answer(500, fmt.Sprintf(`"%s is not a supported push format."`, *req.To))
			return
		}
		n := -1
		for _, c := range cols {
			vs, ok := req.DF[c]
			if !ok || (n >= 0 && len(vs) != n) {
				answer(500, fmt.Sprintf(`"column %s is missing or of another length"`, c))
				return
			}
			n = len(vs)
		}
		answer(200, "null")
	default:
		answer(404, `{"detail":"Not Found"}`)
	}
}

func newFakeFeast(t *testing.T, f *fakeFeast) *feast.Client {
	t.Helper()
	f.t = t
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	c, err := feast.New(feast.Config{URL: ts.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// theRepo is the feature views and push source of deploy/feast.
func theRepo() *fakeFeast {
	return &fakeFeast{
		views: map[string]bool{"trip_features": true, "trip_labels": true, "area_stats": true},
		push: map[string][]string{"area_stats_push": {
			"pickup_community_area", "event_timestamp", "trip_count", "avg_fare", "avg_trip_duration",
		}},
	}
}

func TestMaterializeFeaturesWithFeast(t *testing.T) {
	rows, areas, loc := sampleRows(t, 600)
	mc := startS3(t)
	ctx := context.Background()

	// The expected push: each area's newest hour, from the streamer's windows.
	all := expectedAreaStats(t, rows, areas, loc)
	latest := map[int64]map[string]any{}
	var newest time.Time
	for _, s := range all {
		latest[s[features.PickupArea].(int64)] = s // ordered by hour end
		if end := s[colEventTimestamp].(time.Time); end.After(newest) {
			newest = end
		}
	}

	t.Run("range", func(t *testing.T) {
		f := theRepo()
		a := testActivities(t, mc, areas, loc, newFakeFeast(t, f))
		in := putSnapshot(t, mc, "feast-range", rows, 0.2)
		res, err := a.MaterializeFeatures(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if !res.Feast || res.Rows != len(rows) || res.OfflineURI != "s3://features/trip_features/dataset=feast-range/part-0.parquet" {
			t.Fatalf("result %+v", res)
		}
		reqs := f.requests()
		if len(reqs) != 2 {
			t.Fatalf("requests %+v", reqs)
		}
		wantMat := fakeRequest{"POST", "/materialize", `{"start_ts":"` + in.From.UTC().Format("2006-01-02T15:04:05Z") +
			`","end_ts":"` + wantEnd(newest, in.To) + `","feature_views":["trip_features","area_stats"]}`}
		if reqs[0] != wantMat {
			t.Errorf("materialize request\n got %+v\nwant %+v", reqs[0], wantMat)
		}
		checkPush(t, reqs[1], latest, in.To)
	})

	t.Run("incremental", func(t *testing.T) {
		f := theRepo()
		a := testActivities(t, mc, areas, loc, newFakeFeast(t, f))
		in := putSnapshot(t, mc, "feast-incremental", rows, 0)
		in.From = time.Time{}
		if _, err := a.MaterializeFeatures(ctx, in); err != nil {
			t.Fatal(err)
		}
		reqs := f.requests()
		want := fakeRequest{"POST", "/materialize-incremental",
			`{"end_ts":"` + wantEnd(newest, in.To) + `","feature_views":["trip_features","area_stats"]}`}
		if len(reqs) != 2 || reqs[0] != want {
			t.Fatalf("requests\n got %+v\nwant %+v first", reqs, want)
		}
		checkPush(t, reqs[1], latest, in.To)
	})

	t.Run("5xx is retried", func(t *testing.T) {
		f := theRepo()
		f.fail, f.failBody = 500, `"Unable to find table at 's3://features/trip_features/'"`
		a := testActivities(t, mc, areas, loc, newFakeFeast(t, f))
		in := putSnapshot(t, mc, "feast-5xx", rows, 0.2)
		_, err := a.MaterializeFeatures(ctx, in)
		if err == nil {
			t.Fatal("no error")
		}
		if _, ok := nonRetryable(err); ok {
			t.Fatalf("a 5xx must be retried: %v", err)
		}
		if !strings.Contains(err.Error(), "500") || !strings.Contains(err.Error(), "Unable to find table") {
			t.Errorf("error lacks the status or the server's message: %v", err)
		}
		// The offline tables were written before Feast was asked.
		getObject(t, mc, testFeatureBucket, "trip_features/dataset=feast-5xx/part-0.parquet")
		getObject(t, mc, testFeatureBucket, "area_stats/dataset=feast-5xx/part-0.parquet")
	})

	t.Run("4xx is not retried", func(t *testing.T) {
		f := theRepo()
		delete(f.views, "area_stats") // a repo where `feast apply` left it out
		a := testActivities(t, mc, areas, loc, newFakeFeast(t, f))
		in := putSnapshot(t, mc, "feast-4xx", rows, 0.2)
		_, err := a.MaterializeFeatures(ctx, in)
		kind, ok := nonRetryable(err)
		if !ok || kind != ErrTypeInvalidInput {
			t.Fatalf("got %v, want non-retryable %s", err, ErrTypeInvalidInput)
		}
		if !strings.Contains(err.Error(), "Feature view area_stats does not exist in project taxi_mlops") {
			t.Errorf("error lacks the server's message: %v", err)
		}
		if reqs := f.requests(); len(reqs) != 1 {
			t.Errorf("%d requests after a refused materialize, want 1", len(reqs))
		}
	})

	t.Run("unknown push source is not retried", func(t *testing.T) {
		f := theRepo()
		delete(f.push, "area_stats_push")
		a := testActivities(t, mc, areas, loc, newFakeFeast(t, f))
		in := putSnapshot(t, mc, "feast-push-4xx", rows, 0.2)
		_, err := a.MaterializeFeatures(ctx, in)
		if kind, ok := nonRetryable(err); !ok || kind != ErrTypeInvalidInput || !strings.Contains(err.Error(), "area_stats_push") {
			t.Fatalf("got %v", err)
		}
	})
}

// wantEnd is the materialization's end: just past the newest row written,
// an hour's statistics being stamped with its end.
func wantEnd(newestHourEnd, lastPickup time.Time) string {
	end := newestHourEnd
	if lastPickup.After(end) {
		end = lastPickup
	}
	return end.Add(time.Second).UTC().Format("2006-01-02T15:04:05Z")
}

// checkPush compares a push request with each area's newest hour.
func checkPush(t *testing.T, got fakeRequest, latest map[int64]map[string]any, to time.Time) {
	t.Helper()
	if got.Method != "POST" || got.Path != "/push" {
		t.Fatalf("push request %+v", got)
	}
	var body struct {
		PushSourceName string           `json:"push_source_name"`
		DF             map[string][]any `json:"df"`
		To             string           `json:"to"`
	}
	dec := json.NewDecoder(strings.NewReader(got.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		t.Fatalf("push body %s: %v", got.Body, err)
	}
	if body.PushSourceName != FeastAreaStatsPush || body.To != "online" {
		t.Errorf("push to %q %q", body.PushSourceName, body.To)
	}
	wantCols := []string{features.PickupArea, colAvgFare, colAvgTripDuration, colCreatedTimestamp, colEventTimestamp, colTripCount}
	var cols []string
	for c := range body.DF {
		cols = append(cols, c)
	}
	sort.Strings(cols)
	sort.Strings(wantCols)
	if !slices.Equal(cols, wantCols) {
		t.Fatalf("push columns %v, want %v", cols, wantCols)
	}
	areasSorted := make([]int64, 0, len(latest))
	for a := range latest {
		areasSorted = append(areasSorted, a)
	}
	slices.Sort(areasSorted)
	if len(body.DF[features.PickupArea]) != len(areasSorted) {
		t.Fatalf("pushed %d areas, want %d", len(body.DF[features.PickupArea]), len(areasSorted))
	}
	for i, area := range areasSorted {
		w := latest[area]
		if got := body.DF[features.PickupArea][i]; got != float64(area) {
			t.Fatalf("row %d area %v, want %d", i, got, area)
		}
		ts := func(col string) time.Time {
			s, _ := body.DF[col][i].(string)
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatalf("%s %q: %v", col, s, err)
			}
			return v
		}
		if !ts(colEventTimestamp).Equal(w[colEventTimestamp].(time.Time)) || !ts(colCreatedTimestamp).Equal(to) {
			t.Errorf("area %d timestamps %v %v", area, body.DF[colEventTimestamp][i], body.DF[colCreatedTimestamp][i])
		}
		if body.DF[colTripCount][i] != float64(w[colTripCount].(int64)) {
			t.Errorf("area %d trip_count %v, want %v", area, body.DF[colTripCount][i], w[colTripCount])
		}
		for _, c := range []string{colAvgFare, colAvgTripDuration} {
			if !closeTo(body.DF[c][i], w[c]) {
				t.Errorf("area %d %s %v, want %v", area, c, body.DF[c][i], w[c])
			}
		}
	}
}

// ---- The Feast repo and the tables cannot drift apart. ----

const feastRepoDir = "../deploy/feast"

func TestFeastRepoCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	cmd := exec.Command(py, "-m", "py_compile", filepath.Join(feastRepoDir, "features.py"))
	// Byte code goes to a temporary directory, not into the repo.
	cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("py_compile features.py: %v\n%s", err, out)
	}
}

func TestFeastRepoMatchesTheTables(t *testing.T) {
	py, err := os.ReadFile(filepath.Join(feastRepoDir, "features.py"))
	if err != nil {
		t.Fatal(err)
	}
	if problems := checkFeastRepo(string(py), testFeatureBucket); len(problems) > 0 {
		t.Errorf("deploy/feast/features.py does not match the tables MaterializeFeatures writes:\n  %s", strings.Join(problems, "\n  "))
	}
	yaml, err := os.ReadFile(filepath.Join(feastRepoDir, "feature_store.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"project: taxi_mlops", "provider: local", "  type: file", "  type: redis"} {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(line) + `\s*$`).Match(yaml) {
			t.Errorf("feature_store.yaml lacks the line %q", line)
		}
	}
}

// The check must notice drift: each edit below breaks the repo.
func TestFeastRepoCheckFindsDrift(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(feastRepoDir, "features.py"))
	if err != nil {
		t.Fatal(err)
	}
	py := string(b)
	for _, tc := range []struct{ name, old, new, want string }{
		{"renamed column", `Field(name="avg_fare"`, `Field(name="mean_fare"`, "mean_fare"},
		{"column left out", `        Field(name="tips", dtype=Float64),` + "\n", "", `"tips"`},
		{"wrong type", `Field(name="trip_count", dtype=Int64)`, `Field(name="trip_count", dtype=Float64)`, "trip_count"},
		{"wrong prefix", `TRIP_FEATURES_PREFIX = "trip_features/"`, `TRIP_FEATURES_PREFIX = "trips/"`, "trips/"},
		{"wrong bucket", `"TAXI_S3_FEATURE_BUCKET", "features"`, `"TAXI_S3_FEATURE_BUCKET", "feature-store"`, "feature-store"},
		{"wrong timestamp", `timestamp_field="event_timestamp",` + "\n" + `    created_timestamp_column="created_timestamp",` + "\n" + `    s3_endpoint_override=S3_ENDPOINT,` + "\n" + `    description="Trips per`,
			`timestamp_field="window_end",` + "\n" + `    created_timestamp_column="created_timestamp",` + "\n" + `    s3_endpoint_override=S3_ENDPOINT,` + "\n" + `    description="Trips per`, "window_end"},
		{"model feature missing", `    "company",` + "\n]", "]", "fare_model"},
		{"push source renamed", `name="area_stats_push"`, `name="area_push"`, "area_stats_push"},
		{"view renamed", `name="area_stats",`, `name="area_statistics",`, `"area_stats"`},
		{"entity key type", `value_type=ValueType.INT64`, `value_type=ValueType.STRING`, "pickup_community_area"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(py, tc.old) {
				t.Fatalf("features.py no longer holds %q; update the test", tc.old)
			}
			problems := checkFeastRepo(strings.Replace(py, tc.old, tc.new, 1), testFeatureBucket)
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("want a problem naming %s, got %q", tc.want, problems)
			}
		})
	}
}

// pyRepo is what checkFeastRepo reads out of the Python definitions: its
// top-level constants and the calls assigned to names.
type pyRepo struct {
	strs  map[string]string
	lists map[string][]string
	calls map[string]pyCall
	order []string
}

type pyCall struct {
	ctor string
	kw   map[string]string
}

var (
	pyAssign = regexp.MustCompile(`(?m)^([A-Za-z_]\w*)\s*=\s*`)
	pyString = regexp.MustCompile(`^f?"([^"]*)"$`)
	pyEnv    = regexp.MustCompile(`^os\.environ\.get\(\s*"[^"]*"\s*,\s*"([^"]*)"\s*\)$`)
	pyCallRe = regexp.MustCompile(`(?s)^([A-Za-z_][\w.]*)\((.*)\)$`)
	pyIndex  = regexp.MustCompile(`(?s)^([A-Za-z_]\w*)\[(.*)\]$`)
	pyIdent  = regexp.MustCompile(`^[A-Za-z_]\w*$`)
	pySubst  = regexp.MustCompile(`\{([A-Za-z_]\w*)\}`)
)

// scanExpr returns the length of the expression starting s: up to a
// newline, comma or closing bracket outside brackets and strings.
func scanExpr(s string, stopAtComma bool) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"', '\'':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return len(s)
			}
			i += j + 1
		case '#':
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j - 1
			} else {
				return len(s)
			}
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			if depth == 0 {
				return i
			}
			depth--
		case '\n':
			if depth == 0 {
				return i
			}
		case ',':
			if depth == 0 && stopAtComma {
				return i
			}
		}
	}
	return len(s)
}

// splitTop splits a comma-separated argument or item list.
func splitTop(s string) []string {
	var out []string
	for s = strings.TrimSpace(s); s != ""; {
		n := scanExpr(s, true)
		if item := strings.TrimSpace(s[:n]); item != "" {
			out = append(out, item)
		}
		if n >= len(s) {
			break
		}
		s = strings.TrimSpace(s[n+1:])
	}
	return out
}

func parsePyCall(expr string) (pyCall, bool) {
	m := pyCallRe.FindStringSubmatch(strings.TrimSpace(expr))
	if m == nil {
		return pyCall{}, false
	}
	c := pyCall{ctor: m[1], kw: map[string]string{}}
	for _, arg := range splitTop(m[2]) {
		k, v, ok := strings.Cut(arg, "=")
		if ok && pyIdent.MatchString(strings.TrimSpace(k)) {
			c.kw[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return c, true
}

func parsePyRepo(py string) *pyRepo {
	// Drop the module docstring.
	if strings.HasPrefix(strings.TrimSpace(py), `"""`) {
		rest := strings.TrimSpace(py)[3:]
		if i := strings.Index(rest, `"""`); i >= 0 {
			py = rest[i+3:]
		}
	}
	r := &pyRepo{strs: map[string]string{}, lists: map[string][]string{}, calls: map[string]pyCall{}}
	for _, m := range pyAssign.FindAllStringSubmatchIndex(py, -1) {
		name := py[m[2]:m[3]]
		rest := py[m[1]:]
		expr := strings.TrimSpace(rest[:scanExpr(rest, false)])
		if s, ok := r.str(expr); ok {
			r.strs[name] = s
		} else if l, ok := r.list(expr); ok {
			r.lists[name] = l
		} else if c, ok := parsePyCall(expr); ok {
			r.calls[name] = c
			r.order = append(r.order, name)
		}
	}
	return r
}

// str evaluates a string literal, an f-string over string constants or
// os.environ.get("X", "default") (to its default).
func (r *pyRepo) str(expr string) (string, bool) {
	if m := pyEnv.FindStringSubmatch(expr); m != nil {
		return m[1], true
	}
	m := pyString.FindStringSubmatch(expr)
	if m == nil {
		if v, ok := r.strs[expr]; ok {
			return v, true
		}
		return "", false
	}
	if !strings.HasPrefix(expr, "f") {
		return m[1], true
	}
	ok := true
	s := pySubst.ReplaceAllStringFunc(m[1], func(ref string) string {
		v, found := r.strs[ref[1:len(ref)-1]]
		ok = ok && found
		return v
	})
	return s, ok
}

// list evaluates a list of strings, a list constant or a sum of them.
func (r *pyRepo) list(expr string) ([]string, bool) {
	var out []string
	for _, part := range strings.Split(expr, "+") {
		part = strings.TrimSpace(part)
		if l, ok := r.lists[part]; ok {
			out = append(out, l...)
			continue
		}
		if !strings.HasPrefix(part, "[") || !strings.HasSuffix(part, "]") {
			return nil, false
		}
		for _, item := range splitTop(part[1 : len(part)-1]) {
			s, ok := r.str(item)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
	}
	return out, true
}

// idents evaluates a list of names: [a, b].
func idents(expr string) []string {
	expr = strings.TrimSpace(expr)
	if !strings.HasPrefix(expr, "[") || !strings.HasSuffix(expr, "]") {
		return nil
	}
	return splitTop(expr[1 : len(expr)-1])
}

func (r *pyRepo) byCtor(ctor string) []string {
	var out []string
	for _, name := range r.order {
		if r.calls[name].ctor == ctor {
			out = append(out, name)
		}
	}
	return out
}

// feastTypes maps Feast types (feast.types and ValueType) to Arrow types.
var feastTypes = map[string]arrow.Type{
	"Float64": arrow.FLOAT64, "Float32": arrow.FLOAT32, "Int64": arrow.INT64, "Int32": arrow.INT32,
	"String": arrow.STRING, "Bool": arrow.BOOL, "UnixTimestamp": arrow.TIMESTAMP,
	"ValueType.DOUBLE": arrow.FLOAT64, "ValueType.FLOAT": arrow.FLOAT32, "ValueType.INT64": arrow.INT64,
	"ValueType.INT32": arrow.INT32, "ValueType.STRING": arrow.STRING, "ValueType.BOOL": arrow.BOOL,
	"ValueType.UNIX_TIMESTAMP": arrow.TIMESTAMP,
}

// checkFeastRepo lists where the Feast definitions disagree with the tables
// MaterializeFeatures writes: sources over other paths, columns named there
// but not written (or of another type), columns written but named nowhere,
// views, push source and feature services other than the Go code expects.
func checkFeastRepo(py, bucket string) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	r := parsePyRepo(py)
	tables := map[string]*arrow.Schema{TripFeaturesTable + "/": tripFeaturesSchema(), AreaStatsTable + "/": areaStatsSchema()}
	colType := func(s *arrow.Schema, name string) (arrow.Type, bool) {
		idx := s.FieldIndices(name)
		if len(idx) == 0 {
			return 0, false
		}
		return s.Field(idx[0]).Type.ID(), true
	}

	// FileSources: their paths are the tables' directories.
	tableOf := map[string]string{} // source variable → table prefix
	named := map[string]map[string]bool{}
	for _, v := range r.byCtor("FileSource") {
		c := r.calls[v]
		path, ok := r.str(c.kw["path"])
		prefix, isOurs := strings.CutPrefix(path, "s3://"+bucket+"/")
		if !ok || !isOurs || tables[prefix] == nil {
			bad("FileSource %s reads %q, which is not s3://%s/ followed by one of the tables %v", v, path, bucket, slices.Sorted(maps.Keys(tables)))
			continue
		}
		if other, dup := findKey(tableOf, prefix); dup {
			bad("FileSources %s and %s both read %s", other, v, prefix)
		}
		tableOf[v] = prefix
		named[prefix] = map[string]bool{}
		for kw, want := range map[string]string{"timestamp_field": colEventTimestamp, "created_timestamp_column": colCreatedTimestamp} {
			got, _ := r.str(c.kw[kw])
			if got != want {
				bad("FileSource %s: %s is %q, the tables have %q", v, kw, got, want)
			}
			if typ, ok := colType(tables[prefix], got); !ok || typ != arrow.TIMESTAMP {
				bad("FileSource %s: %s %q is not a timestamp column of %s", v, kw, got, prefix)
			} else {
				named[prefix][got] = true
			}
		}
		if c.kw["file_format"] != "ParquetFormat()" {
			bad("FileSource %s: file_format is %q, want ParquetFormat()", v, c.kw["file_format"])
		}
	}
	for prefix := range tables {
		if _, ok := findKey(tableOf, prefix); !ok {
			bad("no FileSource reads the table %s", prefix)
		}
	}

	// PushSources feed their batch source's table.
	pushes := map[string]string{} // push source name → table prefix
	for _, v := range r.byCtor("PushSource") {
		c := r.calls[v]
		name, _ := r.str(c.kw["name"])
		prefix, ok := tableOf[c.kw["batch_source"]]
		if !ok {
			bad("PushSource %s: batch_source %q is not one of the FileSources", v, c.kw["batch_source"])
			continue
		}
		tableOf[v] = prefix
		pushes[name] = prefix
	}
	if pushes[FeastAreaStatsPush] != AreaStatsTable+"/" {
		bad("no PushSource named %q over the table %s/ (push sources: %v)", FeastAreaStatsPush, AreaStatsTable, pushes)
	}

	entities := map[string][]string{}
	for _, v := range r.byCtor("Entity") {
		c := r.calls[v]
		keys, ok := r.list(c.kw["join_keys"])
		if !ok || len(keys) == 0 {
			bad("Entity %s has no join_keys", v)
		}
		entities[v] = keys
	}

	// FeatureViews: every field and join key is a column of the source's
	// table, of the same type.
	views := map[string]pyCall{}
	viewFields := map[string][]string{}
	for _, v := range r.byCtor("FeatureView") {
		c := r.calls[v]
		name, _ := r.str(c.kw["name"])
		views[name] = c
		prefix, ok := tableOf[c.kw["source"]]
		if !ok {
			bad("FeatureView %s: source %q is not one of the sources", name, c.kw["source"])
			continue
		}
		schema := tables[prefix]
		for _, e := range idents(c.kw["entities"]) {
			keys, ok := entities[e]
			if !ok {
				bad("FeatureView %s: entity %s is not defined", name, e)
			}
			ec := r.calls[e]
			for _, k := range keys {
				named[prefix][k] = true
				typ, ok := colType(schema, k)
				if !ok {
					bad("FeatureView %s: join key %q is not a column of %s", name, k, prefix)
				} else if vt, set := ec.kw["value_type"]; set && feastTypes[vt] != typ {
					bad("Entity %s: join key %q is %s, the column of %s is %s", e, k, vt, prefix, typ)
				}
			}
		}
		for _, f := range splitTop(strings.TrimSuffix(strings.TrimPrefix(c.kw["schema"], "["), "]")) {
			fc, ok := parsePyCall(f)
			if !ok || fc.ctor != "Field" {
				bad("FeatureView %s: schema item %q is not a Field", name, f)
				continue
			}
			fname, _ := r.str(fc.kw["name"])
			named[prefix][fname] = true
			viewFields[name] = append(viewFields[name], fname)
			typ, ok := colType(schema, fname)
			switch {
			case !ok:
				bad("FeatureView %s: field %q is not a column of %s", name, fname, prefix)
			case feastTypes[fc.kw["dtype"]] != typ:
				bad("FeatureView %s: field %q is %s, the column of %s is %s", name, fname, fc.kw["dtype"], prefix, typ)
			}
		}
	}
	for prefix, schema := range tables {
		for _, f := range schema.Fields() {
			if named[prefix] != nil && !named[prefix][f.Name] {
				bad("the table %s has the column %q, which no definition names", prefix, f.Name)
			}
		}
	}
	for _, v := range FeastViews() {
		c, ok := views[v]
		if !ok {
			bad("MaterializeFeatures materializes the feature view %q, which is not defined", v)
		} else if c.kw["online"] == "False" {
			bad("the feature view %q is materialized but not online", v)
		}
	}

	// The feature services hold exactly the models' inputs.
	services := map[string][]string{"fare_model": features.FareFeatures, "big_tipper_model": features.TipperFeatures}
	seen := map[string]bool{}
	for _, v := range r.byCtor("FeatureService") {
		c := r.calls[v]
		name, _ := r.str(c.kw["name"])
		want, ok := services[name]
		if !ok {
			continue
		}
		seen[name] = true
		var got []string
		for _, item := range idents(c.kw["features"]) {
			m := pyIndex.FindStringSubmatch(item)
			if m == nil {
				bad("FeatureService %s: %q is not a view projection", name, item)
				continue
			}
			l, ok := r.list(m[2])
			if !ok {
				bad("FeatureService %s: cannot read the projection %q", name, m[2])
				continue
			}
			for _, f := range l {
				if !slices.Contains(viewFields[r.viewName(m[1])], f) {
					bad("FeatureService %s: %q is not a field of %s", name, f, m[1])
				}
			}
			got = append(got, l...)
		}
		if !slices.Equal(got, want) {
			bad("FeatureService %s holds %v, the model's features are %v", name, got, want)
		}
	}
	for name := range services {
		if !seen[name] {
			bad("no FeatureService %s", name)
		}
	}
	return problems
}

func (r *pyRepo) viewName(variable string) string {
	n, _ := r.str(r.calls[variable].kw["name"])
	return n
}

func findKey(m map[string]string, value string) (string, bool) {
	for k, v := range m {
		if v == value {
			return k, true
		}
	}
	return "", false
}
