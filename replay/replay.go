// Package replay publishes the shipped Chicago taxi trips as a live stream:
// each ride to taxi-rides-raw at its pickup and its actual fare and tips to
// taxi-actuals at its dropoff, in event-time order, paced by a speed factor
// and a rate cap. It can loop past the end of the sample and inject drift
// after a number of trips so the retraining loop can be shown and tested.
//
// Event time lives in the messages; record timestamps are wall-clock
// producer times, so brokers' time-based retention works as usual.
package replay

import (
	"container/heap"
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
}

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
	// Ride is true for taxi-rides-raw, false for taxi-actuals.
	Ride bool
	// Seq is the ride's sequence number in the replay (0-based).
	Seq int
}

// Source yields a replay's events in event-time order: rides at pickup,
// actuals at dropoff. trips must be sorted by start (tripdata.SortByStart).
type Source struct {
	trips   []tripdata.Trip
	opts    Options
	next    int // index of the next ride in trips
	loop    int
	seq     int
	pending actualHeap
	span    int // days a loop shifts by
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
	for i := 0; i < opts.Skip; i++ {
		s.advance()
	}
	return s, nil
}

func (s *Source) advance() {
	s.next++
	if s.next >= len(s.trips) && s.opts.Loop {
		s.next, s.loop = 0, s.loop+1
	}
}

// Next returns the next event, or false when the replay is over.
func (s *Source) Next() (Event, bool) {
	haveRide := s.next < len(s.trips) && (s.opts.Limit == 0 || s.seq < s.opts.Limit)
	var rideAt time.Time
	var t tripdata.Trip
	if haveRide {
		t = s.trip(s.trips[s.next])
		rideAt = t.Start
	}
	if len(s.pending) > 0 && (!haveRide || !s.pending[0].At.After(rideAt)) {
		return heap.Pop(&s.pending).(Event), true
	}
	if !haveRide {
		return Event{}, false
	}
	seq := s.seq
	s.seq++
	s.advance()
	if s.opts.Drift.Kind != "" && seq >= s.opts.Drift.After {
		t = s.opts.Drift.Apply(t)
	}
	ride := rides.RawRide(&t)
	act := rides.Actual(&t)
	heap.Push(&s.pending, Event{At: act.DropoffDatetime, Record: record(contracts.TopicActuals, t.TripID, &act), Seq: seq})
	return Event{At: rideAt, Record: record(contracts.TopicRidesRaw, t.TripID, &ride), Ride: true, Seq: seq}, true
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

type actualHeap []Event

func (h actualHeap) Len() int { return len(h) }
func (h actualHeap) Less(i, j int) bool {
	if !h[i].At.Equal(h[j].At) {
		return h[i].At.Before(h[j].At)
	}
	return h[i].Seq < h[j].Seq
}
func (h actualHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *actualHeap) Push(x any)   { *h = append(*h, x.(Event)) }
func (h *actualHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// Stats count what a replay published.
type Stats struct {
	Rides, Actuals int
	Drifted        int
	First, Last    time.Time // event time
}

// Publish replays src to Kafka, pacing by opts.Speed and opts.Rate, and
// returns when the replay is over (after flushing) or ctx ends. progress,
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
		if ev.Ride {
			st.Rides++
			if src.opts.Drift.Kind != "" && ev.Seq >= src.opts.Drift.After {
				st.Drifted++
			}
			if progress != nil {
				progress(st)
			}
		} else {
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
