// Package anomaly is the anomaly streamer: it reads taxi-rides-raw and
// taxi-predictions (both keyed by trip id and co-partitioned) and publishes
// to taxi-anomalies, keyed by trip id, every trip that looks wrong, with a
// score and the details that explain it.
//
// # Detectors
//
// Each anomaly_type has its own anomaly_score scale:
//
//   - impossible_speed: the average speed (trip_distance over trip_seconds,
//     only when the duration is positive) is over Config.MaxSpeedMph.
//     Score: speed / MaxSpeedMph (> 1).
//   - zero_distance_high_fare: trip_distance is exactly 0 and the fare is
//     over Config.ZeroDistanceFare. Score: fare / ZeroDistanceFare (> 1).
//   - duplicate_trip_id: a ride whose trip id was already seen within
//     Config.DedupTTL of event time. Score: how many rides with the id
//     have been seen (2 for the first duplicate). details.identical says
//     whether the bytes equal the first ride's (a redelivery) or not (two
//     trips sharing an id). A duplicate is reported and otherwise ignored:
//     its first occurrence was judged, and counting it again would skew the
//     fare windows.
//   - outside_chicago: a pickup or dropoff point is given but lies in no
//     community area (geo.Areas.Lookup is 0). Points outside the catalog's
//     bounding box do not get here: the contract rejects them and they are
//     dead-lettered. Score: the number of such ends (1 or 2).
//   - fare_vs_predicted: the ride's fare, joined with the fare model's
//     prediction by trip id, is off by more than max(FareK·σ, FareFloor).
//     σ is the standard deviation of the fare model's validation residuals:
//     recovered from the prediction's confidence_score, which
//     inference computes as erf(0.2·max(pred, 1)/(σ√2)) from the serving
//     champion's recorded residual_std (see ResidualStd). That is the σ of
//     the very model version that made the prediction, hot swaps included,
//     with no registry lookup here. When the confidence carries no spread
//     (0: the model recorded none; 1: erf saturated on a large fare)
//     Config.ResidualStd is used. Score: |fare − predicted| / σ, the
//     residual in standard deviations (it can be below FareK when the floor
//     decided).
//   - fare_robust_zscore: per pickup community area and hour of day (on
//     Chicago's clock), the last Config.Window fares; once the window holds
//     Config.MinCount, a new fare is scored against it (before it is added)
//     with the modified z-score of Iglewicz and Hoaglin,
//     z = (fare − median) / (1.4826·MAD), MAD being the median absolute
//     deviation from the median; 1.4826·MAD estimates the standard deviation
//     of normal data while ignoring up to half the window as outliers. When
//     the MAD is 0 (over half the window holds one value) the scale is
//     1.253314 × the mean absolute deviation from the median instead; a
//     window of one repeated value scores nothing. Anomaly when |z| >
//     Config.ZThreshold (3.5, Iglewicz and Hoaglin's cut-off). Score: |z|.
//
// # State
//
// State is per input partition, in a state.Store on the anomaly changelog:
// the trip ids seen (with a ride's fare waiting for its prediction, or a
// prediction waiting for its ride), the fare windows, and two event-time
// clocks, the largest pickup time of the partition's rides and of its
// predictions. A trip id counts for duplicates while the ride clock is
// within DedupTTL of its pickup. A ride waits for its prediction until the
// prediction clock has passed its pickup by JoinTTL (its trip is kept that
// long even past DedupTTL), and a prediction for its ride until the ride
// clock has; each side is judged on the clock of the stream its partner
// comes from, so predictions lagging days of event time behind the rides
// (a compressed replay, a consumer reading one topic ahead of the other)
// lose no fare check. The windows of a partition see the rides
// of that partition only: trips are spread over partitions by a hash of
// their id, so each window is a uniform sample of its area and hour, and
// fills in proportion.
//
// Process only changes memory; Flush writes each key the batch changed once,
// in key order, to the changelog in the batch's transaction (a busy window,
// or a trip whose ride and prediction came in one batch, is written once,
// not per record). A partition's state is rebuilt from the changelog when
// it is assigned and dropped when revoked; after an aborted transaction the
// partitions the batch touched are rebuilt from the store's committed
// entries.
//
// # Determinism
//
// The same input gives the same anomalies: expiry follows event-time clocks,
// never the wall clock, and ties are broken by trip id. The anomalies do
// not depend on how the two topics interleave either, as long as each
// topic's partitions are in event-time order to within JoinTTL: the fare
// check gives the same answer whichever side arrives first, and the other
// detectors read the rides only.
//
// # Deployment
//
// Partition p of both inputs must belong to the same replica: the group
// needs a balancer that co-assigns them (GroupOpts: the range balancer). A
// replica that finds its two inputs assigned differently stops (a fatal
// error) rather than split a partition's state.
package anomaly

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

