// Package features is the one feature transform of taxi-mlops, used for
// training rows and for serving alike so the two cannot drift apart.
//
// A Trip (what is known of a ride) becomes a Row of named, derived values
// with Transform; a Spec, stored with each model, turns a Row into the
// float32 vector the model was trained on. Categorical values are encoded
// with vocabularies learned from the training data and kept in the Spec.
package features

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"time"
)

// Version names the transform. A model records the version it was trained
// with; serving refuses a model whose version this build does not know.
const Version = "v1"

// Trip is what is known of a ride when it is scored.
type Trip struct {
	// Pickup is the true instant of the pickup.
	Pickup  time.Time
	Miles   float64
	Seconds float64 // NaN when unknown
	Fare    float64 // NaN when unknown (a ride request)
	// PaymentType and Company are the city's labels; "" when unknown.
	PaymentType string
	Company     string
	// Community areas 1..77, 0 when unknown.
	PickupArea  int
	DropoffArea int
}

// Row is a trip's derived feature values, by name.
type Row struct {
	TripMiles   float64
	TripSeconds float64 // NaN when unknown
	// AvgSpeedMph is NaN when the duration is zero or unknown.
	AvgSpeedMph float64
	PickupHour  int
	// PickupDayOfWeek is 1 = Sunday … 7 = Saturday, as in the city's data.
	PickupDayOfWeek int
	PickupMonth     int
	PickupArea      int // 0 = unknown
	DropoffArea     int // 0 = unknown
	PaymentType     string
	Company         string
	Fare            float64 // NaN when unknown
}

// Transform derives a Row from a Trip. Hour, weekday and month are read on
// the clock of loc (America/Chicago for the city's data).
func Transform(t Trip, loc *time.Location) Row {
	local := t.Pickup.In(loc)
	r := Row{
		TripMiles:       t.Miles,
		TripSeconds:     t.Seconds,
		AvgSpeedMph:     math.NaN(),
		PickupHour:      local.Hour(),
		PickupDayOfWeek: int(local.Weekday()) + 1,
		PickupMonth:     int(local.Month()),
		PickupArea:      t.PickupArea,
		DropoffArea:     t.DropoffArea,
		PaymentType:     t.PaymentType,
		Company:         t.Company,
		Fare:            t.Fare,
	}
	if t.Seconds > 0 && !math.IsNaN(t.Miles) {
		r.AvgSpeedMph = t.Miles / (t.Seconds / 3600)
	}
	return r
}

// Feature names, as they appear in specs, model files and drift reports.
const (
	TripMiles       = "trip_miles"
	TripSeconds     = "trip_seconds"
	AvgSpeedMph     = "avg_speed_mph"
	PickupHour      = "pickup_hour"
	PickupDayOfWeek = "pickup_day_of_week"
	PickupMonth     = "pickup_month"
	PickupArea      = "pickup_community_area"
	DropoffArea     = "dropoff_community_area"
	PaymentType     = "payment_type"
	Company         = "company"
	Fare            = "fare"
)

// Kind says how a feature's values are to be read.
type Kind string

const (
	// Numeric values are ordered quantities.
	Numeric Kind = "numeric"
	// Categorical values are codes: an area number or a vocabulary index.
	Categorical Kind = "categorical"
)

// kinds of every known feature.
var kinds = map[string]Kind{
	TripMiles: Numeric, TripSeconds: Numeric, AvgSpeedMph: Numeric,
	PickupHour: Categorical, PickupDayOfWeek: Categorical, PickupMonth: Categorical,
	PickupArea: Categorical, DropoffArea: Categorical,
	PaymentType: Categorical, Company: Categorical, Fare: Numeric,
}

// KindOf returns the kind of a known feature.
func KindOf(name string) (Kind, bool) {
	k, ok := kinds[name]
	return k, ok
}

// Spec is the part of a model that says what its input vector is.
type Spec struct {
	Version string   `json:"version"`
	Names   []string `json:"names"`
	// Vocabularies map a categorical string feature to its known values;
	// index i encodes as i, anything else as len(vocabulary), empty as missing.
	PaymentVocab []string `json:"payment_vocab"`
	CompanyVocab []string `json:"company_vocab"`

	paymentIdx, companyIdx map[string]int
	cols                   []int
}

// Column order of a Row for the vector builder.
const (
	colMiles = iota
	colSeconds
	colSpeed
	colHour
	colDow
	colMonth
	colPickupArea
	colDropoffArea
	colPayment
	colCompany
	colFare
)

var colOf = map[string]int{
	TripMiles: colMiles, TripSeconds: colSeconds, AvgSpeedMph: colSpeed,
	PickupHour: colHour, PickupDayOfWeek: colDow, PickupMonth: colMonth,
	PickupArea: colPickupArea, DropoffArea: colDropoffArea,
	PaymentType: colPayment, Company: colCompany, Fare: colFare,
}

