package demand

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// sumW is Σ wⱼ of the default level: 1 + 2^−½ + 2^−1 + 2^−3/2.
const sumW = 2.5606601717798214

func TestLevel(t *testing.T) {
	def := Config{}.WithDefaults()
	custom := Config{LevelHalfLife: 15 * time.Minute, LevelPrior: 2}.WithDefaults()
	e := func(v float64) []float64 { return []float64{v, v, v, v} }
	for _, c := range []struct {
		name     string
		cfg      Config
		counts   []int
		expected []float64
		want     float64
	}{
		// (1 + 0) / (1 + 0.01·Σw)
		{"no trips, sparse area", def, []int{0, 0, 0, 0}, e(0.01), 0.9750327253403892},
		// (1 + 1) / (1 + 0.0025·Σw)
		{"one trip in the newest slot", def, []int{1, 0, 0, 0}, e(0.0025), 1.9872781400413686},
		// (1 + 2^−3/2) / (1 + 0.0025·Σw): an older trip weighs less
		{"one trip in the oldest slot", def, []int{0, 0, 0, 1}, e(0.0025), 1.3449435322524446},
		// (1 + 10·Σw) / (1 + 5·Σw)
		{"twice the usual demand", def, []int{10, 10, 10, 10}, e(5), 1.9275535605416227},
		{"the usual demand", def, []int{4, 4, 4, 4}, e(4), 1},
		{"clamped above", def, []int{50, 0, 0, 0}, e(0.01), 4},
		// (1 + 0) / (1 + 10·Σw) = 0.038 → 0.25
		{"clamped below", def, []int{0, 0, 0, 0}, e(10), 0.25},
		// weights 1, ½, ¼, ⅛; (2 + 1 + ½·0 + ¼·2) / (2 + 0.5·1.875) = 3.5 / 2.9375
		{"half-life of one tick, prior 2", custom, []int{1, 0, 2, 0}, e(0.5), 3.5 / 2.9375},
	} {
		if got := c.cfg.Level(c.counts, c.expected); !near(got, c.want) {
			t.Errorf("%s: level %v, want %v", c.name, got, c.want)
		}
	}
	var s float64
	for _, w := range def.weights() {
		s += w
	}
	if !near(s, sumW) {
		t.Errorf("default weights sum to %v, want %v", s, sumW)
	}
}

func TestErrorStats(t *testing.T) {
	for _, c := range []struct {
		pred, actual []float64
		mae, rmse    float64
	}{
		{nil, nil, 0, 0},
		{[]float64{0.5}, []float64{2}, 1.5, 1.5},
		// errors 1, 0, −2: MAE 3/3, RMSE √(5/3)
		{[]float64{1, 2, 3}, []float64{0, 2, 5}, 1, math.Sqrt(5.0 / 3)},
		{[]float64{0.1, 0.1, 0.1, 0.1}, []float64{0, 0, 0, 1}, (0.1*3 + 0.9) / 4, math.Sqrt((0.01*3 + 0.81) / 4)},
	} {
		var e ErrorStats
		for i := range c.pred {
			e.Add(c.pred[i], c.actual[i])
		}
		if e.N != len(c.pred) || !near(e.MAE(), c.mae) || !near(e.RMSE(), c.rmse) {
			t.Errorf("%v vs %v: n %d MAE %v RMSE %v, want %v %v", c.pred, c.actual, e.N, e.MAE(), e.RMSE(), c.mae, c.rmse)
		}
	}
}