// Anomaly types.
const (
	TypeImpossibleSpeed  = "impossible_speed"
	TypeZeroDistanceFare = "zero_distance_high_fare"
	TypeDuplicateTrip    = "duplicate_trip_id"
	TypeOutsideChicago   = "outside_chicago"
	TypeFareVsPredicted  = "fare_vs_predicted"
	TypeFareZScore       = "fare_robust_zscore"
)

// Types lists the anomaly types.
func Types() []string {
	return []string{TypeImpossibleSpeed, TypeZeroDistanceFare, TypeDuplicateTrip, TypeOutsideChicago, TypeFareVsPredicted, TypeFareZScore}
}

// Name is the streamer role: consumer group, dead-letter topic and
// changelog are named after it.
const Name = "anomaly"

// Spread sources of a fare_vs_predicted anomaly.
const (
	SpreadConfidence = "confidence"
	SpreadConfig     = "config"
)

// Config holds the detectors' thresholds.
type Config struct {
	// MaxSpeedMph: faster average speeds are impossible (default 90).
	MaxSpeedMph float64
	// ZeroDistanceFare: a zero-distance trip costing more is an anomaly
	// (default $50).
	ZeroDistanceFare float64
	// DedupTTL is how long, in event time, a trip id is remembered to find
	// duplicates (default 7 days).
	DedupTTL time.Duration
	// JoinTTL is how long, in the partner stream's event time, a ride waits
	// for its prediction or a prediction for its ride (default 24h).
	JoinTTL time.Duration
	// FareK and FareFloor: a fare is far from its prediction when the
	// difference exceeds max(FareK·σ, FareFloor) (defaults 4 and $10).
	FareK     float64
	FareFloor float64
	// ResidualStd is σ in dollars for predictions whose confidence carries
	// no spread (default $3, about the validation residual spread of a
	// fare champion trained on the sample).
	ResidualStd float64
	// Window is how many recent fares each area and hour keeps (default
	// 200); MinCount how many it needs before it scores (default 30).
	Window   int
	MinCount int
	// ZThreshold is the |robust z| over which a fare is an anomaly
	// (default 3.5).
	ZThreshold float64
	// Location is the city's clock, for the hour of day (default
	// America/Chicago).
	Location *time.Location
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.MaxSpeedMph, 90)
	def(&c.ZeroDistanceFare, 50)
	def(&c.FareK, 4)
	def(&c.FareFloor, 10)
	def(&c.ResidualStd, 3)
	def(&c.ZThreshold, 3.5)
	if c.DedupTTL == 0 {
		c.DedupTTL = 7 * 24 * time.Hour
	}
	if c.JoinTTL == 0 {
		c.JoinTTL = 24 * time.Hour
	}
	if c.Window == 0 {
		c.Window = 200
	}
	if c.MinCount == 0 {
		c.MinCount = 30
	}
	if c.Location == nil {
		c.Location, _ = time.LoadLocation("America/Chicago") // Validate reports a failure
	}
	return c
}

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"max speed", c.MaxSpeedMph}, {"zero-distance fare", c.ZeroDistanceFare}, {"fare k", c.FareK},
		{"fare floor", c.FareFloor}, {"residual std", c.ResidualStd}, {"z threshold", c.ZThreshold},
	} {
		if !(f.v > 0) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%s must be a positive number, got %g", f.name, f.v))
		}
	}
	if c.DedupTTL <= 0 || c.JoinTTL <= 0 {
		errs = append(errs, fmt.Errorf("dedup ttl %v and join ttl %v must be positive", c.DedupTTL, c.JoinTTL))
	}
	if c.Window < 2 || c.MinCount < 2 || c.MinCount > c.Window {
		errs = append(errs, fmt.Errorf("window %d and min count %d: need 2 <= min count <= window", c.Window, c.MinCount))
	}
	if c.Location == nil {
		errs = append(errs, errors.New("location is required (America/Chicago could not be loaded)"))
	}
	return errors.Join(errs...)
}

