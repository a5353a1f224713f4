package anomaly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

var loadAreas = sync.OnceValues(geo.LoadCommunityAreas)

func areas(t testing.TB) *geo.Areas {
	t.Helper()
	a, err := loadAreas()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// newProc returns a processor whose store is never restored: direct use,
// no broker.
func newProc(t testing.TB, cfg Config) *Processor {
	t.Helper()
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(cfg, areas(t), store, NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var t0 = time.Date(2016, 5, 3, 18, 15, 0, 0, time.UTC) // 13:15 in Chicago

// Points: the Loop (area 32), Evanston and Oak Park (in the catalog's
// bounding box, outside the city).
var (
	loop     = [2]float64{41.8781, -87.6298}
	evanston = [2]float64{42.0451, -87.6877}
	oakPark  = [2]float64{41.885, -87.7845}
)

type rideSpec struct {
	id               string
	at               time.Time
	miles, fare      float64
	seconds          *float64
	pickup, dropoff  *[2]float64
	area             *int
	company          string
	partition        int32
	withoutDefaultPt bool
}

func secs(v float64) *float64 { return &v }

func (s rideSpec) record(t testing.TB) *kgo.Record {
	t.Helper()
	r := contracts.RawRide{TripID: s.id, PickupDatetime: s.at, TripDistance: &s.miles, FareAmount: &s.fare, TripSeconds: s.seconds,
		PaymentType: "Cash", Company: s.company, PickupCommunityArea: s.area}
	if s.at.IsZero() {
		r.PickupDatetime = t0
	}
	pu, do := s.pickup, s.dropoff
	if !s.withoutDefaultPt {
		if pu == nil {
			pu = &loop
		}
		if do == nil {
			do = &loop
		}
	}
	if pu != nil {
		r.PickupLatitude, r.PickupLongitude = &pu[0], &pu[1]
	}
	if do != nil {
		r.DropoffLatitude, r.DropoffLongitude = &do[0], &do[1]
	}
	b, err := contracts.Encode(&r)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicRidesRaw, Partition: s.partition, Key: []byte(s.id), Value: b}
}

func prediction(t testing.TB, id string, at time.Time, fare, confidence float64, partition int32) *kgo.Record {
	t.Helper()
	tip, prob := 1.0, 0.3
	p := contracts.Prediction{TripID: id, Timestamp: at, PredictedFare: fare, PredictedTip: &tip, BigTipperProb: &prob,
		ConfidenceScore: confidence, ModelVersion: "v-fare-1", ModelVersions: map[string]string{"fare": "v-fare-1", "tip": "v-tip-1", "big_tipper": "v-bt-1"}}
	b, err := contracts.Encode(&p)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicPredictions, Partition: partition, Key: []byte(id), Value: b}
}

func process(t testing.TB, p *Processor, in *kgo.Record) []contracts.Anomaly {
	t.Helper()
	out, err := p.Process(context.Background(), in)
	if err != nil {
		t.Fatalf("process %s: %v", in.Value, err)
	}
	var as []contracts.Anomaly
	for _, o := range out {
		if o.Topic != contracts.TopicAnomalies || string(o.Key) != string(in.Key) {
			t.Fatalf("record to %s keyed %q for input keyed %q", o.Topic, o.Key, in.Key)
		}
		a, err := contracts.Decode[contracts.Anomaly](o.Value)
		if err != nil {
			t.Fatalf("not an anomaly: %v\n%s", err, o.Value)
		}
		as = append(as, *a)
	}
	return as
}

func types(as []contracts.Anomaly) []string {
	var ts []string
	for _, a := range as {
		ts = append(ts, a.AnomalyType)
	}
	return ts
}

func TestRulesAtTheirBoundaries(t *testing.T) {
	area8 := 8
	for _, c := range []struct {
		name  string
		ride  rideSpec
		want  []string
		score float64
	}{
		{"90 mph is possible", rideSpec{miles: 90, seconds: secs(3600), fare: 150}, nil, 0},
		{"over 90 mph is not", rideSpec{miles: 90.009, seconds: secs(3600), fare: 150}, []string{TypeImpossibleSpeed}, 90.009 / 90},
		{"a mile in 10 s", rideSpec{miles: 1, seconds: secs(10), fare: 5}, []string{TypeImpossibleSpeed}, 4},
		{"zero duration has no speed", rideSpec{miles: 5, seconds: secs(0), fare: 15}, nil, 0},
		{"unknown duration has no speed", rideSpec{miles: 5, fare: 15}, nil, 0},
		{"zero distance at $50", rideSpec{miles: 0, seconds: secs(600), fare: 50}, nil, 0},
		{"zero distance over $50", rideSpec{miles: 0, seconds: secs(600), fare: 50.25}, []string{TypeZeroDistanceFare}, 50.25 / 50},
		{"a little distance over $50", rideSpec{miles: 0.01, seconds: secs(600), fare: 500}, nil, 0},
		{"zero distance, zero duration, high fare", rideSpec{miles: 0, seconds: secs(0), fare: 75}, []string{TypeZeroDistanceFare}, 1.5},
		{"pickup in Evanston", rideSpec{miles: 3, seconds: secs(600), fare: 10, pickup: &evanston}, []string{TypeOutsideChicago}, 1},
		{"both ends outside", rideSpec{miles: 5, seconds: secs(900), fare: 15, pickup: &evanston, dropoff: &oakPark}, []string{TypeOutsideChicago}, 2},
		{"no coordinates, city's label", rideSpec{miles: 3, seconds: secs(600), fare: 10, withoutDefaultPt: true, area: &area8}, nil, 0},
		{"no coordinates at all", rideSpec{miles: 3, seconds: secs(600), fare: 10, withoutDefaultPt: true}, nil, 0},
		{"speed, zero fare rule and outside together", rideSpec{miles: 0, seconds: secs(1), fare: 60, pickup: &oakPark}, []string{TypeZeroDistanceFare, TypeOutsideChicago}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newProc(t, Config{})
			c.ride.id = "trip"
			as := process(t, p, c.ride.record(t))
			if !slices.Equal(types(as), c.want) {
				t.Fatalf("anomalies %v, want %v: %+v", types(as), c.want, as)
			}
			if len(c.want) == 1 && !near(as[0].AnomalyScore, c.score) {
				t.Fatalf("score %v, want %v", as[0].AnomalyScore, c.score)
			}
			for _, a := range as {
				if a.TripID != "trip" || !a.Timestamp.Equal(t0) || len(a.Details) == 0 {
					t.Fatalf("anomaly %+v: want trip, %v and details", a, t0)
				}
			}
		})
	}
}

