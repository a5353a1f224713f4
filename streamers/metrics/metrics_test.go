package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	mlmetrics "github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
)

var t0 = time.Date(2016, 5, 3, 18, 0, 0, 0, time.UTC)

func newProc(t testing.TB, cfg Config, ref Reference) *Processor {
	t.Helper()
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(cfg, ref, store, NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// pair is one trip's prediction and actual.
type pair struct {
	id            string
	pickup        time.Time
	minutes       float64 // trip length: dropoff = pickup + minutes
	fare, tips    float64 // actual
	pFare, pTip   float64 // predicted
	prob          float64
	version       string // of every model; "" = v1
	partition     int32
	noTip, noProb bool
}

func (p pair) dropoff() time.Time {
	return p.pickup.Add(time.Duration(p.minutes * float64(time.Minute)))
}

func (p pair) prediction(t testing.TB) *kgo.Record {
	t.Helper()
	v := p.version
	if v == "" {
		v = "v1"
	}
	pr := contracts.Prediction{TripID: p.id, Timestamp: p.pickup, PredictedFare: p.pFare, ConfidenceScore: 0.5, ModelVersion: v,
		ModelVersions: map[string]string{training.Fare: v, training.Tip: v, training.BigTipper: v}}
	if !p.noTip {
		pr.PredictedTip = &p.pTip
	}
	if !p.noProb {
		pr.BigTipperProb = &p.prob
	}
	b, err := contracts.Encode(&pr)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicPredictions, Partition: p.partition, Key: []byte(p.id), Value: b}
}

func (p pair) actual(t testing.TB) *kgo.Record {
	t.Helper()
	a := contracts.Actual{TripID: p.id, DropoffDatetime: p.dropoff(), Fare: p.fare, Tips: p.tips, PaymentType: "Credit Card"}
	b, err := contracts.Encode(&a)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicActuals, Partition: p.partition, Key: []byte(p.id), Value: b}
}

// randomPairs are n trips ten minutes apart, lasting 5 to 60 minutes, with
// noisy predictions; about a third are big tippers.
func randomPairs(n int, seed uint64) []pair {
	rng := rand.New(rand.NewPCG(seed, 7))
	ps := make([]pair, n)
	for i := range ps {
		fare := math.Round((3.25+rng.ExpFloat64()*12)*100) / 100
		tips := 0.0
		if rng.IntN(3) == 0 {
			tips = math.Round(fare*0.25*100) / 100
		} else if rng.IntN(2) == 0 {
			tips = math.Round(fare*0.1*100) / 100
		}
		if i%37 == 0 {
			fare, tips = 0, 0 // no MAPE for this one
		}
		ps[i] = pair{
			id: fmt.Sprintf("t%05d", i), pickup: t0.Add(time.Duration(i) * 10 * time.Minute), minutes: 5 + float64(rng.IntN(56)),
			fare: fare, tips: tips, pFare: fare + rng.NormFloat64()*3, pTip: math.Max(0, tips+rng.NormFloat64()),
			prob: min(1, max(0, tips/fare*2.5+rng.NormFloat64()*0.2)),
		}
		if fare == 0 {
			ps[i].prob = 0.1
		}
		ps[i].pFare = math.Max(0, ps[i].pFare)
	}
	return ps
}

// stream orders the pairs' records as the replay does: predictions at
// pickup, actuals at dropoff, merged by event time.
func eventOrder(t testing.TB, ps []pair) []*kgo.Record {
	type ev struct {
		at  time.Time
		seq int
		rec *kgo.Record
	}
	var evs []ev
	for i, p := range ps {
		evs = append(evs, ev{p.pickup, 2 * i, p.prediction(t)}, ev{p.dropoff(), 2*i + 1, p.actual(t)})
	}
	slices.SortStableFunc(evs, func(a, b ev) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.seq - b.seq
	})
	out := make([]*kgo.Record, len(evs))
	for i, e := range evs {
		out[i] = e.rec
	}
	return out
}

func run(t testing.TB, p *Processor, recs []*kgo.Record) []contracts.ModelMetric {
	t.Helper()
	var out []contracts.ModelMetric
	for i, r := range recs {
		rs, err := p.Process(context.Background(), r)
		if err != nil {
			t.Fatalf("process %s: %v", r.Value, err)
		}
		for _, o := range rs {
			m, err := contracts.Decode[contracts.ModelMetric](o.Value)
			if err != nil {
				t.Fatalf("not a metric: %v\n%s", err, o.Value)
			}
			if o.Topic != contracts.TopicModelMetrics || string(o.Key) != m.ModelName {
				t.Fatalf("metric to %s keyed %q", o.Topic, o.Key)
			}
			out = append(out, *m)
		}
		if i%100 == 99 || i == len(recs)-1 {
			if _, err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			p.Checkpoint()
		}
	}
	return out
}

