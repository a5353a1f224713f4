package boost

import (
	"context"
	"runtime"
	"testing"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

// The training benchmarks use the fixture's train split and parameters
// (100 rounds, depth 6, eta 0.1, max_bin 256). xgb-s/train is xgboost
// 1.7.4's hist on the same data as gen_fixtures.py timed it (DMatrix
// construction included, as binning is included here), with as many
// threads as the benchmark has CPUs (1 or 2); speedup-vs-xgb is its time
// over ours.
func benchTrain(b *testing.B, objective, label string, features []string, xgb1, xgb2 float64) {
	q := loadQuality(b)
	d := loadTaxi(b)
	train := d.dataset(b, 0, q.Split.TrainRows, features, label)
	p := paramsFromFixture(q, objective)
	for b.Loop() {
		if _, err := Train(context.Background(), p, train, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
	s := b.Elapsed().Seconds() / float64(b.N)
	xs := xgb2
	if runtime.GOMAXPROCS(0) == 1 {
		xs = xgb1
	}
	b.ReportMetric(s, "s/train")
	b.ReportMetric(xs, "xgb-s/train")
	b.ReportMetric(xs/s, "speedup-vs-xgb")
}

func BenchmarkTrainFare(b *testing.B) {
	q := loadQuality(b)
	benchTrain(b, SquaredError, "fare", features.FareFeatures, q.Fare.TrainSeconds1, q.Fare.TrainSeconds2)
}

func BenchmarkTrainBigTipper(b *testing.B) {
	q := loadQuality(b)
	benchTrain(b, BinaryLogistic, "big_tipper", features.TipperFeatures,
		q.BigTipper.TrainSeconds1, q.BigTipper.TrainSeconds2)
}
