package training_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

func sample(t testing.TB) ([]training.Example, *time.Location) {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		t.Fatal(err)
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		t.Fatal(err)
	}
	tripdata.SortByStart(trips)
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	return training.Examples(rows, areas, loc), loc
}

// The models beat the obvious baselines on a later time slice: the mean
// fare, and the big-tipper base rate.
func TestFitBeatsBaselines(t *testing.T) {
	if testing.Short() {
		t.Skip("trains two models on the sample")
	}
	ex, _ := sample(t)
	train, test, _ := training.SplitByTime(ex, 0.2)
	for _, m := range training.Models() {
		start := time.Now()
		c, err := training.Fit(context.Background(), m, train, nil)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		got := training.Score(m, c.Model, c.Spec, test)
		var base float64
		switch m.Objective {
		case "reg:squarederror":
			var mean float64
			for i := range train {
				mean += float64(m.Label(&train[i]))
			}
			mean /= float64(len(train))
			for i := range test {
				d := float64(m.Label(&test[i])) - mean
				base += d * d
			}
			base = math.Sqrt(base / float64(len(test)))
		case "binary:logistic":
			var p float64
			for i := range train {
				p += float64(m.Label(&train[i]))
			}
			p /= float64(len(train))
			for i := range test {
				y := float64(m.Label(&test[i]))
				base -= y*math.Log(p) + (1-y)*math.Log(1-p)
			}
			base /= float64(len(test))
		}
		t.Logf("%s: %s = %.4f (baseline %.4f), validation %v, %d rounds, trained in %v",
			m.Name, m.PrimaryMetric, got[m.PrimaryMetric], base, c.Metrics, c.BestIteration+1, took.Round(time.Millisecond))
		if !(got[m.PrimaryMetric] < 0.8*base) {
			t.Errorf("%s: %s %.4f is not clearly better than the baseline %.4f", m.Name, m.PrimaryMetric, got[m.PrimaryMetric], base)
		}
		if c.Profile == nil || len(c.Profile.Features) != len(m.Features) {
			t.Errorf("%s: reference profile %+v", m.Name, c.Profile)
		}
	}
}

func TestSplitByTime(t *testing.T) {
	t0 := time.Unix(0, 0)
	ex := make([]training.Example, 10)
	for i := range ex {
		ex[i].Time = t0.Add(time.Duration(i) * time.Hour)
	}
	a, b, at := training.SplitByTime(ex, 0.2)
	if len(a) != 8 || len(b) != 2 || !at.Equal(ex[8].Time) {
		t.Fatalf("split %d/%d at %v", len(a), len(b), at)
	}
	a, b, _ = training.SplitByTime(ex, 0)
	if len(a) != 10 || len(b) != 0 {
		t.Fatalf("split 0: %d/%d", len(a), len(b))
	}
}

func TestBetter(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	for _, tc := range []struct {
		ch, cp float64
		min    float64
		want   bool
	}{
		{ch: 2.0, cp: 3.0, min: 0.01, want: true},
		{ch: 2.99, cp: 3.0, min: 0.01, want: false},
		{ch: 3.1, cp: 3.0, min: 0, want: false},
	} {
		ok, why := training.Better(fare, map[string]float64{"rmse": tc.ch}, map[string]float64{"rmse": tc.cp}, tc.min)
		if ok != tc.want || why == "" {
			t.Errorf("challenger %v champion %v: %v (%s)", tc.ch, tc.cp, ok, why)
		}
	}
	if _, err := training.Lookup("tips2"); err == nil {
		t.Error("unknown model found")
	}
}

// The row a model is trained on and the row it is served cross different
// paths — Parquet snapshot versus two JSON hops through Kafka — and must be
// the same: no training/serving skew.
func TestTrainingAndServingRowsAgree(t *testing.T) {
	loc, _ := time.LoadLocation("America/Chicago")
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		t.Fatal(err)
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	pq, err := dataset.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := dataset.Read(context.Background(), pq)
	if err != nil {
		t.Fatal(err)
	}
	trained := training.Examples(snap, areas, loc)
	for i := range rows {
		// The serving path: raw ride JSON → features streamer → features
		// JSON → inference.
		b, err := contracts.Encode(&rows[i].Ride)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := contracts.Decode[contracts.RawRide](b)
		if err != nil {
			t.Fatalf("trip %s: %v", rows[i].Ride.TripID, err)
		}
		row := features.Transform(rides.FeatureTrip(raw, areas), loc)
		msg := rides.FeaturesMessage(raw.TripID, raw.PickupDatetime, &row)
		if b, err = contracts.Encode(&msg); err != nil {
			t.Fatal(err)
		}
		f, err := contracts.Decode[contracts.Features](b)
		if err != nil {
			t.Fatalf("trip %s: %v", rows[i].Ride.TripID, err)
		}
		served := rides.Row(f)
		if trained[i].TripID != raw.TripID || !sameRow(trained[i].Row, served) {
			t.Fatalf("trip %s: trained on %+v, served %+v", raw.TripID, trained[i].Row, served)
		}
	}
}

func sameRow(a, b features.Row) bool {
	eq := func(x, y float64) bool { return x == y || (math.IsNaN(x) && math.IsNaN(y)) }
	return eq(a.TripMiles, b.TripMiles) && eq(a.TripSeconds, b.TripSeconds) && eq(a.AvgSpeedMph, b.AvgSpeedMph) &&
		a.PickupHour == b.PickupHour && a.PickupDayOfWeek == b.PickupDayOfWeek && a.PickupMonth == b.PickupMonth &&
		a.PickupArea == b.PickupArea && a.DropoffArea == b.DropoffArea && a.PaymentType == b.PaymentType &&
		a.Company == b.Company && eq(a.Fare, b.Fare)
}
