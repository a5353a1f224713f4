package demand_test

import (
	"context"
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/demand"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// replayed is the start of the shipped sample as the streamers see it.
type replayed struct {
	areas    *geo.Areas
	base     *seasonal.Baseline
	features []*contracts.Features // trip starts with a pickup area, in event-time order
	pings    []*kgo.Record         // taxi-gps-stream records, in event-time order
	pingAt   []time.Time
}

var loadOnce = sync.OnceValues(func() (*geo.Areas, []tripdata.Trip) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		panic(err)
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		panic(err)
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		panic(err)
	}
	tripdata.SortByStart(trips)
	return areas, trips
})

// replay replays the first n trips of the sample with a ping a minute, and
// fits the seasonal baseline on the whole sample (as system.SampleBaseline
// does).
func replaySample(t testing.TB, n int) *replayed {
	t.Helper()
	areas, trips := loadOnce()
	loc := trips[0].Start.Location()
	var events []seasonal.Event
	for i := range trips {
		raw := rides.RawRide(&trips[i])
		ft := rides.FeatureTrip(&raw, areas)
		events = append(events, seasonal.Event{Time: ft.Pickup, Area: ft.PickupArea})
	}
	base, err := seasonal.Fit(events, loc)
	if err != nil {
		t.Fatal(err)
	}
	src, err := replay.NewSource(trips, replay.Options{Limit: n, Location: loc, GPSInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	r := &replayed{areas: areas, base: base}
	for {
		ev, ok := src.Next()
		if !ok {
			break
		}
		switch {
		case ev.Ride:
			raw, err := contracts.Decode[contracts.RawRide](ev.Record.Value)
			if err != nil {
				t.Fatal(err)
			}
			row := features.Transform(rides.FeatureTrip(raw, areas), loc)
			if row.PickupArea > 0 {
				f := rides.FeaturesMessage(raw.TripID, raw.PickupDatetime, &row)
				r.features = append(r.features, &f)
			}
		case ev.GPS:
			r.pings = append(r.pings, ev.Record)
			r.pingAt = append(r.pingAt, ev.At)
		}
	}
	return r
}

type cluster struct {
	t   *testing.T
	cfg kafka.Config
}

func newCluster(t *testing.T) *cluster {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	cl, err := kafka.NewClient(cfg, "admin", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, cfg, contracts.Catalog()); err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, cfg: cfg}
}

// produce writes recs in order; records with a partition set keep it.
func (c *cluster) produce(recs []*kgo.Record, manual bool) {
	var opts []kgo.Opt
	if manual {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := kafka.NewClient(c.cfg, "producer", kafka.Deps{}, opts...)
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
}

// start runs proc in an exactly-once runner; stop stops it.
func (c *cluster) start(name string, proc stream.Processor, topics, manual []string, extra []kgo.Opt) (stop func()) {
	r, err := stream.New(stream.Config{Name: name, Topics: topics, ManualPartitions: manual, ExtraOpts: extra, LagInterval: time.Hour},
		c.cfg, proc, stream.NewMetrics(prometheus.NewRegistry()), kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			c.t.Fatal(err)
		}
	}
}

// ends are the offsets after the last record of each partition of topics:
// the end offsets, or (read) the offsets after the last record read, for
// topics written in transactions, whose last offset is a marker that
// consumers never commit past.
func (c *cluster) ends(read bool, topics ...string) map[string]map[int32]int64 {
	want := map[string]map[int32]int64{}
	for _, topic := range topics {
		want[topic] = map[int32]int64{}
		if read {
			for _, r := range c.read(topic) {
				want[topic][r.Partition] = r.Offset + 1
			}
			continue
		}
		cl, err := kafka.NewClient(c.cfg, "ends", kafka.Deps{})
		if err != nil {
			c.t.Fatal(err)
		}
		ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
		cl.Close()
		if err != nil {
			c.t.Fatal(err)
		}
		ends.Each(func(o kadm.ListedOffset) { want[topic][o.Partition] = o.Offset })
	}
	return want
}

// waitCaughtUp waits until the group has committed the offsets want.
func (c *cluster) waitCaughtUp(group string, want map[string]map[int32]int64) {
	t := c.t
	cl, err := kafka.NewClient(c.cfg, "lag", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(120 * time.Second)
	for {
		offs, err := adm.FetchOffsets(context.Background(), contracts.ConsumerGroup(group))
		if err == nil {
			done := true
			for topic, ps := range want {
				for p, end := range ps {
					if o, ok := offs.Lookup(topic, p); end > 0 && (!ok || o.At < end) {
						done = false
					}
				}
			}
			if done {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s did not catch up", group)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) read(topic string) []*kgo.Record {
	cl, err := kafka.NewClient(c.cfg, "reader", kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	ranges, err := kafka.TailRanges(context.Background(), cl, topic, 1<<40)
	cl.Close()
	if err != nil {
		c.t.Fatal(err)
	}
	var out []*kgo.Record
	if err := kafka.ReadRanges(context.Background(), c.cfg, "reader", kafka.Deps{}, topic, ranges, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		c.t.Fatal(err)
	}
	return out
}

// testConfig: the GPS repartitioner is fed a chunk of event time at a time
// (see TestForecastsOfTheReplayedSample), so the by-area GPS topic is out of
// order by up to a chunk; the grace covers it. Areas are forecast for an
// hour after they were last active (not 3), for a test a third as long.
const chunk = 48 * time.Hour

func testConfig() demand.Config {
	return demand.Config{Grace: chunk + time.Hour, AreaTTL: time.Hour}.WithDefaults()
}

// outputs are what a forecaster published.
type outputs struct {
	preds   map[predKey]*kgo.Record
	metrics map[string]*kgo.Record
}

type predKey struct {
	area    int
	horizon string
	at      int64
}

func (c *cluster) outputs() outputs {
	o := outputs{preds: map[predKey]*kgo.Record{}, metrics: map[string]*kgo.Record{}}
	for _, r := range c.read(contracts.TopicDemandPredictions) {
		p, err := contracts.Decode[contracts.DemandPrediction](r.Value)
		if err != nil {
			c.t.Fatal(err)
		}
		k := predKey{p.AreaID, p.Horizon, p.Timestamp.Unix()}
		if _, dup := o.preds[k]; dup {
			c.t.Fatalf("prediction %+v published twice", k)
		}
		o.preds[k] = r
	}
	for _, r := range c.read(contracts.TopicModelMetrics) {
		m, err := contracts.Decode[contracts.ModelMetric](r.Value)
		if err != nil {
			c.t.Fatal(err)
		}
		if _, dup := o.metrics[m.MetricID]; dup {
			c.t.Fatalf("metric %s published twice", m.MetricID)
		}
		o.metrics[m.MetricID] = r
	}
	return o
}

func (c *cluster) forecaster(base *seasonal.Baseline, m *demand.Metrics) *demand.Forecaster {
	f, err := demand.NewForecaster(testConfig(), base, state.New(contracts.ChangelogTopic("demand"), c.cfg, kafka.Deps{}), m, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return f
}

// runForecaster runs a fresh forecaster (empty memory: its state can come
// only from the changelog) until it has read everything; read says
// whether its inputs were written in transactions.
func (c *cluster) runForecaster(base *seasonal.Baseline, m *demand.Metrics, read bool) {
	f := c.forecaster(base, m)
	stop := c.start(demand.ForecastStage, f, f.Topics(), f.ManualPartitions(), f.GroupOpts())
	c.waitCaughtUp(demand.ForecastStage, c.ends(read, f.Topics()...))
	stop()
}

// TestForecastsOfTheReplayedSample replays the start of the sample with
// GPS through the repartitioner and the forecaster; checks the forecasts
// and error metrics against a batch recomputation of the definitions; and
// runs the forecaster again on a copy of its input, restarted half-way
// with nothing but its changelog, which must publish the same records.
func TestForecastsOfTheReplayedSample(t *testing.T) {
	r := replaySample(t, 600)
	a := newCluster(t)
	m := demand.NewMetrics(nil)

	// Trip starts straight to taxi-features-by-area, as area-repartition
	// writes them.
	var recs []*kgo.Record
	for _, f := range r.features {
		b, err := contracts.Encode(f)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: contracts.TopicFeaturesByArea, Key: []byte(strconv.Itoa(f.PickupCommunityArea)), Value: b})
	}
	a.produce(recs, false)

	// Pings through the GPS repartitioner, a chunk of event time at a time.
	rep := demand.NewGPSRepartitioner(r.areas, m)
	stop := a.start(demand.RepartitionStage, rep, rep.Topics(), nil, nil)
	for i := 0; i < len(r.pings); {
		j := i
		for j < len(r.pings) && r.pingAt[j].Sub(r.pingAt[i]) < chunk {
			j++
		}
		a.produce(r.pings[i:j], false)
		a.waitCaughtUp(demand.RepartitionStage, a.ends(false, contracts.TopicGPSStream))
		i = j
	}
	stop()
	checkRepartitioned(t, r, a.read(contracts.TopicGPSByArea), m)

	a.runForecaster(r.base, m, true)
	if n := testutil.ToFloat64(m.LateCounter("trips")) + testutil.ToFloat64(m.LateCounter("gps")); n != 0 {
		t.Fatalf("%v late records", n)
	}
	got := a.outputs()
	tripsIn, pingsIn := a.read(contracts.TopicFeaturesByArea), a.read(contracts.TopicGPSByArea)
	want := recompute(t, testConfig(), r.base, tripsIn, pingsIn)
	compare(t, got, want)

	// The same input, copied partition by partition, to a forecaster that
	// stops half-way and a new one that goes on from the changelog.
	b := newCluster(t)
	mb := demand.NewMetrics(nil)
	first, rest := halves(tripsIn)
	gFirst, gRest := halves(pingsIn)
	b.produce(append(first, gFirst...), true)
	b.runForecaster(r.base, mb, false)
	mid := b.outputs()
	if len(mid.preds) == 0 || len(mid.preds) >= len(got.preds) {
		t.Fatalf("%d predictions before the restart, %d in all: not a restart mid-stream", len(mid.preds), len(got.preds))
	}
	b.produce(append(rest, gRest...), true)
	b.runForecaster(r.base, mb, false)
	again := b.outputs()
	if len(again.preds) != len(got.preds) || len(again.metrics) != len(got.metrics) {
		t.Fatalf("restarted: %d predictions and %d metrics; uninterrupted: %d and %d",
			len(again.preds), len(again.metrics), len(got.preds), len(got.metrics))
	}
	for k, rec := range got.preds {
		if g := again.preds[k]; g == nil || string(g.Value) != string(rec.Value) || string(g.Key) != string(rec.Key) {
			t.Fatalf("prediction %+v: restarted %s, uninterrupted %s", k, value(g), rec.Value)
		}
	}
	for k, rec := range got.metrics {
		if g := again.metrics[k]; g == nil || string(g.Value) != string(rec.Value) {
			t.Fatalf("metric %s: restarted %s, uninterrupted %s", k, value(g), rec.Value)
		}
	}
	t.Logf("%d trips, %d pings: %d predictions (%d before the restart), %d metrics, the same restarted",
		len(tripsIn), len(pingsIn), len(got.preds), len(mid.preds), len(got.metrics))
}

func value(r *kgo.Record) []byte {
	if r == nil {
		return []byte("nothing")
	}
	return r.Value
}

// halves splits every partition's records in two, in order.
func halves(recs []*kgo.Record) (first, rest []*kgo.Record) {
	byPart := map[int32][]*kgo.Record{}
	for _, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	for p, rs := range byPart {
		for i, r := range rs {
			c := &kgo.Record{Topic: r.Topic, Partition: p, Key: r.Key, Value: r.Value}
			if i < len(rs)/2 {
				first = append(first, c)
			} else {
				rest = append(rest, c)
			}
		}
	}
	return first, rest
}

// checkRepartitioned: every ping in an area is on taxi-gps-by-area keyed by
// it, the others are counted.
func checkRepartitioned(t *testing.T, r *replayed, got []*kgo.Record, m *demand.Metrics) {
	t.Helper()
	want := map[string]int{}
	outside := 0
	for _, rec := range r.pings {
		p, err := contracts.Decode[contracts.GPSPing](rec.Value)
		if err != nil {
			t.Fatal(err)
		}
		a := r.areas.Lookup(p.Latitude, p.Longitude)
		if a == 0 {
			outside++
			continue
		}
		want[strconv.Itoa(a)+" "+string(rec.Value)]++
	}
	for _, rec := range got {
		k := string(rec.Key) + " " + string(rec.Value)
		if want[k] == 0 {
			t.Fatalf("repartitioned ping %s is not expected (or twice)", k)
		}
		want[k]--
	}
	for k, n := range want {
		if n != 0 {
			t.Fatalf("ping %s repartitioned %d times too few", k, n)
		}
	}
	if n := testutil.ToFloat64(m.OutsideCounter()); int(n) != outside {
		t.Fatalf("%v pings counted outside every area, want %d", n, outside)
	}
	t.Logf("%d pings, %d outside every area", len(r.pings), outside)
}

// rec is one input record of the recomputation.
type rec struct {
	t       int64
	vehicle string
}

type expected struct {
	preds   map[predKey]contracts.DemandPrediction
	metrics map[string]contracts.ModelMetric
	// lastTick of each partition, and the partition of each area.
	lastTick map[int32]int64
	part     map[int]int32
	trips    map[int][]rec
}

// recompute applies the package's definitions to the forecaster's input in
// batch: per partition the watermark and ticks; per tick and area the
// activity, level, vehicles, forecasts and, per horizon, the errors of the
// forecasts that closed.
func recompute(t *testing.T, cfg demand.Config, base *seasonal.Baseline, tripRecs, pingRecs []*kgo.Record) expected {
	t.Helper()
	tick, grace, ttl := int64(cfg.Tick/time.Second), int64(cfg.Grace/time.Second), int64(cfg.AreaTTL/time.Second)
	e := expected{preds: map[predKey]contracts.DemandPrediction{}, metrics: map[string]contracts.ModelMetric{},
		lastTick: map[int32]int64{}, part: map[int]int32{}, trips: map[int][]rec{}}
	pings := map[int][]rec{}
	type edge struct{ first, last int64 }
	stream := map[int32]*[2]*edge{}
	see := func(p int32, input int, ts int64) {
		s := stream[p]
		if s == nil {
			s = &[2]*edge{}
			stream[p] = s
		}
		if s[input] == nil {
			s[input] = &edge{first: ts, last: ts}
		}
		s[input].last = max(s[input].last, ts)
	}
	for _, r := range tripRecs {
		f, err := contracts.Decode[contracts.Features](r.Value)
		if err != nil {
			t.Fatal(err)
		}
		a := f.PickupCommunityArea
		e.trips[a] = append(e.trips[a], rec{t: f.Timestamp.Unix()})
		e.part[a] = r.Partition
		see(r.Partition, 0, f.Timestamp.Unix())
	}
	for _, r := range pingRecs {
		p, err := contracts.Decode[contracts.GPSPing](r.Value)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := strconv.Atoi(string(r.Key))
		pings[a] = append(pings[a], rec{t: p.Timestamp.Unix(), vehicle: p.VehicleID})
		if q, ok := e.part[a]; ok && q != r.Partition {
			t.Fatalf("area %d: trips in partition %d, pings in %d: not co-partitioned", a, q, r.Partition)
		}
		e.part[a] = r.Partition
		see(r.Partition, 1, p.Timestamp.Unix())
	}
	for _, rs := range e.trips {
		slices.SortFunc(rs, func(x, y rec) int { return int(x.t - y.t) })
	}
	for _, rs := range pings {
		slices.SortFunc(rs, func(x, y rec) int { return int(x.t - y.t) })
	}
	// in returns the records of rs in [from, to).
	in := func(rs []rec, from, to int64) []rec {
		i := sort.Search(len(rs), func(i int) bool { return rs[i].t >= from })
		j := sort.Search(len(rs), func(i int) bool { return rs[i].t >= to })
		return rs[i:j]
	}
	areasOf := map[int32][]int{}
	for a, p := range e.part {
		areasOf[p] = append(areasOf[p], a)
	}
	for p, s := range stream {
		if s[0] == nil || s[1] == nil {
			continue
		}
		slices.Sort(areasOf[p])
		w := min(s[0].last, s[1].last)
		t0 := demand.FirstTick(time.Unix(min(s[0].first, s[1].first), 0), cfg.Tick).Unix()
		for T := t0; T+grace <= w; T += tick {
			e.lastTick[p] = T
			at := time.Unix(T, 0).UTC()
			for _, h := range cfg.Horizons {
				name := demand.HorizonName(h)
				var model, seasonalErr demand.ErrorStats
				for _, a := range areasOf[p] {
					made := at.Add(-h)
					f, ok := e.preds[predKey{a, name, made.Unix()}]
					if !ok {
						continue
					}
					actual := float64(len(in(e.trips[a], made.Unix(), T)))
					model.Add(f.PredictedTrips, actual)
					seasonalErr.Add(f.Baseline, actual)
				}
				if model.N == 0 {
					continue
				}
				for _, mv := range []struct {
					name      string
					v, base   float64
					sampleLen int
				}{{"mae_" + name, model.MAE(), seasonalErr.MAE(), model.N}, {"rmse_" + name, model.RMSE(), seasonalErr.RMSE(), model.N}} {
					id := demand.MetricID(p, at, mv.name)
					e.metrics[id] = contracts.ModelMetric{MetricID: id, MetricName: mv.name, MetricValue: mv.v,
						Threshold: cfg.ThresholdFactor * mv.base, SampleSize: mv.sampleLen, Timestamp: at, WindowStart: at.Add(-h), WindowEnd: at}
				}
			}
			for _, a := range areasOf[p] {
				if len(in(e.trips[a], T-ttl, T))+len(in(pings[a], T-ttl, T)) == 0 {
					continue
				}
				k := int(cfg.LevelWindow / cfg.Tick)
				counts, exp := make([]int, k), make([]float64, k)
				for j := range k {
					s := T - int64(j+1)*tick
					counts[j] = len(in(e.trips[a], s, s+tick))
					v, err := base.Expected(a, time.Unix(s, 0), time.Unix(s+tick, 0))
					if err != nil {
						t.Fatal(err)
					}
					exp[j] = v
				}
				lv := cfg.Level(counts, exp)
				vs := map[string]bool{}
				for _, r := range in(pings[a], T-int64(cfg.ActiveWindow/time.Second), T) {
					vs[r.vehicle] = true
				}
				for _, h := range cfg.Horizons {
					b, err := base.Expected(a, at, at.Add(h))
					if err != nil {
						t.Fatal(err)
					}
					e.preds[predKey{a, demand.HorizonName(h), T}] = contracts.DemandPrediction{
						AreaID: a, Timestamp: at, Horizon: demand.HorizonName(h), PeriodStart: at, PeriodEnd: at.Add(h),
						PredictedTrips: b * lv, Baseline: b, Level: lv, ActiveVehicles: len(vs), ModelVersion: cfg.ModelVersion,
					}
				}
			}
		}
	}
	return e
}

func close(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func compare(t *testing.T, got outputs, want expected) {
	t.Helper()
	if len(got.preds) != len(want.preds) || len(got.metrics) != len(want.metrics) {
		t.Errorf("%d predictions and %d metrics, the recomputation has %d and %d", len(got.preds), len(got.metrics), len(want.preds), len(want.metrics))
	}
	horizons := map[string]time.Duration{"15m": 15 * time.Minute, "60m": time.Hour}
	for k, w := range want.preds {
		r := got.preds[k]
		if r == nil {
			t.Fatalf("prediction %+v missing", k)
		}
		g, _ := contracts.Decode[contracts.DemandPrediction](r.Value)
		if string(r.Key) != strconv.Itoa(k.area) || !g.Timestamp.Equal(w.Timestamp) || !g.PeriodStart.Equal(g.Timestamp) ||
			g.PeriodEnd.Sub(g.PeriodStart) != horizons[g.Horizon] || g.Timestamp.Unix()%900 != 0 ||
			!close(g.PredictedTrips, w.PredictedTrips) || !close(g.Baseline, w.Baseline) || !close(g.Level, w.Level) ||
			g.ActiveVehicles != w.ActiveVehicles || g.ModelVersion != w.ModelVersion {
			t.Fatalf("prediction %+v (key %s):\n got %+v\nwant %+v", k, r.Key, g, w)
		}
	}
	breaches := 0
	for id, w := range want.metrics {
		r := got.metrics[id]
		if r == nil {
			t.Fatalf("metric %s missing", id)
		}
		g, _ := contracts.Decode[contracts.ModelMetric](r.Value)
		if g.MetricName != w.MetricName || !close(g.MetricValue, w.MetricValue) || !close(g.Threshold, w.Threshold) ||
			g.SampleSize != w.SampleSize || !g.Timestamp.Equal(w.Timestamp) || !g.WindowStart.Equal(w.WindowStart) ||
			!g.WindowEnd.Equal(w.WindowEnd) || g.ModelName != "demand" || g.Source != "demand-streamer" || g.HigherIsBetter ||
			string(r.Key) != "demand" {
			t.Fatalf("metric %s:\n got %+v\nwant %+v", id, g, w)
		}
		if g.Breached() {
			breaches++
		}
	}
	// Every trip start before its partition's last tick makes its area
	// forecast at the end of its slot.
	tripsChecked := 0
	for a, rs := range want.trips {
		last, ok := want.lastTick[want.part[a]]
		for _, r := range rs {
			end := r.t - r.t%900 + 900
			if !ok || end > last {
				continue
			}
			tripsChecked++
			for _, h := range []string{"15m", "60m"} {
				if got.preds[predKey{a, h, end}] == nil {
					t.Fatalf("no %s forecast of area %d at %v after its trip at %v", h, a, time.Unix(end, 0).UTC(), time.Unix(r.t, 0).UTC())
				}
			}
		}
	}
	if tripsChecked == 0 {
		t.Fatal("no trip before a partition's last tick")
	}
	t.Logf("%d predictions and %d metrics (%d breaches) equal the recomputation; %d trips forecast after", len(want.preds), len(want.metrics), breaches, tripsChecked)
}
