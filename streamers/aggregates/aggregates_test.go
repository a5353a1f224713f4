package aggregates_test

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"strconv"
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
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// sample returns the features of the shipped trips with a known pickup
// area, in event-time order, as the features streamer makes them.
func sample(t *testing.T, n int) ([]*contracts.Features, *seasonal.Baseline) {
	t.Helper()
	loc, _ := time.LoadLocation("America/Chicago")
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		t.Fatal(err)
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		t.Fatal(err)
	}
	tripdata.SortByStart(trips)
	var out []*contracts.Features
	var events []seasonal.Event
	for i := range trips {
		raw := rides.RawRide(&trips[i])
		row := features.Transform(rides.FeatureTrip(&raw, areas), loc)
		f := rides.FeaturesMessage(raw.TripID, raw.PickupDatetime, &row)
		events = append(events, seasonal.Event{Time: raw.PickupDatetime, Area: row.PickupArea})
		if row.PickupArea > 0 && len(out) < n {
			out = append(out, &f)
		}
	}
	base, err := seasonal.Fit(events, loc)
	if err != nil {
		t.Fatal(err)
	}
	return out, base
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

// produce writes features to taxi-features-by-area keyed by area and
// returns the partition each landed in.
func (c *cluster) produce(fs []*contracts.Features) []int32 {
	cl, err := kafka.NewClient(c.cfg, "producer", kafka.Deps{})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, f := range fs {
		b, err := contracts.Encode(f)
		if err != nil {
			c.t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: contracts.TopicFeaturesByArea, Key: []byte(strconv.Itoa(f.PickupCommunityArea)), Value: b})
	}
	res := cl.ProduceSync(context.Background(), recs...)
	if err := res.FirstErr(); err != nil {
		c.t.Fatal(err)
	}
	// Results come in completion order, not the order given.
	parts := make([]int32, len(recs))
	for i, r := range recs {
		parts[i] = r.Partition
	}
	return parts
}

