package bench

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	mlfeatures "github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// inputs are the sample's raw rides and features records.
type inputs struct {
	raw, feats []*kgo.Record
	rows       []dataset.Row
	loc        *time.Location
	areas      *geo.Areas
}

func load(b *testing.B) *inputs {
	b.Helper()
	loc, _ := time.LoadLocation(system.City)
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		b.Fatal(err)
	}
	rows, err := system.SampleRows(loc)
	if err != nil {
		b.Fatal(err)
	}
	in := &inputs{rows: rows, loc: loc, areas: areas}
	for i := range rows {
		r := &rows[i].Ride
		v, _ := contracts.Encode(r)
		in.raw = append(in.raw, &kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte(r.TripID), Value: v})
		row := mlfeatures.Transform(rides.FeatureTrip(r, areas), loc)
		f := rides.FeaturesMessage(r.TripID, r.PickupDatetime, &row)
		fv, _ := contracts.Encode(&f)
		in.feats = append(in.feats, &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Key: []byte(r.TripID), Value: fv,
			Partition: int32(i % 6)})
	}
	return in
}

func champs(b *testing.B, in *inputs) *champions.Set {
	b.Helper()
	set := champions.New(nil, training.ModelNames(), "bench", champions.NewMetrics(nil), slog.New(slog.DiscardHandler))
	ex := training.Examples(in.rows[:4000], in.areas, in.loc)
	for _, m := range training.Models() {
		c, err := training.Fit(context.Background(), m, ex, nil)
		if err != nil {
			b.Fatal(err)
		}
		set.Serve(&training.Loaded{Name: m.Name, Version: "v1", Eval: c.Model, Spec: c.Spec, Profile: c.Profile, Metrics: c.Metrics}, "bench")
	}
	return set
}

func run(b *testing.B, p stream.Processor, recs []*kgo.Record) {
	b.Helper()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := p.Process(ctx, recs[i%len(recs)]); err != nil && !contracts.IsInvalid(err) {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkProcessFeatures(b *testing.B) {
	in := load(b)
	run(b, &features.Processor{Areas: in.areas, Location: in.loc}, in.raw)
}

func BenchmarkProcessInference(b *testing.B) {
	in := load(b)
	run(b, &inference.Processor{Models: champs(b, in)}, in.feats)
}

func BenchmarkProcessQuality(b *testing.B) {
	in := load(b)
	run(b, quality.New(quality.Config{}, champs(b, in)), in.feats)
}

func BenchmarkProcessAreaRepartition(b *testing.B) {
	in := load(b)
	run(b, aggregates.Repartitioner{}, in.feats)
}

func BenchmarkProcessAggregates(b *testing.B) {
	in := load(b)
	base, err := system.SampleBaseline(in.loc, in.areas)
	if err != nil {
		b.Fatal(err)
	}
	store := state.New("bench-changelog", kafka.Config{}, kafka.Deps{})
	agg, err := aggregates.NewAggregator(aggregates.Config{Grace: 7 * 24 * time.Hour}, base, store, aggregates.NewMetrics(nil), slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	// By area, as the repartitioner writes them; the loop replays the
	// sample again later in event time so windows keep closing.
	var recs []*kgo.Record
	for _, r := range in.feats {
		out, err := aggregates.Repartitioner{}.Process(context.Background(), r)
		if err == nil && len(out) == 1 {
			area, _ := strconv.Atoi(string(out[0].Key))
			out[0].Partition = int32(area % 6)
			recs = append(recs, out[0])
		}
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%len(recs) == 0 {
			b.StopTimer()
			// Start over in a fresh aggregator: event time would run backwards.
			agg, _ = aggregates.NewAggregator(aggregates.Config{Grace: 7 * 24 * time.Hour}, base, store, aggregates.NewMetrics(nil), slog.New(slog.DiscardHandler))
			b.StartTimer()
		}
		if _, err := agg.Process(ctx, recs[i%len(recs)]); err != nil {
			b.Fatal(err)
		}
		if i%500 == 499 {
			if _, err := agg.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			agg.Checkpoint()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkProcessBatchInference(b *testing.B) {
	in := load(b)
	p := &inference.Processor{Models: champs(b, in)}
	const batch = 500
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		start := i % (len(in.feats) - batch)
		for _, r := range p.ProcessBatch(ctx, in.feats[start:start+batch]) {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
