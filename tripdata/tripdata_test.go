package tripdata

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

func chicago(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatalf("load America/Chicago: %v", err)
	}
	return loc
}

// sharedCSV is the project's reference copy of the sample, /work/shared/data
// when the repository is at /work/main.
func sharedCSV(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..", "shared", "data", "chicago_taxi", "data.csv")
}

var (
	loadOnce  sync.Once
	loaded    []Trip
	loadedErr error
)

func load(t testing.TB) []Trip {
	t.Helper()
	loadOnce.Do(func() { loaded, loadedErr = Load(chicago(t)) })
	if loadedErr != nil {
		t.Fatalf("Load: %v", loadedErr)
	}
	return slices.Clone(loaded)
}

func TestEmbeddedEqualsShared(t *testing.T) {
	path := sharedCSV(t)
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no reference copy at %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(embedded))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("embedded sample (%d bytes) differs from %s (%d bytes)", len(got), path, len(want))
	}
}

func TestREADMEHasNotice(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "> "+Notice+"\n") {
		t.Fatal("README.md does not quote Notice verbatim")
	}
}

func sameFloat(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }

func TestLoadEdgeRows(t *testing.T) {
	trips := load(t)
	if len(trips) != Rows {
		t.Fatalf("Load: %d trips, want %d", len(trips), Rows)
	}
	nan := math.NaN()
	loc := chicago(t)
	want := []Trip{
		{
			Row:        0,
			Start:      time.Date(2014, 5, 16, 19, 45, 0, 0, loc),
			StartLocal: LocalStart{Timestamp: 1400269500, Month: 5, Hour: 19, Day: 6},
			PickupLat:  nan, PickupLon: nan, DropoffLat: nan, DropoffLon: nan,
			Miles: 0, Seconds: 0, Fare: 12.45, Tips: 0,
			PaymentType: "Credit Card", Company: "Chicago Elite Cab Corp. (Chicago Carriag",
		},
		{
			Row:        1,
			Start:      time.Date(2013, 3, 7, 19, 15, 0, 0, loc),
			StartLocal: LocalStart{Timestamp: 1362683700, Month: 3, Hour: 19, Day: 5},
			PickupLat:  nan, PickupLon: nan, DropoffLat: nan, DropoffLon: nan,
			Miles: 0, Seconds: 300, Fare: 0, Tips: 0,
			PaymentType: "Unknown", Company: "Chicago Elite Cab Corp.",
		},
		{
			// 60,27.05,10,2,3,1380593700,41.836150155,-87.648787952,,,12.6,,,Cash,Taxi Affiliation Services,1380,,0.0
			Row:        2,
			Start:      time.Date(2013, 10, 1, 2, 15, 0, 0, loc),
			StartLocal: LocalStart{Timestamp: 1380593700, Month: 10, Hour: 2, Day: 3},
			PickupArea: 60, PickupLat: 41.836150155, PickupLon: -87.648787952, DropoffLat: nan, DropoffLon: nan,
			Miles: 12.6, Seconds: 1380, Fare: 27.05, Tips: 0,
			PaymentType: "Cash", Company: "Taxi Affiliation Services",
		},
	}
	for _, w := range want {
		g := trips[w.Row]
		g.TripID = ""
		if !g.Start.Equal(w.Start) {
			t.Errorf("row %d: Start %v, want %v", w.Row, g.Start, w.Start)
		}
		g.Start, w.Start = time.Time{}, time.Time{}
		for _, f := range []struct {
			name string
			a, b float64
		}{
			{"PickupLat", g.PickupLat, w.PickupLat}, {"PickupLon", g.PickupLon, w.PickupLon},
			{"DropoffLat", g.DropoffLat, w.DropoffLat}, {"DropoffLon", g.DropoffLon, w.DropoffLon},
			{"Miles", g.Miles, w.Miles}, {"Seconds", g.Seconds, w.Seconds},
			{"Fare", g.Fare, w.Fare}, {"Tips", g.Tips, w.Tips},
		} {
			if !sameFloat(f.a, f.b) {
				t.Errorf("row %d: %s %v, want %v", w.Row, f.name, f.a, f.b)
			}
		}
		g.PickupLat, g.PickupLon, g.DropoffLat, g.DropoffLon = 0, 0, 0, 0
		w.PickupLat, w.PickupLon, w.DropoffLat, w.DropoffLon = 0, 0, 0, 0
		if g != w {
			t.Errorf("row %d:\n got %+v\nwant %+v", w.Row, g, w)
		}
	}
	// The edge rows have no areas; every other row has a pickup area.
	for _, tr := range trips[2:] {
		if tr.PickupArea == 0 || math.IsNaN(tr.PickupLat) {
			t.Fatalf("row %d: no pickup area or coordinates", tr.Row)
		}
	}
}

