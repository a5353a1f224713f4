package quality

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"sort"
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// Fields of raw rides the checks name. Coordinates are judged as pairs: a
// pair is null when either half is (contracts require both or neither).
const (
	FieldPickupCoordinates  = "pickup_coordinates"
	FieldDropoffCoordinates = "dropoff_coordinates"
	FieldTripSeconds        = "trip_seconds"
	FieldPickupArea         = "pickup_community_area"
	FieldDropoffArea        = "dropoff_community_area"
	FieldCompany            = "company"
	FieldPaymentType        = "payment_type"
	FieldTripID             = "trip_id"
	FieldPickupDatetime     = "pickup_datetime"
	FieldTripDistance       = "trip_distance"
	FieldFareAmount         = "fare_amount"
	FieldPassengerCount     = "passenger_count"
	FieldSchemaVersion      = "schema_version"
	// FieldRecord names a record that is not JSON at all.
	FieldRecord = "record"
)

// NullableFields are the raw-ride fields whose null rate is judged.
func NullableFields() []string {
	return []string{FieldPickupCoordinates, FieldDropoffCoordinates, FieldTripSeconds,
		FieldPickupArea, FieldDropoffArea, FieldCompany, FieldPaymentType}
}

// RequiredFields are the raw-ride fields every ride must have.
func RequiredFields() []string {
	return []string{FieldTripID, FieldPickupDatetime, FieldTripDistance, FieldFareAmount}
}

// sampleNulls counts the nulls of each nullable field among the tripdata.Rows
// rides of the shipped sample, as the replayer publishes them
// (rides.RawRide); TestDefaultNullRatesAreTheSample's recomputes them.
var sampleNulls = map[string]int{
	FieldPickupCoordinates:  2,
	FieldDropoffCoordinates: 483,
	FieldTripSeconds:        6,
	FieldPickupArea:         2,
	FieldDropoffArea:        507,
	FieldCompany:            5140,
	FieldPaymentType:        0,
}

// DefaultNullRates are the null rates of the shipped sample: for each
// nullable field, the rides of the 15,002 whose field is null (company:
// empty), over 15,002. Company is missing from a third of the rides and
// dropoff areas from 3 %; the rest are almost always set.
func DefaultNullRates() map[string]float64 {
	out := make(map[string]float64, len(sampleNulls))
	for f, n := range sampleNulls {
		out[f] = float64(n) / tripdata.Rows
	}
	return out
}

// NullRates computes reference null rates from rides, for a reference
// other than the shipped sample (a training period).
func NullRates(rides []contracts.RawRide) map[string]float64 {
	out := map[string]float64{}
	for _, f := range NullableFields() {
		out[f] = 0
	}
	if len(rides) == 0 {
		return out
	}
	for i := range rides {
		for _, f := range nullFields(&rides[i]) {
			out[f]++
		}
	}
	for f := range out {
		out[f] /= float64(len(rides))
	}
	return out
}

// Limits are the plausible ranges of raw-ride values; a value outside is
// out of range. Missing values are not judged here (null rates are).
type Limits struct {
	// MaxFare in dollars (default 1000; the sample's largest is 700).
	MaxFare float64
	// MaxMiles (default 500: the sample's one trip of 1,710 miles is out).
	MaxMiles float64
	// MaxSeconds of a trip (default 86,400: a day).
	MaxSeconds float64
	// MaxPassengers (default 10).
	MaxPassengers int
	// Chicago's box (defaults: latitude 41.3…42.4, longitude −88.4…−87.3,
	// the bounds contracts validates with, wide enough for the airports
	// and suburbs city taxis serve).
	MinLat, MaxLat, MinLon, MaxLon float64
}

func (l Limits) withDefaults() Limits {
	if l.MaxFare <= 0 {
		l.MaxFare = 1000
	}
	if l.MaxMiles <= 0 {
		l.MaxMiles = 500
	}
	if l.MaxSeconds <= 0 {
		l.MaxSeconds = 86400
	}
	if l.MaxPassengers <= 0 {
		l.MaxPassengers = 10
	}
	if l.MinLat == 0 && l.MaxLat == 0 {
		l.MinLat, l.MaxLat = 41.3, 42.4
	}
	if l.MinLon == 0 && l.MaxLon == 0 {
		l.MinLon, l.MaxLon = -88.4, -87.3
	}
	return l
}

// verdict is what inspecting one raw record found.
type verdict struct {
	schema     string // the field of a schema failure, "" when it decoded
	missing    []string
	outOfRange []outOfRange
	nulls      []string
	ride       *contracts.RawRide // nil after a schema failure
}

type outOfRange struct {
	field string
	value float64
}