// Processor detects anomalies. It is safe for the runner's callbacks to
// run while it processes: one mutex serialises everything.
type Processor struct {
	cfg     Config
	areas   *geo.Areas
	store   *state.Store
	metrics *Metrics
	log     *slog.Logger

	mu    sync.Mutex
	parts map[int32]*partition
	// owned are the partitions of each input topic assigned to this
	// replica; nil until the first assignment (direct use processes every
	// partition).
	owned   map[string]map[int32]bool
	scratch []float64
	tally   tally
	// failed is set when state could not be restored or the inputs are
	// not co-partitioned; the replica stops.
	failed error
}

// New returns a processor persisting to store, whose changelog must be
// contracts.ChangelogTopic(Name). m may be shared by replicas of a process;
// areas are Chicago's community areas.
func New(cfg Config, areas *geo.Areas, store *state.Store, m *Metrics, log *slog.Logger) (*Processor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("anomaly: %w", err)
	}
	if areas == nil || store == nil {
		return nil, errors.New("anomaly: community areas and a state store are required")
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processor{
		cfg: cfg, areas: areas, store: store, metrics: m, log: log,
		parts: map[int32]*partition{}, scratch: make([]float64, cfg.Window),
		tally: newTally(),
	}, nil
}

// Topics the processor consumes.
func (*Processor) Topics() []string {
	return []string{contracts.TopicRidesRaw, contracts.TopicPredictions}
}

// ManualPartitions are the output topics whose records name their partition.
func (a *Processor) ManualPartitions() []string { return []string{a.store.Changelog()} }

// GroupOpts are the consumer-group options the processor needs
// (stream.Config.ExtraOpts): the range balancer, which gives partition p of
// both inputs to the same member.
func GroupOpts() []kgo.Opt { return []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())} }

// Config returns the configuration in force (defaults filled).
func (a *Processor) Config() Config { return a.cfg }

func (a *Processor) part(p int32) *partition {
	ps := a.parts[p]
	if ps == nil {
		ps = newPartition()
		a.parts[p] = ps
	}
	return ps
}

// Process judges one ride or prediction.
func (a *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failed != nil {
		return nil, stream.Fatal(a.failed)
	}
	if in.Topic != contracts.TopicRidesRaw && in.Topic != contracts.TopicPredictions {
		return nil, stream.Permanent(fmt.Errorf("anomaly: record from unexpected topic %q", in.Topic))
	}
	if a.owned != nil && !a.owned[in.Topic][in.Partition] {
		// Revoked while its batch was in hand: that transaction aborts and
		// the record is processed again by its new owner.
		return nil, nil
	}
	var out []contracts.Anomaly
	switch in.Topic {
	case contracts.TopicRidesRaw:
		r, err := contracts.Decode[contracts.RawRide](in.Value)
		if err != nil {
			return nil, err
		}
		if err := eventTime("pickup_datetime", r.PickupDatetime); err != nil {
			return nil, err
		}
		out = a.ride(in.Partition, r, in.Value)
	case contracts.TopicPredictions:
		pr, err := contracts.Decode[contracts.Prediction](in.Value)
		if err != nil {
			return nil, err
		}
		if err := eventTime("timestamp", pr.Timestamp); err != nil {
			return nil, err
		}
		out = a.prediction(in.Partition, pr)
	}
	return a.records(out)
}

