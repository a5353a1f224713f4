package anomaly

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// smallWindows lets the sample's sparse area-hours reach a score.
var smallWindows = Config{Window: 50, MinCount: 10}

var loadTrips = sync.OnceValues(func() ([]tripdata.Trip, error) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		return nil, err
	}
	trips, err := tripdata.Load(loc)
	if err != nil {
		return nil, err
	}
	tripdata.SortByStart(trips)
	return trips, nil
})

// meter is a stand-in fare model: Chicago's meter rates.
func meter(r *contracts.RawRide) float64 {
	f := 3.25 + 2.25**r.TripDistance
	if r.TripSeconds != nil {
		f += 0.2 * *r.TripSeconds / 36
	}
	return f
}

// syntheticStream is n rides of the sample, each followed by its
// prediction (every seventh preceded by it), spread over six partitions by
// trip id, with anomalies of every kind mixed in.
func syntheticStream(t testing.TB, n int) []*kgo.Record {
	t.Helper()
	trips, err := loadTrips()
	if err != nil {
		t.Fatal(err)
	}
	var out []*kgo.Record
	add := func(r contracts.RawRide, i int) {
		b, err := contracts.Encode(&r)
		if err != nil {
			t.Fatal(err)
		}
		part := int32(fnv64a([]byte(r.TripID)) % 6)
		ride := &kgo.Record{Topic: contracts.TopicRidesRaw, Partition: part, Key: []byte(r.TripID), Value: b}
		pred := meter(&r)
		conf := inference.Confidence(pred, 3)
		if i%11 == 0 {
			conf = 0
		}
		pr := prediction(t, r.TripID, r.PickupDatetime, pred, conf, part)
		if i%7 == 0 {
			out = append(out, pr, ride)
		} else {
			out = append(out, ride, pr)
		}
	}
	var dups []contracts.RawRide
	for i := range trips[:n] {
		r := rides.RawRide(&trips[i])
		switch i % 150 {
		case 10:
			s := 30.0
			r.TripSeconds = &s
		case 20:
			z, f := 0.0, 80.0
			r.TripDistance, r.FareAmount = &z, &f
		case 30:
			r.PickupLatitude, r.PickupLongitude = &evanston[0], &evanston[1]
		case 40:
			f := *r.FareAmount * 6
			r.FareAmount = &f
		case 50:
			dups = append(dups, r)
		}
		add(r, i)
		if i%150 == 60 && len(dups) > 0 {
			d := dups[len(dups)-1]
			b, _ := contracts.Encode(&d)
			out = append(out, &kgo.Record{Topic: contracts.TopicRidesRaw, Partition: int32(fnv64a([]byte(d.TripID)) % 6), Key: []byte(d.TripID), Value: b})
		}
	}
	return out
}

// runAll processes recs in batches of 100, committing each, and returns
// the anomalies as type|trip|json strings.
func runAll(t testing.TB, p *Processor, recs []*kgo.Record) []string {
	t.Helper()
	var out []string
	for i, r := range recs {
		out = append(out, encodeAll(t, process(t, p, r))...)
		if i%100 == 99 || i == len(recs)-1 {
			if _, err := p.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			p.Checkpoint()
		}
	}
	return out
}

func encodeAll(t testing.TB, as []contracts.Anomaly) []string {
	t.Helper()
	var out []string
	for _, a := range as {
		if math.IsNaN(a.AnomalyScore) {
			t.Fatalf("NaN score: %+v", a)
		}
		b, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.AnomalyType+"|"+a.TripID+"|"+string(b))
	}
	return out
}