// inspect decodes a raw ride leniently — the JSON and its schema version,
// not contracts' validation — and sorts what is wrong with it into schema
// failures, missing required fields, out-of-range values and nulls.
func inspect(b []byte, lim Limits) verdict {
	payload, err := contracts.Payload(b)
	if err != nil {
		return verdict{schema: FieldRecord}
	}
	var r contracts.RawRide
	if err := json.Unmarshal(payload, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return verdict{schema: te.Field}
		}
		return verdict{schema: FieldRecord}
	}
	if r.SchemaVersion < 1 || r.SchemaVersion > contracts.SchemaVersion {
		return verdict{schema: FieldSchemaVersion}
	}
	v := verdict{ride: &r, nulls: nullFields(&r)}
	if r.TripID == "" {
		v.missing = append(v.missing, FieldTripID)
	}
	if r.PickupDatetime.IsZero() {
		v.missing = append(v.missing, FieldPickupDatetime)
	}
	if r.TripDistance == nil {
		v.missing = append(v.missing, FieldTripDistance)
	}
	if r.FareAmount == nil {
		v.missing = append(v.missing, FieldFareAmount)
	}
	check := func(field string, x *float64, lo, hi float64) {
		if x != nil && !(*x >= lo && *x <= hi) {
			v.outOfRange = append(v.outOfRange, outOfRange{field, *x})
		}
	}
	check(FieldTripDistance, r.TripDistance, 0, lim.MaxMiles)
	check(FieldFareAmount, r.FareAmount, 0, lim.MaxFare)
	check(FieldTripSeconds, r.TripSeconds, 0, lim.MaxSeconds)
	if r.PassengerCount != nil {
		n := float64(*r.PassengerCount)
		check(FieldPassengerCount, &n, 0, float64(lim.MaxPassengers))
	}
	coords := func(field string, lat, lon *float64) {
		if lat == nil || lon == nil {
			return // null, or half null: counted as a null pair
		}
		if !(*lat >= lim.MinLat && *lat <= lim.MaxLat) {
			v.outOfRange = append(v.outOfRange, outOfRange{field, *lat})
		} else if !(*lon >= lim.MinLon && *lon <= lim.MaxLon) {
			v.outOfRange = append(v.outOfRange, outOfRange{field, *lon})
		}
	}
	coords(FieldPickupCoordinates, r.PickupLatitude, r.PickupLongitude)
	coords(FieldDropoffCoordinates, r.DropoffLatitude, r.DropoffLongitude)
	area := func(field string, a *int) {
		if a != nil && (*a < 1 || *a > 77) {
			x := float64(*a)
			v.outOfRange = append(v.outOfRange, outOfRange{field, x})
		}
	}
	area(FieldPickupArea, r.PickupCommunityArea)
	area(FieldDropoffArea, r.DropoffCommunityArea)
	return v
}

// nullFields lists the nullable fields that are null in r.
func nullFields(r *contracts.RawRide) []string {
	var out []string
	if r.PickupLatitude == nil || r.PickupLongitude == nil {
		out = append(out, FieldPickupCoordinates)
	}
	if r.DropoffLatitude == nil || r.DropoffLongitude == nil {
		out = append(out, FieldDropoffCoordinates)
	}
	if r.TripSeconds == nil {
		out = append(out, FieldTripSeconds)
	}
	if r.PickupCommunityArea == nil {
		out = append(out, FieldPickupArea)
	}
	if r.DropoffCommunityArea == nil {
		out = append(out, FieldDropoffArea)
	}
	if r.Company == "" {
		out = append(out, FieldCompany)
	}
	if r.PaymentType == "" {
		out = append(out, FieldPaymentType)
	}
	return out
}

// rawWindow counts what the raw records of one window had wrong.
type rawWindow struct {
	n       int // records
	decoded int // records without a schema failure: the base of null rates
	schema  map[string]int
	missing map[string]int
	nulls   map[string]int
	ranges  map[string]*rangeCount
	// first and last are the record keys (trip ids), for the alert id.
	first, last string
	// start and end span the pickups of the rides that decoded; recStart
	// and recEnd the record times, for a window where none did.
	start, end       time.Time
	recStart, recEnd time.Time
}

type rangeCount struct {
	n        int
	min, max float64
}

func newRawWindow() *rawWindow {
	return &rawWindow{schema: map[string]int{}, missing: map[string]int{}, nulls: map[string]int{}, ranges: map[string]*rangeCount{}}
}

func (w *rawWindow) clone() *rawWindow {
	c := *w
	c.schema = maps.Clone(w.schema)
	c.missing = maps.Clone(w.missing)
	c.nulls = maps.Clone(w.nulls)
	c.ranges = make(map[string]*rangeCount, len(w.ranges))
	for k, r := range w.ranges {
		rc := *r
		c.ranges[k] = &rc
	}
	return &c
}

