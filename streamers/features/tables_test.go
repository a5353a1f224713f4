package features_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

var (
	_ stream.Stateful    = (*features.Processor)(nil)
	_ stream.Rebalancing = (*features.Processor)(nil)
	_ stream.Sized       = (*features.Processor)(nil)
)

// The ride of features_test.go picks up in the Loop (area 32) at 08:30 UTC.
const loop = 32

func at(hhmm string) time.Time {
	t, err := time.Parse("2006-01-02T15:04Z", "2015-03-08T"+hhmm+"Z")
	if err != nil {
		panic(err)
	}
	return t
}

func observation(t testing.TB, station, hhmm, condition string) *kgo.Record {
	t.Helper()
	b, err := contracts.Encode(&contracts.WeatherObservation{Station: station, Timestamp: at(hhmm), Condition: condition})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicWeather, Key: []byte(station), Value: b}
}

// aggregate is the 1h window of area ending at end, with a score.
func aggregate(t testing.TB, area int, window, end string, count int, score float64) *kgo.Record {
	t.Helper()
	e := at(end)
	b, err := contracts.Encode(&contracts.AreaAggregate{AreaID: area, TimeWindow: window, WindowStart: e.Add(-time.Hour),
		WindowEnd: e, TripCount: count, DemandScore: score})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicFeaturesAggregated, Key: []byte(strconv.Itoa(area) + ":" + window), Value: b}
}

// rideAt is the test ride picked up at hhmm.
func rideAt(hhmm string) *kgo.Record {
	return &kgo.Record{Topic: contracts.TopicRidesRaw, Value: with("2015-03-08T08:30:00Z", at(hhmm).Format(time.RFC3339))}
}

// apply processes table records, which must produce nothing.
func apply(t *testing.T, p *features.Processor, recs ...*kgo.Record) {
	t.Helper()
	for _, r := range recs {
		out, err := p.Process(context.Background(), r)
		if err != nil {
			t.Fatalf("table record %s %s: %v", r.Topic, r.Key, err)
		}
		if len(out) != 0 {
			t.Fatalf("a table record produced %d records", len(out))
		}
	}
}

