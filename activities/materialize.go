package activities

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/apache/arrow/go/v17/arrow"
	"github.com/apache/arrow/go/v17/arrow/array"
	"github.com/apache/arrow/go/v17/arrow/memory"
	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"
	"github.com/minio/minio-go/v7"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/feast"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// The offline feature tables, in the feature bucket, one Parquet object per
// snapshot in a Hive-style partition:
//
//	<table>/dataset=<dataset id>/part-0.parquet
//
// The Feast repo (deploy/feast) reads each table as a FileSource over the
// directory s3://<feature bucket>/<table>/: every snapshot's part, and
// dataset=<id> names which snapshot a row came from. The object is named by
// the snapshot alone, so a retried activity overwrites it with the same
// bytes, and snapshots never overwrite each other.
const (
	// TripFeaturesTable holds one row per labelled trip: its model features,
	// as the features streamer computes them, and its labels.
	TripFeaturesTable = "trip_features"
	// AreaStatsTable holds per pickup community area and hour the trip
	// count, average fare and average duration (the 1-hour windows of the
	// aggregates streamer that start on the hour).
	AreaStatsTable = "area_stats"
)

// Names in the Feast repo (deploy/feast/features.py).
const (
	// FeastTripFeaturesView and FeastAreaStatsView are the feature views
	// MaterializeFeatures materializes.
	FeastTripFeaturesView = "trip_features"
	FeastAreaStatsView    = "area_stats"
	// FeastAreaStatsPush is the push source of area statistics.
	FeastAreaStatsPush = "area_stats_push"
)

// FeastViews are the feature views MaterializeFeatures materializes.
func FeastViews() []string { return []string{FeastTripFeaturesView, FeastAreaStatsView} }

// Columns of the feature tables beside the feature names of ml/features.
const (
	colTripID           = "trip_id"
	colEventTimestamp   = "event_timestamp"
	colCreatedTimestamp = "created_timestamp"
	colActualFare       = "actual_fare"
	colTips             = "tips"
	colBigTipper        = "big_tipper"
	colTripCount        = "trip_count"
	colAvgFare          = "avg_fare"
	colAvgTripDuration  = "avg_trip_duration"
)

var featureTS = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// tripFeaturesSchema: entity trip_id; event_timestamp = the pickup;
// created_timestamp = the snapshot's newest pickup, so where snapshots
// overlap Feast takes the newer one's row; the features of the fare and
// big-tipper models under their feature names (fare is the meter fare the
// ride published, a feature of big_tipper); the labels: actual_fare, tips
// and big_tipper (1 when tips > 0.2 × actual fare, as training labels it).
// Unknown values are null: trip_seconds, avg_speed_mph and fare when the
// ride had none, areas 0, payment type and company "".
func tripFeaturesSchema() *arrow.Schema {
	f := func(name string, t arrow.DataType, nullable bool) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable}
	}
	i64, f64, str := arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64, arrow.BinaryTypes.String
	return arrow.NewSchema([]arrow.Field{
		f(colTripID, str, false),
		f(colEventTimestamp, featureTS, false),
		f(colCreatedTimestamp, featureTS, false),
		f(features.TripMiles, f64, true),
		f(features.TripSeconds, f64, true),
		f(features.AvgSpeedMph, f64, true),
		f(features.PickupHour, i64, false),
		f(features.PickupDayOfWeek, i64, false),
		f(features.PickupMonth, i64, false),
		f(features.PickupArea, i64, true),
		f(features.DropoffArea, i64, true),
		f(features.PaymentType, str, true),
		f(features.Company, str, true),
		f(features.Fare, f64, true),
		f(colActualFare, f64, false),
		f(colTips, f64, false),
		f(colBigTipper, i64, false),
	}, nil)
}

// areaStatsSchema: entity pickup_community_area; event_timestamp = the end
// of the hour (when the window's value is known); created_timestamp as in
// the trip table; trip_count; avg_fare and avg_trip_duration over the trips
// that have one (null when none has).
func areaStatsSchema() *arrow.Schema {
	f := func(name string, t arrow.DataType, nullable bool) arrow.Field {
		return arrow.Field{Name: name, Type: t, Nullable: nullable}
	}
	i64, f64 := arrow.PrimitiveTypes.Int64, arrow.PrimitiveTypes.Float64
	return arrow.NewSchema([]arrow.Field{
		f(features.PickupArea, i64, false),
		f(colEventTimestamp, featureTS, false),
		f(colCreatedTimestamp, featureTS, false),
		f(colTripCount, i64, false),
		f(colAvgFare, f64, true),
		f(colAvgTripDuration, f64, true),
	}, nil)
}

// featureTableKey is the object a snapshot's table is written to.
func featureTableKey(table, datasetID string) string {
	return table + "/dataset=" + datasetID + "/part-0.parquet"
}