func TestAnomalyDetailsExplain(t *testing.T) {
	p := newProc(t, Config{})
	as := process(t, p, rideSpec{id: "x", miles: 2, seconds: secs(40), fare: 9, pickup: &evanston}.record(t))
	if !slices.Equal(types(as), []string{TypeImpossibleSpeed, TypeOutsideChicago}) {
		t.Fatalf("anomalies %v", types(as))
	}
	speed := as[0].Details
	if speed["speed_mph"] != 180.0 || speed["max_speed_mph"] != 90.0 || speed["trip_distance"] != 2.0 || speed["trip_seconds"] != 40.0 {
		t.Errorf("speed details %v", speed)
	}
	out := as[1].Details
	if out["pickup_outside"] != true || out["dropoff_outside"] != false || out["pickup_latitude"] != evanston[0] ||
		out["pickup_nearest_area_name"] != "ROGERS PARK" {
		t.Errorf("outside details %v", out)
	}
}

// TestFareVsPredicted judges a fare against max(k·σ, floor) with σ read
// from the prediction's confidence, whichever of ride and prediction
// arrives first.
func TestFareVsPredicted(t *testing.T) {
	for _, c := range []struct {
		name      string
		pred      float64
		sigma     float64 // 0: the prediction carries confidence 0
		fare      float64
		anomaly   bool
		threshold float64
		source    string
	}{
		{"floor decides: $10 off is not enough", 10, 2, 20, false, 10, SpreadConfidence},
		{"floor decides: over $10 off", 10, 2, 20.01, true, 10, SpreadConfidence},
		{"under the prediction", 25, 2, 14.99, true, 10, SpreadConfidence},
		{"4σ decides: just under", 30, 5, 49.99, false, 20, SpreadConfidence},
		{"4σ decides: just over", 30, 5, 50.01, true, 20, SpreadConfidence},
		{"no spread recorded: configured σ $3, 4σ = $12", 10, 0, 22, false, 12, SpreadConfig},
		{"no spread recorded: over $12", 10, 0, 22.01, true, 12, SpreadConfig},
		{"saturated confidence: configured σ", 300, 0.5, 312.01, true, 12, SpreadConfig},
	} {
		for _, rideFirst := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ride first %v", c.name, rideFirst), func(t *testing.T) {
				p := newProc(t, Config{})
				conf := 0.0
				if c.sigma > 0 {
					conf = inference.Confidence(c.pred, c.sigma)
				}
				r := rideSpec{id: "trip", miles: 3, seconds: secs(600), fare: c.fare}.record(t)
				pr := prediction(t, "trip", t0, c.pred, conf, 0)
				var as []contracts.Anomaly
				if rideFirst {
					if a := process(t, p, r); len(a) != 0 {
						t.Fatalf("ride alone: %v", types(a))
					}
					as = process(t, p, pr)
				} else {
					if a := process(t, p, pr); len(a) != 0 {
						t.Fatalf("prediction alone: %v", types(a))
					}
					as = process(t, p, r)
				}
				if !c.anomaly {
					if len(as) != 0 {
						t.Fatalf("anomalies %+v, want none", as)
					}
					return
				}
				if len(as) != 1 || as[0].AnomalyType != TypeFareVsPredicted {
					t.Fatalf("anomalies %+v, want fare_vs_predicted", as)
				}
				d := as[0].Details
				if math.Abs(d["threshold"].(float64)-c.threshold) > 1e-9 || d["spread_source"] != c.source ||
					d["predicted_fare"] != c.pred || d["fare_amount"] != c.fare || d["model_version"] != "v-fare-1" {
					t.Fatalf("details %v, want threshold %v from %s", d, c.threshold, c.source)
				}
				if want := math.Abs(c.fare-c.pred) / d["residual_std"].(float64); !near(as[0].AnomalyScore, want) || !as[0].Timestamp.Equal(t0) {
					t.Fatalf("score %v at %v, want %v at %v", as[0].AnomalyScore, as[0].Timestamp, want, t0)
				}
				// A second prediction is ignored.
				if a := process(t, p, pr); len(a) != 0 {
					t.Fatalf("repeated prediction: %v", types(a))
				}
			})
		}
	}
}