// runUntilCaughtUp runs a fresh aggregator (empty memory: its state can come
// only from the changelog) until its group has consumed everything.
func (c *cluster) runUntilCaughtUp(cfg aggregates.Config, base *seasonal.Baseline, m *aggregates.Metrics) {
	t := c.t
	store := state.New(contracts.ChangelogTopic("aggregates"), c.cfg, kafka.Deps{})
	agg, err := aggregates.NewAggregator(cfg, base, store, m, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r, err := stream.New(stream.Config{Name: "aggregates", Topics: agg.Topics(), ManualPartitions: agg.ManualPartitions(), LagInterval: time.Hour},
		c.cfg, agg, stream.NewMetrics(prometheus.NewRegistry()), kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	adm, err := kafka.NewClient(c.cfg, "lag", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		lags, err := kadm.NewClient(adm).Lag(context.Background(), contracts.ConsumerGroup("aggregates"))
		if err == nil {
			// Mid-rebalance a group has no assignment and so no lag:
			// wait for a stable group that has consumed everything.
			l := lags[contracts.ConsumerGroup("aggregates")]
			if l.Error() == nil && l.State == "Stable" && !l.Lag.IsEmpty() && l.Lag.Total() == 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("aggregator did not catch up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
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

type wkey struct {
	area   int
	window string
	start  int64
}

// batch recomputes the windows from scratch: for each window of each
// trip's area, the trips inside it; kept when the stream time of the trip's
// partition passed the window's end plus grace.
func batch(fs []*contracts.Features, parts []int32, cfg aggregates.Config, base *seasonal.Baseline) map[wkey]contracts.AreaAggregate {
	cfg = cfg.WithDefaults()
	streamTime := map[int32]int64{}
	for i, f := range fs {
		streamTime[parts[i]] = max(streamTime[parts[i]], f.Timestamp.Unix())
	}
	type acc struct {
		part       int32
		n, nd, nf  int
		sumD, sumF float64
	}
	accs := map[aggregates.Key]*acc{}
	for i, f := range fs {
		t := f.Timestamp.Unix()
		for _, w := range cfg.Windows {
			size, adv := int64(w.Size/time.Second), int64(w.Advance/time.Second)
			for start := (t / adv) * adv; start > t-size; start -= adv {
				k := aggregates.Key{Size: w.Size, Area: f.PickupCommunityArea, Start: start}
				a := accs[k]
				if a == nil {
					a = &acc{part: parts[i]}
					accs[k] = a
				}
				a.n++
				if f.TripDurationSeconds != nil {
					a.nd++
					a.sumD += *f.TripDurationSeconds
				}
				if f.FareAmount != nil {
					a.nf++
					a.sumF += *f.FareAmount
				}
			}
		}
	}
	out := map[wkey]contracts.AreaAggregate{}
	for k, a := range accs {
		if k.Start+int64(k.Size/time.Second)+int64(cfg.Grace/time.Second) > streamTime[a.part] {
			continue // still open
		}
		out[wkey{k.Area, aggregates.SizeName(k.Size), k.Start}] = aggregates.Result(k, a.n, a.sumD, a.nd, a.sumF, a.nf, base)
	}
	return out
}

// TestRestartMidWindowEqualsBatch stops the aggregator half-way through the
// trips and starts a new one, which knows only the changelog; what it emits
// over both runs is what a batch computation gives: every window, or the
// table of the latest window per area and size.
func TestRestartMidWindowEqualsBatch(t *testing.T) {
	for _, every := range []bool{true, false} {
		t.Run(map[bool]string{true: "every window", false: "table"}[every], func(t *testing.T) {
			testRestart(t, every)
		})
	}
}

func testRestart(t *testing.T, every bool) {
	fs, base := sample(t, 4000)
	c := newCluster(t)
	cfg := aggregates.Config{Grace: time.Hour, EmitEveryWindow: every}
	m := aggregates.NewMetrics(nil)

	half := len(fs) / 2
	parts := c.produce(fs[:half])
	c.runUntilCaughtUp(cfg, base, m)
	parts = append(parts, c.produce(fs[half:])...)
	c.runUntilCaughtUp(cfg, base, m)

	want := batch(fs, parts, cfg, base)
	got := map[wkey]contracts.AreaAggregate{}
	table := map[string]contracts.AreaAggregate{}
	for _, r := range c.read(contracts.TopicFeaturesAggregated) {
		a, err := contracts.Decode[contracts.AreaAggregate](r.Value)
		if err != nil {
			t.Fatal(err)
		}
		k := wkey{a.AreaID, a.TimeWindow, a.WindowStart.Unix()}
		if _, dup := got[k]; dup {
			t.Fatalf("window %+v emitted twice", k)
		}
		if string(r.Key) != fmt.Sprintf("%d:%s", a.AreaID, a.TimeWindow) {
			t.Fatalf("key %q for %+v", r.Key, k)
		}
		got[k] = *a
		if prev, ok := table[string(r.Key)]; ok && !a.WindowEnd.After(prev.WindowEnd) {
			t.Fatalf("key %s: window ending %v emitted after one ending %v", r.Key, a.WindowEnd, prev.WindowEnd)
		}
		table[string(r.Key)] = *a
	}
	// Every emitted window has the batch's value.
	for k, g := range got {
		w, ok := want[k]
		if !ok {
			t.Fatalf("window %+v emitted but still open in the batch", k)
		}
		if g.TripCount != w.TripCount || !close(g.AvgFare, w.AvgFare) || !close(g.AvgTripDuration, w.AvgTripDuration) ||
			!close(g.DemandScore, w.DemandScore) || !g.WindowEnd.Equal(w.WindowEnd) {
			t.Fatalf("window %+v: streamed %+v, batch %+v", k, g, w)
		}
	}
	if every {
		if len(got) != len(want) {
			t.Fatalf("%d windows emitted, batch has %d", len(got), len(want))
		}
	} else {
		// The table holds, per area and size, the batch's latest closed window.
		latest := map[string]contracts.AreaAggregate{}
		for _, w := range want {
			key := fmt.Sprintf("%d:%s", w.AreaID, w.TimeWindow)
			if l, ok := latest[key]; !ok || w.WindowEnd.After(l.WindowEnd) {
				latest[key] = w
			}
		}
		if len(table) != len(latest) {
			t.Fatalf("table has %d keys, batch %d", len(table), len(latest))
		}
		for key, w := range latest {
			if g := table[key]; !g.WindowStart.Equal(w.WindowStart) || g.TripCount != w.TripCount {
				t.Fatalf("table %s holds %+v, batch's latest is %+v", key, g, w)
			}
		}
	}
	if late := testutil.ToFloat64(m.LateCounter()); late != 0 {
		t.Fatalf("%v late records in an in-order stream", late)
	}
	t.Logf("%d windows emitted (batch closed %d) over %d trips, all equal to the batch recomputation", len(got), len(want), len(fs))
}

func close(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestLateRecordsAreCountedAndDropped sends a trip from long before the
// stream time: its windows have closed, so it is counted, not aggregated.
func TestLateRecordsAreCountedAndDropped(t *testing.T) {
	fs, base := sample(t, 300)
	c := newCluster(t)
	cfg := aggregates.Config{Grace: time.Hour}
	m := aggregates.NewMetrics(nil)
	late := *fs[0]
	late.TripID = "late"
	late.PickupCommunityArea = fs[len(fs)-1].PickupCommunityArea // same partition as the newest
	stream := append(append([]*contracts.Features(nil), fs...), &late)
	c.produce(stream)
	c.runUntilCaughtUp(cfg, base, m)
	if n := testutil.ToFloat64(m.LateCounter()); n != 1 {
		t.Fatalf("late records %v, want 1", n)
	}
}

func TestParseWindows(t *testing.T) {
	ws, err := aggregates.ParseWindows("1h/5m, 24h/1h")
	if err != nil || len(ws) != 2 || ws[0].Size != time.Hour || ws[0].Advance != 5*time.Minute || ws[1].Size != 24*time.Hour {
		t.Fatalf("%+v %v", ws, err)
	}
	for _, bad := range []string{"1h", "1h/7m", "x/5m", "1h/2h", "90s/30s"} {
		if _, err := aggregates.ParseWindows(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
