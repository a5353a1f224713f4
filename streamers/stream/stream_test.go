package stream_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

func broker(t *testing.T) kafka.Config {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	cl, err := kafka.NewClient(cfg, "test-admin", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := kafka.EnsureTopics(context.Background(), cl, cfg, contracts.Catalog()); err != nil {
		t.Fatal(err)
	}
	// A second call finds every topic and changes nothing.
	if err := kafka.EnsureTopics(context.Background(), cl, cfg, contracts.Catalog()); err != nil {
		t.Fatalf("topic creation is not idempotent: %v", err)
	}
	return cfg
}

func produce(t *testing.T, cfg kafka.Config, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kafka.NewClient(cfg, "test-producer", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// consume reads n records of topic from the start, failing after a while.
func consume(t *testing.T, cfg kafka.Config, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kafka.NewClient(cfg, "test-consumer-"+topic, kafka.Deps{},
		kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d records of %s", len(out), n, topic)
		}
		out = append(out, fs.Records()...)
	}
	return out
}

func ride(id string) []byte {
	return fmt.Appendf(nil, `{"schema_version":1,"trip_id":%q,"pickup_datetime":"2014-05-01T08:15:00-05:00","trip_distance":1,"fare_amount":5}`, id)
}

// echo forwards valid rides, keyed by trip id; failures lists trip ids that
// fail transiently, once each.
type echo struct{ failures map[string]int }

func (e *echo) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	r, err := contracts.Decode[contracts.RawRide](in.Value)
	if err != nil {
		return nil, err
	}
	if e.failures[r.TripID] > 0 {
		e.failures[r.TripID]--
		return nil, errors.New("downstream unavailable")
	}
	return []*kgo.Record{{Topic: contracts.TopicFeaturesRealtime, Key: []byte(r.TripID), Value: in.Value}}, nil
}

func TestRunnerDeadLettersAndCommits(t *testing.T) {
	for _, g := range []stream.Guarantee{stream.ExactlyOnce, stream.AtLeastOnce} {
		t.Run(string(g), func(t *testing.T) { testDeadLettersAndCommits(t, g) })
	}
}

func testDeadLettersAndCommits(t *testing.T, g stream.Guarantee) {
	cfg := broker(t)
	var in []*kgo.Record
	for i := range 20 {
		in = append(in, &kgo.Record{Topic: contracts.TopicRidesRaw, Key: fmt.Appendf(nil, "t%d", i), Value: ride(fmt.Sprintf("t%d", i))})
	}
	poison := []*kgo.Record{
		{Topic: contracts.TopicRidesRaw, Key: []byte("bad-json"), Value: []byte(`{"trip_id":`)},
		{Topic: contracts.TopicRidesRaw, Key: []byte("no-fare"), Value: []byte(`{"schema_version":1,"trip_id":"x","pickup_datetime":"2014-05-01T08:15:00Z","trip_distance":1}`)},
		{Topic: contracts.TopicRidesRaw, Key: []byte("nan"), Value: []byte(`{"schema_version":1,"trip_id":"y","pickup_datetime":"2014-05-01T08:15:00Z","trip_distance":NaN,"fare_amount":1}`)},
	}
	produce(t, cfg, append(in[:10:10], append(poison, in[10:]...)...)...)

	reg := prometheus.NewRegistry()
	m := stream.NewMetrics(reg)
	proc := &echo{failures: map[string]int{"t3": 2}}
	r, err := stream.New(stream.Config{Name: "features", Topics: []string{contracts.TopicRidesRaw}, RetryMin: time.Millisecond, Guarantee: g},
		cfg, proc, m, kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()

	out := consume(t, cfg, contracts.TopicFeaturesRealtime, 20)
	dlq := consume(t, cfg, contracts.DeadLetterTopic("features"), 3)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runner: %v", err)
	}

	got := map[string]int{}
	for _, o := range out {
		got[string(o.Key)]++
	}
	for i := range 20 {
		if got[fmt.Sprintf("t%d", i)] != 1 {
			t.Errorf("trip t%d forwarded %d times", i, got[fmt.Sprintf("t%d", i)])
		}
	}
	fields := map[string]string{}
	for _, d := range dlq {
		reason := kafka.Header(d, stream.HeaderReason)
		if reason == "" || kafka.Header(d, stream.HeaderTopic) != contracts.TopicRidesRaw ||
			kafka.Header(d, stream.HeaderOffset) == "" || kafka.Header(d, stream.HeaderConsumer) != "features" {
			t.Errorf("dead letter %s lacks headers: %v", d.Key, d.Headers)
		}
		fields[string(d.Key)] = kafka.Header(d, stream.HeaderField)
	}
	if fields["no-fare"] != "fare_amount" || fields["bad-json"] != "" || fields["nan"] != "" {
		t.Errorf("dead-letter fields %v", fields)
	}
	if v := testutil.ToFloat64(m.FailedCounter("features", "transient")); v != 2 {
		t.Errorf("transient failures = %v, want 2", v)
	}

	// Every input offset is committed: a restart would redo nothing.
	adm, err := kafka.NewClient(cfg, "test-offsets", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	ac := kadm.NewClient(adm)
	committed, err := ac.FetchOffsets(context.Background(), contracts.ConsumerGroup("features"))
	if err != nil {
		t.Fatal(err)
	}
	ends, err := ac.ListEndOffsets(context.Background(), contracts.TopicRidesRaw)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committed.Lookup(contracts.TopicRidesRaw, o.Partition)
		if o.Offset > 0 && c.At != o.Offset {
			t.Errorf("partition %d: committed %d, end %d", o.Partition, c.At, o.Offset)
		}
	})
}