// joined processes the ride at hhmm and returns its weather and demand.
func joined(t *testing.T, p *features.Processor, hhmm string) (weather, demand string) {
	t.Helper()
	out, err := p.Process(context.Background(), rideAt(hhmm))
	if err != nil || len(out) != 1 {
		t.Fatalf("ride at %s: %d records, %v", hhmm, len(out), err)
	}
	f, err := contracts.Decode[contracts.Features](out[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if f.PickupCommunityArea != loop {
		t.Fatalf("pickup area %d, want %d", f.PickupCommunityArea, loop)
	}
	return f.WeatherCondition, f.DemandLevel
}

func TestWeatherJoin(t *testing.T) {
	p := processor(t)
	if w, _ := joined(t, p, "08:30"); w != features.Unknown {
		t.Errorf("before any observation: %q, want unknown", w)
	}
	apply(t, p,
		observation(t, "chicago", "08:00", "clear"),
		observation(t, "chicago", "09:00", "rain"),
		observation(t, "midway", "08:15", "fog"), // another station: not joined
		observation(t, "chicago", "10:00", "snow"),
	)
	for _, c := range []struct{ pickup, want string }{
		{"07:59", features.Unknown}, // before the first observation
		{"08:00", "clear"},          // exactly at the observation
		{"08:59", "clear"},
		{"09:00", "rain"},
		{"08:45", "clear"}, // a late trip, after the 10:00 observation was read
		{"10:00", "snow"},
		{"23:00", "snow"}, // the latest holds until the next
	} {
		if w, _ := joined(t, p, c.pickup); w != c.want {
			t.Errorf("trip at %s: weather %q, want %q", c.pickup, w, c.want)
		}
	}
	// A late observation slots into the history; one at the same time
	// replaces the earlier (a correction).
	apply(t, p, observation(t, "chicago", "09:30", "fog"), observation(t, "chicago", "09:00", "storm"))
	for _, c := range []struct{ pickup, want string }{{"09:15", "storm"}, {"09:45", "fog"}, {"10:30", "snow"}} {
		if w, _ := joined(t, p, c.pickup); w != c.want {
			t.Errorf("after the late observation, trip at %s: %q, want %q", c.pickup, w, c.want)
		}
	}
	if got := p.WeatherAt(at("09:45")); got != "fog" {
		t.Errorf("WeatherAt = %q", got)
	}
	// A tombstone removes the station.
	apply(t, p, &kgo.Record{Topic: contracts.TopicWeather, Key: []byte("chicago")})
	if w, _ := joined(t, p, "10:30"); w != features.Unknown {
		t.Errorf("after the tombstone: %q, want unknown", w)
	}
}

func TestWeatherHistoryIsBounded(t *testing.T) {
	p := processor(t)
	p.Config = features.Config{WeatherHistory: 2}
	apply(t, p,
		observation(t, "chicago", "08:00", "clear"),
		observation(t, "chicago", "09:00", "rain"),
		observation(t, "chicago", "10:00", "snow"),
	)
	// 08:00 was trimmed: a trip that late gets nothing rather than a
	// condition that was not in force.
	for _, c := range []struct{ pickup, want string }{{"08:30", features.Unknown}, {"09:30", "rain"}, {"10:30", "snow"}} {
		if w, _ := joined(t, p, c.pickup); w != c.want {
			t.Errorf("trip at %s: %q, want %q", c.pickup, w, c.want)
		}
	}
	if n := p.StateEntries(); n != 2 {
		t.Errorf("%d entries, want 2", n)
	}
	p2 := processor(t)
	p2.Config = features.Config{WeatherStation: "midway"}
	apply(t, p2, observation(t, "chicago", "08:00", "clear"), observation(t, "midway", "08:00", "fog"))
	if w, _ := joined(t, p2, "08:30"); w != "fog" {
		t.Errorf("station midway: %q", w)
	}
}

func TestDemandLevelMapping(t *testing.T) {
	def := features.Config{}.WithDefaults()
	if def.DemandLow != 0.5 || def.DemandHigh != 1.5 || def.DemandWindow != "1h" || def.WeatherStation != "chicago" {
		t.Errorf("defaults %+v", def)
	}
	custom := features.Config{DemandLow: 0.8, DemandHigh: 1.2}.WithDefaults()
	for _, c := range []struct {
		cfg   features.Config
		score float64
		want  string
	}{
		{def, 0, features.DemandLow},
		{def, 0.4999, features.DemandLow},
		{def, 0.5, features.DemandNormal},
		{def, 1, features.DemandNormal},
		{def, 1.5, features.DemandNormal},
		{def, 1.5001, features.DemandHigh},
		{def, 12, features.DemandHigh},
		{custom, 0.79, features.DemandLow},
		{custom, 0.8, features.DemandNormal},
		{custom, 1.2, features.DemandNormal},
		{custom, 1.21, features.DemandHigh},
	} {
		if got := c.cfg.DemandLevel(c.score); got != c.want {
			t.Errorf("DemandLevel(%v) with %v..%v = %q, want %q", c.score, c.cfg.DemandLow, c.cfg.DemandHigh, got, c.want)
		}
	}
}

func TestDemandJoin(t *testing.T) {
	p := processor(t)
	if _, d := joined(t, p, "08:30"); d != features.Unknown {
		t.Errorf("before any aggregate: %q", d)
	}
	apply(t, p,
		aggregate(t, loop, "1h", "08:00", 3, 0.2),
		aggregate(t, loop, "1h", "08:05", 30, 2.0),
		aggregate(t, loop, "24h", "08:10", 300, 0.1), // another window size: ignored
		aggregate(t, 8, "1h", "08:10", 10, 1.0),      // another area
		aggregate(t, loop, "1h", "08:15", 12, 1.0),
	)
	for _, c := range []struct{ pickup, want string }{
		{"07:59", features.Unknown}, // before the first window ended
		{"08:00", features.DemandLow},
		{"08:04", features.DemandLow},
		{"08:05", features.DemandHigh},
		{"08:14", features.DemandHigh},
		{"08:15", features.DemandNormal},
		{"09:30", features.DemandNormal},
	} {
		if _, d := joined(t, p, c.pickup); d != c.want {
			t.Errorf("trip at %s: demand %q, want %q", c.pickup, d, c.want)
		}
	}
	if got := p.DemandLevelAt(8, at("08:30")); got != features.DemandNormal {
		t.Errorf("area 8: %q", got)
	}
	if got := p.DemandLevelAt(0, at("08:30")); got != features.Unknown {
		t.Errorf("unknown area: %q", got)
	}
	// Trips but no score: no baseline, so no level; the previous holds.
	apply(t, p, aggregate(t, loop, "1h", "08:20", 40, 0))
	if _, d := joined(t, p, "08:25"); d != features.DemandNormal {
		t.Errorf("after a window without baseline: %q", d)
	}
	// A tombstone of the 24h window leaves the 1h history alone; the 1h
	// one removes it.
	apply(t, p, &kgo.Record{Topic: contracts.TopicFeaturesAggregated, Key: []byte("32:24h")})
	if _, d := joined(t, p, "08:25"); d != features.DemandNormal {
		t.Errorf("after the 24h tombstone: %q", d)
	}
	apply(t, p, &kgo.Record{Topic: contracts.TopicFeaturesAggregated, Key: []byte("32:1h")})
	if _, d := joined(t, p, "08:25"); d != features.Unknown {
		t.Errorf("after the 1h tombstone: %q", d)
	}
}

func TestTablesRollBackWithTheTransaction(t *testing.T) {
	p := processor(t)
	apply(t, p, observation(t, "chicago", "08:00", "clear"), aggregate(t, loop, "1h", "08:00", 3, 0.2))
	p.Checkpoint()
	// A batch that aborts: its table records must not survive.
	apply(t, p, observation(t, "chicago", "08:00", "storm"), observation(t, "chicago", "08:20", "rain"),
		aggregate(t, loop, "1h", "08:10", 30, 3), observation(t, "midway", "08:00", "fog"))
	if w, d := joined(t, p, "08:30"); w != "rain" || d != features.DemandHigh {
		t.Fatalf("in the batch: %q, %q", w, d)
	}
	p.Rollback()
	if w, d := joined(t, p, "08:30"); w != "clear" || d != features.DemandLow {
		t.Errorf("after the rollback: %q, %q; want clear, low", w, d)
	}
	if n := p.StateEntries(); n != 2 {
		t.Errorf("%d entries after the rollback, want 2", n)
	}
	// Processed again and committed, the batch's records stay.
	apply(t, p, observation(t, "chicago", "08:20", "rain"))
	p.Checkpoint()
	p.Rollback()
	if w, _ := joined(t, p, "08:30"); w != "rain" {
		t.Errorf("a committed record was rolled back: %q", w)
	}
}

func TestInvalidTableRecords(t *testing.T) {
	p := processor(t)
	for _, c := range []struct {
		name string
		rec  *kgo.Record
	}{
		{"weather not JSON", &kgo.Record{Topic: contracts.TopicWeather, Key: []byte("chicago"), Value: []byte("sunny")}},
		{"unknown condition", &kgo.Record{Topic: contracts.TopicWeather, Key: []byte("chicago"),
			Value: []byte(`{"schema_version":1,"station":"chicago","timestamp":"2015-03-08T08:00:00Z","condition":"hail"}`)}},
		{"aggregate of area 0", &kgo.Record{Topic: contracts.TopicFeaturesAggregated, Key: []byte("0:1h"),
			Value: []byte(`{"schema_version":1,"area_id":0,"time_window":"1h","window_end":"2015-03-08T08:00:00Z"}`)}},
		{"aggregate without an end", &kgo.Record{Topic: contracts.TopicFeaturesAggregated, Key: []byte("32:1h"),
			Value: []byte(`{"schema_version":1,"area_id":32,"time_window":"1h","demand_score":1}`)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Process(context.Background(), c.rec)
			if !stream.IsPermanent(err) {
				t.Errorf("error %v, want a permanent one (dead letter)", err)
			}
		})
	}
	_, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicPredictions, Value: []byte(`{}`)})
	if !stream.IsPermanent(err) {
		t.Errorf("a record of another topic: %v", err)
	}
}