// eventTime rejects times a clock in unix nanoseconds cannot hold.
func eventTime(field string, t time.Time) error {
	if t.IsZero() {
		return contracts.Invalid(field, "required")
	}
	if y := t.Year(); y < 1900 || y > 2200 {
		return contracts.Invalid(field, "%v is not a plausible event time", t)
	}
	return nil
}

func (a *Processor) records(as []contracts.Anomaly) ([]*kgo.Record, error) {
	if len(as) == 0 {
		return nil, nil
	}
	out := make([]*kgo.Record, len(as))
	for i := range as {
		b, err := contracts.Encode(&as[i])
		if err != nil {
			// Deterministic: retrying cannot help; the input is dead-lettered.
			return nil, stream.Permanent(fmt.Errorf("encode %s anomaly of %s: %w", as[i].AnomalyType, as[i].TripID, err))
		}
		out[i] = &kgo.Record{Topic: contracts.TopicAnomalies, Key: []byte(as[i].TripID), Value: b}
	}
	for i := range as {
		a.tally.anomalies[as[i].AnomalyType]++
	}
	return out, nil
}

func (a *Processor) ride(pn int32, r *contracts.RawRide, raw []byte) []contracts.Anomaly {
	p := a.part(pn)
	t := r.PickupDatetime.UnixNano()
	if t > p.clocks.Ride {
		p.clocks.Ride = t
		p.touch(clockKey)
	}
	defer a.expire(p)
	at := time.Unix(0, t).UTC()
	fare, miles := *r.FareAmount, *r.TripDistance
	key := tripPrefix + r.TripID
	e := p.trips[r.TripID]
	if e != nil && e.Rides > 0 {
		if p.clocks.Ride-e.T <= a.cfg.DedupTTL.Nanoseconds() {
			return []contracts.Anomaly{a.duplicate(p, r, e, at, raw)}
		}
		// Forgotten as far as duplicates go (kept only while its fare
		// waited for a prediction): a new trip reusing the id.
		if e.Fare != nil {
			a.tally.expired["ride"]++
		}
		delete(p.trips, r.TripID)
		e = nil
	}
	var out []contracts.Anomaly
	var fareCheck *contracts.Anomaly
	if e == nil {
		e = &trip{T: t, Rides: 1, Hash: fnv64a(raw), Fare: &fare}
		p.trips[r.TripID] = e
		p.queue(r.TripID, e)
	} else {
		// Its prediction was waiting.
		e.T, e.Rides, e.Hash = t, 1, fnv64a(raw)
		pd := e.Pred
		e.Pred, e.Done = nil, true
		heap.Push(&p.seen, item{e.T, r.TripID})
		a.tally.joins++
		if an, ok := a.checkFare(r.TripID, at, fare, pd); ok {
			fareCheck = &an
		}
	}
	p.touch(key)

	if mph, ok := SpeedMph(miles, r.TripSeconds); ok && mph > a.cfg.MaxSpeedMph {
		out = append(out, contracts.Anomaly{
			TripID: r.TripID, Timestamp: at, AnomalyType: TypeImpossibleSpeed, AnomalyScore: finite(mph / a.cfg.MaxSpeedMph),
			Details: map[string]any{
				"speed_mph": finite(mph), "trip_distance": miles, "trip_seconds": *r.TripSeconds,
				"max_speed_mph": a.cfg.MaxSpeedMph,
			},
		})
	}
	if miles == 0 && fare > a.cfg.ZeroDistanceFare {
		out = append(out, contracts.Anomaly{
			TripID: r.TripID, Timestamp: at, AnomalyType: TypeZeroDistanceFare, AnomalyScore: fare / a.cfg.ZeroDistanceFare,
			Details: map[string]any{"fare_amount": fare, "trip_distance": miles, "max_zero_distance_fare": a.cfg.ZeroDistanceFare},
		})
	}
	pickupArea, pickupOut := a.lookup(r.PickupLatitude, r.PickupLongitude)
	_, dropoffOut := a.lookup(r.DropoffLatitude, r.DropoffLongitude)
	if pickupOut || dropoffOut {
		d := map[string]any{}
		n := 0
		for _, end := range []struct {
			name     string
			out      bool
			lat, lon *float64
		}{{"pickup", pickupOut, r.PickupLatitude, r.PickupLongitude}, {"dropoff", dropoffOut, r.DropoffLatitude, r.DropoffLongitude}} {
			d[end.name+"_outside"] = end.out
			if end.lat != nil {
				d[end.name+"_latitude"], d[end.name+"_longitude"] = *end.lat, *end.lon
			}
			if end.out {
				n++
				area, km := a.nearest(*end.lat, *end.lon)
				d[end.name+"_nearest_area"], d[end.name+"_nearest_area_name"], d[end.name+"_nearest_centroid_km"] = area, a.areas.Name(area), km
			}
		}
		out = append(out, contracts.Anomaly{TripID: r.TripID, Timestamp: at, AnomalyType: TypeOutsideChicago, AnomalyScore: float64(n), Details: d})
	}
	if fareCheck != nil {
		out = append(out, *fareCheck)
	}
	// The area as the features streamer finds it: by point in polygon,
	// else the city's label.
	area := pickupArea
	if area == 0 && r.PickupCommunityArea != nil {
		area = *r.PickupCommunityArea
	}
	if area > 0 {
		if an, ok := a.zscore(p, r.TripID, at, area, fare); ok {
			out = append(out, an)
		}
	}
	return out
}