// add counts one record: its verdict, key and record time.
func (w *rawWindow) add(v verdict, key string, recorded time.Time) {
	w.n++
	if w.first == "" {
		w.first = key
	}
	w.last = key
	span(&w.recStart, &w.recEnd, recorded)
	if v.ride != nil {
		span(&w.start, &w.end, v.ride.PickupDatetime)
	}
	if v.schema != "" {
		w.schema[v.schema]++
		return
	}
	w.decoded++
	for _, f := range v.missing {
		w.missing[f]++
	}
	for _, f := range v.nulls {
		w.nulls[f]++
	}
	for _, o := range v.outOfRange {
		r := w.ranges[o.field]
		if r == nil {
			r = &rangeCount{min: math.Inf(1), max: math.Inf(-1)}
			w.ranges[o.field] = r
		}
		r.n++
		r.min, r.max = min(r.min, o.value), max(r.max, o.value)
	}
}

// span widens [start, end] to hold t (a zero t is no time).
func span(start, end *time.Time, t time.Time) {
	if t.IsZero() {
		return
	}
	if start.IsZero() || t.Before(*start) {
		*start = t
	}
	if t.After(*end) {
		*end = t
	}
}

// times is the window's event-time span: the pickups of its rides, the
// record times when none decoded, the epoch (unknown) without either.
func (w *rawWindow) times() (start, end time.Time) {
	switch {
	case !w.end.IsZero():
		return w.start, w.end
	case !w.recEnd.IsZero():
		return w.recStart, w.recEnd
	}
	epoch := time.Unix(0, 0).UTC()
	return epoch, epoch
}

// finding is one field's breach of one check.
type finding struct {
	field string
	level int
	stats map[string]float64
	// order sorts findings, largest first.
	order float64
}

// judgeRaw returns the findings of a full raw window by alert type.
func (p *Processor) judgeRaw(w *rawWindow) map[string][]finding {
	rc := p.cfg.Raw
	n := float64(w.n)
	out := map[string][]finding{}
	rate := func(typ string, counts map[string]int, base float64, extra func(string, map[string]float64)) {
		for f, c := range counts {
			r := float64(c) / base
			lvl := level(r, rc.Warning, rc.Critical)
			if lvl == 0 {
				continue
			}
			st := map[string]float64{"count": float64(c), "rate": r}
			if extra != nil {
				extra(f, st)
			}
			out[typ] = append(out[typ], finding{field: f, level: lvl, stats: st, order: r})
		}
	}
	rate(contracts.AlertTypeSchema, w.schema, n, nil)
	if w.decoded > 0 {
		d := float64(w.decoded)
		rate(contracts.AlertTypeMissingRequired, w.missing, d, nil)
		ranges := make(map[string]int, len(w.ranges))
		for f, r := range w.ranges {
			ranges[f] = r.n
		}
		rate(contracts.AlertTypeOutOfRange, ranges, d, func(f string, st map[string]float64) {
			st["min"], st["max"] = w.ranges[f].min, w.ranges[f].max
		})
		for _, f := range NullableFields() {
			ref := rc.NullRates[f]
			got := float64(w.nulls[f]) / d
			excess := got - ref
			// The rise must also stand out of the window's binomial noise.
			z := math.Inf(1)
			if sd := math.Sqrt(ref * (1 - ref) / d); sd > 0 {
				z = excess / sd
			}
			lvl := 0
			switch {
			case excess <= 0 || z < rc.NullRateSigmas:
			case excess >= rc.NullRateCritical:
				lvl = 2
			case excess >= rc.NullRateWarning:
				lvl = 1
			}
			if lvl == 0 {
				continue
			}
			st := map[string]float64{"count": float64(w.nulls[f]), "null_rate": got, "reference_null_rate": ref, "excess": excess}
			if !math.IsInf(z, 0) {
				st["z"] = z
			}
			out[contracts.AlertTypeNullRate] = append(out[contracts.AlertTypeNullRate], finding{field: f, level: lvl, stats: st, order: excess})
		}
	}
	for _, fs := range out {
		sort.Slice(fs, func(i, j int) bool {
			if fs[i].order != fs[j].order {
				return fs[i].order > fs[j].order
			}
			return fs[i].field < fs[j].field
		})
	}
	return out
}

// level is 2 at or over critical, 1 at or over warning, else 0.
func level(v, warning, critical float64) int {
	switch {
	case v >= critical:
		return 2
	case v >= warning:
		return 1
	}
	return 0
}