// MaterializeFeatures writes the offline feature tables of a snapshot and,
// when a Feast feature server is configured, materializes them online.
//
// It reads the snapshot's train.parquet and holdout.parquet (DatasetURI is
// the snapshot's prefix, s3://bucket/<model>/<id>/), turns every trip into
// model features the one way training and serving do (rides.FeatureTrip →
// features.Transform), and writes trip_features and area_stats to the
// feature bucket (see TripFeaturesTable). With Feast it then materializes
// FeastViews over [From, end) — or incrementally up to end when From is
// zero — where end is just past the later of To and the newest
// event_timestamp written (an hour's statistics are stamped with its end),
// and pushes each area's latest hour to the online store through
// FeastAreaStatsPush.
//
// A missing or unreadable snapshot is a non-retryable BadDataset; a Feast
// 4xx a non-retryable InvalidInput with the server's message; Feast 5xx and
// transport failures are retried.
func (a *Activities) MaterializeFeatures(ctx context.Context, in MaterializeInput) (MaterializeResult, error) {
	bucket, prefix, id, err := snapshotLocation(in.DatasetURI)
	if err != nil {
		return MaterializeResult{}, permanent(ErrTypeInvalidInput, err)
	}
	if a.FeatureBucket == "" {
		return MaterializeResult{}, permanent(ErrTypeInvalidInput, errors.New("materialize: no feature bucket is configured"))
	}
	if a.Location == nil {
		return MaterializeResult{}, permanent(ErrTypeInvalidInput, errors.New("materialize: no time zone is configured for calendar features"))
	}
	if !in.From.IsZero() && !in.To.IsZero() && in.From.After(in.To) {
		return MaterializeResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("materialize %s: from %v is after to %v", in.DatasetURI, in.From, in.To))
	}

	var rows []dataset.Row
	for _, part := range []string{"train.parquet", "holdout.parquet"} {
		r, err := a.readSnapshotPart(ctx, "s3://"+bucket+"/"+prefix+part)
		if err != nil {
			return MaterializeResult{}, err
		}
		rows = append(rows, r...)
	}
	rows = uniqueTrips(rows)
	if len(rows) == 0 {
		return MaterializeResult{}, permanent(ErrTypeBadDataset, fmt.Errorf("materialize %s: the snapshot has no trips", in.DatasetURI))
	}
	ex := training.Examples(rows, a.Areas, a.Location)
	created := ex[len(ex)-1].Time
	stats := areaStats(ex)

	tripBytes, err := encodeTripFeatures(ex, created)
	if err != nil {
		return MaterializeResult{}, fmt.Errorf("materialize %s: %w", in.DatasetURI, err)
	}
	areaBytes, err := encodeAreaStats(stats, created)
	if err != nil {
		return MaterializeResult{}, fmt.Errorf("materialize %s: %w", in.DatasetURI, err)
	}
	tripKey, areaKey := featureTableKey(TripFeaturesTable, id), featureTableKey(AreaStatsTable, id)
	for _, o := range []struct {
		key string
		b   []byte
	}{{tripKey, tripBytes}, {areaKey, areaBytes}} {
		if err := a.putFeatures(ctx, o.key, o.b); err != nil {
			return MaterializeResult{}, fmt.Errorf("materialize %s: %w", in.DatasetURI, err)
		}
	}
	res := MaterializeResult{OfflineURI: "s3://" + a.FeatureBucket + "/" + tripKey, Rows: len(ex)}
	a.logInfo("offline features written", "dataset", in.DatasetURI, "trip_features", res.OfflineURI,
		"area_stats", "s3://"+a.FeatureBucket+"/"+areaKey, "trips", len(ex), "area_hours", len(stats))
	if a.Feast == nil {
		return res, nil
	}

	newest := ex[len(ex)-1].Time
	for _, s := range stats {
		if s.end.After(newest) {
			newest = s.end
		}
	}
	end := in.To
	if end.IsZero() || newest.After(end) {
		end = newest
	}
	// Feast reads event times in [start, end): one second more takes the
	// newest row in.
	end = end.Add(time.Second)
	if in.From.IsZero() {
		err = a.Feast.MaterializeIncremental(ctx, end, FeastViews())
	} else {
		err = a.Feast.Materialize(ctx, in.From, end, FeastViews())
	}
	if err != nil {
		return res, feastFailure("materialize "+in.DatasetURI, err)
	}
	latest := latestAreaStats(stats)
	if len(latest) > 0 {
		if err := a.Feast.Push(ctx, FeastAreaStatsPush, areaStatsColumns(latest, created), feast.PushOnline); err != nil {
			return res, feastFailure("push area statistics of "+in.DatasetURI, err)
		}
	}
	res.Feast = true
	a.logInfo("features materialized", "dataset", in.DatasetURI, "feast", a.Feast.URL(), "views", FeastViews(),
		"from", in.From, "end", end, "areas_pushed", len(latest))
	return res, nil
}