// duplicate reports a ride whose trip id was seen already.
func (a *Processor) duplicate(p *partition, r *contracts.RawRide, e *trip, at time.Time, raw []byte) contracts.Anomaly {
	e.Rides++
	p.touch(tripPrefix + r.TripID)
	t := at.UnixNano()
	d := map[string]any{
		"occurrences":     e.Rides,
		"first_seen":      time.Unix(0, e.T).UTC(),
		"seconds_apart":   float64(t-e.T) / 1e9,
		"identical":       fnv64a(raw) == e.Hash,
		"dedup_ttl_hours": a.cfg.DedupTTL.Hours(),
		"fare_amount":     *r.FareAmount,
		"trip_distance":   *r.TripDistance,
	}
	return contracts.Anomaly{TripID: r.TripID, Timestamp: at, AnomalyType: TypeDuplicateTrip, AnomalyScore: float64(e.Rides), Details: d}
}

// lookup finds the community area of a point; outside is true when a point
// is given but in no area.
func (a *Processor) lookup(lat, lon *float64) (area int, outside bool) {
	if lat == nil || lon == nil {
		return 0, false
	}
	area = a.areas.Lookup(*lat, *lon)
	return area, area == 0
}

// nearest is the community area whose centroid is closest to a point.
func (a *Processor) nearest(lat, lon float64) (area int, km float64) {
	km = math.Inf(1)
	for _, n := range a.areas.Numbers() {
		clat, clon := a.areas.Centroid(n)
		if d := haversineKm(lat, lon, clat, clon); d < km {
			area, km = n, d
		}
	}
	return area, math.Round(km*1000) / 1000
}

