package inference_test

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
)

func TestConfidence(t *testing.T) {
	// erf(k/√2) is the share of a normal distribution within k standard
	// deviations: 68.27 %, 95.45 %, 99.73 %.
	const oneSigma, twoSigma, threeSigma = 0.682689492137086, 0.954499736103642, 0.997300203936740
	for _, c := range []struct {
		name      string
		pred, std float64
		want      float64
	}{
		{"band of one sigma", 10, 2, oneSigma},      // ±$2 with σ = $2
		{"band of two sigmas", 20, 2, twoSigma},     // ±$4
		{"band of three sigmas", 30, 2, threeSigma}, // ±$6
		{"band of half a sigma", 5, 2, math.Erf(0.5 / math.Sqrt2)},
		{"under a dollar the band is 20 cents", 0.5, 0.2, oneSigma},
		{"a zero prediction has a 20 cent band", 0, 0.1, twoSigma},
		{"a negative prediction has a 20 cent band", -3, 0.1, twoSigma},
		{"exactly a dollar", 1, 0.2, oneSigma},
		{"no spread recorded", 10, 0, 0},
		{"negative spread", 10, -1, 0},
		{"NaN spread", 10, math.NaN(), 0},
		{"NaN prediction", math.NaN(), 2, 0},
		{"infinite spread", 10, math.Inf(1), 0},
	} {
		got := inference.Confidence(c.pred, c.std)
		if math.Abs(got-c.want) > 1e-12 || math.IsNaN(got) {
			t.Errorf("%s: Confidence(%v, %v) = %v, want %v", c.name, c.pred, c.std, got, c.want)
		}
	}
}

func TestConfidenceIsMonotonic(t *testing.T) {
	// Wider spread, less confidence; bigger fare, wider band, more.
	for _, pred := range []float64{0.5, 3.25, 12, 45} {
		prev := 1.0
		for std := 0.05; std < 100; std *= 1.5 {
			c := inference.Confidence(pred, std)
			if c < 0 || c > 1 {
				t.Fatalf("Confidence(%v, %v) = %v, not a probability", pred, std, c)
			}
			// Strictly less until erf saturates at 1 in float64.
			if c > prev || (c == prev && prev < 1) {
				t.Errorf("Confidence(%v, %v) = %v, not below %v for a smaller spread", pred, std, c, prev)
			}
			prev = c
		}
	}
	prev := 0.0
	for pred := 1.0; pred < 100; pred *= 1.3 {
		c := inference.Confidence(pred, 5)
		if !(c > prev) {
			t.Errorf("Confidence(%v, 5) = %v, not above %v for a smaller fare", pred, c, prev)
		}
		prev = c
	}
}

type fixture struct {
	loc      *time.Location
	areas    *geo.Areas
	examples []training.Example
	fare     *training.Candidate
	tipper   *training.Candidate
	tip      *training.Candidate
	// fare2 is a fare model trained on doubled fares: a recognisably
	// different champion.
	fare2 *training.Candidate
}

var models = sync.OnceValues(func() (*fixture, error) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		return nil, err
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		return nil, err
	}
	rows, err := system.SampleRows(loc)
	if err != nil {
		return nil, err
	}
	ex := training.Examples(rows[:2000], areas, loc)
	f := &fixture{loc: loc, areas: areas, examples: ex}
	fit := func(name string, ex []training.Example) (*training.Candidate, error) {
		m, err := training.Lookup(name)
		if err != nil {
			return nil, err
		}
		return training.Fit(context.Background(), m, ex, nil)
	}
	if f.fare, err = fit(training.Fare, ex); err != nil {
		return nil, err
	}
	if f.tipper, err = fit(training.BigTipper, ex); err != nil {
		return nil, err
	}
	if f.tip, err = fit(training.Tip, ex); err != nil {
		return nil, err
	}
	doubled := make([]training.Example, len(ex))
	for i, e := range ex {
		e.Fare *= 2
		doubled[i] = e
	}
	if f.fare2, err = fit(training.Fare, doubled); err != nil {
		return nil, err
	}
	return f, nil
})

