// Package tripdata is the Chicago taxi trip sample the project ships with:
// 15,002 real trips from the City of Chicago's Taxi Trips dataset, as sampled
// for TFX's Chicago taxi example. See README.md for provenance, columns and
// the City of Chicago's terms.
//
// The data is embedded gzip-compressed; Load parses it, Parse reads any CSV
// with the same header. Times in the file are Chicago local clock times
// written as if they were UTC; a Trip carries both the file's clock fields
// and the true instant of the pickup.
package tripdata

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"crypto/sha256"
	_ "embed"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

//go:embed chicago_taxi.csv.gz
var embedded []byte

// Rows is the number of trips in the embedded sample.
const Rows = 15002

// Notice is the City of Chicago's notice, which must be shown wherever an
// application lets these data be accessed or downloaded.
const Notice = "This site provides applications using data that has been modified for use from its original source, www.cityofchicago.org, the official website of the City of Chicago. The City of Chicago makes no claims as to the content, accuracy, timeliness, or completeness of any of the data provided at this site. The data provided at this site is subject to change at any time. It is understood that the data provided at this site is being used at one's own risk."

// Column names of the CSV header.
const (
	ColPickupArea         = "pickup_community_area"
	ColFare               = "fare"
	ColStartMonth         = "trip_start_month"
	ColStartHour          = "trip_start_hour"
	ColStartDay           = "trip_start_day"
	ColStartTimestamp     = "trip_start_timestamp"
	ColPickupLat          = "pickup_latitude"
	ColPickupLon          = "pickup_longitude"
	ColDropoffLat         = "dropoff_latitude"
	ColDropoffLon         = "dropoff_longitude"
	ColMiles              = "trip_miles"
	ColPickupCensusTract  = "pickup_census_tract"
	ColDropoffCensusTract = "dropoff_census_tract"
	ColPaymentType        = "payment_type"
	ColCompany            = "company"
	ColSeconds            = "trip_seconds"
	ColDropoffArea        = "dropoff_community_area"
	ColTips               = "tips"
)

// Columns lists the header of the embedded file in its order. Parse finds
// columns by name, so other orders (and extra columns) are accepted.
func Columns() []string {
	return []string{
		ColPickupArea, ColFare, ColStartMonth, ColStartHour, ColStartDay, ColStartTimestamp,
		ColPickupLat, ColPickupLon, ColDropoffLat, ColDropoffLon, ColMiles,
		ColPickupCensusTract, ColDropoffCensusTract, ColPaymentType, ColCompany,
		ColSeconds, ColDropoffArea, ColTips,
	}
}

// Trip is one row of the file. Unknown numbers are NaN, unknown community
// areas and census tracts 0, unknown strings "".
type Trip struct {
	// TripID is "t" followed by the first 8 bytes, in hex, of
	// SHA-256(decimal Row + "\n" + the row's CSV text without its line
	// terminator). The row index makes identical lines distinct, so IDs are
	// unique within a file; the same bytes always give the same ID.
	TripID string
	// Row is the 0-based index of the data row (the header is not a row).
	Row int

	// Start is the true instant of the pickup: the file's local clock time
	// placed in the location given to Load or Parse.
	Start time.Time
	// StartLocal holds the file's own time columns unchanged.
	StartLocal LocalStart

	// PickupArea and DropoffArea are community areas 1..77, 0 when unknown.
	PickupArea  int
	DropoffArea int
	// Coordinates are census-tract or community-area centroids, NaN when
	// unknown.
	PickupLat, PickupLon   float64
	DropoffLat, DropoffLon float64
	// Census tracts are 11-digit GEOIDs (state, county, tract), 0 when unknown.
	PickupCensusTract  int64
	DropoffCensusTract int64

	Miles   float64 // trip_miles
	Seconds float64 // trip_seconds
	Fare    float64 // dollars
	Tips    float64 // dollars; recorded for card payments only

	PaymentType string
	Company     string
}

// LocalStart is the pickup time as the file records it: Chicago local clock
// time, rounded to 15 minutes.
type LocalStart struct {
	// Timestamp is trip_start_timestamp: epoch seconds of the local clock
	// time read as if it were UTC.
	Timestamp int64
	Month     int // trip_start_month, 1..12
	Hour      int // trip_start_hour, 0..23
	Day       int // trip_start_day, 1 = Sunday … 7 = Saturday
}