func (a *Processor) zscore(p *partition, id string, at time.Time, area int, fare float64) (contracts.Anomaly, bool) {
	hour := at.In(a.cfg.Location).Hour()
	k := winKey{area, hour}
	w := p.windows[k]
	var an contracts.Anomaly
	found := false
	if len(w) >= a.cfg.MinCount {
		if z, ok := RobustZ(w, fare, a.scratch); ok && math.Abs(z.Z) > a.cfg.ZThreshold {
			found = true
			an = contracts.Anomaly{
				TripID: id, Timestamp: at, AnomalyType: TypeFareZScore, AnomalyScore: math.Abs(z.Z),
				Details: map[string]any{
					"fare_amount": fare, "z": z.Z, "median": z.Median, "mad": z.MAD, "scale": z.Scale,
					"method": z.Method, "window_count": z.N, "window_size": a.cfg.Window, "threshold": a.cfg.ZThreshold,
					"pickup_community_area": area, "pickup_area_name": a.areas.Name(area), "pickup_hour": hour,
				},
			}
		}
	}
	if len(w) < a.cfg.Window {
		w = append(w, fare)
	} else {
		copy(w, w[1:])
		w[len(w)-1] = fare
	}
	p.windows[k] = w
	p.touch(k.String())
	return an, found
}

func (a *Processor) prediction(pn int32, pr *contracts.Prediction) []contracts.Anomaly {
	if pr.RequestID != "" {
		return nil // a ride request: no ride will follow
	}
	p := a.part(pn)
	t := pr.Timestamp.UnixNano()
	if t > p.clocks.Pred {
		p.clocks.Pred = t
		p.touch(clockKey)
	}
	defer a.expire(p)
	version := pr.ModelVersions["fare"]
	if version == "" {
		version = pr.ModelVersion
	}
	pd := &pred{Fare: pr.PredictedFare, Confidence: pr.ConfidenceScore, Version: version}
	e := p.trips[pr.TripID]
	switch {
	case e == nil:
		e = &trip{T: t, Pred: pd}
		p.trips[pr.TripID] = e
		p.queue(pr.TripID, e)
		p.touch(tripPrefix + pr.TripID)
	case e.Fare != nil:
		fare := *e.Fare
		a.joined(p, pr.TripID, e)
		a.tally.joins++
		if an, ok := a.checkFare(pr.TripID, time.Unix(0, e.T).UTC(), fare, pd); ok {
			return []contracts.Anomaly{an}
		}
	default:
		// A second prediction, or one after its ride stopped waiting.
		a.tally.ignored++
	}
	return nil
}

// joined ends a ride's wait for its prediction. A trip whose id is past
// the dedup TTL was kept only for the wait, and goes.
func (a *Processor) joined(p *partition, id string, e *trip) {
	e.Fare, e.Done = nil, true
	p.touch(tripPrefix + id)
	if p.clocks.Ride-e.T > a.cfg.DedupTTL.Nanoseconds() {
		delete(p.trips, id)
	}
}

// checkFare compares a ride's fare with its prediction.
func (a *Processor) checkFare(id string, at time.Time, fare float64, pd *pred) (contracts.Anomaly, bool) {
	sigma, ok := ResidualStd(pd.Fare, pd.Confidence)
	source := SpreadConfidence
	if !ok {
		sigma, source = a.cfg.ResidualStd, SpreadConfig
	}
	threshold := math.Max(a.cfg.FareK*sigma, a.cfg.FareFloor)
	resid := fare - pd.Fare
	if !(math.Abs(resid) > threshold) {
		return contracts.Anomaly{}, false
	}
	return contracts.Anomaly{
		TripID: id, Timestamp: at, AnomalyType: TypeFareVsPredicted, AnomalyScore: finite(math.Abs(resid) / sigma),
		Details: map[string]any{
			"fare_amount": fare, "predicted_fare": pd.Fare, "residual": finite(resid), "residual_std": sigma,
			"spread_source": source, "confidence_score": pd.Confidence, "k": a.cfg.FareK, "floor": a.cfg.FareFloor,
			"threshold": threshold, "model_version": pd.Version,
		},
	}, true
}

