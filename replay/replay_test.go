package replay_test

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

var sampleOnce = sync.OnceValues(func() ([]tripdata.Trip, error) {
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

// sample returns the shipped trips sorted by start, and Chicago.
func sample(t *testing.T) ([]tripdata.Trip, *time.Location) {
	t.Helper()
	trips, err := sampleOnce()
	if err != nil {
		t.Fatal(err)
	}
	return trips, trips[0].Start.Location()
}

func source(t *testing.T, trips []tripdata.Trip, o replay.Options) *replay.Source {
	t.Helper()
	s, err := replay.NewSource(trips, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain returns every event of s, at most max.
func drain(t *testing.T, s *replay.Source, max int) []replay.Event {
	t.Helper()
	var evs []replay.Event
	for len(evs) < max {
		ev, ok := s.Next()
		if !ok {
			return evs
		}
		evs = append(evs, ev)
	}
	return evs
}

func decodeRide(t *testing.T, ev replay.Event) *contracts.RawRide {
	t.Helper()
	if !ev.Ride || ev.Record.Topic != contracts.TopicRidesRaw {
		t.Fatalf("event %+v is not a ride", ev)
	}
	r, err := contracts.Decode[contracts.RawRide](ev.Record.Value)
	if err != nil {
		t.Fatalf("ride %s: %v", ev.Record.Key, err)
	}
	if string(ev.Record.Key) != r.TripID {
		t.Fatalf("ride %s keyed %q", r.TripID, ev.Record.Key)
	}
	return r
}

func decodeActual(t *testing.T, ev replay.Event) *contracts.Actual {
	t.Helper()
	if ev.Ride || ev.Record.Topic != contracts.TopicActuals {
		t.Fatalf("event %+v is not an actual", ev)
	}
	a, err := contracts.Decode[contracts.Actual](ev.Record.Value)
	if err != nil {
		t.Fatalf("actual %s: %v", ev.Record.Key, err)
	}
	if string(ev.Record.Key) != a.TripID {
		t.Fatalf("actual %s keyed %q", a.TripID, ev.Record.Key)
	}
	return a
}

// checkStream checks what every replay promises: event time never goes
// back, every ride has one actual after it at pickup + trip_seconds, rides
// are numbered in order. It returns the rides in order.
func checkStream(t *testing.T, evs []replay.Event) []*contracts.RawRide {
	t.Helper()
	var ridesInOrder []*contracts.RawRide
	pickup := map[string]time.Time{}
	seconds := map[string]*float64{}
	seqOf := map[string]int{}
	actuals := map[string]bool{}
	for i, ev := range evs {
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Fatalf("event %d (%s %s) at %v is before event %d at %v", i, ev.Record.Topic, ev.Record.Key, ev.At, i-1, evs[i-1].At)
		}
		if ev.Ride {
			r := decodeRide(t, ev)
			if ev.Seq != len(ridesInOrder) {
				t.Fatalf("ride %d has Seq %d", len(ridesInOrder), ev.Seq)
			}
			if _, dup := pickup[r.TripID]; dup {
				t.Fatalf("trip %s published twice", r.TripID)
			}
			if !ev.At.Equal(r.PickupDatetime) {
				t.Fatalf("ride %s published at %v, picked up at %v", r.TripID, ev.At, r.PickupDatetime)
			}
			pickup[r.TripID], seconds[r.TripID], seqOf[r.TripID] = r.PickupDatetime, r.TripSeconds, ev.Seq
			ridesInOrder = append(ridesInOrder, r)
			continue
		}
		a := decodeActual(t, ev)
		start, ok := pickup[a.TripID]
		if !ok {
			t.Fatalf("actual of %s before its ride", a.TripID)
		}
		if actuals[a.TripID] {
			t.Fatalf("two actuals for %s", a.TripID)
		}
		actuals[a.TripID] = true
		secs := math.NaN()
		if seconds[a.TripID] != nil {
			secs = *seconds[a.TripID]
		}
		want := rides.Dropoff(start, secs)
		if !ev.At.Equal(want) || !a.DropoffDatetime.Equal(want) {
			t.Fatalf("actual of %s at %v (dropoff %v), want pickup %v + %v s = %v", a.TripID, ev.At, a.DropoffDatetime, start, secs, want)
		}
		if ev.Seq != seqOf[a.TripID] {
			t.Fatalf("actual of %s has Seq %d, its ride %d", a.TripID, ev.Seq, seqOf[a.TripID])
		}
	}
	if len(actuals) != len(ridesInOrder) {
		t.Fatalf("%d rides but %d actuals", len(ridesInOrder), len(actuals))
	}
	return ridesInOrder
}

// checkTimes is checkStream for long replays, from event times and keys
// only: seconds gives the trip_seconds of a ride's key.
func checkTimes(t *testing.T, evs []replay.Event, seconds func(key string) float64) (keys []string, at []time.Time) {
	t.Helper()
	pickup := map[string]time.Time{}
	done := map[string]bool{}
	for i, ev := range evs {
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Fatalf("event %d (%s %s) at %v is before event %d at %v", i, ev.Record.Topic, ev.Record.Key, ev.At, i-1, evs[i-1].At)
		}
		k := string(ev.Record.Key)
		if ev.Ride {
			if _, dup := pickup[k]; dup || ev.Seq != len(keys) || ev.Record.Topic != contracts.TopicRidesRaw {
				t.Fatalf("ride %d: %s to %s with Seq %d (published before: %v)", len(keys), k, ev.Record.Topic, ev.Seq, dup)
			}
			pickup[k] = ev.At
			keys, at = append(keys, k), append(at, ev.At)
			continue
		}
		start, ok := pickup[k]
		if !ok || done[k] || ev.Record.Topic != contracts.TopicActuals {
			t.Fatalf("actual of %s to %s: ride published %v, actual published before %v", k, ev.Record.Topic, ok, done[k])
		}
		done[k] = true
		if want := rides.Dropoff(start, seconds(k)); !ev.At.Equal(want) {
			t.Fatalf("actual of %s at %v, want pickup %v + %v s = %v", k, ev.At, start, seconds(k), want)
		}
	}
	if len(done) != len(keys) {
		t.Fatalf("%d rides but %d actuals", len(keys), len(done))
	}
	return keys, at
}

func TestSourceReplaysTheSampleInEventTimeOrder(t *testing.T) {
	trips, loc := sample(t)
	s := source(t, trips, replay.Options{Location: loc})
	evs := drain(t, s, 3*len(trips))
	if len(evs) != 2*len(trips) {
		t.Fatalf("%d events for %d trips, want a ride and an actual each", len(evs), len(trips))
	}
	seconds := map[string]float64{}
	for _, tr := range trips {
		seconds[tr.TripID] = tr.Seconds
	}
	keys, at := checkTimes(t, evs, func(k string) float64 { return seconds[k] })
	for i := range keys {
		if keys[i] != trips[i].TripID || !at[i].Equal(trips[i].Start) {
			t.Fatalf("ride %d is %s at %v, want trip %s at %v", i, keys[i], at[i], trips[i].TripID, trips[i].Start)
		}
	}
	// The records say what the events say (every 97th, to keep it fast).
	for i := 0; i < len(evs); i += 97 {
		if evs[i].Ride {
			if r := decodeRide(t, evs[i]); !r.PickupDatetime.Equal(evs[i].At) {
				t.Fatalf("ride %s published at %v, picked up at %v", r.TripID, evs[i].At, r.PickupDatetime)
			}
		} else if a := decodeActual(t, evs[i]); !a.DropoffDatetime.Equal(evs[i].At) {
			t.Fatalf("actual %s published at %v, dropped off at %v", a.TripID, evs[i].At, a.DropoffDatetime)
		}
	}
	if _, ok := s.Next(); ok {
		t.Error("Next returned an event after the end")
	}
	// Some trips end after later trips start: actuals are interleaved with
	// rides, not appended after them.
	lastRide, firstActual := -1, -1
	for i, ev := range evs {
		if ev.Ride {
			lastRide = i
		} else if firstActual < 0 {
			firstActual = i
		}
	}
	if firstActual > lastRide {
		t.Error("no actual is published before the last ride")
	}
}

func TestSkipAndLimit(t *testing.T) {
	trips, loc := sample(t)
	for _, c := range []struct {
		skip, limit int
		first, n    int // trips[first:first+n] are replayed
	}{
		{0, 1, 0, 1},
		{10, 5, 10, 5},
		{len(trips) - 3, 0, len(trips) - 3, 3},
		{len(trips) - 3, 100, len(trips) - 3, 3},
		{100, 2000, 100, 2000},
	} {
		t.Run(fmt.Sprintf("skip %d limit %d", c.skip, c.limit), func(t *testing.T) {
			s := source(t, trips, replay.Options{Skip: c.skip, Limit: c.limit, Location: loc})
			evs := drain(t, s, 3*len(trips))
			rs := checkStream(t, evs)
			if len(rs) != c.n {
				t.Fatalf("%d rides, want %d", len(rs), c.n)
			}
			for i, r := range rs {
				if r.TripID != trips[c.first+i].TripID {
					t.Fatalf("ride %d is %s, want %s (trip %d)", i, r.TripID, trips[c.first+i].TripID, c.first+i)
				}
			}
			if len(evs) != 2*c.n {
				t.Errorf("%d events, want %d", len(evs), 2*c.n)
			}
		})
	}
}

func TestNewSourceErrors(t *testing.T) {
	trips, loc := sample(t)
	for _, c := range []struct {
		name  string
		trips []tripdata.Trip
		opts  replay.Options
		want  string
	}{
		{"no trips", nil, replay.Options{Location: loc}, "no trips"},
		{"skip everything", trips[:10], replay.Options{Skip: 10, Location: loc}, "skip 10 leaves none of 10"},
		{"invalid options", trips, replay.Options{Rate: -1, Location: loc}, "rate"},
	} {
		_, err := replay.NewSource(c.trips, c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %q", c.name, err, c.want)
		}
	}
	// With Loop, skipping past the end starts in the second pass.
	s := source(t, trips[:10], replay.Options{Skip: 12, Limit: 1, Loop: true, Location: loc})
	r := decodeRide(t, drain(t, s, 1)[0])
	if r.TripID != trips[2].TripID+"-L1" {
		t.Errorf("skip 12 of 10 looped trips starts with %s, want %s-L1", r.TripID, trips[2].TripID)
	}
}

func TestLoop(t *testing.T) {
	trips, loc := sample(t)
	n := len(trips)
	const passes = 2
	s := source(t, trips, replay.Options{Loop: true, Limit: passes * n, Location: loc})
	evs := drain(t, s, 3*passes*n)
	seconds := map[string]float64{}
	for _, tr := range trips {
		seconds[tr.TripID] = tr.Seconds
	}
	keys, at := checkTimes(t, evs, func(k string) float64 { return seconds[strings.TrimSuffix(k, "-L1")] })
	if len(keys) != passes*n {
		t.Fatalf("%d rides, want %d", len(keys), passes*n)
	}
	var shift int // days of the second pass after the first
	for i := n; i < 2*n; i++ {
		orig := &trips[i-n]
		if keys[i] != orig.TripID+"-L1" {
			t.Fatalf("ride %d of the second pass is %s, want %s-L1", i-n, keys[i], orig.TripID)
		}
		a, b := orig.Start.In(loc), at[i].In(loc)
		days := int(math.Round(civil(b).Sub(civil(a)).Hours() / 24))
		if i == n {
			shift = days
			if days <= 0 || days%7 != 0 {
				t.Fatalf("the second pass is shifted by %d days, want whole weeks", days)
			}
			if !b.After(at[n-1]) {
				t.Fatalf("the second pass starts at %v, before the first ended at %v", b, at[n-1])
			}
		}
		if days != shift {
			t.Fatalf("trip %s is shifted by %d days, the first of its pass by %d", orig.TripID, days, shift)
		}
		if a.Weekday() != b.Weekday() || a.Hour() != b.Hour() || a.Minute() != b.Minute() {
			t.Errorf("trip %s at %s is replayed at %s: another clock hour or weekday",
				orig.TripID, a.Format("Mon 2006-01-02 15:04 MST"), b.Format("Mon 2006-01-02 15:04 MST"))
		}
	}
	// Everything but identity and time is the same trip (every 97th).
	for i := 0; i < len(evs); i += 97 {
		if !evs[i].Ride || evs[i].Seq < n {
			continue
		}
		r := decodeRide(t, evs[i])
		want := rides.RawRide(&trips[evs[i].Seq-n])
		want.TripID, want.PickupDatetime = r.TripID, r.PickupDatetime
		if got, wantS := derefRide(r), derefRide(&want); got != wantS {
			t.Fatalf("looped ride\n%s\nwant\n%s", got, wantS)
		}
		if !r.PickupDatetime.Equal(evs[i].At) {
			t.Fatalf("looped ride %s published at %v, picked up at %v", r.TripID, evs[i].At, r.PickupDatetime)
		}
	}
	t.Logf("the second pass is %d weeks later", shift/7)

	// Without a limit a loop does not end.
	s = source(t, trips[:5], replay.Options{Loop: true, Location: loc})
	evs = drain(t, s, 100)
	if len(evs) != 100 {
		t.Fatalf("an endless loop of 5 trips ended after %d events", len(evs))
	}
	k := 0
	for _, ev := range evs {
		if !ev.Ride {
			continue
		}
		want := trips[k%5].TripID
		if k >= 5 {
			want += fmt.Sprintf("-L%d", k/5)
		}
		if r := decodeRide(t, ev); r.TripID != want {
			t.Errorf("ride %d of a loop of 5 trips is %s, want %s", k, r.TripID, want)
		}
		k++
	}
	if k < 45 {
		t.Errorf("%d rides in 100 events of a loop", k)
	}
}

// civil is the calendar date of a local time, as a UTC midnight.
func civil(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// derefRide prints a ride's pointers as values.
func derefRide(r *contracts.RawRide) string {
	f := func(p *float64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	i := func(p *int) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("%s %s pickup (%s, %s) area %s dropoff (%s, %s) area %s miles %s seconds %s fare %s %q %q tracts %q %q",
		r.TripID, r.PickupDatetime.UTC().Format(time.RFC3339), f(r.PickupLatitude), f(r.PickupLongitude), i(r.PickupCommunityArea),
		f(r.DropoffLatitude), f(r.DropoffLongitude), i(r.DropoffCommunityArea), f(r.TripDistance), f(r.TripSeconds),
		f(r.FareAmount), r.PaymentType, r.Company, r.PickupCensusTract, r.DropoffCensusTract)
}

func TestDriftApply(t *testing.T) {
	trips, _ := sample(t)
	var cash tripdata.Trip
	for _, tr := range trips {
		// A trip without unknown (NaN) numbers, so trips compare with ==.
		if tr.PaymentType == "Cash" && tr.Tips == 0 && tr.Fare > 0 && tr.Miles > 0 && tr.Seconds > 0 &&
			!math.IsNaN(tr.PickupLat+tr.PickupLon+tr.DropoffLat+tr.DropoffLon) {
			cash = tr
			break
		}
	}
	if cash.TripID == "" {
		t.Fatal("no complete cash trip in the sample")
	}
	card := cash
	card.PaymentType, card.Tips = "Credit Card", 2.5
	for _, c := range []struct {
		name  string
		drift replay.Drift
		in    tripdata.Trip
		want  func(*tripdata.Trip)
	}{
		{"no drift", replay.Drift{}, card, func(*tripdata.Trip) {}},
		{"miles to km", replay.Drift{Kind: replay.DriftMilesToKm}, card, func(t *tripdata.Trip) { t.Miles *= 1.609344 }},
		{"miles to metres", replay.Drift{Kind: replay.DriftMilesToKm, Factor: 1609.344}, card, func(t *tripdata.Trip) { t.Miles *= 1609.344 }},
		{"fare inflation", replay.Drift{Kind: replay.DriftFareInflation}, card, func(t *tripdata.Trip) { t.Fare *= 1.5; t.Tips *= 1.5 }},
		{"fare doubling", replay.Drift{Kind: replay.DriftFareInflation, Factor: 2}, card, func(t *tripdata.Trip) { t.Fare *= 2; t.Tips *= 2 }},
		{"payment shift spares card trips", replay.Drift{Kind: replay.DriftPaymentShift, Factor: 1}, card, func(*tripdata.Trip) {}},
		{"payment shift of every cash trip", replay.Drift{Kind: replay.DriftPaymentShift, Factor: 1}, cash,
			func(t *tripdata.Trip) { t.PaymentType = "Credit Card" }},
		{"an unknown kind changes nothing", replay.Drift{Kind: "gremlins", Factor: 3}, card, func(*tripdata.Trip) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := c.in
			want := c.in
			c.want(&want)
			got := c.drift.Apply(in)
			if got != want {
				t.Errorf("Apply\n got %+v\nwant %+v", got, want)
			}
			if in != c.in {
				t.Error("Apply changed its argument")
			}
		})
	}
}

func TestPaymentShiftOverTheSample(t *testing.T) {
	trips, _ := sample(t)
	for _, factor := range []float64{0, 0.2, 0.5, 0.9} {
		d := replay.Drift{Kind: replay.DriftPaymentShift, Factor: factor}
		share := factor
		if factor == 0 {
			share = 0.5 // the default
		}
		loose := replay.Drift{Kind: replay.DriftPaymentShift, Factor: min(1, share+0.1)}
		var cash, shifted int
		for _, tr := range trips {
			got := d.Apply(tr)
			if tr.PaymentType != "Cash" {
				if got.PaymentType != tr.PaymentType {
					t.Fatalf("factor %v: %s trip %s became %s", factor, tr.PaymentType, tr.TripID, got.PaymentType)
				}
				continue
			}
			cash++
			if got.PaymentType == "Cash" {
				continue
			}
			if got.PaymentType != "Credit Card" {
				t.Fatalf("cash trip %s became %q", tr.TripID, got.PaymentType)
			}
			shifted++
			// The choice is by trip id: the same trip every time, and a
			// larger share includes every trip of a smaller one.
			if again := d.Apply(tr); again.PaymentType != got.PaymentType {
				t.Fatalf("trip %s shifted once but not twice", tr.TripID)
			}
			if loose.Apply(tr).PaymentType != "Credit Card" {
				t.Fatalf("trip %s shifted at %v but not at %v", tr.TripID, share, loose.Factor)
			}
		}
		if cash < 1000 {
			t.Fatalf("only %d cash trips in the sample", cash)
		}
		got := float64(shifted) / float64(cash)
		// Binomial: 3 standard deviations of a share over ~8000 trips is
		// under 0.02.
		if math.Abs(got-share) > 0.03 {
			t.Errorf("factor %v: %d of %d cash trips (%.3f) shifted, want about %.2f", factor, shifted, cash, got, share)
		}
	}
}

func TestSourceDriftsAfter(t *testing.T) {
	trips, loc := sample(t)
	const after, n = 100, 300
	for _, c := range []struct {
		kind  string
		check func(t *testing.T, orig *tripdata.Trip, r *contracts.RawRide, a *contracts.Actual, drifted bool)
	}{
		{replay.DriftMilesToKm, func(t *testing.T, orig *tripdata.Trip, r *contracts.RawRide, a *contracts.Actual, drifted bool) {
			want := orig.Miles
			if drifted {
				want *= 1.609344
			}
			if *r.TripDistance != want {
				t.Errorf("%s: trip_distance %v, want %v (drifted %v)", r.TripID, *r.TripDistance, want, drifted)
			}
		}},
		{replay.DriftFareInflation, func(t *testing.T, orig *tripdata.Trip, r *contracts.RawRide, a *contracts.Actual, drifted bool) {
			f := 1.0
			if drifted {
				f = 1.5
			}
			tips := orig.Tips
			if math.IsNaN(tips) {
				tips = 0
			}
			if *r.FareAmount != orig.Fare*f || a.Fare != orig.Fare*f || a.Tips != tips*f {
				t.Errorf("%s: fare %v, actual fare %v and tips %v; want %v, %v, %v (drifted %v)",
					r.TripID, *r.FareAmount, a.Fare, a.Tips, orig.Fare*f, orig.Fare*f, tips*f, drifted)
			}
		}},
	} {
		t.Run(c.kind, func(t *testing.T) {
			s := source(t, trips, replay.Options{Limit: n, Drift: replay.Drift{Kind: c.kind, After: after}, Location: loc})
			evs := drain(t, s, 3*n)
			checkStream(t, evs)
			actual := map[string]*contracts.Actual{}
			for _, ev := range evs {
				if !ev.Ride {
					a := decodeActual(t, ev)
					actual[a.TripID] = a
				}
			}
			i := 0
			for _, ev := range evs {
				if ev.Ride {
					r := decodeRide(t, ev)
					c.check(t, &trips[i], r, actual[r.TripID], ev.Seq >= after)
					i++
				}
			}
		})
	}
}

func TestOptionsValidate(t *testing.T) {
	_, loc := sample(t)
	ok := replay.Options{Speed: 3600, Rate: 50, Skip: 1, Limit: 2, Loop: true, Location: loc,
		Drift: replay.Drift{Kind: replay.DriftMilesToKm, After: 4000, Factor: 1.6}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid options: %v", err)
	}
	if err := (replay.Options{Location: loc}).Validate(); err != nil {
		t.Errorf("zero options with a location: %v", err)
	}
	for _, k := range replay.DriftKinds() {
		if err := (replay.Options{Location: loc, Drift: replay.Drift{Kind: k}}).Validate(); err != nil {
			t.Errorf("drift kind %q: %v", k, err)
		}
	}
	for _, c := range []struct {
		name   string
		change func(*replay.Options)
		want   []string
	}{
		{"negative speed", func(o *replay.Options) { o.Speed = -1 }, []string{"speed must be >= 0", "0 = as fast as possible", "-1"}},
		{"NaN speed", func(o *replay.Options) { o.Speed = math.NaN() }, []string{"speed must be >= 0", "NaN"}},
		{"negative rate", func(o *replay.Options) { o.Rate = -5 }, []string{"rate must be >= 0", "0 = no cap", "-5"}},
		{"NaN rate", func(o *replay.Options) { o.Rate = math.NaN() }, []string{"rate must be >= 0"}},
		{"negative skip", func(o *replay.Options) { o.Skip = -1 }, []string{"skip and limit must be >= 0"}},
		{"negative limit", func(o *replay.Options) { o.Limit = -1 }, []string{"skip and limit must be >= 0"}},
		{"unknown drift kind", func(o *replay.Options) { o.Drift.Kind = "km" },
			[]string{`drift kind "km" is not one of`, replay.DriftMilesToKm, replay.DriftFareInflation, replay.DriftPaymentShift}},
		{"negative drift-after", func(o *replay.Options) { o.Drift.After = -3 }, []string{"drift-after must be >= 0", "-3"}},
		{"negative factor", func(o *replay.Options) { o.Drift.Factor = -2 }, []string{"drift factor must be >= 0", "-2"}},
		{"NaN factor", func(o *replay.Options) { o.Drift.Factor = math.NaN() }, []string{"drift factor must be >= 0"}},
		{"no location", func(o *replay.Options) { o.Location = nil }, []string{"location is required"}},
		{"everything at once", func(o *replay.Options) { o.Speed, o.Rate, o.Location = -1, -1, nil },
			[]string{"speed", "rate", "location"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.change(&o)
			err := o.Validate()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// A looped trip keeps its clock time, so a trip at 02:30 on a Sunday lands
// on a clock time that does not exist when the pass falls on the Sunday
// the clocks spring forward (02:00 CST → 03:00 CDT). Go's time.Date then
// gives 01:30 CST: before the looped copy of the trip that preceded it at
// 01:40, so the replay's event time goes back 10 minutes.
func TestLoopAcrossSpringForwardKeepsEventTimeOrder(t *testing.T) {
	_, loc := sample(t)
	// Sunday 2015-03-01, one week before the clocks sprang forward.
	at := func(h, m int) time.Time { return time.Date(2015, 3, 1, h, m, 0, 0, loc) }
	trips := []tripdata.Trip{
		{TripID: "ta", Start: at(1, 40), Miles: 1, Seconds: 60, Fare: 5, PaymentType: "Cash"},
		{TripID: "tb", Start: at(2, 30), Miles: 1, Seconds: 60, Fare: 5, PaymentType: "Cash"},
	}
	s := source(t, trips, replay.Options{Loop: true, Limit: 4, Location: loc})
	evs := drain(t, s, 100)
	var rideAt []string
	for i, ev := range evs {
		if ev.Ride {
			rideAt = append(rideAt, fmt.Sprintf("%s %s", ev.Record.Key, ev.At.In(loc).Format("Mon 01-02 15:04 MST")))
		}
		if i > 0 && ev.At.Before(evs[i-1].At) {
			t.Errorf("event %d (%s %s at %s) goes back in time from %s", i, ev.Record.Topic, ev.Record.Key,
				ev.At.In(loc).Format("Mon 01-02 15:04 MST"), evs[i-1].At.In(loc).Format("Mon 01-02 15:04 MST"))
		}
	}
	t.Logf("rides: %q", rideAt)
}
