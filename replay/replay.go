// Package replay publishes the shipped Chicago taxi trips as a live stream:
// each ride to taxi-rides-raw at its pickup and its actual fare and tips to
// taxi-actuals at its dropoff, in event-time order, paced by a speed factor
// and a rate cap. It can loop past the end of the sample and inject drift
// after a number of trips so the retraining loop can be shown and tested.
//
// With Options.GPSInterval set it also publishes taxi-gps-stream: the
// vehicle of each trip pings its position every GPSInterval of event time
// from pickup to dropoff, merged in event-time order with rides and actuals.
// The sample has no vehicles and no tracks, so both are made up, simply and
// deterministically:
//
//   - Vehicle ids are "<company-slug>-<n>": the company's name in lower case
//     with every run of other characters than a-z and 0-9 turned into one
//     "-" ("Taxi Affiliation Services" → "taxi-affiliation-services"),
//     "independent" when the trip has no company; n is the count of the
//     company's trips replayed before this one modulo GPSFleet, so a
//     company's vehicles are reused over time. (A company with more than
//     GPSFleet trips in progress at once would have a vehicle on two trips;
//     the sample has about ten trips a day.)
//   - Positions move along the straight line (linearly in latitude and
//     longitude) from the pickup coordinates to the dropoff coordinates at
//     constant speed: a ping at pickup + k × GPSInterval while that is before
//     the dropoff, and one at the dropoff, at the dropoff coordinates. The
//     city publishes census-tract or community-area centroids, not the true
//     points, so tracks run from centroid to centroid.
//   - Speed (mph) is the great-circle distance between the two points over
//     the trip's duration, the same for every ping of the trip: the speed of
//     the made-up track, below the cab's real average speed, as cabs do not
//     drive in straight lines. Heading is the initial bearing of the great
//     circle from pickup to dropoff, in degrees clockwise from north
//     [0, 360); 0 when the points coincide.
//   - Trips without both coordinate pairs, or with zero (or unknown)
//     duration, have no pings; Source.NoGPS and Stats.NoGPS count them.
//
// Pings carry the trip id; drift does not change them (it changes what the
// rides report, not where the cabs are).
//
// Event time lives in the messages; record timestamps are wall-clock
// producer times, so brokers' time-based retention works as usual.
package replay

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// Drift kinds.
const (
	// DriftMilesToKm reports distances in kilometres from then on, as an
	// upstream unit change would: trip_miles × 1.609344 (or Factor).
	DriftMilesToKm = "miles-to-km"
	// DriftFareInflation multiplies fares and tips by Factor (default 1.5).
	DriftFareInflation = "fare-inflation"
	// DriftPaymentShift turns a Factor share (default 0.5) of cash trips
	// into card trips, chosen by trip id.
	DriftPaymentShift = "payment-shift"
)

// DriftKinds lists the kinds a person can choose.
func DriftKinds() []string { return []string{DriftMilesToKm, DriftFareInflation, DriftPaymentShift} }

// Drift says how and from when to distort the trips.
type Drift struct {
	Kind string
	// After this many published trips the drift starts (0 = no drift
	// unless Kind is set and After is 0: from the first trip).
	After  int
	Factor float64
}

// Options configure a replay.
type Options struct {
	// Speed is how many event-time seconds pass per wall second
	// (3600 = one data hour per second); 0 publishes as fast as possible.
	Speed float64
	// Rate caps rides per wall second (0 = no cap).
	Rate float64
	// Skip the first Skip trips of the (event-time ordered) sample.
	Skip int
	// Limit stops after Limit rides (0 = the whole sample, or forever with
	// Loop).
	Limit int
	// Loop replays the sample again after its end, whole weeks later and
	// with new trip ids, so event time keeps moving forward.
	Loop  bool
	Drift Drift
	// Location of the city's clock (America/Chicago), for looping by
	// calendar weeks.
	Location *time.Location
	// GPSInterval is the event time between two GPS pings of a trip; 0
	// publishes no GPS stream, so zero Options replay rides and actuals
	// only. The replayer's flag defaults to DefaultGPSInterval. At least a
	// second.
	GPSInterval time.Duration
	// GPSFleet is how many vehicles each company has: vehicle ids repeat
	// after this many trips of a company (0 = DefaultGPSFleet).
	GPSFleet int
}