func TestTickSchedule(t *testing.T) {
	at := func(h, m, s int) time.Time { return time.Date(2015, 6, 1, h, m, s, 0, time.UTC) }
	for _, c := range []struct {
		first time.Time
		tick  time.Duration
		want  time.Time
	}{
		{at(10, 1, 0), 15 * time.Minute, at(10, 15, 0)},
		{at(10, 0, 0), 15 * time.Minute, at(10, 15, 0)}, // the slot [10:00, 10:15) ends it
		{at(9, 59, 59), 15 * time.Minute, at(10, 0, 0)},
		{at(10, 1, 0), time.Hour, at(11, 0, 0)},
		{at(23, 59, 0), 24 * time.Hour, time.Date(2015, 6, 2, 0, 0, 0, 0, time.UTC)},
	} {
		if got := FirstTick(c.first, c.tick); !got.Equal(c.want) {
			t.Errorf("FirstTick(%v, %v) = %v, want %v", c.first, c.tick, got, c.want)
		}
	}
	u := func(h, m, s int) int64 { return at(h, m, s).Unix() }
	const tick, grace = 900, 600
	for _, c := range []struct {
		next, w int64
		want    int64
	}{
		{u(10, 15, 0), u(10, 24, 59), 0},
		{u(10, 15, 0), u(10, 25, 0), 1}, // T + grace reached
		{u(10, 15, 0), u(10, 39, 59), 1},
		{u(10, 15, 0), u(10, 40, 0), 2},
		{u(10, 15, 0), u(13, 10, 0), 12}, // 10:15 … 13:00
		{u(10, 15, 0), u(9, 0, 0), 0},
	} {
		if got := due(c.next, c.w, tick, grace); got != c.want {
			t.Errorf("due(next %v, watermark %v) = %d, want %d", time.Unix(c.next, 0).UTC(), time.Unix(c.w, 0).UTC(), got, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Tick = 7 * time.Minute }, "dividing a day"},
		{func(c *Config) { c.Tick = 90 * time.Second }, "whole minutes"},
		{func(c *Config) { c.Horizons = []time.Duration{20 * time.Minute} }, "horizon 20m0s must be a positive multiple"},
		{func(c *Config) { c.Horizons = []time.Duration{time.Hour, time.Hour} }, "given twice"},
		{func(c *Config) { c.LevelWindow = 10 * time.Minute }, "level window"},
		{func(c *Config) { c.ActiveWindow = -15 * time.Minute }, "active window"},
		{func(c *Config) { c.AreaTTL = time.Minute }, "area ttl"},
		{func(c *Config) { c.Grace = -time.Second }, "grace"},
		{func(c *Config) { c.LevelHalfLife = -time.Second }, "half-life"},
		{func(c *Config) { c.LevelPrior = -1 }, "level prior"},
		{func(c *Config) { c.MinLevel = 1.5 }, "levels must satisfy"},
		{func(c *Config) { c.MaxLevel = 0.5 }, "levels must satisfy"},
		{func(c *Config) { c.ThresholdFactor = math.NaN() }, "threshold factor"},
	} {
		cfg := Config{}.WithDefaults()
		c.change(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one saying %q", err, c.want)
		}
	}
}

// flatBaseline expects 0.1 trip starts an hour in every area, 0.3 on
// Mondays 11:00–12:00 UTC.
func flatBaseline() *seasonal.Baseline {
	b := &seasonal.Baseline{PerHour: 1}
	for a := 1; a <= seasonal.Areas; a++ {
		b.Share[a] = 0.1
	}
	for h := range b.Profile {
		b.Profile[h] = 1
	}
	b.Profile[24+11] = 3
	return b.WithLocation(time.UTC)
}

type input struct {
	gps     bool
	area    int
	at      time.Time
	vehicle string
}

func (in input) record(t testing.TB, p int32) *kgo.Record {
	t.Helper()
	if in.gps {
		v, err := contracts.Encode(&contracts.GPSPing{VehicleID: in.vehicle, Timestamp: in.at, Latitude: 41.9, Longitude: -87.7})
		if err != nil {
			t.Fatal(err)
		}
		return &kgo.Record{Topic: contracts.TopicGPSByArea, Partition: p, Key: []byte(strconv.Itoa(in.area)), Value: v}
	}
	v, err := contracts.Encode(&contracts.Features{TripID: fmt.Sprintf("t%d-%d", in.area, in.at.Unix()), Timestamp: in.at,
		PickupHour: in.at.Hour(), PickupDayOfWeek: int(in.at.Weekday()) + 1, PickupMonth: int(in.at.Month()), PickupCommunityArea: in.area})
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: contracts.TopicFeaturesByArea, Partition: p, Key: []byte(strconv.Itoa(in.area)), Value: v}
}