// FeatureTrip is the trip as input of the shared feature transform.
func (t Trip) FeatureTrip() features.Trip {
	return features.Trip{
		Pickup:      t.Start,
		Miles:       t.Miles,
		Seconds:     t.Seconds,
		Fare:        t.Fare,
		PaymentType: t.PaymentType,
		Company:     t.Company,
		PickupArea:  t.PickupArea,
		DropoffArea: t.DropoffArea,
	}
}

// BigTipper is the label of the TFX Chicago taxi example: tips > 0.2 × fare.
// As there, a trip with unknown fare is not a big tipper and unknown tips
// count as 0.
func (t Trip) BigTipper() bool {
	if math.IsNaN(t.Fare) {
		return false
	}
	tips := t.Tips
	if math.IsNaN(tips) {
		tips = 0
	}
	return tips > 0.2*t.Fare
}

// Load parses the embedded sample, in file order. loc is the location of the
// file's clock times: America/Chicago.
func Load(loc *time.Location) ([]Trip, error) {
	zr, err := gzip.NewReader(bytes.NewReader(embedded))
	if err != nil {
		return nil, fmt.Errorf("load embedded trips: %w", err)
	}
	trips, err := Parse(zr, loc)
	if err != nil {
		return nil, fmt.Errorf("load embedded trips: %w", err)
	}
	return trips, nil
}

// SortByStart orders trips by Start, ties by Row.
func SortByStart(trips []Trip) {
	slices.SortStableFunc(trips, func(a, b Trip) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.Row, b.Row)
	})
}

// ParseError reports a malformed value.
type ParseError struct {
	Line   int    // 1-based line of the input; the header is line 1
	Column string // header name
	Value  string
	Err    error
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("line %d, column %s: value %q: %v", e.Line, e.Column, e.Value, e.Err)
}

func (e *ParseError) Unwrap() error { return e.Err }

// Reasons a value is rejected, for errors.Is on a ParseError.
var (
	ErrNotNumber    = errors.New("not a finite number")
	ErrNotInteger   = errors.New("not an integer")
	ErrOutOfRange   = errors.New("out of range")
	ErrMissing      = errors.New("required value is empty")
	ErrInconsistent = errors.New("disagrees with " + ColStartTimestamp)
)

// Parse reads a CSV with the header of the embedded file (columns are found
// by name; their order may differ and extra columns are ignored). loc is the
// location of the file's clock times. Rows are returned in input order.
func Parse(r io.Reader, loc *time.Location) ([]Trip, error) {
	if loc == nil {
		return nil, errors.New("parse trips: nil location")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("parse trips: read: %w", err)
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, errors.New("parse trips: empty input, no header")
	}
	if err != nil {
		return nil, fmt.Errorf("parse trips: header: %w", err)
	}
	var p parser
	if err := p.columns(header); err != nil {
		return nil, fmt.Errorf("parse trips: %w", err)
	}
	p.loc = loc
	p.strs = map[string]string{}

	// One row per line is the common case; a good guess saves regrowing.
	trips := make([]Trip, 0, bytes.Count(data, []byte{'\n'}))
	for row := 0; ; row++ {
		start := cr.InputOffset()
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse trips: %w", err)
		}
		raw := bytes.Trim(data[start:cr.InputOffset()], "\r\n")
		t, err := p.trip(cr, rec)
		if err != nil {
			return nil, fmt.Errorf("parse trips: %w", err)
		}
		t.Row = row
		t.TripID = tripID(row, raw)
		trips = append(trips, t)
	}
	return trips, nil
}

func tripID(row int, raw []byte) string {
	h := sha256.New()
	h.Write(strconv.AppendInt(nil, int64(row), 10))
	h.Write([]byte{'\n'})
	h.Write(raw)
	var sum [sha256.Size]byte
	return "t" + hex.EncodeToString(h.Sum(sum[:0])[:8])
}

type parser struct {
	idx  [numCols]int // column index in the record per field
	loc  *time.Location
	strs map[string]string // interned strings: few distinct companies and payment types
	cr   *csv.Reader
	rec  []string
	err  error
}

// Field order of parser.idx.
const (
	fPickupArea = iota
	fFare
	fMonth
	fHour
	fDay
	fTimestamp
	fPickupLat
	fPickupLon
	fDropoffLat
	fDropoffLon
	fMiles
	fPickupTract
	fDropoffTract
	fPayment
	fCompany
	fSeconds
	fDropoffArea
	fTips
	numCols
)