// Defaults of the GPS options.
const (
	DefaultGPSInterval = time.Minute
	DefaultGPSFleet    = 100
)

// Validate says what is wrong with the options.
func (o Options) Validate() error {
	var errs []error
	if o.Speed < 0 || math.IsNaN(o.Speed) {
		errs = append(errs, fmt.Errorf("speed must be >= 0 (0 = as fast as possible), got %g", o.Speed))
	}
	if o.Rate < 0 || math.IsNaN(o.Rate) {
		errs = append(errs, fmt.Errorf("rate must be >= 0 (0 = no cap), got %g", o.Rate))
	}
	if o.Skip < 0 || o.Limit < 0 {
		errs = append(errs, errors.New("skip and limit must be >= 0"))
	}
	switch o.Drift.Kind {
	case "", DriftMilesToKm, DriftFareInflation, DriftPaymentShift:
	default:
		errs = append(errs, fmt.Errorf("drift kind %q is not one of %s", o.Drift.Kind, strings.Join(DriftKinds(), ", ")))
	}
	if o.Drift.After < 0 {
		errs = append(errs, fmt.Errorf("drift-after must be >= 0, got %d", o.Drift.After))
	}
	if o.Drift.Factor < 0 || math.IsNaN(o.Drift.Factor) {
		errs = append(errs, fmt.Errorf("drift factor must be >= 0, got %g", o.Drift.Factor))
	}
	if o.Location == nil {
		errs = append(errs, errors.New("location is required"))
	}
	if o.GPSInterval < 0 || (o.GPSInterval > 0 && o.GPSInterval < time.Second) {
		errs = append(errs, fmt.Errorf("gps interval must be 0 (no GPS) or at least 1s, got %v", o.GPSInterval))
	}
	if o.GPSFleet < 0 {
		errs = append(errs, fmt.Errorf("gps fleet must be >= 0 (0 = %d vehicles per company), got %d", DefaultGPSFleet, o.GPSFleet))
	}
	return errors.Join(errs...)
}

func (d Drift) factor() float64 {
	if d.Factor > 0 {
		return d.Factor
	}
	switch d.Kind {
	case DriftMilesToKm:
		return 1.609344
	case DriftFareInflation:
		return 1.5
	case DriftPaymentShift:
		return 0.5
	}
	return 1
}

// Apply distorts a trip (a copy) by the drift kind.
func (d Drift) Apply(t tripdata.Trip) tripdata.Trip {
	f := d.factor()
	switch d.Kind {
	case DriftMilesToKm:
		t.Miles *= f
	case DriftFareInflation:
		t.Fare *= f
		t.Tips *= f
	case DriftPaymentShift:
		if t.PaymentType == "Cash" && unit(t.TripID) < f {
			t.PaymentType = "Credit Card"
		}
	}
	return t
}

// unit maps an id to [0, 1) deterministically.
func unit(id string) float64 {
	h := sha256.Sum256([]byte(id))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}

// Event is one record to publish at an event time.
type Event struct {
	At     time.Time
	Record *kgo.Record
	// Ride is true for taxi-rides-raw, false for taxi-actuals and
	// taxi-gps-stream.
	Ride bool
	// GPS is true for taxi-gps-stream.
	GPS bool
	// Seq is the sequence number in the replay (0-based) of the ride, or
	// of the ride the actual or ping belongs to.
	Seq int
}