func TestRestoreOnAssignment(t *testing.T) {
	ctx := context.Background()
	var calls []string
	p := processor(t)
	p.Restore = func(_ context.Context, topic string, partitions []int32, fn func(*kgo.Record) error) error {
		calls = append(calls, fmt.Sprint(topic, " ", partitions))
		switch topic {
		case contracts.TopicWeather:
			for _, r := range []*kgo.Record{observation(t, "chicago", "08:00", "clear"), {Topic: topic, Value: []byte("junk")}} {
				if err := fn(r); err != nil {
					return err
				}
			}
		case contracts.TopicFeaturesAggregated:
			r := aggregate(t, loop, "1h", "08:00", 3, 2)
			r.Partition = 2
			return fn(r)
		}
		return nil
	}
	// A batch in flight changed the weather; the restore replaces it.
	apply(t, p, observation(t, "chicago", "08:10", "storm"))
	p.Assigned(ctx, nil, map[string][]int32{contracts.TopicRidesRaw: {0, 1}, contracts.TopicWeather: {0}, contracts.TopicFeaturesAggregated: {1, 2}})
	if want := []string{"weather-observations [0]", "taxi-features-aggregated [1 2]"}; fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("restores %q, want %q", calls, want)
	}
	p.Rollback() // the aborted batch: restored records stay
	if w, d := joined(t, p, "08:30"); w != "clear" || d != features.DemandHigh {
		t.Errorf("restored tables: %q, %q; want clear, high", w, d)
	}
	// Revoked partitions are forgotten.
	p.Revoked(map[string][]int32{contracts.TopicFeaturesAggregated: {2}})
	if w, d := joined(t, p, "08:30"); w != "clear" || d != features.Unknown {
		t.Errorf("after revoking aggregates partition 2: %q, %q", w, d)
	}
	// A failed restore stops the runner.
	boom := errors.New("broker gone")
	p.Restore = func(context.Context, string, []int32, func(*kgo.Record) error) error { return boom }
	p.Assigned(ctx, nil, map[string][]int32{contracts.TopicWeather: {0}})
	_, err := p.Process(ctx, rideAt("08:30"))
	var fe *stream.FatalError
	if !errors.As(err, &fe) || !errors.Is(err, boom) {
		t.Errorf("after a failed restore: %v, want a fatal error", err)
	}
}

