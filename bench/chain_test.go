package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/deploy/devstack"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// loops is how many times the benchmarks replay the 15,002-trip sample.
const loops = 3

type env struct {
	cfg  system.Config
	deps system.Deps
	raw  []*kgo.Record
}

func setup(b *testing.B) *env {
	b.Helper()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	s3cfg := system.S3Config{AccessKey: "bench", SecretKey: "bench-secret-key", Region: "us-east-1",
		ModelBucket: "models", DatasetBucket: "datasets", FeatureBucket: "features"}
	s3, err := devstack.StartS3("127.0.0.1:0", b.TempDir(), s3cfg.AccessKey, s3cfg.SecretKey, s3cfg.Buckets(), log)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s3.Close() })
	s3cfg.Endpoint = s3.Addr
	loc, _ := time.LoadLocation(system.City)
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		b.Fatal(err)
	}
	base, err := system.SampleBaseline(loc, areas)
	if err != nil {
		b.Fatal(err)
	}
	deps := system.Deps{Logger: log, Metrics: prometheus.NewRegistry(), Location: loc, Areas: areas, Baseline: base}
	rows, err := system.SampleRows(loc)
	if err != nil {
		b.Fatal(err)
	}
	mc, err := s3cfg.NewClient()
	if err != nil {
		b.Fatal(err)
	}
	if err := system.Bootstrap(ctx, registry.New(mc, s3cfg.ModelBucket), rows[:4000], deps); err != nil {
		b.Fatal(err)
	}
	e := &env{
		cfg: system.Config{S3: s3cfg,
			Aggregates: aggregates.Config{Grace: 7 * 24 * time.Hour}},
		deps: deps,
	}
	// The sample three times over, as the replayer loops it: new trip
	// ids, event time moving on by whole weeks.
	trips, err := tripdata.Load(loc)
	if err != nil {
		b.Fatal(err)
	}
	tripdata.SortByStart(trips)
	src, err := replay.NewSource(trips, replay.Options{Loop: true, Limit: loops * len(trips), Location: loc})
	if err != nil {
		b.Fatal(err)
	}
	for {
		ev, ok := src.Next()
		if !ok {
			break
		}
		if ev.Ride {
			e.raw = append(e.raw, &kgo.Record{Key: ev.Record.Key, Value: ev.Record.Value})
		}
	}
	return e
}

// broker starts a fresh in-process broker with the catalog's topics.
func (e *env) broker(b *testing.B) {
	b.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	e.cfg.Kafka = kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	cl, err := kafka.NewClient(e.cfg.Kafka, "bench-admin", kafka.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, e.cfg.Kafka, contracts.Catalog()); err != nil {
		b.Fatal(err)
	}
}

func (e *env) produce(b *testing.B, topic string) {
	b.Helper()
	cl, err := kafka.NewClient(e.cfg.Kafka, "bench-producer", kafka.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(e.raw))
	for i, r := range e.raw {
		recs[i] = &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value}
	}
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}

