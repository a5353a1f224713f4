package metrics_test

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	mlmetrics "github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/metrics"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

const (
	trips  = 4000
	window = 100
)

// fixture is what the replayer and the inference streamer publish for
// trips the champions (trained on the earliest 2000) did not see:
// predictions at pickup and actuals at dropoff, in event-time order, with
// poison records.
type fixture struct {
	recs []*kgo.Record
	// references are the champions' validation metrics.
	references map[string]map[string]float64
	poison     int
}

var fixtures = sync.OnceValues(func() (*fixture, error) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		return nil, err
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		return nil, err
	}
	rows, err := sampleRows(loc)
	if err != nil {
		return nil, err
	}
	f := &fixture{references: map[string]map[string]float64{}}
	set := champions.New(nil, training.ModelNames(), "inference", champions.NewMetrics(nil), slog.New(slog.DiscardHandler))
	for _, name := range training.ModelNames() {
		m, err := training.Lookup(name)
		if err != nil {
			return nil, err
		}
		c, err := training.Fit(context.Background(), m, training.Examples(rows[:2000], areas, loc), nil)
		if err != nil {
			return nil, err
		}
		set.Serve(&training.Loaded{Name: name, Version: "v1-" + name, Eval: c.Model, Spec: c.Spec, Metrics: c.Metrics}, "test")
		f.references[name+"/v1-"+name] = c.Metrics
	}
	feat := &features.Processor{Areas: areas, Location: loc}
	inf := &inference.Processor{Models: set}
	type event struct {
		at  time.Time
		seq int
		rec *kgo.Record
	}
	var evs []event
	for i, row := range rows[2000 : 2000+trips] {
		b, err := contracts.Encode(&row.Ride)
		if err != nil {
			return nil, err
		}
		fs, err := feat.Process(context.Background(), &kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte(row.Ride.TripID), Value: b})
		if err != nil {
			return nil, err
		}
		ps, err := inf.Process(context.Background(), fs[0])
		if err != nil {
			return nil, err
		}
		a, err := contracts.Encode(&row.Actual)
		if err != nil {
			return nil, err
		}
		evs = append(evs,
			event{row.Ride.PickupDatetime, 2 * i, &kgo.Record{Topic: ps[0].Topic, Key: ps[0].Key, Value: ps[0].Value}},
			event{row.Actual.DropoffDatetime, 2*i + 1, &kgo.Record{Topic: contracts.TopicActuals, Key: []byte(row.Actual.TripID), Value: a}})
	}
	slices.SortStableFunc(evs, func(a, b event) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	for i, e := range evs {
		f.recs = append(f.recs, e.rec)
		switch i {
		case 1000:
			f.poison += 2
			f.recs = append(f.recs,
				&kgo.Record{Topic: contracts.TopicActuals, Key: []byte("bad-1"), Value: []byte("not json")},
				&kgo.Record{Topic: contracts.TopicActuals, Key: []byte("bad-2"), Value: []byte(`{"schema_version":1,"trip_id":"bad-2","dropoff_datetime":"2014-01-01T00:00:00Z","fare":-5,"tips":0}`)})
		case 5000:
			f.poison += 2
			f.recs = append(f.recs,
				&kgo.Record{Topic: contracts.TopicPredictions, Key: []byte("bad-3"), Value: []byte(`{"schema_version":1,"trip_id":"bad-3","timestamp":"2014-01-01T00:00:00Z","model_version":"v","predicted_fare":3,"confidence_score":2}`)},
				&kgo.Record{Topic: contracts.TopicActuals, Key: []byte("bad-4"), Value: []byte(`{"schema_version":1,"trip_id":"bad-4","fare":5,"tips":0}`)})
		}
	}
	return f, nil
})

// sampleRows is the shipped sample in event-time order, made as
// system.SampleRows makes it; system is not imported so that this test
// does not build (or break with) every process's wiring.
func sampleRows(loc *time.Location) ([]dataset.Row, error) {
	trips, err := tripdata.Load(loc)
	if err != nil {
		return nil, err
	}
	tripdata.SortByStart(trips)
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	return rows, nil
}