func TestColumnStats(t *testing.T) {
	trips := load(t)
	var noCompany, noDropArea, noSeconds, zeroMiles, tract int
	for _, tr := range trips {
		if tr.Company == "" {
			noCompany++
		}
		if tr.DropoffArea == 0 {
			noDropArea++
		}
		if math.IsNaN(tr.Seconds) {
			noSeconds++
		}
		if tr.Miles == 0 {
			zeroMiles++
		}
		if tr.PickupCensusTract != 0 {
			tract++
			if tr.PickupCensusTract != 17031081401 {
				t.Errorf("row %d: pickup tract %d", tr.Row, tr.PickupCensusTract)
			}
		}
	}
	// Counts from the README of the reference data and a direct count of the CSV.
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"empty company", noCompany, 5140},
		{"empty dropoff area", noDropArea, 507},
		{"empty trip_seconds", noSeconds, 6},
		{"pickup census tract", tract, 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
	if frac := float64(zeroMiles) / Rows; frac < 0.26 || frac > 0.28 {
		t.Errorf("trip_miles = 0 for %.3f of trips, want about 0.27", frac)
	}
}

func TestBigTipper(t *testing.T) {
	trips := load(t)
	var big, card, cardBig int
	for _, tr := range trips {
		b := tr.BigTipper()
		// tips and fare have at most 2 decimals: compare in cents exactly.
		exact := 5*math.Round(tr.Tips*100) > math.Round(tr.Fare*100)
		if b != exact {
			t.Errorf("row %d: BigTipper %v, exact decimal comparison %v (tips %v, fare %v)", tr.Row, b, exact, tr.Tips, tr.Fare)
		}
		if b {
			big++
		}
		if tr.PaymentType == "Credit Card" {
			card++
			if b {
				cardBig++
			}
		}
	}
	if big != 3374 || card != 4975 || cardBig != 3365 {
		t.Errorf("big tippers %d (want 3374), card trips %d (want 4975), card big tippers %d (want 3365)", big, card, cardBig)
	}
	for _, c := range []struct {
		tips, fare float64
		want       bool
	}{
		{2.01, 10, true}, {2, 10, false}, {math.NaN(), 10, false}, {1, math.NaN(), false}, {0.01, 0, true},
	} {
		if got := (Trip{Tips: c.tips, Fare: c.fare}).BigTipper(); got != c.want {
			t.Errorf("BigTipper(tips %v, fare %v) = %v, want %v", c.tips, c.fare, got, c.want)
		}
	}
}

// inGap reports whether a local clock time does not exist in loc (a
// spring-forward gap): placing it in loc does not give back the same clock.
func inGap(clock time.Time, loc *time.Location) bool {
	t := time.Date(clock.Year(), clock.Month(), clock.Day(), clock.Hour(), clock.Minute(), 0, 0, loc)
	return t.Hour() != clock.Hour() || t.Minute() != clock.Minute() || t.Day() != clock.Day()
}

func TestTransformMatchesFileClock(t *testing.T) {
	loc := chicago(t)
	trips := load(t)
	var mismatched, gaps []int
	fallBack := 0
	for _, tr := range trips {
		clock := time.Unix(tr.StartLocal.Timestamp, 0).UTC()
		if inGap(clock, loc) {
			gaps = append(gaps, tr.Row)
		}
		// An ambiguous fall-back hour (1:00–1:59 on the first Sunday of November)
		// still reads back as the same clock hour.
		if clock.Month() == time.November && clock.Weekday() == time.Sunday && clock.Day() <= 7 && clock.Hour() == 1 {
			fallBack++
		}
		r := features.Transform(tr.FeatureTrip(), loc)
		if r.PickupHour != tr.StartLocal.Hour || r.PickupDayOfWeek != tr.StartLocal.Day || r.PickupMonth != tr.StartLocal.Month {
			mismatched = append(mismatched, tr.Row)
		}
	}
	// Rows whose local clock time falls in a spring-forward gap: none in
	// this sample (no trip starts 02:00–02:59 on a second Sunday of March).
	var wantGaps []int
	if !slices.Equal(gaps, wantGaps) {
		t.Errorf("rows in a spring-forward gap: %v, want %v", gaps, wantGaps)
	}
	if !slices.Equal(mismatched, gaps) {
		t.Errorf("rows whose transformed hour/day/month differ from the file: %v, want exactly the gap rows %v", mismatched, gaps)
	}
	if fallBack == 0 {
		t.Error("expected trips in an ambiguous fall-back hour")
	}
}