func (a *Activities) logInfo(msg string, args ...any) {
	if a.Logger != nil {
		a.Logger.Info(msg, args...)
	}
}

// feastFailure classifies a feature server error: a 4xx (the request is
// wrong: unknown view, bad column) is not worth retrying.
func feastFailure(what string, err error) error {
	err = fmt.Errorf("%s: %w", what, err)
	if feast.IsPermanent(err) {
		return permanent(ErrTypeInvalidInput, err)
	}
	return err
}

// snapshotLocation splits a snapshot URI s3://bucket/<model>/<id>/ into its
// bucket, key prefix (with the trailing slash) and id (the last segment).
func snapshotLocation(uri string) (bucket, prefix, id string, err error) {
	u, perr := url.Parse(uri)
	if perr != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", "", fmt.Errorf("dataset uri %q is not s3://bucket/prefix/", uri)
	}
	path := strings.Trim(u.Path, "/")
	if path == "" || strings.HasSuffix(path, ".parquet") {
		return "", "", "", fmt.Errorf("dataset uri %q must name a snapshot's prefix (s3://bucket/model/id/), not a bucket or a file", uri)
	}
	id = path[strings.LastIndex(path, "/")+1:]
	if strings.ContainsAny(id, "=% \\") {
		return "", "", "", fmt.Errorf("dataset id %q (from %q) must not hold '=', '%%', spaces or backslashes", id, uri)
	}
	return u.Host, path + "/", id, nil
}

// readSnapshotPart reads one Parquet file of a snapshot; a missing bucket
// or object is a bad dataset, not a reason to retry.
func (a *Activities) readSnapshotPart(ctx context.Context, uri string) ([]dataset.Row, error) {
	rows, err := a.readDataset(ctx, uri)
	if err == nil {
		return rows, nil
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && (resp.Code == "NoSuchBucket" || resp.Code == "NoSuchKey") {
		return nil, permanent(ErrTypeBadDataset, fmt.Errorf("get %s: %s", uri, resp.Code))
	}
	return nil, err
}

// uniqueTrips keeps the last row of each trip id, ordered by pickup then id.
func uniqueTrips(rows []dataset.Row) []dataset.Row {
	at := make(map[string]int, len(rows))
	out := rows[:0:0]
	for _, r := range rows {
		if i, ok := at[r.Ride.TripID]; ok {
			out[i] = r
			continue
		}
		at[r.Ride.TripID] = len(out)
		out = append(out, r)
	}
	sortRows(out)
	return out
}

// areaHour is the running aggregate of one pickup area and hour, as the
// aggregates streamer keeps a window's.
type areaHour struct {
	area        int
	end         time.Time
	count       int
	sumFare     float64
	nFare       int
	sumDuration float64
	nDuration   int
}

func (s *areaHour) avgFare() (float64, bool) {
	if s.nFare == 0 {
		return 0, false
	}
	return s.sumFare / float64(s.nFare), true
}

func (s *areaHour) avgDuration() (float64, bool) {
	if s.nDuration == 0 {
		return 0, false
	}
	return s.sumDuration / float64(s.nDuration), true
}

// areaStats aggregates trips per pickup area and clock hour (UTC-aligned,
// as the streamer's windows are), ordered by hour end then area. Trips of
// unknown area are left out, as the streamer's repartitioner leaves them.
func areaStats(ex []training.Example) []areaHour {
	type key struct {
		area int
		end  int64
	}
	idx := map[key]int{}
	var out []areaHour
	for i := range ex {
		e := &ex[i]
		if e.Row.PickupArea <= 0 {
			continue
		}
		end := e.Time.UTC().Truncate(time.Hour).Add(time.Hour)
		k := key{e.Row.PickupArea, end.Unix()}
		j, ok := idx[k]
		if !ok {
			j = len(out)
			idx[k] = j
			out = append(out, areaHour{area: e.Row.PickupArea, end: end})
		}
		s := &out[j]
		s.count++
		if !math.IsNaN(e.Row.Fare) {
			s.sumFare += e.Row.Fare
			s.nFare++
		}
		if !math.IsNaN(e.Row.TripSeconds) {
			s.sumDuration += e.Row.TripSeconds
			s.nDuration++
		}
	}
	slices.SortFunc(out, func(x, y areaHour) int {
		if c := x.end.Compare(y.end); c != 0 {
			return c
		}
		return x.area - y.area
	})
	return out
}

// latestAreaStats is each area's newest hour, by area.
func latestAreaStats(stats []areaHour) []areaHour {
	last := map[int]areaHour{}
	for _, s := range stats {
		if l, ok := last[s.area]; !ok || s.end.After(l.end) {
			last[s.area] = s
		}
	}
	out := make([]areaHour, 0, len(last))
	for _, s := range last {
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y areaHour) int { return x.area - y.area })
	return out
}