// expire forgets what the partition's clocks have left behind, oldest
// first, ties by trip id.
func (a *Processor) expire(p *partition) {
	dedup, join := a.cfg.DedupTTL.Nanoseconds(), a.cfg.JoinTTL.Nanoseconds()
	// Rides stop waiting for predictions the prediction clock has passed.
	for len(p.waitPred) > 0 && p.clocks.Pred-p.waitPred[0].t > join {
		it := heap.Pop(&p.waitPred).(item)
		if e := p.trips[it.id]; e != nil && e.Fare != nil && e.T == it.t {
			a.joined(p, it.id, e)
			a.tally.expired["ride"]++
		}
	}
	// Predictions stop waiting for rides the ride clock has passed.
	for len(p.waitRide) > 0 && p.clocks.Ride-p.waitRide[0].t > join {
		it := heap.Pop(&p.waitRide).(item)
		if e := p.trips[it.id]; e != nil && e.Rides == 0 && e.T == it.t {
			delete(p.trips, it.id)
			p.touch(tripPrefix + it.id)
			a.tally.expired["prediction"]++
		}
	}
	// Trip ids are forgotten DedupTTL after their pickup, unless the fare
	// still waits for its prediction: the prediction clock decides that
	// (joined removes the trip then), so rides running ahead of their
	// predictions lose no fare check.
	for len(p.seen) > 0 && p.clocks.Ride-p.seen[0].t > dedup {
		it := heap.Pop(&p.seen).(item)
		if e := p.trips[it.id]; e != nil && e.Rides > 0 && e.T == it.t && e.Fare == nil {
			delete(p.trips, it.id)
			p.touch(tripPrefix + it.id)
		}
	}
}

// Flush writes each state entry the batch changed to the changelog once.
func (a *Processor) Flush(context.Context) ([]*kgo.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*kgo.Record
	for _, pn := range slices.Sorted(maps.Keys(a.parts)) {
		p := a.parts[pn]
		for _, key := range slices.Sorted(maps.Keys(p.dirty)) {
			v, err := p.encode(key)
			if err != nil {
				return nil, fmt.Errorf("anomaly: partition %d: %w", pn, err)
			}
			if v == nil {
				if _, ok := a.store.Get(pn, key); ok {
					out = append(out, a.store.Delete(pn, key))
				}
				continue
			}
			out = append(out, a.store.Put(pn, key, v))
		}
	}
	return out, nil
}

// Checkpoint: the batch committed.
func (a *Processor) Checkpoint() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.parts {
		clear(p.dirty)
	}
	a.store.Checkpoint()
	a.tally.publish(a.metrics)
}

// Rollback returns the partitions the aborted batch touched to their
// committed state, which the store holds once it has rolled back its own
// writes.
func (a *Processor) Rollback() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.store.Rollback()
	a.tally = newTally()
	var touched []int32
	for pn, p := range a.parts {
		if len(p.dirty) > 0 {
			touched = append(touched, pn)
		}
	}
	slices.Sort(touched)
	if err := a.rebuild(touched); err != nil {
		a.log.Error("rebuild state after an aborted batch", "err", err)
		a.failed = fmt.Errorf("rebuild state after an aborted batch: %w", err)
	}
}

// rebuild replaces the in-memory state of partitions with the store's.
func (a *Processor) rebuild(partitions []int32) error {
	for _, pn := range partitions {
		p := newPartition()
		for _, key := range a.store.Keys(pn) {
			v, _ := a.store.Get(pn, key)
			if err := p.load(key, v); err != nil {
				return fmt.Errorf("partition %d: %w", pn, err)
			}
		}
		a.parts[pn] = p
	}
	return nil
}