// TestKafkaRestore rebuilds the tables from a broker: only committed
// records, the latest per key where compaction has run, from the start.
func TestKafkaRestore(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, contracts.TopicWeather), kfake.SeedTopics(3, contracts.TopicFeaturesAggregated))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	ctx := context.Background()
	prod, err := kafka.NewClient(cfg, "writer", kafka.Deps{}, kgo.TransactionalID("writer"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	txn := func(commit bool, recs ...*kgo.Record) {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	agg := aggregate(t, loop, "1h", "08:00", 30, 2)
	agg.Partition = 1
	txn(true, observation(t, "chicago", "08:00", "clear"), agg)
	txn(false, observation(t, "chicago", "08:10", "storm")) // aborted: never seen
	txn(true, observation(t, "chicago", "09:00", "rain"))

	p := processor(t)
	p.Restore = features.KafkaRestore(cfg, kafka.Deps{})
	p.Assigned(ctx, nil, map[string][]int32{contracts.TopicWeather: {0}, contracts.TopicFeaturesAggregated: {0, 1, 2}})
	for _, c := range []struct{ pickup, weather, demand string }{
		{"07:30", features.Unknown, features.Unknown},
		{"08:30", "clear", features.DemandHigh},
		{"09:30", "rain", features.DemandHigh},
	} {
		if w, d := joined(t, p, c.pickup); w != c.weather || d != c.demand {
			t.Errorf("trip at %s: %q, %q; want %q, %q", c.pickup, w, d, c.weather, c.demand)
		}
	}
}

// BenchmarkRide measures a raw ride through the transform and both joins,
// with a day of hourly observations and three hours of aggregates.
func BenchmarkRide(b *testing.B) {
	p := &features.Processor{}
	areas, err := loadAreas()
	if err != nil {
		b.Fatal(err)
	}
	p.Areas = areas
	p.Location, _ = time.LoadLocation("America/Chicago")
	ctx := context.Background()
	for h := range 24 {
		_, _ = p.Process(ctx, observation(b, "chicago", fmt.Sprintf("%02d:00", h), "clear"))
	}
	for m := 0; m < 180; m += 5 {
		_, _ = p.Process(ctx, aggregate(b, loop, "1h", fmt.Sprintf("%02d:%02d", 6+m/60, m%60), 10, 1))
	}
	rec := rideAt("08:30")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Process(ctx, rec); err != nil {
			b.Fatal(err)
		}
	}
}
