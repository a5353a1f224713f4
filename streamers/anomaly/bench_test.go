package anomaly

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
)

// benchStream is n records (rides, each followed by its prediction) of the
// sample replayed in loops, each loop with new trip ids and four years
// later, so state grows and expires as in a long run.
func benchStream(b *testing.B, n int) []*kgo.Record {
	trips, err := loadTrips()
	if err != nil {
		b.Fatal(err)
	}
	out := make([]*kgo.Record, 0, n)
	for i := 0; len(out) < n; i++ {
		loop, k := i/len(trips), i%len(trips)
		r := rides.RawRide(&trips[k])
		r.TripID = fmt.Sprintf("%s-%d", r.TripID, loop)
		r.PickupDatetime = r.PickupDatetime.Add(time.Duration(loop) * 4 * 365 * 24 * time.Hour)
		v, err := contracts.Encode(&r)
		if err != nil {
			b.Fatal(err)
		}
		part := int32(fnv64a([]byte(r.TripID)) % 6)
		pred := meter(&r)
		out = append(out, &kgo.Record{Topic: contracts.TopicRidesRaw, Partition: part, Key: []byte(r.TripID), Value: v},
			prediction(b, r.TripID, r.PickupDatetime, pred, inference.Confidence(pred, 3), part))
	}
	return out[:n]
}

func benchmarkProcess(b *testing.B, withFlush bool) {
	const warm = 20000
	recs := benchStream(b, warm+min(b.N, 400000))
	p := newProc(b, Config{})
	ctx := context.Background()
	for _, r := range recs[:warm] {
		if _, err := p.Process(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	p.Flush(ctx)
	p.Checkpoint()
	run := recs[warm:]
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := p.Process(ctx, run[i%len(run)]); err != nil {
			b.Fatal(err)
		}
		if i%500 == 499 {
			if !withFlush {
				b.StopTimer()
			}
			if _, err := p.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			p.Checkpoint()
			if !withFlush {
				b.StartTimer()
			}
		}
	}
}

// BenchmarkProcess is one record (half rides, half predictions) through
// Process; the Flush and Checkpoint every 500 records are not timed.
func BenchmarkProcess(b *testing.B) { benchmarkProcess(b, false) }

// BenchmarkProcessWithFlush adds the changelog writes: Flush and
// Checkpoint every 500 records, the runner's default batch.
func BenchmarkProcessWithFlush(b *testing.B) { benchmarkProcess(b, true) }

// BenchmarkRobustZ scores a fare against a full window of 200.
func BenchmarkRobustZ(b *testing.B) {
	w := make([]float64, 200)
	for i := range w {
		w[i] = float64((i*7919)%97) + 3.25
	}
	scratch := make([]float64, 200)
	b.ReportAllocs()
	for b.Loop() {
		RobustZ(w, 42, scratch)
	}
}
