package replay_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

func decodePing(t *testing.T, ev replay.Event) *contracts.GPSPing {
	t.Helper()
	if !ev.GPS || ev.Ride || ev.Record.Topic != contracts.TopicGPSStream {
		t.Fatalf("event %+v is not a ping", ev)
	}
	p, err := contracts.Decode[contracts.GPSPing](ev.Record.Value)
	if err != nil {
		t.Fatalf("ping %s: %v", ev.Record.Value, err)
	}
	if string(ev.Record.Key) != p.VehicleID {
		t.Fatalf("ping of %s keyed %q", p.VehicleID, ev.Record.Key)
	}
	if !p.Timestamp.Equal(ev.At) {
		t.Fatalf("ping at %v published at %v", p.Timestamp, ev.At)
	}
	return p
}

// hasTrack reports whether a trip gets pings.
func hasTrack(tr *tripdata.Trip) bool {
	return !math.IsNaN(tr.PickupLat+tr.PickupLon+tr.DropoffLat+tr.DropoffLon) && rides.Dropoff(tr.Start, tr.Seconds).After(tr.Start)
}

// TestGPSMergedStream replays the start of the sample with GPS: rides and
// actuals are exactly what they are without GPS, and every trip with a track
// pings at pickup, every minute, and at dropoff, between its ride and its
// actual, in event-time order.
func TestGPSMergedStream(t *testing.T) {
	trips, loc := sample(t)
	const n = 1500
	off := drain(t, source(t, trips, replay.Options{Limit: n, Location: loc}), 10*n)
	s := source(t, trips, replay.Options{Limit: n, Location: loc, GPSInterval: time.Minute})
	evs := drain(t, s, 100*n)

	var others []replay.Event
	type seen struct {
		ride, actual int // event indices
		pings        []int
	}
	byTrip := map[string]*seen{}
	for i, ev := range evs {
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Fatalf("event %d (%s) at %v is before event %d at %v", i, ev.Record.Topic, ev.At, i-1, evs[i-1].At)
		}
		if !ev.GPS {
			others = append(others, ev)
			k := string(ev.Record.Key)
			if ev.Ride {
				byTrip[k] = &seen{ride: i, actual: -1}
			} else {
				byTrip[k].actual = i
			}
			continue
		}
		p := decodePing(t, ev)
		st := byTrip[p.TripID]
		if st == nil || st.actual >= 0 {
			t.Fatalf("ping %d of trip %s outside its trip (%+v)", i, p.TripID, st)
		}
		st.pings = append(st.pings, i)
	}
	if len(others) != len(off) {
		t.Fatalf("%d rides and actuals with GPS, %d without", len(others), len(off))
	}
	for i := range off {
		a, b := off[i], others[i]
		if a.At != b.At || a.Ride != b.Ride || a.Seq != b.Seq || string(a.Record.Value) != string(b.Record.Value) {
			t.Fatalf("event %d without GPS %s %s at %v, with GPS %s %s at %v", i, a.Record.Topic, a.Record.Key, a.At, b.Record.Topic, b.Record.Key, b.At)
		}
	}
	checkStream(t, others)

	pings, without := 0, 0
	vehicleTrips := map[string]map[string]bool{}
	for i := range n {
		tr := &trips[i]
		st := byTrip[tr.TripID]
		if !hasTrack(tr) {
			without++
			if len(st.pings) != 0 {
				t.Fatalf("trip %s without a track has %d pings", tr.TripID, len(st.pings))
			}
			continue
		}
		dur := rides.Dropoff(tr.Start, tr.Seconds).Sub(tr.Start)
		want := int((dur+time.Minute-1)/time.Minute) + 1
		if len(st.pings) != want {
			t.Fatalf("trip %s of %v has %d pings, want %d", tr.TripID, dur, len(st.pings), want)
		}
		pings += want
		for k, idx := range st.pings {
			p := decodePing(t, evs[idx])
			at := tr.Start.Add(time.Duration(k) * time.Minute)
			if k == len(st.pings)-1 {
				at = tr.Start.Add(dur)
			}
			if !p.Timestamp.Equal(at) {
				t.Fatalf("ping %d of trip %s at %v, want %v", k, tr.TripID, p.Timestamp, at)
			}
			if k == 0 && (p.Latitude != tr.PickupLat || p.Longitude != tr.PickupLon) ||
				k == len(st.pings)-1 && (p.Latitude != tr.DropoffLat || p.Longitude != tr.DropoffLon) {
				t.Fatalf("ping %d of trip %s at (%v, %v): pickup (%v, %v), dropoff (%v, %v)", k, tr.TripID,
					p.Latitude, p.Longitude, tr.PickupLat, tr.PickupLon, tr.DropoffLat, tr.DropoffLon)
			}
			if want := replay.CompanySlug(tr.Company) + "-"; !strings.HasPrefix(p.VehicleID, want) {
				t.Fatalf("trip of %q in vehicle %s", tr.Company, p.VehicleID)
			}
			if vehicleTrips[p.VehicleID] == nil {
				vehicleTrips[p.VehicleID] = map[string]bool{}
			}
			vehicleTrips[p.VehicleID][tr.TripID] = true
		}
		// A ride at the same instant as its pickup ping comes first.
		if st.pings[0] < st.ride || st.actual < st.pings[len(st.pings)-1] {
			t.Fatalf("trip %s: ride at %d, pings %d..%d, actual at %d", tr.TripID, st.ride, st.pings[0], st.pings[len(st.pings)-1], st.actual)
		}
	}
	if got := len(evs) - len(others); got != pings {
		t.Fatalf("%d pings, want %d", got, pings)
	}
	if s.NoGPS() != without || without == 0 {
		t.Fatalf("NoGPS %d, %d trips without a track", s.NoGPS(), without)
	}
	reused := 0
	for _, ts := range vehicleTrips {
		if len(ts) > 1 {
			reused++
		}
	}
	if reused == 0 {
		t.Error("no vehicle made two trips")
	}
	t.Logf("%d trips: %d pings, %d trips without a track, %d vehicles (%d reused)", n, pings, without, len(vehicleTrips), reused)
}

