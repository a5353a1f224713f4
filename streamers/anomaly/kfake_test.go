package anomaly_test

import (
	"context"
	"encoding/json"
	"log/slog"
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
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/anomaly"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// fixture is a stream of real rides and the predictions real champions
// (trained on the earliest 2000 trips) make for them, through the features
// and inference processors, with crafted anomalies and poison records.
type fixture struct {
	areas *geo.Areas
	recs  []*kgo.Record
	// crafted anomalies the stream must produce: trip id → type.
	crafted map[string]string
	poison  int
}

const trips = 3000

// cfg has small fare windows, so the sample's sparse area-hours reach a
// robust z-score.
var cfg = anomaly.Config{Window: 50, MinCount: 10}

// Evanston: inside the catalog's bounding box, outside the city.
var evanstonLat, evanstonLon = 42.0451, -87.6877

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
	}
	feat := &features.Processor{Areas: areas, Location: loc}
	inf := &inference.Processor{Models: set}
	f := &fixture{areas: areas, crafted: map[string]string{}}
	// emit appends a ride and the prediction the pipeline makes for it.
	emit := func(r *contracts.RawRide) error {
		b, err := contracts.Encode(r)
		if err != nil {
			return err
		}
		ride := &kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte(r.TripID), Value: b}
		fs, err := feat.Process(context.Background(), ride)
		if err != nil {
			return err
		}
		ps, err := inf.Process(context.Background(), fs[0])
		if err != nil {
			return err
		}
		f.recs = append(f.recs, ride, &kgo.Record{Topic: ps[0].Topic, Key: ps[0].Key, Value: ps[0].Value})
		return nil
	}
	poison := func(topic, key, value string) {
		f.recs = append(f.recs, &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(value)})
		f.poison++
	}
	var again []contracts.RawRide
	for i := range rows[:trips] {
		r := rows[2000+i].Ride // trips the models did not see
		switch i {
		case 100:
			miles, secs := 5.0, 30.0
			r.TripDistance, r.TripSeconds = &miles, &secs
			f.crafted[r.TripID] = anomaly.TypeImpossibleSpeed
		case 200:
			miles, fare := 0.0, 80.0
			r.TripDistance, r.FareAmount = &miles, &fare
			f.crafted[r.TripID] = anomaly.TypeZeroDistanceFare
		case 300:
			r.PickupLatitude, r.PickupLongitude = &evanstonLat, &evanstonLon
			f.crafted[r.TripID] = anomaly.TypeOutsideChicago
		case 400:
			fare := *r.FareAmount + 150 // the fare is not an input of the fare model
			r.FareAmount = &fare
			f.crafted[r.TripID] = anomaly.TypeFareVsPredicted
		case 500, 700:
			again = append(again, r)
		case 505:
			if err := emit(&again[0]); err != nil { // a redelivery
				return nil, err
			}
			f.crafted[again[0].TripID] = anomaly.TypeDuplicateTrip
		case 703:
			other := r
			other.TripID = again[1].TripID // another trip reusing an id
			if err := emit(&other); err != nil {
				return nil, err
			}
			f.crafted[other.TripID] = anomaly.TypeDuplicateTrip
		case 1000:
			poison(contracts.TopicRidesRaw, "bad-1", "{not json")
			poison(contracts.TopicRidesRaw, "bad-2", `{"schema_version":1,"trip_id":"bad-2","pickup_datetime":"2016-01-01T00:00:00Z","trip_distance":1}`)
			poison(contracts.TopicRidesRaw, "bad-3", `{"schema_version":99,"trip_id":"bad-3"}`)
		case 2000:
			poison(contracts.TopicPredictions, "bad-4", `{"schema_version":1,"trip_id":"bad-4","timestamp":"2016-01-01T00:00:00Z","model_version":"v","predicted_fare":3,"confidence_score":2}`)
			poison(contracts.TopicPredictions, "bad-5", `{"schema_version":1,"trip_id":"bad-5","model_version":"v","predicted_fare":3,"confidence_score":0.5}`)
		}
		if err := emit(&r); err != nil {
			return nil, err
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

// produce writes records in order (keyed: each lands in its key's
// partition) and returns copies carrying the partition each landed in.
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

// replica is one running processor.
type replica struct {
	cancel context.CancelFunc
	done   chan error
}

func (c *cluster) start(m *anomaly.Metrics, instance string) *replica {
	c.t.Helper()
	store := state.New(contracts.ChangelogTopic(anomaly.Name), c.cfg, kafka.Deps{})
	p, err := anomaly.New(cfg, fix(c.t).areas, store, m, slog.New(slog.DiscardHandler))
	if err != nil {
		c.t.Fatal(err)
	}
	r, err := stream.New(stream.Config{Name: anomaly.Name, Topics: p.Topics(), ManualPartitions: p.ManualPartitions(),
		ExtraOpts: anomaly.GroupOpts(), Instance: instance, MaxPollRecords: 100, LagInterval: time.Hour},
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

// waitLag waits until the group has at most max records left to consume.
func (c *cluster) waitLag(max int64) {
	c.t.Helper()
	adm, err := kafka.NewClient(c.cfg, "lag", kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer adm.Close()
	group := contracts.ConsumerGroup(anomaly.Name)
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

// expected runs a processor over the records as they were partitioned,
// in one go and without a broker.
func expected(t *testing.T, recs []*kgo.Record) (anomalies map[string]int, dead int) {
	t.Helper()
	store := state.New(contracts.ChangelogTopic(anomaly.Name), kafka.Config{}, kafka.Deps{})
	p, err := anomaly.New(cfg, fix(t).areas, store, anomaly.NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	anomalies = map[string]int{}
	for _, r := range recs {
		out, err := p.Process(context.Background(), r)
		if stream.IsPermanent(err) {
			dead++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range out {
			anomalies[string(o.Key)+" "+string(o.Value)]++
		}
	}
	if _, err := p.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return anomalies, dead
}

func published(t *testing.T, c *cluster) map[string]int {
	got := map[string]int{}
	for _, r := range c.read(contracts.TopicAnomalies) {
		if _, err := contracts.Decode[contracts.Anomaly](r.Value); err != nil {
			t.Fatalf("published %s: %v", r.Value, err)
		}
		got[string(r.Key)+" "+string(r.Value)]++
	}
	return got
}

func compare(t *testing.T, got, want map[string]int) {
	t.Helper()
	for k, n := range want {
		if got[k] != n {
			t.Errorf("anomaly published %d times, want %d: %s", got[k], n, k)
		}
	}
	for k, n := range got {
		if want[k] == 0 {
			t.Errorf("unexpected anomaly published %d times: %s", n, k)
		}
	}
}

func byType(t *testing.T, as map[string]int) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	for k := range as {
		var a contracts.Anomaly
		if err := json.Unmarshal([]byte(k[strings.IndexByte(k, ' ')+1:]), &a); err != nil {
			t.Fatal(err)
		}
		if out[a.AnomalyType] == nil {
			out[a.AnomalyType] = map[string]bool{}
		}
		out[a.AnomalyType][a.TripID] = true
	}
	return out
}

// TestRestartMidStreamEqualsOneRun stops the streamer part-way (wherever
// it is, mid-batch included) and starts a new one, which knows only the
// changelog; the anomalies published over both runs are exactly those of
// one uninterrupted run, each once, and the poison records are
// dead-lettered with their reason.
func TestRestartMidStreamEqualsOneRun(t *testing.T) {
	f := fix(t)
	c := newCluster(t)
	m := anomaly.NewMetrics(nil)
	split := len(f.recs) * 3 / 5
	produced := c.produce(f.recs[:split])
	first := c.start(m, "first")
	c.waitLag(int64(split / 2))
	first.stop(t)
	produced = append(produced, c.produce(f.recs[split:])...)
	second := c.start(m, "second")
	c.waitLag(0)
	second.stop(t)

	want, dead := expected(t, produced)
	got := published(t, c)
	compare(t, got, want)
	types := byType(t, got)
	for id, typ := range f.crafted {
		if !types[typ][id] {
			t.Errorf("crafted %s anomaly of %s not published", typ, id)
		}
	}
	counts := map[string]int{}
	for typ, ids := range types {
		counts[typ] = len(ids)
	}
	for _, typ := range anomaly.Types() {
		if counts[typ] == 0 {
			t.Errorf("no %s anomaly published", typ)
		}
	}
	t.Logf("%d anomalies over %d records, trips by type %v", len(got), len(produced), counts)

	dlq := c.read(contracts.DeadLetterTopic(anomaly.Name))
	if len(dlq) != f.poison || dead != f.poison {
		t.Fatalf("%d dead letters (%d expected by the processor), want %d", len(dlq), dead, f.poison)
	}
	for _, d := range dlq {
		reason := kafka.Header(d, stream.HeaderReason)
		src := kafka.Header(d, stream.HeaderTopic)
		if reason == "" || (src != contracts.TopicRidesRaw && src != contracts.TopicPredictions) || !strings.HasPrefix(string(d.Key), "bad-") {
			t.Errorf("dead letter %q from %q: reason %q", d.Key, src, reason)
		}
		t.Logf("dead letter %s from %s: %s (field %q)", d.Key, src, reason, kafka.Header(d, stream.HeaderField))
	}
}

// TestRebalanceKeepsState runs a second replica part-way: the partitions
// are shared out again (state dropped by one replica, restored from the
// changelog by the other) and the anomalies are still exactly those of one
// run.
func TestRebalanceKeepsState(t *testing.T) {
	f := fix(t)
	c := newCluster(t)
	m := anomaly.NewMetrics(nil)
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
	want, _ := expected(t, produced)
	compare(t, published(t, c), want)
}
