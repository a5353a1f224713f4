package demand

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
)

// TestRollbackAndReassignmentRestoreTheChangelog drives a forecaster by
// hand through what the runner does: a committed batch, an aborted batch
// (rolled back, then processed again), and a revoke and reassignment of its
// partition. Its outputs are those of a forecaster that processed each
// record once.
func TestRollbackAndReassignmentRestoreTheChangelog(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs(), ReplicationFactor: 1}
	ctx := context.Background()
	adm, err := kafka.NewClient(cfg, "admin", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	changelog := contracts.ChangelogTopic("demand")
	if err := kafka.EnsureTopics(ctx, adm, cfg, []contracts.Topic{{Name: changelog, Partitions: 6, Compacted: true}}); err != nil {
		t.Fatal(err)
	}
	prod, err := kafka.NewClient(cfg, "writer", kafka.Deps{}, kgo.TransactionalID("writer"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()

	f, err := NewForecaster(Config{}, flatBaseline(), state.New(changelog, cfg, kafka.Deps{}), NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := newTestForecaster(t, Config{})

	trips, pings := synthetic(rand.New(rand.NewPCG(5, 6)))
	ins := append(trips, pings...)
	var recs []*kgo.Record
	for _, in := range ins {
		recs = append(recs, in.record(t, 0))
	}
	batches := [][]*kgo.Record{recs[:len(recs)/4], recs[len(recs)/4 : len(recs)/2], recs[len(recs)/2 : 3*len(recs)/4], recs[3*len(recs)/4:]}

	// process runs a batch as the runner does and returns its output,
	// changelog excluded; commit says whether its transaction commits.
	process := func(p *Forecaster, batch []*kgo.Record, commit bool) string {
		var out []*kgo.Record
		for _, r := range batch {
			o, err := p.Process(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o...)
		}
		cl, err := p.Flush(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := prod.ProduceSync(ctx, cl...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
		if commit {
			p.Checkpoint()
		} else {
			p.Rollback()
		}
		s := ""
		for _, o := range out {
			s += fmt.Sprintf("%s %s %s\n", o.Topic, o.Key, o.Value)
		}
		return s
	}
	want := make([]string, len(batches))
	for i, b := range batches {
		var out []*kgo.Record
		for _, r := range b {
			o, err := ref.Process(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, o...)
		}
		for _, o := range out {
			want[i] += fmt.Sprintf("%s %s %s\n", o.Topic, o.Key, o.Value)
		}
		if want[i] == "" && i > 0 {
			t.Fatalf("batch %d makes no output", i)
		}
	}

	if got := process(f, batches[0], true); got != want[0] {
		t.Fatal("batch 0 differs")
	}
	// Batch 1 aborts; its records come again.
	if got := process(f, batches[1], false); got != want[1] {
		t.Fatal("batch 1 (aborted) differs")
	}
	if got := process(f, batches[1], true); got != want[1] {
		t.Fatal("batch 1 after the rollback differs from processing it once")
	}
	// The partition moves away and back: only the changelog remains.
	f.Revoked(map[string][]int32{contracts.TopicFeaturesByArea: {0}, contracts.TopicGPSByArea: {0}})
	if f.StateEntries() != 0 {
		t.Fatalf("%d entries after the revoke", f.StateEntries())
	}
	f.Assigned(ctx, nil, map[string][]int32{contracts.TopicFeaturesByArea: {0}, contracts.TopicGPSByArea: {0}})
	if f.failed != nil {
		t.Fatal(f.failed)
	}
	if f.StateEntries() != ref.stateAfter(t, batches[:2]) {
		t.Fatalf("%d entries restored", f.StateEntries())
	}
	for i := 2; i < len(batches); i++ {
		if got := process(f, batches[i], true); got != want[i] {
			t.Fatalf("batch %d after the reassignment differs", i)
		}
	}

	// A forecaster with another tick does not read slots of the old one:
	// it starts afresh and deletes the old entries.
	g, err := NewForecaster(Config{Tick: 30 * time.Minute, Horizons: []time.Duration{time.Hour}}, flatBaseline(),
		state.New(changelog, cfg, kafka.Deps{}), NewMetrics(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	g.Assigned(ctx, nil, map[string][]int32{contracts.TopicFeaturesByArea: {0}})
	if g.failed != nil || g.StateEntries() != 0 {
		t.Fatalf("restored %d entries written with another tick (%v)", g.StateEntries(), g.failed)
	}
	cl, err := g.Flush(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deletes := 0
	for _, r := range cl {
		if r.Value == nil {
			deletes++
		}
	}
	if deletes == 0 || deletes != len(cl)-1 {
		t.Fatalf("flush after a tick change: %d records, %d deletes", len(cl), deletes)
	}
}

// stateAfter counts the entries a fresh forecaster holds after batches.
func (f *Forecaster) stateAfter(t *testing.T, batches [][]*kgo.Record) int {
	g, _ := newTestForecaster(t, f.cfg)
	for _, b := range batches {
		for _, r := range b {
			if _, err := g.Process(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
	}
	return g.StateEntries()
}