const header = "pickup_community_area,fare,trip_start_month,trip_start_hour,trip_start_day,trip_start_timestamp,pickup_latitude,pickup_longitude,dropoff_latitude,dropoff_longitude,trip_miles,pickup_census_tract,dropoff_census_tract,payment_type,company,trip_seconds,dropoff_community_area,tips\n"

func TestSpringForwardGap(t *testing.T) {
	loc := chicago(t)
	// 2013-03-10 02:30 does not exist in Chicago: clocks went from 02:00 CST to 03:00 CDT.
	ts := time.Date(2013, 3, 10, 2, 30, 0, 0, time.UTC).Unix()
	line := "8,5.0,3,2,1," + strconv.FormatInt(ts, 10) + ",,,,,1.0,,,Cash,,300,8,0\n"
	trips, err := Parse(strings.NewReader(header+line), loc)
	if err != nil {
		t.Fatal(err)
	}
	tr := trips[0]
	if !inGap(time.Unix(ts, 0).UTC(), loc) {
		t.Fatal("02:30 on 2013-03-10 should be in the gap")
	}
	r := features.Transform(tr.FeatureTrip(), loc)
	if r.PickupHour == 2 {
		t.Errorf("a gap time cannot read back as hour 2, got Start %v", tr.Start)
	}
	if tr.StartLocal.Hour != 2 {
		t.Errorf("StartLocal.Hour %d, want the file's 2", tr.StartLocal.Hour)
	}
}

func TestTripIDs(t *testing.T) {
	trips := load(t)
	seen := make(map[string]int, len(trips))
	for _, tr := range trips {
		if len(tr.TripID) != 17 || tr.TripID[0] != 't' {
			t.Fatalf("row %d: malformed TripID %q", tr.Row, tr.TripID)
		}
		if prev, dup := seen[tr.TripID]; dup {
			t.Fatalf("rows %d and %d share TripID %s", prev, tr.Row, tr.TripID)
		}
		seen[tr.TripID] = tr.Row
	}
	// The documented definition, recomputed for row 0.
	line := ",12.45,5,19,6,1400269500,,,,,0.0,,,Credit Card,Chicago Elite Cab Corp. (Chicago Carriag,0,,0.0"
	sum := sha256.Sum256([]byte("0\n" + line))
	if want := "t" + hex.EncodeToString(sum[:8]); trips[0].TripID != want {
		t.Errorf("row 0 TripID %s, want %s", trips[0].TripID, want)
	}
	// CRLF line endings give the same IDs.
	crlf := strings.ReplaceAll(header+line+"\n", "\n", "\r\n")
	got, err := Parse(strings.NewReader(crlf), chicago(t))
	if err != nil {
		t.Fatal(err)
	}
	if got[0].TripID != trips[0].TripID {
		t.Errorf("CRLF input: TripID %s, want %s", got[0].TripID, trips[0].TripID)
	}
}