// want computes the windows from scratch: per partition the pairs in order
// of their time (later of pickup and dropoff, ties by id), those the final
// watermark passed, WindowSize at a time, each model measured with
// ml/metrics.
func want(ps []pair, size int, grace time.Duration) map[string]float64 {
	out := map[string]float64{}
	byPart := map[int32][]pair{}
	for _, p := range ps {
		byPart[p.partition] = append(byPart[p.partition], p)
	}
	for part, ps := range byPart {
		var maxP, maxA time.Time
		for _, p := range ps {
			maxP, maxA = later(maxP, p.pickup), later(maxA, p.dropoff())
		}
		wm := earlier(maxP, maxA).Add(-grace)
		slices.SortFunc(ps, func(a, b pair) int {
			if c := a.dropoff().Compare(b.dropoff()); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		var released []pair
		for _, p := range ps {
			if !p.dropoff().After(wm) {
				released = append(released, p)
			}
		}
		for i := 0; i+size <= len(released); i += size {
			w := released[i : i+size]
			var fare, pFare, tips, pTip, big, prob []float64
			for _, p := range w {
				fare, pFare, tips, pTip, prob = append(fare, p.fare), append(pFare, p.pFare), append(tips, p.tips), append(pTip, p.pTip), append(prob, p.prob)
				b := 0.0
				if p.tips > 0.2*p.fare {
					b = 1
				}
				big = append(big, b)
			}
			id := func(model, metric string) string { return MetricID(model, "v1", part, w[0].id, metric) }
			out[id("fare", "mae")] = mlmetrics.MAE(fare, pFare)
			out[id("fare", "rmse")] = mlmetrics.RMSE(fare, pFare)
			out[id("fare", "mape")], _ = mlmetrics.MAPE(fare, pFare)
			out[id("tip", "mae")] = mlmetrics.MAE(tips, pTip)
			out[id("tip", "rmse")] = mlmetrics.RMSE(tips, pTip)
			out[id("big_tipper", "auc")] = mlmetrics.AUC(big, prob)
			out[id("big_tipper", "logloss")] = mlmetrics.LogLoss(big, prob)
		}
	}
	return out
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// TestMetricsEqualMLMetrics: every published value is exactly what
// ml/metrics gives on the window's pairs, recomputed from scratch.
func TestMetricsEqualMLMetrics(t *testing.T) {
	ps := randomPairs(2000, 1)
	for i := range ps {
		ps[i].partition = int32(i % 3)
	}
	cfg := Config{WindowSize: 100}
	got := run(t, newProc(t, cfg, nil), eventOrder(t, ps))
	exp := want(ps, 100, time.Hour)
	if len(got) != len(exp) {
		t.Fatalf("%d metrics published, want %d", len(got), len(exp))
	}
	for _, m := range got {
		w, ok := exp[m.MetricID]
		if !ok {
			t.Fatalf("unexpected metric %s", m.MetricID)
		}
		if m.MetricValue != w {
			t.Errorf("%s = %.17g, ml/metrics %.17g", m.MetricID, m.MetricValue, w)
		}
		size := 100
		if m.MetricName == "mape" {
			size = 0
		}
		if (size > 0 && m.SampleSize != size) || m.Source != Source || m.ModelVersion != "v1" || !m.Timestamp.Equal(m.WindowEnd) ||
			m.WindowEnd.Before(m.WindowStart) || m.HigherIsBetter != (m.MetricName == "auc") || m.Breached() {
			t.Errorf("metric %+v", m)
		}
	}
	t.Logf("%d metrics", len(got))
}

// TestSameMetricsWhateverTheInterleaving: predictions all first, actuals
// all first, or merged by event time: the same windows, the same values.
func TestSameMetricsWhateverTheInterleaving(t *testing.T) {
	ps := randomPairs(1500, 2)
	for i := range ps {
		ps[i].partition = int32(i % 2)
	}
	recs := eventOrder(t, ps)
	var preds, acts []*kgo.Record
	for _, r := range recs {
		if r.Topic == contracts.TopicPredictions {
			preds = append(preds, r)
		} else {
			acts = append(acts, r)
		}
	}
	canon := func(ms []contracts.ModelMetric) []string {
		var out []string
		for _, m := range ms {
			b, _ := json.Marshal(m)
			out = append(out, string(b))
		}
		slices.Sort(out)
		return out
	}
	cfg := Config{WindowSize: 100}
	base := canon(run(t, newProc(t, cfg, nil), recs))
	if again := canon(run(t, newProc(t, cfg, nil), recs)); !slices.Equal(base, again) {
		t.Fatal("the same input gave different metrics")
	}
	for name, order := range map[string][]*kgo.Record{
		"predictions first": append(slices.Clone(preds), acts...),
		"actuals first":     append(slices.Clone(acts), preds...),
	} {
		if got := canon(run(t, newProc(t, cfg, nil), order)); !slices.Equal(base, got) {
			t.Errorf("%s: %d metrics, event order %d", name, len(got), len(base))
		}
	}
	if len(base) == 0 {
		t.Fatal("no metrics")
	}
}

func TestThresholds(t *testing.T) {
	for _, c := range []struct {
		ref         float64
		known, hib  bool
		deg, thresh float64
	}{
		{3, true, false, 1.5, 4.5},
		{0.9, true, true, 1.5, 0.6},
		{0.18, true, false, 2, 0.36},
		{3, false, false, 1.5, math.MaxFloat64},
		{0.9, false, true, 1.5, -math.MaxFloat64},
		{0, true, false, 1.5, math.MaxFloat64},
		{math.NaN(), true, true, 1.5, -math.MaxFloat64},
		{math.Inf(1), true, false, 1.5, math.MaxFloat64},
	} {
		if got := Threshold(c.ref, c.known, c.hib, c.deg); math.Abs(got-c.thresh) > 1e-12 && got != c.thresh {
			t.Errorf("Threshold(%v, %v, %v, %v) = %v, want %v", c.ref, c.known, c.hib, c.deg, got, c.thresh)
		}
	}
	// An unknown threshold is never breached and is valid JSON.
	for _, hib := range []bool{false, true} {
		for _, v := range []float64{0, 1, 1e300, -1e300} {
			m := contracts.ModelMetric{MetricID: "x", ModelName: "fare", MetricName: "rmse", MetricValue: v, Threshold: NoThreshold(hib), HigherIsBetter: hib}
			if m.Breached() {
				t.Errorf("value %v breaches NoThreshold(%v)", v, hib)
			}
			b, err := contracts.Encode(&m)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := contracts.Decode[contracts.ModelMetric](b); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
		}
	}
}

// TestPublishedThresholds takes references from the model versions'
// validation metrics.
func TestPublishedThresholds(t *testing.T) {
	refs := map[string]map[string]float64{
		"fare/v1":       {"rmse": 2, "mae": 1, "mape": 0.1},
		"big_tipper/v1": {"auc": 0.9, "logloss": 0.2},
	}
	ref := func(model, version string) (map[string]float64, bool) {
		m, ok := refs[model+"/"+version]
		return m, ok
	}
	ps := randomPairs(400, 3)
	got := run(t, newProc(t, Config{WindowSize: 100}, ref), eventOrder(t, ps))
	want := map[string]float64{
		"fare/rmse": 3, "fare/mae": 1.5, "fare/mape": 0.15, "tip/mae": math.MaxFloat64, "tip/rmse": math.MaxFloat64,
		"big_tipper/auc": 0.6, "big_tipper/logloss": 0.3,
	}
	if len(got) == 0 {
		t.Fatal("no metrics")
	}
	for _, m := range got {
		w := want[m.ModelName+"/"+m.MetricName]
		if math.Abs(m.Threshold-w) > 1e-12 && m.Threshold != w {
			t.Errorf("%s threshold %v, want %v", m.MetricID, m.Threshold, w)
		}
		// fare RMSE ≈ 3 on noise of σ 3: around its threshold.
		if m.ModelName == "fare" && m.MetricName == "rmse" && m.Breached() != (m.MetricValue > 3) {
			t.Errorf("%s breached %v at %v", m.MetricID, m.Breached(), m.MetricValue)
		}
	}
}

// TestJoinTTL: a prediction waits for its actual until the actuals' clock
// has passed its time by the TTL; an actual waits likewise.
func TestJoinTTL(t *testing.T) {
	m := NewMetrics(nil)
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(Config{WindowSize: 2, JoinTTL: 2 * time.Hour, Grace: time.Minute}, nil, store, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := pair{id: "a", pickup: t0, minutes: 10, fare: 10, pFare: 11, pTip: 1, prob: 0.5}
	other := func(id string, at time.Time) pair {
		return pair{id: id, pickup: at, minutes: 0, fare: 10, pFare: 10, pTip: 1, prob: 0.5}
	}
	run(t, p, []*kgo.Record{a.prediction(t)})
	// An actual exactly two hours later: a still waits.
	run(t, p, []*kgo.Record{other("x", t0.Add(2*time.Hour)).actual(t)})
	if got := testutil.ToFloat64(m.ExpiredCounter("prediction")); got != 0 {
		t.Fatalf("expired at the TTL: %v", got)
	}
	run(t, p, []*kgo.Record{other("y", t0.Add(2*time.Hour+1)).actual(t)})
	if got := testutil.ToFloat64(m.ExpiredCounter("prediction")); got != 1 {
		t.Fatalf("expired after the TTL: %v, want 1", got)
	}
	// Its actual now waits for a prediction that will not come; a
	// prediction more than two hours after its dropoff ends that.
	run(t, p, []*kgo.Record{a.actual(t), other("z", a.dropoff().Add(2*time.Hour+1)).prediction(t)})
	if got := testutil.ToFloat64(m.ExpiredCounter("actual")); got != 1 {
		// a's; x's and y's wait until the predictions pass t0 + 4h.
		t.Fatalf("actuals expired: %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.WindowsCounter("fare")); got != 0 {
		t.Fatalf("%v windows from unmatched trips", got)
	}
}

// TestLatePairsAreDropped: a pair that completes after the watermark
// passed its time is counted as late, not added.
func TestLatePairsAreDropped(t *testing.T) {
	m := NewMetrics(nil)
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(Config{WindowSize: 2, JoinTTL: 48 * time.Hour, Grace: time.Hour}, nil, store, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	late := pair{id: "late", pickup: t0, minutes: 10, fare: 10, pFare: 11, pTip: 1, prob: 0.5}
	b := pair{id: "b", pickup: t0.Add(5 * time.Hour), minutes: 10, fare: 10, pFare: 11, pTip: 1, prob: 0.5}
	run(t, p, []*kgo.Record{late.prediction(t), b.prediction(t), b.actual(t), late.actual(t)})
	if got := testutil.ToFloat64(m.LateCounter()); got != 1 {
		t.Fatalf("late pairs %v, want 1", got)
	}
	// The late trip is remembered: its records again make nothing.
	if out := run(t, p, []*kgo.Record{late.prediction(t), late.actual(t)}); len(out) != 0 || testutil.ToFloat64(m.LateCounter()) != 1 {
		t.Fatalf("repeat of a late pair: %v", out)
	}
}

// TestRepeatsMakeNoSecondPair: a redelivered prediction and actual of a
// counted trip are ignored.
func TestRepeatsMakeNoSecondPair(t *testing.T) {
	ps := randomPairs(10, 4)
	recs := eventOrder(t, ps)
	p := newProc(t, Config{WindowSize: 10}, nil)
	if out := run(t, p, append(slices.Clone(recs[:len(recs)-2]), recs...)); len(out) != 0 {
		t.Fatalf("%d metrics before the watermark passed the tenth pair", len(out))
	}
	// Move both clocks on: the first window (ten distinct pairs) closes.
	far := pair{id: "far", pickup: t0.Add(30 * 24 * time.Hour), fare: 1, pFare: 1, prob: 0.5}
	out := run(t, p, []*kgo.Record{far.prediction(t), far.actual(t)})
	if len(out) != 7 {
		t.Fatalf("%d metrics, want one window's 7", len(out))
	}
	for _, m := range out {
		if m.SampleSize != 10 && m.MetricName != "mape" {
			t.Fatalf("%s sample %d", m.MetricID, m.SampleSize)
		}
	}
}

// TestVersionsHaveTheirOwnWindows: a hot swap starts new windows; the old
// version's partial window is abandoned after the idle TTL.
func TestVersionsHaveTheirOwnWindows(t *testing.T) {
	ps := randomPairs(30, 5)
	for i := range ps {
		if i >= 10 {
			ps[i].version = "v2"
		}
	}
	m := NewMetrics(nil)
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	p, err := New(Config{WindowSize: 20, IdleTTL: 24 * time.Hour}, nil, store, m, nil)
	if err != nil {
		t.Fatal(err)
	}
	far := pair{id: "far", pickup: t0.Add(30 * 24 * time.Hour), fare: 1, pFare: 1, prob: 0.5, version: "v2"}
	out := run(t, p, append(eventOrder(t, ps), far.prediction(t), far.actual(t)))
	// v2 has 20 pairs before "far": one window; v1's ten were abandoned.
	for _, mm := range out {
		if mm.ModelVersion != "v2" || mm.SampleSize > 20 {
			t.Fatalf("metric %+v", mm)
		}
	}
	if len(out) != 7 || testutil.ToFloat64(m.abandoned.WithLabelValues("fare")) != 1 {
		t.Fatalf("%d metrics, %v fare windows abandoned", len(out), testutil.ToFloat64(m.abandoned.WithLabelValues("fare")))
	}
}

// TestMissingPredictionsAndSingleClass: a model without a prediction is
// not measured; AUC with one class is not published, log loss is.
func TestMissingPredictionsAndSingleClass(t *testing.T) {
	ps := randomPairs(10, 6)
	for i := range ps {
		ps[i].noTip = true
		ps[i].tips = 0
	}
	far := pair{id: "far", pickup: t0.Add(30 * 24 * time.Hour), fare: 1, pFare: 1, prob: 0.5, noTip: true}
	out := run(t, newProc(t, Config{WindowSize: 10}, nil), append(eventOrder(t, ps), far.prediction(t), far.actual(t)))
	var names []string
	for _, m := range out {
		names = append(names, m.ModelName+"/"+m.MetricName)
	}
	if !slices.Equal(names, []string{"fare/mae", "fare/rmse", "fare/mape", "big_tipper/logloss"}) {
		t.Fatalf("published %v", names)
	}
}

func TestBigTipperLabel(t *testing.T) {
	// Tips of exactly 20 % are not over 20 %.
	for _, c := range []struct {
		fare, tips float64
		label      float64
	}{{10, 2, 0}, {10, 2.01, 1}, {0, 0, 0}, {0, 0.5, 1}, {50, 0, 0}} {
		p := newProc(t, Config{WindowSize: 2}, nil)
		a := pair{id: "a", pickup: t0, fare: c.fare, tips: c.tips, pFare: 1, prob: 0.3}
		b := pair{id: "b", pickup: t0.Add(time.Minute), fare: c.fare, tips: c.tips, pFare: 1, prob: 0.6}
		far := pair{id: "far", pickup: t0.Add(30 * 24 * time.Hour), fare: 1, pFare: 1, prob: 0.5}
		out := run(t, p, []*kgo.Record{a.prediction(t), a.actual(t), b.prediction(t), b.actual(t), far.prediction(t), far.actual(t)})
		var logloss float64
		for _, m := range out {
			if m.ModelName == "big_tipper" && m.MetricName == "logloss" {
				logloss = m.MetricValue
			}
		}
		y := []float64{c.label, c.label}
		if want := mlmetrics.LogLoss(y, []float64{0.3, 0.6}); logloss != want {
			t.Errorf("fare %v tips %v: log loss %v, want %v (label %v)", c.fare, c.tips, logloss, want, c.label)
		}
	}
}

// TestRebuildAndRollback: state written to the store and read back
// carries on exactly; an aborted batch leaves no trace.
func TestRebuildAndRollback(t *testing.T) {
	ps := randomPairs(3000, 8)
	for i := range ps {
		ps[i].partition = int32(i % 4)
	}
	recs := eventOrder(t, ps)
	cfg := Config{WindowSize: 100}
	base := run(t, newProc(t, cfg, nil), recs)

	p := newProc(t, cfg, nil)
	var got []contracts.ModelMetric
	batch := func(p *Processor, rs []*kgo.Record, commit bool) {
		var out []contracts.ModelMetric
		for _, r := range rs {
			o, err := p.Process(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range o {
				m, _ := contracts.Decode[contracts.ModelMetric](rec.Value)
				out = append(out, *m)
			}
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
	third := len(recs) / 3
	for i := 0; i < 2*third; i += 100 {
		end := min(i+100, 2*third)
		if i >= third && i < third+1000 {
			batch(p, recs[i:end], false)
		}
		batch(p, recs[i:end], true)
	}
	store := state.New(contracts.ChangelogTopic(Name), kafka.Config{}, kafka.Deps{})
	for _, pn := range p.store.Partitions() {
		for _, k := range p.store.Keys(pn) {
			v, _ := p.store.Get(pn, k)
			store.Put(pn, k, bytes.Clone(v))
		}
	}
	store.Checkpoint()
	q, err := New(cfg, nil, store, NewMetrics(nil), nil)
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
	if len(got) != len(base) {
		t.Fatalf("%d metrics with an abort and a restart, %d without", len(got), len(base))
	}
	for i := range got {
		if got[i] != base[i] {
			t.Fatalf("metric %d: %+v, uninterrupted %+v", i, got[i], base[i])
		}
	}
}

func TestInvalidInput(t *testing.T) {
	p := newProc(t, Config{}, nil)
	for _, c := range []struct {
		name  string
		rec   *kgo.Record
		field string
	}{
		{"not json", &kgo.Record{Topic: contracts.TopicActuals, Value: []byte("[")}, ""},
		{"negative fare", &kgo.Record{Topic: contracts.TopicActuals, Value: []byte(`{"schema_version":1,"trip_id":"x","dropoff_datetime":"2016-01-01T00:00:00Z","fare":-1,"tips":0}`)}, "fare"},
		{"no dropoff", &kgo.Record{Topic: contracts.TopicActuals, Value: []byte(`{"schema_version":1,"trip_id":"x","fare":1,"tips":0}`)}, "dropoff_datetime"},
		{"prediction without a time", &kgo.Record{Topic: contracts.TopicPredictions, Value: []byte(`{"schema_version":1,"trip_id":"x","model_version":"v","predicted_fare":3,"confidence_score":0.5}`)}, "timestamp"},
		{"prediction without a model version", &kgo.Record{Topic: contracts.TopicPredictions, Value: []byte(`{"schema_version":1,"trip_id":"x","timestamp":"2016-01-01T00:00:00Z","predicted_fare":3}`)}, "model_version"},
		{"unknown topic", &kgo.Record{Topic: contracts.TopicRidesRaw, Value: []byte(`{}`)}, ""},
	} {
		_, err := p.Process(context.Background(), c.rec)
		if !stream.IsPermanent(err) {
			t.Errorf("%s: error %v is not permanent", c.name, err)
			continue
		}
		var ie *contracts.InvalidError
		if c.field != "" && (!errors.As(err, &ie) || ie.Field != c.field) {
			t.Errorf("%s: error %v, want field %s", c.name, err, c.field)
		}
	}
	if n := p.StateEntries(); n != 0 {
		t.Fatalf("invalid input left %d state entries", n)
	}
}

func TestInputsMustBeCoPartitioned(t *testing.T) {
	p := newProc(t, Config{}, nil)
	p.Assigned(context.Background(), nil, map[string][]int32{contracts.TopicPredictions: {0, 1}, contracts.TopicActuals: {0}})
	_, err := p.Process(context.Background(), pair{id: "x", pickup: t0}.prediction(t))
	var fe *stream.FatalError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "range balancer") {
		t.Fatalf("error %v, want a fatal one naming the range balancer", err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []Config{{WindowSize: 1}, {Degradation: 1}, {Degradation: 0.5}, {Grace: 48 * time.Hour}, {JoinTTL: -1}} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestMetricIDIsStable(t *testing.T) {
	if got := MetricID("fare", "v20240101-abc", 3, "t0123", "rmse"); got != "metrics-streamer/fare/v20240101-abc/3/t0123/rmse" {
		t.Fatalf("id %s", got)
	}
}

func TestChampionsReference(t *testing.T) {
	set := champions.New(nil, training.ModelNames(), "metrics", champions.NewMetrics(nil), slog.New(slog.DiscardHandler))
	ref := Champions(set)
	if _, ok := ref(training.Fare, "v1"); ok {
		t.Fatal("a reference before any champion is loaded")
	}
	set.Serve(&training.Loaded{Name: training.Fare, Version: "v1", Metrics: map[string]float64{"rmse": 3}}, "test")
	if m, ok := ref(training.Fare, "v1"); !ok || m["rmse"] != 3 {
		t.Fatalf("champion's reference %v, %v", m, ok)
	}
	if _, ok := ref(training.Fare, "v0"); ok {
		t.Fatal("a reference for a version that is not the champion")
	}
}