// counted waits until the gatherer's taxi_streamer_records_out_total for
// role and topic reaches n: output committed, not just consumed (lag is no
// help on transactional topics, whose markers keep it at one per
// partition).
func counted(b *testing.B, g prometheus.Gatherer, role, topic string, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if out(g, role, topic) >= float64(n) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s committed %v of %d records to %s", role, out(g, role, topic), n, topic)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func out(g prometheus.Gatherer, role, topic string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() != "taxi_streamer_records_out_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			var r, t string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "role":
					r = l.GetValue()
				case "topic":
					t = l.GetValue()
				}
			}
			if r == role && t == topic {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// identity forwards each record's bytes to the next topic.
type identity struct{ in, out string }

func (p identity) Topics() []string { return []string{p.in} }
func (p identity) Process(_ context.Context, r *kgo.Record) ([]*kgo.Record, error) {
	return []*kgo.Record{{Topic: p.out, Key: r.Key, Value: r.Value}}, nil
}

// passthrough runs identity stages wired like the real chain: raw →
// features → inference, features → area repartition → aggregates,
// features → quality; it returns events per second until the inference
// stage drained.
func (e *env) passthrough(b *testing.B, run int) float64 {
	p := func(s string) string { return fmt.Sprintf("bench%d-%s", run, s) }
	var topics []contracts.Topic
	for _, t := range []struct {
		name string
		n    int32
	}{{"raw", 6}, {"features", 6}, {"predictions", 6}, {"by-area", 6}, {"aggregated", 3}, {"alerts", 3}} {
		topics = append(topics, contracts.Topic{Name: p(t.name), Partitions: t.n})
	}
	stages := []identity{
		{p("raw"), p("features")},
		{p("features"), p("predictions")},
		{p("features"), p("by-area")},
		{p("by-area"), p("aggregated")},
		{p("features"), p("alerts")},
		// The quality stage also reads the raw rides.
		{p("raw"), p("alerts")},
	}
	var names []string
	for i := range stages {
		name := p("stage" + strconv.Itoa(i))
		names = append(names, name)
		topics = append(topics, contracts.Topic{Name: contracts.DeadLetterTopic(name), Partitions: 1})
	}
	cl, err := kafka.NewClient(e.cfg.Kafka, "bench-topics", kafka.Deps{})
	if err != nil {
		b.Fatal(err)
	}
	if err := kafka.EnsureTopics(context.Background(), cl, e.cfg.Kafka, topics); err != nil {
		b.Fatal(err)
	}
	cl.Close()
	e.produce(b, p("raw"))
	reg := prometheus.NewRegistry()
	metrics := stream.NewMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for i, st := range stages {
		r, err := stream.New(stream.Config{Name: names[i], Topics: st.Topics(), LagInterval: time.Hour}, e.cfg.Kafka, st, metrics, kafka.Deps{})
		if err != nil {
			b.Fatal(err)
		}
		g.Go(func() error { return r.Run(gctx) })
	}
	counted(b, reg, names[1], p("predictions"), len(e.raw))
	elapsed := time.Since(start)
	cancel()
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return float64(len(e.raw)) / elapsed.Seconds()
}

// chain runs the real streamers and returns events per second until the
// inference stage drained.
func (e *env) chain(b *testing.B) float64 {
	e.produce(b, contracts.TopicRidesRaw)
	roles := []string{system.RoleFeatures, system.RoleInference, system.RoleAggregates, system.RoleQuality}
	reg := prometheus.NewRegistry()
	e.deps.Metrics = reg
	s, err := system.NewStreamers(e.cfg, roles, e.deps)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(ctx) }()
	// Every ride with valid fields is predicted (the sample has no
	// malformed rides).
	counted(b, reg, system.RoleInference, contracts.TopicPredictions, len(e.raw))
	elapsed := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return float64(len(e.raw)) / elapsed.Seconds()
}

// BenchmarkChainVsPassthrough replays the shipped trips three times over
// (45,006 rides) through the streamers (features → inference, with the
// aggregates and quality roles running on the same features) and through
// identity stages of the same shape, on the same broker, exactly-once both,
// three times each, alternating. The time includes starting the runners
// and loading the champions. Reported: the median events/s of each and the
// median of the three ratios.
func BenchmarkChainVsPassthrough(b *testing.B) {
	e := setup(b)
	b.ResetTimer()
	var pass, chain, ratio []float64
	for i := 0; i < 3; i++ {
		// Each pair on a fresh broker of its own.
		e.broker(b)
		p := e.passthrough(b, i)
		c := e.chain(b)
		pass, chain, ratio = append(pass, p), append(chain, c), append(ratio, c/p)
	}
	b.ReportMetric(median(pass), "passthrough_events/s")
	b.ReportMetric(median(chain), "chain_events/s")
	b.ReportMetric(median(ratio), "ratio")
	b.ReportMetric(0, "ns/op")
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