func TestRideRequestPredictionsAreIgnored(t *testing.T) {
	p := newProc(t, Config{})
	pr := prediction(t, "req", t0, 10, 0.5, 0)
	var m contracts.Prediction
	if err := json.Unmarshal(pr.Value, &m); err != nil {
		t.Fatal(err)
	}
	m.RequestID = "req-1"
	b, _ := contracts.Encode(&m)
	pr.Value = b
	process(t, p, pr)
	if n := p.StateEntries(); n != 0 {
		t.Fatalf("%d state entries after a ride request's prediction", n)
	}
}

// TestDuplicatesWithinTTL flags a trip id seen again within the TTL of
// event time, and forgets it after.
func TestDuplicatesWithinTTL(t *testing.T) {
	p := newProc(t, Config{DedupTTL: 48 * time.Hour, JoinTTL: time.Hour})
	first := rideSpec{id: "dup", at: t0, miles: 3, seconds: secs(600), fare: 12}
	if as := process(t, p, first.record(t)); len(as) != 0 {
		t.Fatalf("first ride: %v", types(as))
	}
	as := process(t, p, first.record(t))
	if len(as) != 1 || as[0].AnomalyType != TypeDuplicateTrip || as[0].AnomalyScore != 2 || as[0].Details["identical"] != true {
		t.Fatalf("redelivery: %+v", as)
	}
	changed := first
	changed.fare, changed.at = 99, t0.Add(time.Hour)
	as = process(t, p, changed.record(t))
	if len(as) != 1 || as[0].AnomalyScore != 3 || as[0].Details["identical"] != false || as[0].Details["seconds_apart"] != 3600.0 {
		t.Fatalf("a different ride with the id: %+v", as)
	}
	// Exactly the TTL later the id is still known; a nanosecond more and
	// it is forgotten.
	clock := func(at time.Time) {
		process(t, p, rideSpec{id: "clock-" + at.String(), at: at, miles: 1, seconds: secs(300), fare: 6}.record(t))
	}
	clock(t0.Add(48 * time.Hour))
	if as := process(t, p, first.record(t)); len(as) != 1 || as[0].AnomalyScore != 4 {
		t.Fatalf("at the TTL: %+v", as)
	}
	clock(t0.Add(48*time.Hour + 1))
	if as := process(t, p, first.record(t)); len(as) != 0 {
		t.Fatalf("after the TTL: %+v", as)
	}
	// A repeat that itself moves the clock past the TTL is a new trip.
	second := rideSpec{id: "again", at: t0.Add(50 * time.Hour), miles: 3, seconds: secs(600), fare: 12}
	process(t, p, second.record(t))
	second.at = second.at.Add(48*time.Hour + 1)
	if as := process(t, p, second.record(t)); len(as) != 0 {
		t.Fatalf("repeat past the TTL: %+v", as)
	}
}