func fixtures(t *testing.T) *fixture {
	t.Helper()
	f, err := models()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func loaded(name, version string, c *training.Candidate) *training.Loaded {
	return &training.Loaded{Name: name, Version: version, Eval: c.Model, Spec: c.Spec, Profile: c.Profile, Metrics: c.Metrics}
}

func newSet() *champions.Set {
	return champions.New(nil, training.ModelNames(), "inference", champions.NewMetrics(nil), slog.New(slog.DiscardHandler))
}

// record is the features record of example i, as the features streamer
// publishes it; noFare makes it a ride request.
func (f *fixture) record(t *testing.T, i int, noFare bool) (*kgo.Record, contracts.Features) {
	t.Helper()
	e := f.examples[i]
	row := e.Row
	if noFare {
		row.Fare = math.NaN()
	}
	msg := rides.FeaturesMessage(e.TripID, e.Time, &row)
	if noFare {
		msg.RequestID = "req-" + e.TripID
	}
	b, err := contracts.Encode(&msg)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Key: []byte(e.TripID), Value: b}, msg
}

func predict(c *training.Candidate, row features.Row) float64 {
	x := make([]float32, c.Spec.Len())
	c.Spec.Vector(&row, x)
	return c.Model.Predict(x)
}

func process(t *testing.T, p *inference.Processor, in *kgo.Record) *contracts.Prediction {
	t.Helper()
	out, err := p.Process(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 {
		t.Fatalf("%d records for one trip, want 1", len(out))
	}
	if out[0].Topic != contracts.TopicPredictions || string(out[0].Key) != string(in.Key) {
		t.Errorf("record to %s keyed %q, want %s keyed %q", out[0].Topic, out[0].Key, contracts.TopicPredictions, in.Key)
	}
	pred, err := contracts.Decode[contracts.Prediction](out[0].Value)
	if err != nil {
		t.Fatalf("not a valid prediction: %v\n%s", err, out[0].Value)
	}
	return pred
}

func TestProcessPredicts(t *testing.T) {
	f := fixtures(t)
	set := newSet()
	set.Serve(loaded(training.Fare, "v-fare-1", f.fare), "test")
	set.Serve(loaded(training.BigTipper, "v-tipper-1", f.tipper), "test")
	set.Serve(loaded(training.Tip, "v-tip-1", f.tip), "test")
	p := &inference.Processor{Models: set}
	if got := p.Topics(); len(got) != 1 || got[0] != contracts.TopicFeaturesRealtime {
		t.Errorf("Topics = %q", got)
	}
	std := f.fare.Metrics[training.MetricResidualStd]
	if !(std > 0) {
		t.Fatalf("the fare model has no residual spread: %v", f.fare.Metrics)
	}
	var sumConf float64
	var fares, requests int
	for i := 0; i < len(f.examples); i += 37 {
		for _, noFare := range []bool{false, true} {
			in, msg := f.record(t, i, noFare)
			pred := process(t, p, in)
			if pred.TripID != msg.TripID || !pred.Timestamp.Equal(msg.Timestamp) || pred.RequestID != msg.RequestID {
				t.Errorf("prediction for %q at %v (request %q), want %q at %v (request %q)",
					pred.TripID, pred.Timestamp, pred.RequestID, msg.TripID, msg.Timestamp, msg.RequestID)
			}
			if pred.ModelVersion != "v-fare-1" {
				t.Errorf("model_version %q, want the fare model's v-fare-1", pred.ModelVersion)
			}
			if len(pred.ModelVersions) != 3 || pred.ModelVersions[training.Fare] != "v-fare-1" ||
				pred.ModelVersions[training.BigTipper] != "v-tipper-1" || pred.ModelVersions[training.Tip] != "v-tip-1" {
				t.Errorf("model_versions %v", pred.ModelVersions)
			}
			row := rides.Row(&msg)
			wantFare := math.Max(0, predict(f.fare, row))
			if pred.PredictedFare != wantFare {
				t.Errorf("%s: predicted fare %v, the fare model says %v", msg.TripID, pred.PredictedFare, wantFare)
			}
			if pred.BigTipperProb == nil {
				t.Fatalf("%s: no big-tipper probability", msg.TripID)
			}
			if pred.PredictedTip == nil || *pred.PredictedTip < 0 {
				t.Fatalf("%s: predicted tip %v", msg.TripID, pred.PredictedTip)
			}
			prob := *pred.BigTipperProb
			if !(prob >= 0 && prob <= 1) {
				t.Errorf("%s: big-tipper probability %v", msg.TripID, prob)
			}
			// The tipper sees the actual fare, or for a ride request the
			// predicted one.
			if noFare {
				row.Fare = wantFare
				requests++
			} else {
				fares++
			}
			if want := predict(f.tipper, row); prob != want {
				t.Errorf("%s (request %v): big-tipper probability %v, the model says %v", msg.TripID, noFare, prob, want)
			}
			if want := inference.Confidence(wantFare, std); pred.ConfidenceScore != want {
				t.Errorf("%s: confidence %v, want %v", msg.TripID, pred.ConfidenceScore, want)
			}
			sumConf += pred.ConfidenceScore
		}
	}
	if fares == 0 || requests == 0 || sumConf == 0 {
		t.Errorf("%d rides, %d requests, total confidence %v", fares, requests, sumConf)
	}
}

func TestProcessWithoutChampionIsTransient(t *testing.T) {
	f := fixtures(t)
	in, _ := f.record(t, 0, false)
	for _, c := range []struct {
		name    string
		serve   []*training.Loaded
		missing string
	}{
		{"none loaded", nil, training.Fare},
		{"only the tipper", []*training.Loaded{loaded(training.BigTipper, "v1", f.tipper)}, training.Fare},
		{"only the fare model", []*training.Loaded{loaded(training.Fare, "v1", f.fare)}, training.BigTipper},
		{"no tip model", []*training.Loaded{loaded(training.Fare, "v1", f.fare), loaded(training.BigTipper, "v1", f.tipper)}, training.Tip},
	} {
		t.Run(c.name, func(t *testing.T) {
			set := newSet()
			for _, m := range c.serve {
				set.Serve(m, "test")
			}
			out, err := (&inference.Processor{Models: set}).Process(context.Background(), in)
			if err == nil {
				t.Fatalf("no error, %d records", len(out))
			}
			if !errors.Is(err, champions.ErrNotLoaded) {
				t.Errorf("error %v does not wrap champions.ErrNotLoaded", err)
			}
			if contracts.IsInvalid(err) || stream.IsPermanent(err) {
				t.Errorf("error %v would dead-letter a valid record; it must be retried", err)
			}
			if want := c.missing + ": "; len(err.Error()) < len(want) || err.Error()[:len(want)] != want {
				t.Errorf("error %q does not name the missing model %s", err, c.missing)
			}
			if len(out) != 0 {
				t.Errorf("%d records with an error", len(out))
			}
		})
	}
}

func TestProcessInvalidFeatures(t *testing.T) {
	f := fixtures(t)
	set := newSet()
	set.Serve(loaded(training.Fare, "v1", f.fare), "test")
	set.Serve(loaded(training.BigTipper, "v1", f.tipper), "test")
	set.Serve(loaded(training.Tip, "v-tip-1", f.tip), "test")
	p := &inference.Processor{Models: set}
	for _, v := range []string{
		`{`,
		`{"schema_version":1,"trip_id":"","timestamp":"2015-01-01T00:00:00Z","pickup_day_of_week":1,"pickup_month":1}`,
		`{"schema_version":1,"trip_id":"t1","timestamp":"2015-01-01T00:00:00Z","pickup_day_of_week":8,"pickup_month":1}`,
		`{"schema_version":1,"trip_id":"t1","timestamp":"2015-01-01T00:00:00Z","pickup_day_of_week":1,"pickup_month":1,"trip_distance_miles":-1}`,
	} {
		_, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Value: []byte(v)})
		if !contracts.IsInvalid(err) {
			t.Errorf("%s: error %v, want an invalid-record error", v, err)
		}
	}
}

