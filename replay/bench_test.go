package replay_test

import (
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/replay"
)

// BenchmarkSourceNext measures one event of an endless replay of the
// sample: a ride, an actual or (with GPS) a ping.
func BenchmarkSourceNext(b *testing.B) {
	trips, err := sampleOnce()
	if err != nil {
		b.Fatal(err)
	}
	loc := trips[0].Start.Location()
	for _, c := range []struct {
		name     string
		interval time.Duration
	}{{"gps-off", 0}, {"gps-60s", time.Minute}} {
		b.Run(c.name, func(b *testing.B) {
			s, err := replay.NewSource(trips, replay.Options{Loop: true, Location: loc, GPSInterval: c.interval})
			if err != nil {
				b.Fatal(err)
			}
			pings := 0
			b.ReportAllocs()
			for b.Loop() {
				ev, ok := s.Next()
				if !ok {
					b.Fatal("an endless replay ended")
				}
				if ev.GPS {
					pings++
				}
			}
			b.ReportMetric(float64(pings)/float64(b.N), "pings/op")
		})
	}
}