// FareFeatures are the inputs of the fare and tip models: what is known
// before the meter stops.
var FareFeatures = []string{
	TripMiles, TripSeconds, AvgSpeedMph, PickupHour, PickupDayOfWeek, PickupMonth,
	PickupArea, DropoffArea, PaymentType, Company,
}

// TipperFeatures are the inputs of the big-tipper model: the fare features
// and the fare, as in the TFX Chicago taxi example.
var TipperFeatures = append(slices.Clone(FareFeatures), Fare)

// MaxCompanies bounds the company vocabulary; rarer companies share "other".
const MaxCompanies = 20

// NewSpec builds a Spec for the named features, learning vocabularies from
// training rows.
func NewSpec(names []string, rows []Row) (*Spec, error) {
	s := &Spec{Version: Version, Names: slices.Clone(names)}
	s.PaymentVocab = vocabulary(rows, func(r *Row) string { return r.PaymentType }, 0)
	s.CompanyVocab = vocabulary(rows, func(r *Row) string { return r.Company }, MaxCompanies)
	if err := s.Init(); err != nil {
		return nil, err
	}
	return s, nil
}

// Init validates a Spec read from storage and prepares it for Vector.
func (s *Spec) Init() error {
	if s.Version != Version {
		return fmt.Errorf("feature spec version %q is not supported (this build has %q)", s.Version, Version)
	}
	if len(s.Names) == 0 {
		return fmt.Errorf("feature spec names no features")
	}
	s.cols = make([]int, len(s.Names))
	seen := map[string]bool{}
	for i, n := range s.Names {
		c, ok := colOf[n]
		if !ok {
			return fmt.Errorf("feature spec names unknown feature %q", n)
		}
		if seen[n] {
			return fmt.Errorf("feature spec names %q twice", n)
		}
		seen[n] = true
		s.cols[i] = c
	}
	for _, v := range [][]string{s.PaymentVocab, s.CompanyVocab} {
		if dup := duplicate(v); dup != "" {
			return fmt.Errorf("feature spec vocabulary lists %q twice", dup)
		}
	}
	s.paymentIdx = index(s.PaymentVocab)
	s.companyIdx = index(s.CompanyVocab)
	return nil
}

// Kinds returns the kind of each feature of the spec, in order.
func (s *Spec) Kinds() []Kind {
	ks := make([]Kind, len(s.Names))
	for i, n := range s.Names {
		ks[i] = kinds[n]
	}
	return ks
}

// Len is the length of the vector.
func (s *Spec) Len() int { return len(s.Names) }

// Vector writes the encoded row into dst, which must have Len elements.
// Missing values are NaN. It does not allocate.
func (s *Spec) Vector(r *Row, dst []float32) {
	for i, c := range s.cols {
		var v float64
		switch c {
		case colMiles:
			v = r.TripMiles
		case colSeconds:
			v = r.TripSeconds
		case colSpeed:
			v = r.AvgSpeedMph
		case colHour:
			v = float64(r.PickupHour)
		case colDow:
			v = float64(r.PickupDayOfWeek)
		case colMonth:
			v = float64(r.PickupMonth)
		case colPickupArea:
			v = areaCode(r.PickupArea)
		case colDropoffArea:
			v = areaCode(r.DropoffArea)
		case colPayment:
			v = encode(s.paymentIdx, r.PaymentType)
		case colCompany:
			v = encode(s.companyIdx, r.Company)
		case colFare:
			v = r.Fare
		}
		dst[i] = float32(v)
	}
}

func areaCode(a int) float64 {
	if a <= 0 {
		return math.NaN()
	}
	return float64(a)
}

func encode(idx map[string]int, v string) float64 {
	if v == "" {
		return math.NaN()
	}
	if i, ok := idx[v]; ok {
		return float64(i)
	}
	return float64(len(idx))
}

func duplicate(vocab []string) string {
	seen := make(map[string]bool, len(vocab))
	for _, v := range vocab {
		if seen[v] {
			return v
		}
		seen[v] = true
	}
	return ""
}

func index(vocab []string) map[string]int {
	m := make(map[string]int, len(vocab))
	for i, v := range vocab {
		m[v] = i
	}
	return m
}

// vocabulary lists the distinct non-empty values by descending frequency
// (ties by name, so it is deterministic), at most max of them (0 = all).
func vocabulary(rows []Row, get func(*Row) string, max int) []string {
	counts := map[string]int{}
	for i := range rows {
		if v := get(&rows[i]); v != "" {
			counts[v]++
		}
	}
	vs := make([]string, 0, len(counts))
	for v := range counts {
		vs = append(vs, v)
	}
	sort.Slice(vs, func(i, j int) bool {
		if counts[vs[i]] != counts[vs[j]] {
			return counts[vs[i]] > counts[vs[j]]
		}
		return vs[i] < vs[j]
	})
	if max > 0 && len(vs) > max {
		vs = vs[:max]
	}
	return vs
}