// Source yields a replay's events in event-time order: rides at pickup,
// actuals at dropoff, GPS pings in between. trips must be sorted by start
// (tripdata.SortByStart). At one instant, the pings and actuals of earlier
// rides come before a ride, ordered by ride and a ride's ping before its
// actual; a ride's pickup ping comes right after the ride.
type Source struct {
	trips   []tripdata.Trip
	opts    Options
	next    int // index of the next ride in trips
	loop    int
	seq     int
	pending pendingHeap
	span    int // days a loop shifts by

	// GPS: the company of each trip (index into companies), the trips each
	// company replayed so far, and vehicle ids made once per vehicle.
	company      []int32
	companies    []string // slugs
	companyTrips []int    // per company
	vehicles     [][]vehicle
	fleet        int
	free         []*track // finished tracks, for reuse
	noGPS        int
}

type vehicle struct {
	id  string
	key []byte
}

// NewSource prepares a replay of trips.
func NewSource(trips []tripdata.Trip, opts Options) (*Source, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if len(trips) == 0 {
		return nil, errors.New("replay: no trips")
	}
	if opts.Skip >= len(trips) && !opts.Loop {
		return nil, fmt.Errorf("replay: skip %d leaves none of %d trips", opts.Skip, len(trips))
	}
	first, last := trips[0].Start, trips[len(trips)-1].Start
	weeks := int(last.Sub(first).Hours()/(24*7)) + 1
	s := &Source{trips: trips, opts: opts, span: 7 * weeks}
	if opts.GPSInterval > 0 {
		s.fleet = opts.GPSFleet
		if s.fleet == 0 {
			s.fleet = DefaultGPSFleet
		}
		index := map[string]int32{}
		s.company = make([]int32, len(trips))
		for i := range trips {
			slug := CompanySlug(trips[i].Company)
			c, ok := index[slug]
			if !ok {
				c = int32(len(s.companies))
				index[slug] = c
				s.companies = append(s.companies, slug)
			}
			s.company[i] = c
		}
		s.companyTrips = make([]int, len(s.companies))
		s.vehicles = make([][]vehicle, len(s.companies))
	}
	for i := 0; i < opts.Skip; i++ {
		s.advance()
	}
	return s, nil
}