func newTestForecaster(t testing.TB, cfg Config) (*Forecaster, *Metrics) {
	t.Helper()
	m := NewMetrics(nil)
	f, err := NewForecaster(cfg, flatBaseline(), state.New(contracts.ChangelogTopic("demand"), kafka.Config{}, kafka.Deps{}), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f, m
}

// feed processes ins and returns the outputs, decoded.
func feed(t *testing.T, f *Forecaster, ins []input) (preds []contracts.DemandPrediction, metrics []contracts.ModelMetric) {
	t.Helper()
	for _, in := range ins {
		outs, err := f.Process(context.Background(), in.record(t, 0))
		if err != nil {
			t.Fatalf("%+v: %v", in, err)
		}
		for _, o := range outs {
			switch o.Topic {
			case contracts.TopicDemandPredictions:
				p, err := contracts.Decode[contracts.DemandPrediction](o.Value)
				if err != nil {
					t.Fatal(err)
				}
				if string(o.Key) != strconv.Itoa(p.AreaID) {
					t.Fatalf("prediction of area %d keyed %q", p.AreaID, o.Key)
				}
				preds = append(preds, *p)
			case contracts.TopicModelMetrics:
				m, err := contracts.Decode[contracts.ModelMetric](o.Value)
				if err != nil {
					t.Fatal(err)
				}
				if string(o.Key) != ModelName {
					t.Fatalf("metric keyed %q", o.Key)
				}
				metrics = append(metrics, *m)
			default:
				t.Fatalf("output to %s", o.Topic)
			}
		}
	}
	return preds, metrics
}

// TestForecastByHand runs a few trips and pings through a forecaster and
// checks each number against the definitions, worked out by hand.
func TestForecastByHand(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2015, 6, 1, h, m, 0, 0, time.UTC) } // a Monday
	trip := func(a int, h, m int) input { return input{area: a, at: at(h, m)} }
	ping := func(a int, v string, h, m int) input { return input{gps: true, area: a, at: at(h, m), vehicle: v} }
	f, m := newTestForecaster(t, Config{Grace: time.Minute})

	// Area 8 has two trips and two vehicles in [10:00, 10:15); nothing is
	// made until both inputs pass 10:15 + grace.
	preds, metrics := feed(t, f, []input{
		trip(8, 10, 1), ping(8, "v1", 10, 2), ping(8, "v2", 10, 3), ping(8, "v1", 10, 4), trip(8, 10, 5),
		ping(9, "v3", 10, 20),
	})
	if len(preds)+len(metrics) != 0 {
		t.Fatalf("output before the watermark passed the first tick: %+v %+v", preds, metrics)
	}
	preds, metrics = feed(t, f, []input{trip(9, 10, 20)})
	// Tick 10:15: area 8 only (area 9's records are after the tick).
	// level = (1 + 2) / (1 + 0.025·Σw) with 0.025 = 0.1 trips/h × ¼ h.
	lv := 3 / (1 + 0.025*sumW)
	if !near(lv, 2.819505137271506) {
		t.Fatalf("hand computation: %v", lv)
	}
	want := []contracts.DemandPrediction{
		{AreaID: 8, Timestamp: at(10, 15), Horizon: "15m", PeriodStart: at(10, 15), PeriodEnd: at(10, 30), Baseline: 0.025, Level: lv, PredictedTrips: 0.025 * lv, ActiveVehicles: 2},
		// [10:15, 11:15): ¾ h at 0.1/h and ¼ h at 0.3/h = 0.15
		{AreaID: 8, Timestamp: at(10, 15), Horizon: "60m", PeriodStart: at(10, 15), PeriodEnd: at(11, 15), Baseline: 0.15, Level: lv, PredictedTrips: 0.15 * lv, ActiveVehicles: 2},
	}
	checkPreds(t, preds, want)
	if len(metrics) != 0 {
		t.Fatalf("metrics before a forecast closed: %+v", metrics)
	}

	// Tick 10:30 closes the 15m forecast of area 8: one trip (10:22)
	// against 0.0705 predicted and 0.025 expected.
	preds, metrics = feed(t, f, []input{trip(8, 10, 22), ping(9, "v3", 10, 31), trip(9, 10, 31)})
	mae := math.Abs(0.025*lv - 1)
	if !near(mae, 0.9295123715682123) {
		t.Fatalf("hand computation: %v", mae)
	}
	tick := at(10, 30)
	wantMetrics := []contracts.ModelMetric{
		{MetricID: fmt.Sprintf("demand/p0/%d/mae_15m", tick.Unix()), MetricName: "mae_15m", MetricValue: mae, Threshold: 1.2 * 0.975},
		{MetricID: fmt.Sprintf("demand/p0/%d/rmse_15m", tick.Unix()), MetricName: "rmse_15m", MetricValue: mae, Threshold: 1.2 * 0.975},
	}
	if len(metrics) != len(wantMetrics) {
		t.Fatalf("%d metrics, want %d: %+v", len(metrics), len(wantMetrics), metrics)
	}
	for i, w := range wantMetrics {
		g := metrics[i]
		if g.MetricID != w.MetricID || g.MetricName != w.MetricName || !near(g.MetricValue, w.MetricValue) || !near(g.Threshold, w.Threshold) ||
			g.ModelName != "demand" || g.ModelVersion != "seasonal-level-1" || g.Source != "demand-streamer" || g.HigherIsBetter ||
			g.SampleSize != 1 || !g.Timestamp.Equal(tick) || !g.WindowStart.Equal(at(10, 15)) || !g.WindowEnd.Equal(tick) || g.Breached() {
			t.Errorf("metric %d: %+v, want %+v", i, g, w)
		}
	}
	// Area 8: 1 trip in the newest slot, 2 in the one before:
	// (1 + 1 + 2·2^−½) / (1 + 0.025·Σw); no vehicle since 10:15.
	lv8 := (2 + 2*math.Sqrt(0.5)) / (1 + 0.025*sumW)
	// Area 9: one trip and vehicle v3 in [10:15, 10:30).
	lv9 := 2 / (1 + 0.025*sumW)
	// [10:30, 11:30): ½ h at 0.1 and ½ h at 0.3 = 0.2.
	want = []contracts.DemandPrediction{
		{AreaID: 8, Timestamp: tick, Horizon: "15m", PeriodStart: tick, PeriodEnd: at(10, 45), Baseline: 0.025, Level: lv8, PredictedTrips: 0.025 * lv8},
		{AreaID: 8, Timestamp: tick, Horizon: "60m", PeriodStart: tick, PeriodEnd: at(11, 30), Baseline: 0.2, Level: lv8, PredictedTrips: 0.2 * lv8},
		{AreaID: 9, Timestamp: tick, Horizon: "15m", PeriodStart: tick, PeriodEnd: at(10, 45), Baseline: 0.025, Level: lv9, PredictedTrips: 0.025 * lv9, ActiveVehicles: 1},
		{AreaID: 9, Timestamp: tick, Horizon: "60m", PeriodStart: tick, PeriodEnd: at(11, 30), Baseline: 0.2, Level: lv9, PredictedTrips: 0.2 * lv9, ActiveVehicles: 1},
	}
	checkPreds(t, preds, want)

	// A trip more than the grace behind the trips' stream time is late.
	preds, metrics = feed(t, f, []input{trip(8, 10, 29)})
	if len(preds)+len(metrics) != 0 || testutil.ToFloat64(m.LateCounter("trips")) != 1 || testutil.ToFloat64(m.LateCounter("gps")) != 0 {
		t.Fatalf("late trip: %d outputs, late counters %v %v", len(preds)+len(metrics),
			testutil.ToFloat64(m.LateCounter("trips")), testutil.ToFloat64(m.LateCounter("gps")))
	}
	if n := testutil.ToFloat64(m.TickCounter()); n != 2 {
		t.Fatalf("%v ticks, want 2", n)
	}
}