func TestParseColumnOrder(t *testing.T) {
	loc := chicago(t)
	trips := load(t)[:200]
	zr, err := gzip.NewReader(bytes.NewReader(embedded))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(zr).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	// Reverse the columns and add one this package does not know.
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	for _, rec := range recs[:201] {
		r := slices.Clone(rec)
		slices.Reverse(r)
		extra := "x"
		if buf.Len() == 0 {
			extra = "unused_column"
		}
		if err := w.Write(append(r, extra)); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	got, err := Parse(&buf, loc)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(trips) {
		t.Fatalf("%d trips, want %d", len(got), len(trips))
	}
	for i := range got {
		g, w := got[i], trips[i]
		// IDs hash the raw line, which differs.
		g.TripID, w.TripID = "", ""
		if !g.Start.Equal(w.Start) {
			t.Fatalf("row %d: Start %v, want %v", i, g.Start, w.Start)
		}
		g.Start, w.Start = time.Time{}, time.Time{}
		if !sameTrip(g, w) {
			t.Fatalf("row %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

func sameTrip(a, b Trip) bool {
	for _, p := range [][2]*float64{
		{&a.PickupLat, &b.PickupLat}, {&a.PickupLon, &b.PickupLon},
		{&a.DropoffLat, &b.DropoffLat}, {&a.DropoffLon, &b.DropoffLon},
		{&a.Miles, &b.Miles}, {&a.Seconds, &b.Seconds}, {&a.Fare, &b.Fare}, {&a.Tips, &b.Tips},
	} {
		if !sameFloat(*p[0], *p[1]) {
			return false
		}
		*p[0], *p[1] = 0, 0
	}
	return a == b
}

func TestParseErrors(t *testing.T) {
	loc := chicago(t)
	good := "8,5.0,3,19,5,1362683700,41.9,-87.6,,,1.0,,,Cash,,300,8,0\n"
	for _, c := range []struct {
		name  string
		input string
		want  string // substring of the error
		is    error
	}{
		{"empty input", "", "empty input", nil},
		{"missing column", strings.Replace(header, ",tips", "", 1) + "8,5.0,3,19,5,1362683700,41.9,-87.6,,,1.0,,,Cash,,300,8\n", `header has no column "tips"`, nil},
		{"duplicate column", strings.TrimSuffix(header, "\n") + ",fare\n", `header names column "fare" twice`, nil},
		{"bad fare", header + good + strings.Replace(good, "5.0", "5,0", 1), "record on line 3: wrong number of fields", nil},
		{"fare not a number", header + good + strings.Replace(good, "5.0", "five", 1), `line 3, column fare: value "five": not a finite number`, ErrNotNumber},
		{"fare infinite", header + strings.Replace(good, "5.0", "Inf", 1), `line 2, column fare: value "Inf": not a finite number`, ErrNotNumber},
		{"area not an integer", header + strings.Replace(good, "8,5.0", "8.5,5.0", 1), `line 2, column pickup_community_area: value "8.5": not an integer`, ErrNotInteger},
		{"area out of range", header + strings.Replace(good, ",8,0\n", ",78,0\n", 1), `line 2, column dropoff_community_area: value "78": out of range 1..77`, ErrOutOfRange},
		{"missing timestamp", header + strings.Replace(good, "1362683700", "", 1), `line 2, column trip_start_timestamp: value "": required value is empty`, ErrMissing},
		{"hour out of range", header + strings.Replace(good, ",19,", ",24,", 1), `line 2, column trip_start_hour: value "24": out of range 0..23`, ErrOutOfRange},
		{"hour disagrees", header + strings.Replace(good, ",19,", ",18,", 1), `line 2, column trip_start_hour: value "18": disagrees with trip_start_timestamp (hour 19)`, ErrInconsistent},
		{"day disagrees", header + strings.Replace(good, ",19,5,", ",19,6,", 1), `line 2, column trip_start_day: value "6": disagrees with trip_start_timestamp (day 5)`, ErrInconsistent},
		{"bad tract", header + strings.Replace(good, "1.0,,,", "1.0,,-3,", 1), `line 2, column dropoff_census_tract: value "-3": out of range`, ErrOutOfRange},
		{"quoted multi-line field", header + good + strings.Replace(good, "Cash", "\"Ca\nsh\"", 1) + strings.Replace(good, "300", "3x0", 1),
			`line 5, column trip_seconds: value "3x0": not a finite number`, ErrNotNumber},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(c.input), loc)
			if err == nil {
				t.Fatalf("Parse succeeded, want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not contain %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "parse trips: ") {
				t.Errorf("error %q does not say what was being done", err)
			}
			if c.is != nil {
				var pe *ParseError
				if !errors.As(err, &pe) || !errors.Is(err, c.is) {
					t.Errorf("error %q: want a *ParseError wrapping %v", err, c.is)
				}
			}
		})
	}
	if _, err := Parse(strings.NewReader(header), nil); err == nil {
		t.Error("Parse with nil location succeeded")
	}
	trips, err := Parse(strings.NewReader(header), loc)
	if err != nil || len(trips) != 0 {
		t.Errorf("header only: %d trips, %v; want none, no error", len(trips), err)
	}
}

func TestSortByStart(t *testing.T) {
	trips := load(t)
	SortByStart(trips)
	for i := 1; i < len(trips); i++ {
		a, b := trips[i-1], trips[i]
		if a.Start.After(b.Start) || a.Start.Equal(b.Start) && a.Row > b.Row {
			t.Fatalf("out of order at %d: row %d %v then row %d %v", i, a.Row, a.Start, b.Row, b.Start)
		}
	}
	if first := trips[0].Start.UTC(); first.Year() != 2013 || first.Month() != time.January {
		t.Errorf("earliest trip %v, want January 2013", first)
	}
	if last := trips[len(trips)-1].Start.UTC(); last.Year() != 2016 || last.Month() != time.December {
		t.Errorf("latest trip %v, want December 2016", last)
	}
}

func BenchmarkLoad(b *testing.B) {
	loc := chicago(b)
	for b.Loop() {
		if _, err := Load(loc); err != nil {
			b.Fatal(err)
		}
	}
}
