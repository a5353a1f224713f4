package demand

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
)

func BenchmarkGPSRepartitionerProcess(b *testing.B) {
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		b.Fatal(err)
	}
	r := NewGPSRepartitioner(areas, NewMetrics(nil))
	v, _ := contracts.Encode(&contracts.GPSPing{VehicleID: "taxi-affiliation-services-17", TripID: "t0123456789abcdef",
		Timestamp: time.Date(2015, 6, 1, 10, 0, 0, 0, time.UTC), Latitude: 41.8806, Longitude: -87.6742, Speed: 12.5, Heading: 87.2})
	in := &kgo.Record{Topic: contracts.TopicGPSStream, Key: []byte("taxi-affiliation-services-17"), Value: v}
	b.ReportAllocs()
	for b.Loop() {
		out, err := r.Process(context.Background(), in)
		if err != nil || len(out) != 1 {
			b.Fatal(out, err)
		}
	}
}

// BenchmarkForecasterProcess measures one record of a steady stream: a
// record every 6 s of event time over 20 areas, one in five a trip start
// (the rest pings of 200 vehicles), so a tick (40 forecasts) falls every
// 150 records; its cost is spread over them. "batched" also flushes the
// changelog and checkpoints every 500 records, as the runner does.
func BenchmarkForecasterProcess(b *testing.B) {
	for _, batched := range []bool{false, true} {
		name := "records"
		if batched {
			name = "batched-500"
		}
		b.Run(name, func(b *testing.B) {
			start := time.Date(2015, 6, 1, 0, 0, 0, 0, time.UTC)
			recs := make([]*kgo.Record, b.N)
			for i := range recs {
				in := input{area: 1 + i%20, at: start.Add(time.Duration(i) * 6 * time.Second)}
				if i%5 != 0 {
					in.gps, in.vehicle = true, "v"+strconv.Itoa(i%200)
				}
				recs[i] = in.record(b, 0)
			}
			f, _ := newTestForecaster(b, Config{Grace: time.Minute})
			ctx := context.Background()
			outs := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i, r := range recs {
				out, err := f.Process(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				outs += len(out)
				if batched && i%500 == 499 {
					if _, err := f.Flush(ctx); err != nil {
						b.Fatal(err)
					}
					f.Checkpoint()
				}
			}
			b.ReportMetric(float64(outs)/float64(b.N), "outputs/op")
		})
	}
}