// TestGPSTrackHandComputed checks pings of made-up trips against values
// worked out by hand.
func TestGPSTrackHandComputed(t *testing.T) {
	_, loc := sample(t)
	start := time.Date(2015, 6, 1, 8, 0, 0, 0, loc)
	nan := math.NaN()
	trips := []tripdata.Trip{
		// Due north 0.09° in 10 minutes: R·Δφ = 3958.7613 mi × 0.09π/180 =
		// 6.218408 mi in 1/6 h = 37.310447 mph; pings at 0, 1, …, 9, 10 min.
		{TripID: "north", Start: start, PickupLat: 41.88, PickupLon: -87.63, DropoffLat: 41.97, DropoffLon: -87.63, Seconds: 600, Company: "Taxi Affiliation Services"},
		// Due east 0.1° along 41.9°N in 150 s: pings at 0, 60, 120 and 150 s,
		// 0, 0.4, 0.8 and all the way. Heading 90° − atan(tan(0.05°)·sin
		// 41.9°) = 89.966608°; 2R·asin(cos 41.9° · sin 0.05°) = 5.142703 mi
		// in 150 s = 123.424865 mph.
		{TripID: "east", Start: start.Add(30 * time.Second), PickupLat: 41.9, PickupLon: -87.7, DropoffLat: 41.9, DropoffLon: -87.6, Seconds: 150, Company: ""},
		// Staying put: speed 0, heading 0.
		{TripID: "still", Start: start.Add(time.Minute), PickupLat: 41.8, PickupLon: -87.6, DropoffLat: 41.8, DropoffLon: -87.6, Seconds: 60, Company: "Taxi Affiliation Services"},
		// No pings: unknown dropoff, zero and unknown duration.
		{TripID: "nodrop", Start: start.Add(2 * time.Minute), PickupLat: 41.8, PickupLon: -87.6, DropoffLat: nan, DropoffLon: nan, Seconds: 300, Company: "Taxi Affiliation Services"},
		{TripID: "zero", Start: start.Add(3 * time.Minute), PickupLat: 41.8, PickupLon: -87.6, DropoffLat: 41.9, DropoffLon: -87.6, Seconds: 0},
		{TripID: "unknown", Start: start.Add(3 * time.Minute), PickupLat: 41.8, PickupLon: -87.6, DropoffLat: 41.9, DropoffLon: -87.6, Seconds: nan},
		// Fourth trip of the company (trips without pings count too) with a
		// fleet of two: vehicle 1 again.
		{TripID: "again", Start: start.Add(20 * time.Minute), PickupLat: 41.88, PickupLon: -87.63, DropoffLat: 41.78, DropoffLon: -87.73, Seconds: 60, Company: "Taxi Affiliation Services"},
	}
	for i := range trips {
		trips[i].Row, trips[i].Fare, trips[i].Miles = i, 5, 1
	}
	s := source(t, trips, replay.Options{Location: loc, GPSInterval: time.Minute, GPSFleet: 2})
	got := map[string][]*contracts.GPSPing{}
	for _, ev := range drain(t, s, 1000) {
		if ev.GPS {
			p := decodePing(t, ev)
			got[p.TripID] = append(got[p.TripID], p)
		}
	}
	type ping struct {
		after         time.Duration
		lat, lon      float64
		speed, head   float64
		vehicle       string
		tolSpeed, tol float64
	}
	const tas = "taxi-affiliation-services-"
	want := map[string][]ping{}
	for k := 0; k <= 10; k++ {
		want["north"] = append(want["north"], ping{time.Duration(k) * time.Minute, 41.88 + 0.009*float64(k), -87.63, 37.310447, 0, tas + "0", 1e-6, 1e-12})
	}
	for i, f := range []float64{0, 0.4, 0.8, 1} {
		after := time.Duration(i) * time.Minute
		if i == 3 {
			after = 150 * time.Second
		}
		want["east"] = append(want["east"], ping{after, 41.9, -87.7 + 0.1*f, 123.424865, 89.966608, "independent-0", 1e-6, 1e-6})
	}
	want["still"] = []ping{{0, 41.8, -87.6, 0, 0, tas + "1", 0, 0}, {time.Minute, 41.8, -87.6, 0, 0, tas + "1", 0, 0}}
	// 0.1° south and west: the bearing of the great circle is 216.724°.
	want["again"] = []ping{{0, 41.88, -87.63, -1, 216.724143, tas + "1", 0, 1e-6}, {time.Minute, 41.78, -87.73, -1, 216.724143, tas + "1", 0, 1e-6}}

	for _, id := range []string{"nodrop", "zero", "unknown"} {
		if len(got[id]) != 0 {
			t.Errorf("trip %s has %d pings, want none", id, len(got[id]))
		}
	}
	if s.NoGPS() != 3 {
		t.Errorf("NoGPS %d, want 3", s.NoGPS())
	}
	near := func(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }
	for i := range trips {
		id := trips[i].TripID
		ws := want[id]
		if len(got[id]) != len(ws) {
			t.Errorf("trip %s: %d pings, want %d", id, len(got[id]), len(ws))
			continue
		}
		for k, w := range ws {
			p := got[id][k]
			if !p.Timestamp.Equal(trips[i].Start.Add(w.after)) || !near(p.Latitude, w.lat, 1e-12) || !near(p.Longitude, w.lon, 1e-12) ||
				(w.speed >= 0 && !near(p.Speed, w.speed, w.tolSpeed)) || !near(p.Heading, w.head, w.tol) || p.VehicleID != w.vehicle {
				t.Errorf("trip %s ping %d: %v (%v, %v) %v mph heading %v vehicle %s; want %v (%v, %v) %v mph heading %v vehicle %s",
					id, k, p.Timestamp.Sub(trips[i].Start), p.Latitude, p.Longitude, p.Speed, p.Heading, p.VehicleID,
					w.after, w.lat, w.lon, w.speed, w.head, w.vehicle)
			}
		}
	}
}