// areaStatsColumns is the push DataFrame of area statistics: the columns of
// the area_stats table, so a pushed row and a materialized one agree.
func areaStatsColumns(stats []areaHour, created time.Time) map[string][]any {
	cols := map[string][]any{}
	for _, s := range stats {
		cols[features.PickupArea] = append(cols[features.PickupArea], int64(s.area))
		cols[colEventTimestamp] = append(cols[colEventTimestamp], s.end)
		cols[colCreatedTimestamp] = append(cols[colCreatedTimestamp], created)
		cols[colTripCount] = append(cols[colTripCount], int64(s.count))
		cols[colAvgFare] = append(cols[colAvgFare], optional(s.avgFare()))
		cols[colAvgTripDuration] = append(cols[colAvgTripDuration], optional(s.avgDuration()))
	}
	return cols
}

func optional(v float64, ok bool) any {
	if !ok {
		return nil
	}
	return v
}

func encodeTripFeatures(ex []training.Example, created time.Time) ([]byte, error) {
	tipper, err := training.Lookup(training.BigTipper)
	if err != nil {
		return nil, err
	}
	schema := tripFeaturesSchema()
	return encodeTable(schema, func(b *array.RecordBuilder) {
		for i := range ex {
			e := &ex[i]
			r := &e.Row
			b.Field(0).(*array.StringBuilder).Append(e.TripID)
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(e.Time.UnixMicro()))
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(created.UnixMicro()))
			appendFloat(b.Field(3), r.TripMiles)
			appendFloat(b.Field(4), r.TripSeconds)
			appendFloat(b.Field(5), r.AvgSpeedMph)
			b.Field(6).(*array.Int64Builder).Append(int64(r.PickupHour))
			b.Field(7).(*array.Int64Builder).Append(int64(r.PickupDayOfWeek))
			b.Field(8).(*array.Int64Builder).Append(int64(r.PickupMonth))
			appendArea(b.Field(9), r.PickupArea)
			appendArea(b.Field(10), r.DropoffArea)
			appendString(b.Field(11), r.PaymentType)
			appendString(b.Field(12), r.Company)
			appendFloat(b.Field(13), r.Fare)
			b.Field(14).(*array.Float64Builder).Append(e.Fare)
			b.Field(15).(*array.Float64Builder).Append(e.Tips)
			b.Field(16).(*array.Int64Builder).Append(int64(tipper.Label(e)))
		}
	})
}

func encodeAreaStats(stats []areaHour, created time.Time) ([]byte, error) {
	return encodeTable(areaStatsSchema(), func(b *array.RecordBuilder) {
		for i := range stats {
			s := &stats[i]
			b.Field(0).(*array.Int64Builder).Append(int64(s.area))
			b.Field(1).(*array.TimestampBuilder).Append(arrow.Timestamp(s.end.UnixMicro()))
			b.Field(2).(*array.TimestampBuilder).Append(arrow.Timestamp(created.UnixMicro()))
			b.Field(3).(*array.Int64Builder).Append(int64(s.count))
			if v, ok := s.avgFare(); ok {
				b.Field(4).(*array.Float64Builder).Append(v)
			} else {
				b.Field(4).AppendNull()
			}
			if v, ok := s.avgDuration(); ok {
				b.Field(5).(*array.Float64Builder).Append(v)
			} else {
				b.Field(5).AppendNull()
			}
		}
	})
}

// encodeTable writes one record as a Snappy-compressed Parquet file with
// the Arrow schema stored, as dataset.Write does.
func encodeTable(schema *arrow.Schema, fill func(*array.RecordBuilder)) ([]byte, error) {
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	fill(b)
	rec := b.NewRecord()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Snappy))
	fw, err := pqarrow.NewFileWriter(schema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("write parquet: %w", err)
	}
	return buf.Bytes(), nil
}

func appendFloat(b array.Builder, v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		b.AppendNull()
		return
	}
	b.(*array.Float64Builder).Append(v)
}

func appendArea(b array.Builder, area int) {
	if area <= 0 {
		b.AppendNull()
		return
	}
	b.(*array.Int64Builder).Append(int64(area))
}

func appendString(b array.Builder, s string) {
	if s == "" {
		b.AppendNull()
		return
	}
	b.(*array.StringBuilder).Append(s)
}

func (a *Activities) putFeatures(ctx context.Context, key string, b []byte) error {
	_, err := a.S3.PutObject(ctx, a.FeatureBucket, key, bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/vnd.apache.parquet"})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", a.FeatureBucket, key, err)
	}
	return nil
}