// Assigned rebuilds the state of newly owned partitions from the changelog.
func (a *Processor) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.owned == nil {
		a.owned = map[string]map[int32]bool{}
		for _, t := range a.Topics() {
			a.owned[t] = map[int32]bool{}
		}
	}
	var ps []int32
	for _, t := range a.Topics() {
		for _, p := range assigned[t] {
			a.owned[t][p] = true
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	if err := a.coPartitioned(); err != nil {
		a.log.Error("inputs are not co-partitioned", "err", err)
		a.failed = err
		return
	}
	start := time.Now()
	if err := a.store.Restore(ctx, ps); err != nil {
		a.log.Error("restore state", "partitions", ps, "err", err)
		a.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
		return
	}
	if err := a.rebuild(ps); err != nil {
		a.log.Error("restore state", "partitions", ps, "err", err)
		a.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
		return
	}
	trips := 0
	for _, p := range ps {
		trips += len(a.parts[p].trips)
	}
	a.log.Info("state restored", "partitions", ps, "trips", trips, "took", time.Since(start).Round(time.Millisecond))
}

func (a *Processor) coPartitioned() error {
	rides, preds := a.owned[contracts.TopicRidesRaw], a.owned[contracts.TopicPredictions]
	if !maps.Equal(rides, preds) {
		return fmt.Errorf("anomaly: partitions %v of %s and %v of %s are owned: both inputs' partition p must go to one replica (use anomaly.GroupOpts: the range balancer)",
			slices.Sorted(maps.Keys(rides)), contracts.TopicRidesRaw, slices.Sorted(maps.Keys(preds)), contracts.TopicPredictions)
	}
	return nil
}

// Revoked drops the state of partitions another replica now owns.
func (a *Processor) Revoked(revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var ps []int32
	for _, t := range a.Topics() {
		for _, p := range revoked[t] {
			if a.owned != nil {
				delete(a.owned[t], p)
			}
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	for _, p := range ps {
		delete(a.parts, p)
	}
	a.store.Drop(ps)
}

// StateEntries counts trips remembered and fare windows.
func (a *Processor) StateEntries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.parts {
		n += len(p.trips) + len(p.windows)
	}
	return n
}

// tally counts what a batch did; it reaches Prometheus only when the batch
// commits, so a batch processed again after an abort is not counted twice.
type tally struct {
	anomalies map[string]int
	expired   map[string]int
	joins     int
	ignored   int
}

func newTally() tally { return tally{anomalies: map[string]int{}, expired: map[string]int{}} }

func (t *tally) publish(m *Metrics) {
	for k, n := range t.anomalies {
		m.anomalies.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range t.expired {
		m.expired.WithLabelValues(k).Add(float64(n))
	}
	m.joins.Add(float64(t.joins))
	m.ignored.Add(float64(t.ignored))
	clear(t.anomalies)
	clear(t.expired)
	t.joins, t.ignored = 0, 0
}

// Metrics of the anomaly streamer.
type Metrics struct {
	anomalies *prometheus.CounterVec
	expired   *prometheus.CounterVec
	joins     prometheus.Counter
	ignored   prometheus.Counter
}

// NewMetrics registers the anomaly streamer's metrics with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_anomalies_total", Help: "Anomalies published, by anomaly type.",
		}, []string{"type"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_anomaly_join_expired_total", Help: "Rides that stopped waiting for their prediction, or predictions for their ride (waiting = ride or prediction), after the join TTL.",
		}, []string{"waiting"}),
		joins: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_anomaly_fare_checks_total", Help: "Rides whose fare was compared with their prediction.",
		}),
		ignored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_anomaly_predictions_ignored_total", Help: "Predictions that found no ride to check: a repeat, or one arriving after its ride stopped waiting.",
		}),
	}
	for _, t := range Types() {
		m.anomalies.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.anomalies, m.expired, m.joins, m.ignored)
	}
	return m
}

// AnomalyCounter exposes the counter of one anomaly type, for tests.
func (m *Metrics) AnomalyCounter(typ string) prometheus.Counter {
	return m.anomalies.WithLabelValues(typ)
}

// ExpiredCounter exposes the join-expiry counter of one side (ride or
// prediction), for tests.
func (m *Metrics) ExpiredCounter(waiting string) prometheus.Counter {
	return m.expired.WithLabelValues(waiting)
}