func TestProcessHotSwap(t *testing.T) {
	f := fixtures(t)
	set := newSet()
	set.Serve(loaded(training.Fare, "v-fare-1", f.fare), "test")
	set.Serve(loaded(training.BigTipper, "v-tipper-1", f.tipper), "test")
	set.Serve(loaded(training.Tip, "v-tip-1", f.tip), "test")
	p := &inference.Processor{Models: set}

	in, msg := f.record(t, 1234, false)
	row := rides.Row(&msg)
	before := process(t, p, in)
	if before.ModelVersion != "v-fare-1" || before.PredictedFare != math.Max(0, predict(f.fare, row)) {
		t.Fatalf("before the swap: %s predicted %v", before.ModelVersion, before.PredictedFare)
	}

	set.Serve(loaded(training.Fare, "v-fare-2", f.fare2), "model-updates from test")
	after := process(t, p, in)
	if after.ModelVersion != "v-fare-2" || after.ModelVersions[training.Fare] != "v-fare-2" {
		t.Errorf("after the swap the prediction names %q / %v, want v-fare-2", after.ModelVersion, after.ModelVersions)
	}
	if after.ModelVersions[training.BigTipper] != "v-tipper-1" {
		t.Errorf("swapping the fare model changed the tipper's version: %v", after.ModelVersions)
	}
	want := math.Max(0, predict(f.fare2, row))
	if after.PredictedFare != want {
		t.Errorf("after the swap: predicted fare %v, the new model says %v", after.PredictedFare, want)
	}
	// The new model learnt doubled fares: the swap is visible in the numbers.
	if !(after.PredictedFare > 1.5*before.PredictedFare) {
		t.Errorf("fare %v before and %v after swapping in a model of doubled fares", before.PredictedFare, after.PredictedFare)
	}
	if after.ConfidenceScore != inference.Confidence(want, f.fare2.Metrics[training.MetricResidualStd]) {
		t.Errorf("confidence %v does not use the new model's spread", after.ConfidenceScore)
	}
}