// TestRidesFarAheadOfPredictions: a ride whose prediction comes long after
// (in ride time) is still checked; only the prediction clock expires its
// wait.
func TestRidesFarAheadOfPredictions(t *testing.T) {
	p := newProc(t, Config{DedupTTL: 48 * time.Hour, JoinTTL: time.Hour})
	process(t, p, rideSpec{id: "r", at: t0, miles: 3, seconds: secs(600), fare: 100}.record(t))
	for d := range 10 {
		process(t, p, rideSpec{id: fmt.Sprint("later", d), at: t0.Add(time.Duration(d+1) * 24 * time.Hour), miles: 3, seconds: secs(600), fare: 12}.record(t))
	}
	if as := process(t, p, prediction(t, "r", t0, 10, 0.5, 0)); len(as) != 1 || as[0].AnomalyType != TypeFareVsPredicted {
		t.Fatalf("prediction 10 ride-days late: %+v", as)
	}
	// Checked, and past the dedup TTL: forgotten.
	if as := process(t, p, rideSpec{id: "r", at: t0, miles: 3, seconds: secs(600), fare: 100}.record(t)); len(as) != 0 {
		t.Fatalf("a repeat past the TTL: %+v", as)
	}
}

// TestJoinTTL: a ride stops waiting for its prediction once the prediction
// clock passed it by the TTL, and a prediction for its ride likewise.
func TestJoinTTL(t *testing.T) {
	m := NewMetrics(nil)
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(Config{JoinTTL: time.Hour}, areas(t), store, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := rideSpec{id: "r", at: t0, miles: 3, seconds: secs(600), fare: 100}
	process(t, p, r.record(t))
	// Predictions of other trips an hour later: the ride still waits.
	process(t, p, prediction(t, "other1", t0.Add(time.Hour), 10, 0.5, 0))
	if as := process(t, p, prediction(t, "r", t0, 10, 0.5, 0)); len(as) != 1 {
		t.Fatalf("prediction within the TTL: %v", types(as))
	}
	r2 := rideSpec{id: "r2", at: t0.Add(2 * time.Hour), miles: 3, seconds: secs(600), fare: 100}
	process(t, p, r2.record(t))
	process(t, p, prediction(t, "other2", t0.Add(3*time.Hour+1), 10, 0.5, 0))
	if as := process(t, p, prediction(t, "r2", t0.Add(2*time.Hour), 10, 0.5, 0)); len(as) != 0 {
		t.Fatalf("prediction after the ride stopped waiting: %v", types(as))
	}
	// A prediction waits for its ride an hour of ride time.
	process(t, p, prediction(t, "p", t0.Add(4*time.Hour), 10, 0.5, 0))
	process(t, p, rideSpec{id: "other3", at: t0.Add(5*time.Hour + 1), miles: 1, seconds: secs(300), fare: 6}.record(t))
	if as := process(t, p, rideSpec{id: "p", at: t0.Add(4 * time.Hour), miles: 3, seconds: secs(600), fare: 100}.record(t)); len(as) != 0 {
		t.Fatalf("ride after its prediction stopped waiting: %v", types(as))
	}
	p.Flush(context.Background())
	p.Checkpoint()
	// r2 gave up on its prediction; p, other1 and other2 on their rides.
	for side, want := range map[string]float64{"ride": 1, "prediction": 3} {
		if got := testutil.ToFloat64(m.ExpiredCounter(side)); got != want {
			t.Errorf("expired waiting %s: %v, want %v", side, got, want)
		}
	}
}

// TestRobustZScoreWindow scores a fare against the previous fares of its
// area and hour once the window has its minimum count, then adds it.
func TestRobustZScoreWindow(t *testing.T) {
	p := newProc(t, Config{Window: 5, MinCount: 5})
	n := 0
	fare := func(f float64, at time.Time, pt *[2]float64) []contracts.Anomaly {
		n++
		return process(t, p, rideSpec{id: fmt.Sprint("t", n), at: at, miles: 3, seconds: secs(900), fare: f, pickup: pt}.record(t))
	}
	for _, f := range []float64{10, 11, 12, 13} {
		if as := fare(f, t0, nil); len(as) != 0 {
			t.Fatalf("under the minimum count: %v", types(as))
		}
	}
	// Four fares only: even a wild one is not scored.
	if as := fare(1000, t0, nil); len(as) != 0 {
		t.Fatalf("fourth: %v", types(as))
	}
	// Window 10 11 12 13 1000: median 12, |dev| 2 1 0 1 988, MAD 1.
	// z = (17.1 − 12)/1.4826 = 3.44: not over 3.5.
	if as := fare(17.1, t0, nil); len(as) != 0 {
		t.Fatalf("z 3.44: %v", types(as))
	}
	// Window 11 12 13 1000 17.1: median 13, |dev| 2 1 0 987 4.1, MAD 2.
	// z = (3 − 13)/(1.4826·2) = −3.372: no. 2.5: −3.541: yes.
	if as := fare(3, t0, nil); len(as) != 0 {
		t.Fatalf("z -3.37: %v", types(as))
	}
	// Window 12 13 1000 17.1 3: median 13, |dev| 1 0 987 4.1 10, MAD 4.1.
	as := fare(-0, t0.Add(24*time.Hour), nil) // same hour, next day: same window
	// z = (0 − 13)/(1.4826·4.1) = −2.139: no.
	if len(as) != 0 {
		t.Fatalf("z -2.14: %v", types(as))
	}
	// Window 13 1000 17.1 3 0: median 13, |dev| 0 987 4.1 10 13 → MAD 10.
	// z = (70 − 13)/14.826 = 3.8446: yes.
	as = fare(70, t0, nil)
	if len(as) != 1 || as[0].AnomalyType != TypeFareZScore {
		t.Fatalf("z 3.84: %+v", as)
	}
	d := as[0].Details
	if !near(as[0].AnomalyScore, 57/14.826) || d["median"] != 13.0 || d["mad"] != 10.0 || d["window_count"] != 5.0 ||
		d["pickup_community_area"] != 32.0 || d["pickup_hour"] != 13.0 || d["method"] != MethodMAD || d["threshold"] != 3.5 {
		t.Fatalf("details %v score %v", d, as[0].AnomalyScore)
	}
	// Another hour, or another area, has its own (empty) window.
	if as := fare(1000, t0.Add(time.Hour), nil); len(as) != 0 {
		t.Fatalf("other hour: %v", types(as))
	}
	if as := fare(1000, t0, &[2]float64{41.75, -87.55}); len(as) != 0 {
		t.Fatalf("other area: %v", types(as))
	}
}

// TestRebuildAndRollback: state written to the store and read back
// carries on exactly; an aborted batch leaves no trace.
func TestRebuildAndRollback(t *testing.T) {
	recs := syntheticStream(t, 3000)
	third := len(recs) / 3

	// Uninterrupted.
	want := runAll(t, newProc(t, smallWindows), recs)

	// Batches of 100, the second third aborted once and processed again,
	// and a restart (a new processor from the store's entries) at two
	// thirds.
	p := newProc(t, smallWindows)
	var got []string
	batch := func(p *Processor, rs []*kgo.Record, commit bool) {
		var out []string
		for _, r := range rs {
			out = append(out, encodeAll(t, process(t, p, r))...)
		}
		if _, err := p.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if commit {
			p.Checkpoint()
			got = append(got, out...)
		} else {
			p.Rollback()
		}
	}
	for i := 0; i < 2*third; i += 100 {
		end := min(i+100, 2*third)
		if i >= third && i < third+500 {
			batch(p, recs[i:end], false)
		}
		batch(p, recs[i:end], true)
	}
	// Restart: copy the committed entries into a new store.
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	for _, pn := range p.store.Partitions() {
		for _, k := range p.store.Keys(pn) {
			v, _ := p.store.Get(pn, k)
			store.Put(pn, k, bytes.Clone(v))
		}
	}
	store.Checkpoint()
	q, err := New(smallWindows, areas(t), store, NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.rebuild(store.Partitions()); err != nil {
		t.Fatal(err)
	}
	if q.StateEntries() != p.StateEntries() {
		t.Fatalf("rebuilt %d entries, had %d", q.StateEntries(), p.StateEntries())
	}
	for i := 2 * third; i < len(recs); i += 100 {
		batch(q, recs[i:min(i+100, len(recs))], true)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%d anomalies with an abort and a restart, %d uninterrupted", len(got), len(want))
	}
	t.Logf("%d anomalies over %d records", len(want), len(recs))
}

// TestSameInputSameAnomalies: the same input gives byte-identical output;
// another interleaving of the two topics gives the same set.
func TestSameInputSameAnomalies(t *testing.T) {
	recs := syntheticStream(t, 3000)
	a := runAll(t, newProc(t, smallWindows), recs)
	b := runAll(t, newProc(t, smallWindows), recs)
	if !slices.Equal(a, b) {
		t.Fatal("two runs over the same input differ")
	}
	// Every ride first, then every prediction: another interleaving.
	var rides, preds []*kgo.Record
	for _, r := range recs {
		if r.Topic == contracts.TopicRidesRaw {
			rides = append(rides, r)
		} else {
			preds = append(preds, r)
		}
	}
	slices.Sort(a)
	for name, order := range map[string][]*kgo.Record{
		"predictions first": append(slices.Clone(preds), rides...),
		"rides first":       append(slices.Clone(rides), preds...),
	} {
		c := runAll(t, newProc(t, smallWindows), order)
		slices.Sort(c)
		if !slices.Equal(a, c) {
			t.Fatalf("%s: %d anomalies, interleaved %d", name, len(c), len(a))
		}
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s[:bytes.IndexByte([]byte(s), '|')]]++
	}
	for _, typ := range Types() {
		if seen[typ] == 0 {
			t.Errorf("no %s anomaly in the synthetic stream", typ)
		}
	}
	t.Logf("anomalies by type: %v", seen)
}

func TestInvalidInput(t *testing.T) {
	p := newProc(t, Config{})
	good := rideSpec{id: "x", miles: 1, seconds: secs(300), fare: 6}.record(t)
	for _, c := range []struct {
		name  string
		rec   *kgo.Record
		field string
	}{
		{"not json", &kgo.Record{Topic: contracts.TopicRidesRaw, Value: []byte("{")}, ""},
		{"ride without fare", &kgo.Record{Topic: contracts.TopicRidesRaw, Value: bytes.Replace(good.Value, []byte(`"fare_amount":6`), []byte(`"fare_amount":null`), 1)}, "fare_amount"},
		{"ride from the year 3000", &kgo.Record{Topic: contracts.TopicRidesRaw, Value: bytes.Replace(good.Value, []byte(`"2016-`), []byte(`"3000-`), 1)}, "pickup_datetime"},
		{"prediction without a time", &kgo.Record{Topic: contracts.TopicPredictions, Value: []byte(`{"schema_version":1,"trip_id":"x","model_version":"v","predicted_fare":3,"confidence_score":0.5}`)}, "timestamp"},
		{"confidence over 1", &kgo.Record{Topic: contracts.TopicPredictions, Value: []byte(`{"schema_version":1,"trip_id":"x","timestamp":"2016-01-01T00:00:00Z","model_version":"v","predicted_fare":3,"confidence_score":2}`)}, "confidence_score"},
		{"unknown topic", &kgo.Record{Topic: contracts.TopicActuals, Value: good.Value}, ""},
	} {
		_, err := p.Process(context.Background(), c.rec)
		if !stream.IsPermanent(err) {
			t.Errorf("%s: error %v is not permanent", c.name, err)
			continue
		}
		if c.field != "" {
			var ie *contracts.InvalidError
			if !errors.As(err, &ie) || ie.Field != c.field {
				t.Errorf("%s: error %v, want field %s", c.name, err, c.field)
			}
		}
	}
	if n := p.StateEntries(); n != 0 {
		t.Fatalf("invalid input left %d state entries", n)
	}
}

// TestInputsMustBeCoPartitioned: a replica given partition p of one input
// but not of the other stops rather than split p's state.
func TestInputsMustBeCoPartitioned(t *testing.T) {
	p := newProc(t, Config{})
	p.Assigned(context.Background(), nil, map[string][]int32{contracts.TopicRidesRaw: {0, 1}, contracts.TopicPredictions: {1, 2}})
	_, err := p.Process(context.Background(), rideSpec{id: "x", miles: 1, seconds: secs(300), fare: 6, partition: 1}.record(t))
	var fe *stream.FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "range balancer") {
		t.Fatalf("error %v, want a fatal one naming the range balancer", err)
	}
}

// TestRevokedPartitionIsNotProcessed: records of a partition revoked while
// their batch was in hand leave no state (their transaction aborts).
func TestRevokedPartitionIsNotProcessed(t *testing.T) {
	p := newProc(t, Config{})
	p.Assigned(context.Background(), nil, map[string][]int32{contracts.TopicRidesRaw: {}, contracts.TopicPredictions: {}})
	out, err := p.Process(context.Background(), rideSpec{id: "x", miles: 1, seconds: secs(1), fare: 6, partition: 3}.record(t))
	if err != nil || len(out) != 0 || p.StateEntries() != 0 {
		t.Fatalf("unowned partition: %v, %d records, %d entries", err, len(out), p.StateEntries())
	}
}