func (p *parser) columns(header []string) error {
	if len(header) > 0 {
		header[0] = strings.TrimPrefix(header[0], "\uFEFF")
	}
	at := make(map[string]int, len(header))
	for i, h := range header {
		if _, dup := at[h]; dup {
			return fmt.Errorf("header names column %q twice", h)
		}
		at[h] = i
	}
	for f, name := range Columns() {
		i, ok := at[name]
		if !ok {
			return fmt.Errorf("header has no column %q", name)
		}
		p.idx[f] = i
	}
	return nil
}

func (p *parser) trip(cr *csv.Reader, rec []string) (Trip, error) {
	p.cr, p.rec, p.err = cr, rec, nil
	t := Trip{
		PickupArea:         p.area(fPickupArea),
		DropoffArea:        p.area(fDropoffArea),
		PickupLat:          p.float(fPickupLat),
		PickupLon:          p.float(fPickupLon),
		DropoffLat:         p.float(fDropoffLat),
		DropoffLon:         p.float(fDropoffLon),
		PickupCensusTract:  p.tract(fPickupTract),
		DropoffCensusTract: p.tract(fDropoffTract),
		Miles:              p.float(fMiles),
		Seconds:            p.float(fSeconds),
		Fare:               p.float(fFare),
		Tips:               p.float(fTips),
		PaymentType:        p.str(fPayment),
		Company:            p.str(fCompany),
		StartLocal: LocalStart{
			Timestamp: p.int(fTimestamp, math.MinInt64, math.MaxInt64),
			Month:     int(p.int(fMonth, 1, 12)),
			Hour:      int(p.int(fHour, 0, 23)),
			Day:       int(p.int(fDay, 1, 7)),
		},
	}
	if p.err != nil {
		return Trip{}, p.err
	}
	// The clock columns are derived from the timestamp; a disagreement means
	// the file is not what this package thinks it is.
	clock := time.Unix(t.StartLocal.Timestamp, 0).UTC()
	switch {
	case int(clock.Month()) != t.StartLocal.Month:
		p.fail(fMonth, fmt.Errorf("%w (month %d)", ErrInconsistent, int(clock.Month())))
	case clock.Hour() != t.StartLocal.Hour:
		p.fail(fHour, fmt.Errorf("%w (hour %d)", ErrInconsistent, clock.Hour()))
	case int(clock.Weekday())+1 != t.StartLocal.Day:
		p.fail(fDay, fmt.Errorf("%w (day %d)", ErrInconsistent, int(clock.Weekday())+1))
	}
	if p.err != nil {
		return Trip{}, p.err
	}
	t.Start = time.Date(clock.Year(), clock.Month(), clock.Day(),
		clock.Hour(), clock.Minute(), clock.Second(), 0, p.loc)
	return t, nil
}

// fail records the first error of a record.
func (p *parser) fail(f int, err error) {
	if p.err != nil {
		return
	}
	line, _ := p.cr.FieldPos(p.idx[f])
	p.err = &ParseError{Line: line, Column: Columns()[f], Value: p.rec[p.idx[f]], Err: err}
}

func (p *parser) float(f int) float64 {
	s := p.rec[p.idx[f]]
	if s == "" {
		return math.NaN()
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.fail(f, ErrNotNumber)
		return math.NaN()
	}
	return v
}

func (p *parser) int(f int, lo, hi int64) int64 {
	s := p.rec[p.idx[f]]
	if s == "" {
		p.fail(f, ErrMissing)
		return 0
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		p.fail(f, ErrNotInteger)
		return 0
	}
	if v < lo || v > hi {
		p.fail(f, fmt.Errorf("%w %d..%d", ErrOutOfRange, lo, hi))
		return 0
	}
	return v
}

func (p *parser) area(f int) int {
	if p.rec[p.idx[f]] == "" {
		return 0
	}
	return int(p.int(f, 1, 77))
}

func (p *parser) tract(f int) int64 {
	if p.rec[p.idx[f]] == "" {
		return 0
	}
	return p.int(f, 1, math.MaxInt64)
}

func (p *parser) str(f int) string {
	s := p.rec[p.idx[f]]
	if v, ok := p.strs[s]; ok {
		return v
	}
	// Clone: s shares memory with the whole record.
	s = strings.Clone(s)
	p.strs[s] = s
	return s
}