func checkPreds(t *testing.T, got, want []contracts.DemandPrediction) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d predictions, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		if g.AreaID != w.AreaID || !g.Timestamp.Equal(w.Timestamp) || g.Horizon != w.Horizon || !g.PeriodStart.Equal(w.PeriodStart) ||
			!g.PeriodEnd.Equal(w.PeriodEnd) || !near(g.Baseline, w.Baseline) || !near(g.Level, w.Level) ||
			!near(g.PredictedTrips, w.PredictedTrips) || g.ActiveVehicles != w.ActiveVehicles || g.ModelVersion != "seasonal-level-1" {
			t.Errorf("prediction %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// TestWithoutGPS: trip starts alone make ticks, and pings are ignored.
func TestWithoutGPS(t *testing.T) {
	at := func(h, m int) time.Time { return time.Date(2015, 6, 1, h, m, 0, 0, time.UTC) }
	f, _ := newTestForecaster(t, Config{Grace: time.Minute, WithoutGPS: true})
	if got := f.Topics(); !slices.Equal(got, []string{contracts.TopicFeaturesByArea}) {
		t.Fatalf("topics %v", got)
	}
	preds, _ := feed(t, f, []input{{area: 8, at: at(10, 1)}, {gps: true, area: 8, at: at(10, 2), vehicle: "v"}, {area: 8, at: at(10, 16)}})
	if len(preds) != 2 || preds[0].ActiveVehicles != 0 || !preds[0].Timestamp.Equal(at(10, 15)) {
		t.Fatalf("predictions %+v", preds)
	}
	g, _ := newTestForecaster(t, Config{Grace: time.Minute})
	if preds, _ := feed(t, g, []input{{area: 8, at: at(10, 1)}, {area: 8, at: at(12, 16)}}); len(preds) != 0 {
		t.Fatalf("with GPS, %d predictions before any ping", len(preds))
	}
}

// TestInterleavingDoesNotMatter feeds the same two topic partitions merged
// three ways: the outputs are identical.
func TestInterleavingDoesNotMatter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	trips, pings := synthetic(rng)
	merges := map[string][]input{
		"trips first":   append(slices.Clone(trips), pings...),
		"pings first":   append(slices.Clone(pings), trips...),
		"by event time": nil,
		"random":        nil,
	}
	i, j := 0, 0
	for i < len(trips) || j < len(pings) {
		if j == len(pings) || i < len(trips) && !trips[i].at.After(pings[j].at) {
			merges["by event time"] = append(merges["by event time"], trips[i])
			i++
		} else {
			merges["by event time"] = append(merges["by event time"], pings[j])
			j++
		}
	}
	i, j = 0, 0
	for i < len(trips) || j < len(pings) {
		if j == len(pings) || i < len(trips) && rng.IntN(2) == 0 {
			merges["random"] = append(merges["random"], trips[i])
			i++
		} else {
			merges["random"] = append(merges["random"], pings[j])
			j++
		}
	}
	var first string
	var firstN int
	for name, ins := range merges {
		f, m := newTestForecaster(t, Config{})
		preds, metrics := feed(t, f, ins)
		if testutil.ToFloat64(m.LateCounter("trips"))+testutil.ToFloat64(m.LateCounter("gps")) != 0 {
			t.Fatalf("%s: late records", name)
		}
		got := fmt.Sprintf("%+v\n%+v", preds, metrics)
		if first == "" {
			first, firstN = got, len(preds)
			if len(preds) < 1000 || len(metrics) < 100 {
				t.Fatalf("%d predictions, %d metrics", len(preds), len(metrics))
			}
			continue
		}
		if got != first {
			t.Errorf("merged %s, the output differs", name)
		}
	}
	t.Logf("%d predictions alike in every merge", firstN)
}

// synthetic makes two days of trips and pings in four areas, each topic out
// of order by up to five minutes.
func synthetic(rng *rand.Rand) (trips, pings []input) {
	start := time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3000 {
		at := start.Add(time.Duration(i)*time.Minute - time.Duration(rng.IntN(300))*time.Second)
		a := []int{8, 9, 32, 76}[rng.IntN(4)]
		if rng.IntN(4) == 0 {
			trips = append(trips, input{area: a, at: at})
		}
		pings = append(pings, input{gps: true, area: a, at: at, vehicle: "v" + strconv.Itoa(rng.IntN(20))})
	}
	return trips, pings
}

// TestMetricEvery: hourly metrics pool the forecasts the quarter-hourly
// metrics of the same hour report.
func TestMetricEvery(t *testing.T) {
	trips, pings := synthetic(rand.New(rand.NewPCG(3, 4)))
	ins := append(trips, pings...)
	f, _ := newTestForecaster(t, Config{})
	predsQ, quarterly := feed(t, f, ins)
	g, _ := newTestForecaster(t, Config{MetricEvery: time.Hour})
	predsH, hourly := feed(t, g, ins)
	if fmt.Sprint(predsQ) != fmt.Sprint(predsH) {
		t.Fatal("the metric interval changed the predictions")
	}
	byID := map[string]contracts.ModelMetric{}
	for _, m := range quarterly {
		byID[m.MetricID] = m
	}
	if len(hourly) == 0 || len(hourly) >= len(quarterly) {
		t.Fatalf("%d hourly metrics, %d quarterly", len(hourly), len(quarterly))
	}
	for _, h := range hourly {
		if h.Timestamp.Unix()%3600 != 0 {
			t.Fatalf("metric %s at %v, not on the hour", h.MetricID, h.Timestamp)
		}
		horizon, _ := time.ParseDuration(strings.SplitN(h.MetricName, "_", 2)[1])
		rmse := strings.HasPrefix(h.MetricName, "rmse")
		var n int
		var sum, base float64
		for k := range 4 {
			at := h.Timestamp.Add(-time.Duration(k) * 15 * time.Minute)
			q, ok := byID[MetricID(0, at, h.MetricName)]
			if !ok {
				continue
			}
			n += q.SampleSize
			if rmse {
				sum += q.MetricValue * q.MetricValue * float64(q.SampleSize)
				base += q.Threshold / 1.2 * q.Threshold / 1.2 * float64(q.SampleSize)
			} else {
				sum += q.MetricValue * float64(q.SampleSize)
				base += q.Threshold / 1.2 * float64(q.SampleSize)
			}
		}
		want, wantBase := sum/float64(n), base/float64(n)
		if rmse {
			want, wantBase = math.Sqrt(want), math.Sqrt(wantBase)
		}
		if h.SampleSize != n || math.Abs(h.MetricValue-want) > 1e-9 || math.Abs(h.Threshold-1.2*wantBase) > 1e-9 ||
			!h.WindowStart.Equal(h.Timestamp.Add(-45*time.Minute-horizon)) {
			t.Fatalf("hourly %+v; the quarters give n %d, value %v, threshold %v", h, n, want, 1.2*wantBase)
		}
	}
}