func fix(t *testing.T) *fixture {
	t.Helper()
	f, err := fixtures()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) reference(model, version string) (map[string]float64, bool) {
	m, ok := f.references[model+"/"+version]
	return m, ok
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

// produce writes records in order, each to its key's partition, and
// returns copies carrying the partition.
func (c *cluster) produce(recs []*kgo.Record) []*kgo.Record {
	cl, err := kafka.NewClient(c.cfg, "producer", kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
	}
	if err := cl.ProduceSync(context.Background(), out...).FirstErr(); err != nil {
		c.t.Fatal(err)
	}
	return out
}

type replica struct {
	cancel context.CancelFunc
	done   chan error
}

func (c *cluster) start(m *metrics.Metrics, instance string) *replica {
	c.t.Helper()
	store := state.New(contracts.ChangelogTopic(metrics.Name), c.cfg, kafka.Deps{})
	p, err := metrics.New(metrics.Config{WindowSize: window}, fix(c.t).reference, store, m, slog.New(slog.DiscardHandler))
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := stream.New(stream.Config{Name: metrics.Name, Topics: p.Topics(), ManualPartitions: p.ManualPartitions(),
		ExtraOpts: metrics.GroupOpts(), Instance: instance, MaxPollRecords: 100, LagInterval: time.Hour},
		c.cfg, p, stream.NewMetrics(prometheus.NewRegistry()), kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rep := &replica{cancel: cancel, done: make(chan error, 1)}
	go func() { rep.done <- r.Run(ctx) }()
	return rep
}

func (r *replica) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
}

func (c *cluster) waitLag(max int64) {
	c.t.Helper()
	adm, err := kafka.NewClient(c.cfg, "lag", kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer adm.Close()
	group := contracts.ConsumerGroup(metrics.Name)
	deadline := time.Now().Add(90 * time.Second)
	for {
		lags, err := kadm.NewClient(adm).Lag(context.Background(), group)
		if err == nil {
			l := lags[group]
			// Stable, with lag for both inputs: a group mid-rebalance
			// shows no assignment, hence no lag at all.
			if l.Error() == nil && l.State == "Stable" && len(l.Lag.TotalByTopic()) == 2 && l.Lag.Total() <= max {
				return
			}
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the group did not get within %d records of the end", max)
		}
		time.Sleep(20 * time.Millisecond)
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

func published(t *testing.T, c *cluster) map[string]contracts.ModelMetric {
	t.Helper()
	got := map[string]contracts.ModelMetric{}
	for _, r := range c.read(contracts.TopicModelMetrics) {
		m, err := contracts.Decode[contracts.ModelMetric](r.Value)
		if err != nil {
			t.Fatalf("published %s: %v", r.Value, err)
		}
		if string(r.Key) != m.ModelName {
			t.Fatalf("metric of %s keyed %q", m.ModelName, r.Key)
		}
		if _, dup := got[m.MetricID]; dup {
			t.Fatalf("metric %s published twice", m.MetricID)
		}
		got[m.MetricID] = *m
	}
	return got
}

// oneRun runs a processor over the records as they were partitioned, in
// one go and without a broker.
func oneRun(t *testing.T, recs []*kgo.Record) (map[string]contracts.ModelMetric, int) {
	t.Helper()
	store := state.New(contracts.ChangelogTopic(metrics.Name), kafka.Config{}, kafka.Deps{})
	p, err := metrics.New(metrics.Config{WindowSize: window}, fix(t).reference, store, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]contracts.ModelMetric{}
	dead := 0
	for _, r := range recs {
		rs, err := p.Process(context.Background(), r)
		if stream.IsPermanent(err) {
			dead++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range rs {
			m, _ := contracts.Decode[contracts.ModelMetric](o.Value)
			out[m.MetricID] = *m
		}
	}
	return out, dead
}

// batch recomputes the windows from the trips: per partition, the pairs in
// order of their time (the later of pickup and dropoff, ties by trip id)
// up to the final watermark, window at a time, measured with ml/metrics.
func batch(t *testing.T, recs []*kgo.Record) map[string]float64 {
	type pr struct {
		pred            *contracts.Prediction
		act             *contracts.Actual
		part            int32
		pickup, dropoff time.Time
	}
	pairs := map[string]*pr{}
	maxP, maxA := map[int32]time.Time{}, map[int32]time.Time{}
	get := func(id string, part int32) *pr {
		if pairs[id] == nil {
			pairs[id] = &pr{part: part}
		}
		return pairs[id]
	}
	for _, r := range recs {
		switch r.Topic {
		case contracts.TopicPredictions:
			p, err := contracts.Decode[contracts.Prediction](r.Value)
			if err != nil {
				continue
			}
			get(p.TripID, r.Partition).pred = p
			if p.Timestamp.After(maxP[r.Partition]) {
				maxP[r.Partition] = p.Timestamp
			}
		case contracts.TopicActuals:
			a, err := contracts.Decode[contracts.Actual](r.Value)
			if err != nil {
				continue
			}
			get(a.TripID, r.Partition).act = a
			if a.DropoffDatetime.After(maxA[r.Partition]) {
				maxA[r.Partition] = a.DropoffDatetime
			}
		}
	}
	type done struct {
		id   string
		at   time.Time
		pred *contracts.Prediction
		act  *contracts.Actual
	}
	byPart := map[int32][]done{}
	for id, p := range pairs {
		if p.pred == nil || p.act == nil {
			t.Fatalf("trip %s has no pair", id)
		}
		at := p.pred.Timestamp
		if p.act.DropoffDatetime.After(at) {
			at = p.act.DropoffDatetime
		}
		wm := maxP[p.part]
		if maxA[p.part].Before(wm) {
			wm = maxA[p.part]
		}
		if at.After(wm.Add(-time.Hour)) {
			continue // not final yet
		}
		byPart[p.part] = append(byPart[p.part], done{id, at, p.pred, p.act})
	}
	out := map[string]float64{}
	for part, ds := range byPart {
		slices.SortFunc(ds, func(a, b done) int {
			if c := a.at.Compare(b.at); c != 0 {
				return c
			}
			return strings.Compare(a.id, b.id)
		})
		for i := 0; i+window <= len(ds); i += window {
			w := ds[i : i+window]
			var fare, pFare, tips, pTip, big, prob []float64
			for _, d := range w {
				fare, pFare = append(fare, d.act.Fare), append(pFare, d.pred.PredictedFare)
				tips, pTip = append(tips, d.act.Tips), append(pTip, *d.pred.PredictedTip)
				b := 0.0
				if d.act.Tips > 0.2*d.act.Fare {
					b = 1
				}
				big, prob = append(big, b), append(prob, *d.pred.BigTipperProb)
			}
			id := func(model, metric string) string {
				return metrics.MetricID(model, "v1-"+model, part, w[0].id, metric)
			}
			out[id("fare", "mae")] = mlmetrics.MAE(fare, pFare)
			out[id("fare", "rmse")] = mlmetrics.RMSE(fare, pFare)
			out[id("fare", "mape")], _ = mlmetrics.MAPE(fare, pFare)
			out[id("tip", "mae")] = mlmetrics.MAE(tips, pTip)
			out[id("tip", "rmse")] = mlmetrics.RMSE(tips, pTip)
			if auc := mlmetrics.AUC(big, prob); !math.IsNaN(auc) {
				out[id("big_tipper", "auc")] = auc
			}
			out[id("big_tipper", "logloss")] = mlmetrics.LogLoss(big, prob)
		}
	}
	return out
}

// TestRestartMidStreamEqualsOneRun stops the streamer part-way (mid-batch
// included) and starts a new one that knows only the changelog: the
// metrics published are exactly those of one uninterrupted run, each once,
// with the values ml/metrics gives on each window's pairs recomputed from
// scratch; poison records are dead-lettered with their reason.
func TestRestartMidStreamEqualsOneRun(t *testing.T) {
	f := fix(t)
	c := newCluster(t)
	m := metrics.NewMetrics(nil)
	split := len(f.recs) * 3 / 5
	produced := c.produce(f.recs[:split])
	first := c.start(m, "first")
	c.waitLag(int64(split / 2))
	first.stop(t)
	produced = append(produced, c.produce(f.recs[split:])...)
	second := c.start(m, "second")
	c.waitLag(0)
	second.stop(t)

	got := published(t, c)
	want, dead := oneRun(t, produced)
	if len(got) != len(want) || len(got) == 0 {
		t.Fatalf("%d metrics published, one run makes %d", len(got), len(want))
	}
	for id, w := range want {
		if g, ok := got[id]; !ok || g != w {
			t.Errorf("metric %s: published %+v, one run %+v", id, g, w)
		}
	}
	values := batch(t, produced)
	if len(values) != len(got) {
		t.Fatalf("%d metrics published, %d recomputed", len(got), len(values))
	}
	breaches := 0
	for id, v := range values {
		g := got[id]
		if g.MetricValue != v {
			t.Errorf("%s = %.17g, ml/metrics on its pairs %.17g", id, g.MetricValue, v)
		}
		if g.ModelName != "tip" && (g.Threshold <= 0 || g.Threshold == math.MaxFloat64) {
			t.Errorf("%s: threshold %v, want one from the champion's validation metrics", id, g.Threshold)
		}
		if g.Breached() {
			breaches++
		}
	}
	t.Logf("%d metrics over %d records, %d breach their threshold", len(got), len(produced), breaches)

	dlq := c.read(contracts.DeadLetterTopic(metrics.Name))
	if len(dlq) != f.poison || dead != f.poison {
		t.Fatalf("%d dead letters (the processor rejects %d), want %d", len(dlq), dead, f.poison)
	}
	for _, d := range dlq {
		if kafka.Header(d, stream.HeaderReason) == "" || !strings.HasPrefix(string(d.Key), "bad-") {
			t.Errorf("dead letter %q: reason %q", d.Key, kafka.Header(d, stream.HeaderReason))
		}
	}
}

// TestRebalanceKeepsState adds a replica part-way: the partitions are
// shared out again and the metrics are still exactly those of one run.
func TestRebalanceKeepsState(t *testing.T) {
	f := fix(t)
	c := newCluster(t)
	m := metrics.NewMetrics(nil)
	produced := c.produce(f.recs)
	a := c.start(m, "a")
	c.waitLag(int64(len(produced) * 2 / 3))
	b := c.start(m, "b")
	c.waitLag(0)
	var wg sync.WaitGroup
	for _, r := range []*replica{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); r.cancel() }()
	}
	wg.Wait()
	for _, r := range []*replica{a, b} {
		if err := <-r.done; err != nil {
			t.Fatal(err)
		}
	}
	got := published(t, c)
	want, _ := oneRun(t, produced)
	if len(got) != len(want) {
		t.Fatalf("%d metrics published, one run makes %d", len(got), len(want))
	}
	for id, w := range want {
		if g := got[id]; g != w {
			b, _ := json.Marshal(g)
			t.Errorf("metric %s: published %s", id, b)
		}
	}
}