func TestBearingAndHaversine(t *testing.T) {
	// Closed forms: along a meridian the bearing is 0 or 180 and the
	// distance R·Δφ; along a parallel at φ over Δλ the bearing is
	// 90° − atan(tan(Δλ/2)·sin φ) east (its mirror west) and the distance
	// 2R·asin(cos φ · sin(Δλ/2)).
	rad := math.Pi / 180
	const r = 6371.0088 / 1.609344
	east := func(lat, dlon float64) float64 { return 90 - math.Atan(math.Tan(dlon/2*rad)*math.Sin(lat*rad))/rad }
	for _, c := range []struct {
		name                   string
		lat0, lon0, lat1, lon1 float64
		bearing, miles         float64
	}{
		{"north along a meridian", 41.8, -87.6, 41.9, -87.6, 0, r * 0.1 * rad},
		{"south along a meridian", 41.9, -87.6, 41.8, -87.6, 180, r * 0.1 * rad},
		{"east along the equator", 0, 0, 0, 1, 90, r * rad},
		{"west along the equator", 0, 0, 0, -1, 270, r * rad},
		{"to the north pole", 10, 20, 90, 0, 0, r * 80 * rad},
		{"east along 41.9°N", 41.9, -87.7, 41.9, -87.6, east(41.9, 0.1), 2 * r * math.Asin(math.Cos(41.9*rad)*math.Sin(0.05*rad))},
		{"west along 41.9°N", 41.9, -87.6, 41.9, -87.7, 360 - east(41.9, 0.1), 2 * r * math.Asin(math.Cos(41.9*rad)*math.Sin(0.05*rad))},
		// Baghdad to Osaka, the textbook example (≈ 60°).
		{"35°N from 45°E to 135°E", 35, 45, 35, 135, east(35, 90), 2 * r * math.Asin(math.Cos(35*rad)*math.Sin(45*rad))},
		{"one point", 41.8, -87.6, 41.8, -87.6, 0, 0},
	} {
		b := replay.Bearing(c.lat0, c.lon0, c.lat1, c.lon1)
		d := replay.Haversine(c.lat0, c.lon0, c.lat1, c.lon1)
		if math.Abs(b-c.bearing) > 1e-9 || math.Abs(d-c.miles) > 1e-9*math.Max(1, c.miles) || b < 0 || b >= 360 {
			t.Errorf("%s: bearing %v, distance %v mi; want %v, %v", c.name, b, d, c.bearing, c.miles)
		}
	}
	if b := replay.Bearing(35, 45, 35, 135); math.Abs(b-60.16) > 0.01 {
		t.Errorf("Baghdad to Osaka starts at %v°, the textbook says 60.16°", b)
	}
}

