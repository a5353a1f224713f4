package metrics

import (
	"context"
	"testing"
)

func benchmarkProcess(b *testing.B, withFlush bool) {
	const warm = 20000
	ps := randomPairs((warm+min(b.N, 400000))/2+1, 9)
	for i := range ps {
		ps[i].partition = int32(i % 6)
	}
	recs := eventOrder(b, ps)
	p := newProc(b, Config{}, func(string, string) (map[string]float64, bool) {
		return map[string]float64{"rmse": 3, "mae": 1.4, "mape": 0.12, "auc": 0.95, "logloss": 0.18}, true
	})
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

// BenchmarkProcess is one record (half predictions, half actuals, in event
// order; windows of 500 pairs published as they fill) through Process;
// the Flush and Checkpoint every 500 records are not timed.
func BenchmarkProcess(b *testing.B) { benchmarkProcess(b, false) }

// BenchmarkProcessWithFlush adds the changelog writes: Flush and
// Checkpoint every 500 records.
func BenchmarkProcessWithFlush(b *testing.B) { benchmarkProcess(b, true) }