// CompanySlug is the part of a vehicle id naming its company: the name in
// lower case, every run of characters other than a-z and 0-9 one "-",
// "independent" for none.
func CompanySlug(company string) string {
	b := make([]byte, 0, len(company))
	dash := false
	for i := 0; i < len(company); i++ {
		c := company[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if ('a' <= c && c <= 'z') || ('0' <= c && c <= '9') {
			if dash && len(b) > 0 {
				b = append(b, '-')
			}
			b = append(b, c)
			dash = false
			continue
		}
		dash = true
	}
	if len(b) == 0 {
		return "independent"
	}
	return string(b)
}

func (s *Source) advance() {
	s.next++
	if s.next >= len(s.trips) && s.opts.Loop {
		s.next, s.loop = 0, s.loop+1
	}
}

// NoGPS counts the trips replayed so far that have no GPS pings: without
// both coordinate pairs or without a positive duration (0 when GPS is off).
func (s *Source) NoGPS() int { return s.noGPS }

// Next returns the next event, or false when the replay is over.
func (s *Source) Next() (Event, bool) {
	haveRide := s.next < len(s.trips) && (s.opts.Limit == 0 || s.seq < s.opts.Limit)
	var rideAt time.Time
	var t tripdata.Trip
	if haveRide {
		t = s.trip(s.trips[s.next])
		rideAt = t.Start
	}
	if len(s.pending) > 0 && (!haveRide || !s.pending[0].at.After(rideAt)) {
		return s.popPending(), true
	}
	if !haveRide {
		return Event{}, false
	}
	seq := s.seq
	idx := s.next
	s.seq++
	s.advance()
	if s.opts.Drift.Kind != "" && seq >= s.opts.Drift.After {
		t = s.opts.Drift.Apply(t)
	}
	ride := rides.RawRide(&t)
	act := rides.Actual(&t)
	if s.opts.GPSInterval > 0 {
		s.startTrack(&t, idx, seq, act.DropoffDatetime)
	}
	s.pending.push(pending{at: act.DropoffDatetime, seq: seq, kind: kindActual, rec: record(contracts.TopicActuals, t.TripID, &act)})
	return Event{At: rideAt, Record: record(contracts.TopicRidesRaw, t.TripID, &ride), Ride: true, Seq: seq}, true
}

// startTrack schedules the pings of trip t (the idx-th of the sample, the
// seq-th of the replay) from its pickup to dropoff.
func (s *Source) startTrack(t *tripdata.Trip, idx, seq int, dropoff time.Time) {
	c := s.company[idx]
	n := s.companyTrips[c] % s.fleet
	s.companyTrips[c]++
	dur := dropoff.Sub(t.Start)
	if math.IsNaN(t.PickupLat+t.PickupLon+t.DropoffLat+t.DropoffLon) || dur <= 0 {
		s.noGPS++
		return
	}
	vs := s.vehicles[c]
	for len(vs) <= n {
		id := s.companies[c] + "-" + strconv.Itoa(len(vs))
		vs = append(vs, vehicle{id: id, key: []byte(id)})
	}
	s.vehicles[c] = vs
	var tr *track
	if k := len(s.free); k > 0 {
		tr, s.free = s.free[k-1], s.free[:k-1]
	} else {
		tr = new(track)
	}
	miles := Haversine(t.PickupLat, t.PickupLon, t.DropoffLat, t.DropoffLon)
	*tr = track{
		vehicle: vs[n],
		tripID:  t.TripID,
		start:   t.Start,
		dur:     dur,
		step:    s.opts.GPSInterval,
		lat0:    t.PickupLat,
		lon0:    t.PickupLon,
		lat1:    t.DropoffLat,
		lon1:    t.DropoffLon,
		speed:   miles / dur.Hours(),
		heading: Bearing(t.PickupLat, t.PickupLon, t.DropoffLat, t.DropoffLon),
	}
	s.pending.push(pending{at: t.Start, seq: seq, kind: kindGPS, gps: tr})
}

// popPending emits the earliest pending actual or ping; a track goes back
// on the heap at its next ping until it has pinged at the dropoff.
func (s *Source) popPending() Event {
	p := s.pending.pop()
	if p.kind == kindActual {
		return Event{At: p.at, Record: p.rec, Seq: p.seq}
	}
	tr := p.gps
	rec := tr.ping(p.at)
	if tr.k++; tr.done() {
		tr.vehicle = vehicle{}
		s.free = append(s.free, tr)
	} else {
		p.at = tr.at()
		s.pending.push(p)
	}
	return Event{At: rec.at, Record: rec.rec, GPS: true, Seq: p.seq}
}

// track is the made-up path of one trip: pings at start + k·step while
// before the dropoff, then one at the dropoff.
type track struct {
	vehicle        vehicle
	tripID         string
	start          time.Time
	dur, step      time.Duration
	k              int // next ping
	lat0, lon0     float64
	lat1, lon1     float64
	speed, heading float64
}

// last reports whether ping k is the one at the dropoff.
func (t *track) last(k int) bool { return time.Duration(k)*t.step >= t.dur }

func (t *track) done() bool { return t.last(t.k - 1) }

// at is the time of the next ping.
func (t *track) at() time.Time {
	if t.last(t.k) {
		return t.start.Add(t.dur)
	}
	return t.start.Add(time.Duration(t.k) * t.step)
}

type pingRecord struct {
	at  time.Time
	rec *kgo.Record
}

// ping is the record of ping t.k at time at.
func (t *track) ping(at time.Time) pingRecord {
	lat, lon := t.lat1, t.lon1
	if !t.last(t.k) {
		f := float64(time.Duration(t.k)*t.step) / float64(t.dur)
		lat, lon = t.lat0+f*(t.lat1-t.lat0), t.lon0+f*(t.lon1-t.lon0)
	}
	p := contracts.GPSPing{
		SchemaVersion: contracts.SchemaVersion,
		VehicleID:     t.vehicle.id,
		TripID:        t.tripID,
		Timestamp:     at,
		Latitude:      lat,
		Longitude:     lon,
		Speed:         t.speed,
		Heading:       t.heading,
	}
	return pingRecord{at: at, rec: &kgo.Record{Topic: contracts.TopicGPSStream, Key: t.vehicle.key, Value: AppendPing(nil, &p)}}
}

// Earth's mean radius (IUGG), in miles.
const earthRadiusMiles = 6371.0088 / 1.609344

// Haversine is the great-circle distance in miles between two points given
// in degrees.
func Haversine(lat0, lon0, lat1, lon1 float64) float64 {
	φ0, φ1 := lat0*math.Pi/180, lat1*math.Pi/180
	dφ, dλ := φ1-φ0, (lon1-lon0)*math.Pi/180
	a := math.Sin(dφ/2)*math.Sin(dφ/2) + math.Cos(φ0)*math.Cos(φ1)*math.Sin(dλ/2)*math.Sin(dλ/2)
	return 2 * earthRadiusMiles * math.Asin(math.Min(1, math.Sqrt(a)))
}

// Bearing is the initial bearing of the great circle from the first point to
// the second, in degrees clockwise from north in [0, 360); 0 for one point.
func Bearing(lat0, lon0, lat1, lon1 float64) float64 {
	φ0, φ1 := lat0*math.Pi/180, lat1*math.Pi/180
	dλ := (lon1 - lon0) * math.Pi / 180
	y := math.Sin(dλ) * math.Cos(φ1)
	x := math.Cos(φ0)*math.Sin(φ1) - math.Sin(φ0)*math.Cos(φ1)*math.Cos(dλ)
	if x == 0 && y == 0 {
		return 0
	}
	b := math.Mod(math.Atan2(y, x)*180/math.Pi+360, 360)
	if b >= 360 { // -tiny + 360 rounds to 360
		b = 0
	}
	return b
}

// AppendPing appends the JSON of p, as contracts.Encode writes it, to b;
// the replay makes a dozen pings per trip and reuses its buffer.
func AppendPing(b []byte, p *contracts.GPSPing) []byte {
	// Tracks start only for finite coordinates and positive durations,
	// so a ping's numbers are finite and encoding cannot fail.
	out, _ := contracts.AppendGPSPing(b, p)
	return out
}

// trip is the loop's copy of a sample trip: shifted whole calendar weeks
// on the city's clock (so hour and weekday stay) and with its own id.
func (s *Source) trip(t tripdata.Trip) tripdata.Trip {
	if s.loop == 0 {
		return t
	}
	local := t.Start.In(s.opts.Location)
	shifted := local.AddDate(0, 0, s.loop*s.span)
	if shifted.Hour() < local.Hour() {
		// The clock time does not exist on the new date (spring forward)
		// and was read an hour early: read it as clocks did then, an hour
		// later, so event time keeps moving forward.
		shifted = shifted.Add(time.Hour)
	}
	t.Start = shifted
	t.TripID += "-L" + strconv.Itoa(s.loop)
	return t
}

func record[T any, PT interface {
	*T
	contracts.Message
}](topic, key string, m *T) *kgo.Record {
	// Encoding a catalog type built here cannot fail.
	b, _ := contracts.Encode[T, PT](m)
	return &kgo.Record{Topic: topic, Key: []byte(key), Value: b}
}

// Kinds of pending events; at one instant and for one ride a ping comes
// before the actual.
const (
	kindGPS uint8 = iota
	kindActual
)

// pending is an actual waiting for its dropoff or a track for its next ping.
type pending struct {
	at   time.Time
	seq  int
	kind uint8
	rec  *kgo.Record // actual
	gps  *track
}

func (a *pending) less(b *pending) bool {
	if c := a.at.Compare(b.at); c != 0 {
		return c < 0
	}
	if a.seq != b.seq {
		return a.seq < b.seq
	}
	return a.kind < b.kind
}

// pendingHeap is a min-heap by (at, seq, kind), typed so pushes do not box.
type pendingHeap []pending

func (h *pendingHeap) push(p pending) {
	*h = append(*h, p)
	q := *h
	for i := len(q) - 1; i > 0; {
		parent := (i - 1) / 2
		if !q[i].less(&q[parent]) {
			break
		}
		q[i], q[parent] = q[parent], q[i]
		i = parent
	}
}

func (h *pendingHeap) pop() pending {
	q := *h
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q[n] = pending{} // drop references
	q = q[:n]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < n && q[l].less(&q[m]) {
			m = l
		}
		if r < n && q[r].less(&q[m]) {
			m = r
		}
		if m == i {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	*h = q
	return top
}

// Stats count what a replay published.
type Stats struct {
	Rides, Actuals int
	Drifted        int
	// Pings are the GPS pings published; NoGPS the rides published without
	// any (no coordinates or no duration).
	Pings, NoGPS int
	First, Last  time.Time // event time
}

// Publish replays src to Kafka, pacing by opts.Speed and opts.Rate, and
// returns when the replay is over (after flushing) or ctx ends. The rate
// caps rides; actuals and pings follow the event-time schedule. progress,
// if set, is called after each ride.
func Publish(ctx context.Context, cl *kgo.Client, src *Source, progress func(Stats)) (Stats, error) {
	var st Stats
	var produceErr error
	errCh := make(chan error, 1)
	start := time.Now()
	var first time.Time
	interval := time.Duration(0)
	if src.opts.Rate > 0 {
		interval = time.Duration(float64(time.Second) / src.opts.Rate)
	}
	nextRide := start
	for {
		ev, ok := src.Next()
		if !ok {
			break
		}
		if first.IsZero() {
			first = ev.At
			st.First = ev.At
		}
		st.Last = ev.At
		// Wait until both the event-time schedule and the rate cap allow.
		due := start
		if src.opts.Speed > 0 {
			due = start.Add(time.Duration(float64(ev.At.Sub(first)) / src.opts.Speed))
		}
		if ev.Ride && interval > 0 {
			if nextRide.After(due) {
				due = nextRide
			}
			nextRide = due.Add(interval)
		}
		if d := time.Until(due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return st, flush(cl, st, ctx.Err())
			case <-t.C:
			}
		}
		select {
		case produceErr = <-errCh:
			return st, flush(cl, st, produceErr)
		default:
		}
		if ctx.Err() != nil {
			return st, flush(cl, st, ctx.Err())
		}
		cl.Produce(ctx, ev.Record, func(_ *kgo.Record, err error) {
			if err != nil {
				select {
				case errCh <- err:
				default:
				}
			}
		})
		switch {
		case ev.Ride:
			st.Rides++
			st.NoGPS = src.NoGPS()
			if src.opts.Drift.Kind != "" && ev.Seq >= src.opts.Drift.After {
				st.Drifted++
			}
			if progress != nil {
				progress(st)
			}
		case ev.GPS:
			st.Pings++
		default:
			st.Actuals++
		}
	}
	return st, flush(cl, st, nil)
}

func flush(cl *kgo.Client, st Stats, cause error) error {
	fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.Flush(fctx); err != nil && cause == nil {
		cause = fmt.Errorf("flush after %d rides: %w", st.Rides, err)
	}
	if errors.Is(cause, context.Canceled) {
		return nil
	}
	return cause
}