func TestGPSDisabledEmitsNone(t *testing.T) {
	trips, loc := sample(t)
	s := source(t, trips, replay.Options{Limit: 500, Location: loc})
	evs := drain(t, s, 5000)
	for _, ev := range evs {
		if ev.GPS || ev.Record.Topic == contracts.TopicGPSStream {
			t.Fatalf("a ping without GPS: %+v", ev)
		}
	}
	if len(evs) != 1000 || s.NoGPS() != 0 {
		t.Fatalf("%d events, NoGPS %d; want 1000 and 0", len(evs), s.NoGPS())
	}
}

func TestCompanySlug(t *testing.T) {
	for in, want := range map[string]string{
		"Taxi Affiliation Services": "taxi-affiliation-services",
		"":                          "independent",
		"  ":                        "independent",
		"Chicago Elite Cab Corp. (Chicago Carriag": "chicago-elite-cab-corp-chicago-carriag",
		"4197 - 41842 Royal Star":                  "4197-41842-royal-star",
		"C & D Cab Co Inc":                         "c-d-cab-co-inc",
		"-Zuha--Taxi-":                             "zuha-taxi",
		"Café Cab":                                 "caf-cab",
	} {
		if got := replay.CompanySlug(in); got != want {
			t.Errorf("CompanySlug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAppendPingIsEncode: the hand-written JSON of a ping is byte for byte
// what contracts.Encode writes.
func TestAppendPingIsEncode(t *testing.T) {
	trips, loc := sample(t)
	at := time.Date(2016, 3, 13, 3, 4, 5, 600, loc)
	pings := []contracts.GPSPing{
		{VehicleID: "v-1", Timestamp: at, Latitude: 41.9, Longitude: -87.6},
		{VehicleID: `we"ird<&>\` + "\u00e9\n", TripID: "t\"1", Timestamp: at.UTC(), Latitude: 41.123456789012345, Longitude: -87.000001, Speed: 1e-7, Heading: 359.99999999999994},
		{VehicleID: "v", Timestamp: at, Latitude: 41.5, Longitude: -87.5, Speed: 3e21, Heading: 1e-300},
	}
	s := source(t, trips, replay.Options{Limit: 300, Location: loc, GPSInterval: 45 * time.Second})
	for _, ev := range drain(t, s, 100000) {
		if ev.GPS {
			pings = append(pings, *decodePing(t, ev))
		}
	}
	for i := range pings {
		p := pings[i]
		want, err := contracts.Encode(&p)
		if err != nil {
			t.Fatal(err)
		}
		if got := replay.AppendPing(nil, &p); string(got) != string(want) {
			t.Fatalf("ping %d:\n got %s\nwant %s", i, got, want)
		}
	}
	t.Logf("%d pings encoded alike", len(pings))
}

func TestGPSOptionsValidate(t *testing.T) {
	_, loc := sample(t)
	for _, c := range []struct {
		interval time.Duration
		fleet    int
		want     string
	}{
		{0, 0, ""},
		{time.Second, 1, ""},
		{time.Minute, 0, ""},
		{-time.Second, 0, "gps interval must be 0 (no GPS) or at least 1s"},
		{500 * time.Millisecond, 0, "gps interval"},
		{time.Minute, -1, "gps fleet must be >= 0"},
	} {
		err := replay.Options{Location: loc, GPSInterval: c.interval, GPSFleet: c.fleet}.Validate()
		if (err == nil) != (c.want == "") || err != nil && !strings.Contains(err.Error(), c.want) {
			t.Errorf("interval %v fleet %d: error %v, want %q", c.interval, c.fleet, err, c.want)
		}
	}
}

// TestGPSLoops: pings follow the trips into later passes, with their ids.
func TestGPSLoops(t *testing.T) {
	trips, loc := sample(t)
	s := source(t, trips[:50], replay.Options{Loop: true, Limit: 150, Location: loc, GPSInterval: 2 * time.Minute})
	evs := drain(t, s, 100000)
	passes := map[string]int{}
	for i, ev := range evs {
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Fatalf("event %d goes back in time", i)
		}
		if ev.GPS {
			p := decodePing(t, ev)
			switch {
			case strings.HasSuffix(p.TripID, "-L2"):
				passes["L2"]++
			case strings.HasSuffix(p.TripID, "-L1"):
				passes["L1"]++
			default:
				passes["L0"]++
			}
		}
	}
	if passes["L0"] == 0 || passes["L0"] != passes["L1"] || passes["L1"] != passes["L2"] {
		t.Fatalf("pings per pass %v, want the same in each", passes)
	}
}

// TestPublishCountsPings publishes a short replay with GPS to a broker.
func TestPublishCountsPings(t *testing.T) {
	trips, loc := sample(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, contracts.TopicRidesRaw, contracts.TopicActuals),
		kfake.SeedTopics(12, contracts.TopicGPSStream))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs()}
	cl, err := kafka.NewClient(cfg, "replayer", kafka.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	src := source(t, trips, replay.Options{Limit: 200, Location: loc, GPSInterval: time.Minute})
	st, err := replay.Publish(context.Background(), cl, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := kafka.TailRanges(context.Background(), cl, contracts.TopicGPSStream, 1<<40)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range ranges {
		n += r.End - r.Start
	}
	if st.Rides != 200 || st.Actuals != 200 || st.Pings == 0 || int64(st.Pings) != n || st.NoGPS != src.NoGPS() {
		t.Fatalf("stats %+v, %d records on %s, NoGPS %d", st, n, contracts.TopicGPSStream, src.NoGPS())
	}
	t.Log(fmt.Sprintf("%+v", st))
}