// The micro-batched path gives each record what the one-at-a-time path
// gives it.
func TestProcessBatchEqualsProcess(t *testing.T) {
	f := fixtures(t)
	set := newSet()
	set.Serve(loaded(training.Fare, "v1", f.fare), "test")
	set.Serve(loaded(training.BigTipper, "v1", f.tipper), "test")
	set.Serve(loaded(training.Tip, "v1", f.tip), "test")
	p := &inference.Processor{Models: set}
	var in []*kgo.Record
	for i := range 40 {
		r, _ := f.record(t, i, i%3 == 0)
		in = append(in, r)
	}
	in = append(in, &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Value: []byte(`{"trip_id":`)})
	res := p.ProcessBatch(context.Background(), in)
	if len(res) != len(in) {
		t.Fatalf("%d results for %d records", len(res), len(in))
	}
	for i, r := range in {
		one, err := p.Process(context.Background(), r)
		if (err == nil) != (res[i].Err == nil) {
			t.Fatalf("record %d: batch error %v, single error %v", i, res[i].Err, err)
		}
		if err != nil {
			if !contracts.IsInvalid(res[i].Err) {
				t.Fatalf("record %d: batch error %v is not invalid", i, res[i].Err)
			}
			continue
		}
		if len(one) != 1 || len(res[i].Out) != 1 || string(one[0].Value) != string(res[i].Out[0].Value) {
			t.Fatalf("record %d: batch %s, single %s", i, res[i].Out[0].Value, one[0].Value)
		}
	}
	empty := (&inference.Processor{Models: newSet()}).ProcessBatch(context.Background(), in[:3])
	for i, r := range empty {
		if !errors.Is(r.Err, champions.ErrNotLoaded) || stream.IsPermanent(r.Err) {
			t.Fatalf("record %d without champions: %v, want a transient ErrNotLoaded", i, r.Err)
		}
	}
}
