package features_test

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

func chicago(t testing.TB) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// sameFloat is == with NaN equal to NaN.
func sameFloat(a, b float64) bool {
	return a == b || (math.IsNaN(a) && math.IsNaN(b))
}

func TestTransformCalendarOnChicagoClock(t *testing.T) {
	loc := chicago(t)
	for _, c := range []struct {
		name              string
		pickup            time.Time
		hour, dow, month  int
		wantLocalClockStr string
	}{
		// 2015-03-08 is a Sunday, the day clocks spring forward at 02:00 CST.
		{"before spring forward", utc("2015-03-08T07:30:00Z"), 1, 1, 3, "01:30 CST"},
		{"after spring forward", utc("2015-03-08T08:30:00Z"), 3, 1, 3, "03:30 CDT"},
		// 2014-11-02 is a Sunday, the day clocks fall back at 02:00 CDT: the
		// same clock hour twice.
		{"fall back, first 01:30", utc("2014-11-02T06:30:00Z"), 1, 1, 11, "01:30 CDT"},
		{"fall back, second 01:30", utc("2014-11-02T07:30:00Z"), 1, 1, 11, "01:30 CST"},
		// New Year's Eve in Chicago is already New Year's Day in UTC: a
		// Thursday in December, not a Friday in January.
		{"year boundary", utc("2016-01-01T05:59:00Z"), 23, 5, 12, "23:59 CST"},
		// Saturday noon in summer (UTC-5).
		{"saturday", utc("2014-07-05T17:00:00Z"), 12, 7, 7, "12:00 CDT"},
		// Monday just after midnight in winter (UTC-6).
		{"monday", utc("2013-01-07T06:15:00Z"), 0, 2, 1, "00:15 CST"},
		// The pickup's own location does not matter, only the instant.
		{"instant in another zone", utc("2014-07-05T17:00:00Z").In(time.FixedZone("X", 9*3600)), 12, 7, 7, "12:00 CDT"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.pickup.In(loc).Format("15:04 MST"); got != c.wantLocalClockStr {
				t.Fatalf("test case is wrong: %v on Chicago's clock is %s, not %s", c.pickup, got, c.wantLocalClockStr)
			}
			r := features.Transform(features.Trip{Pickup: c.pickup, Miles: 1, Seconds: 60}, loc)
			if r.PickupHour != c.hour || r.PickupDayOfWeek != c.dow || r.PickupMonth != c.month {
				t.Errorf("hour, day of week, month = %d, %d, %d; want %d, %d, %d",
					r.PickupHour, r.PickupDayOfWeek, r.PickupMonth, c.hour, c.dow, c.month)
			}
		})
	}
}

func TestTransformWeekdayNumbering(t *testing.T) {
	loc := chicago(t)
	// 2015-06-07 is a Sunday; the city numbers it 1 and Saturday 7.
	start := time.Date(2015, 6, 7, 12, 0, 0, 0, loc)
	for i := range 7 {
		day := start.AddDate(0, 0, i)
		r := features.Transform(features.Trip{Pickup: day}, loc)
		if r.PickupDayOfWeek != i+1 {
			t.Errorf("%s: day of week %d, want %d", day.Format("Mon 2006-01-02"), r.PickupDayOfWeek, i+1)
		}
	}
}

func TestTransformSpeed(t *testing.T) {
	loc := chicago(t)
	nan := math.NaN()
	for _, c := range []struct {
		name           string
		miles, seconds float64
		want           float64
	}{
		{"3 miles in 10 minutes", 3, 600, 18},
		{"1 mile in an hour", 1, 3600, 1},
		{"half a mile in 90 s", 0.5, 90, 20},
		{"no distance", 0, 300, 0},
		{"zero seconds", 2, 0, nan},
		{"unknown seconds", 2, nan, nan},
		{"negative seconds", 2, -60, nan},
		{"unknown miles", nan, 600, nan},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := features.Transform(features.Trip{Pickup: utc("2015-01-01T12:00:00Z"), Miles: c.miles, Seconds: c.seconds}, loc)
			if !(sameFloat(r.AvgSpeedMph, c.want) && (math.IsNaN(c.want) || math.Abs(r.AvgSpeedMph-c.want) < 1e-12)) {
				t.Errorf("AvgSpeedMph = %v, want %v", r.AvgSpeedMph, c.want)
			}
			if !sameFloat(r.TripMiles, c.miles) || !sameFloat(r.TripSeconds, c.seconds) {
				t.Errorf("miles, seconds = %v, %v; want them unchanged (%v, %v)", r.TripMiles, r.TripSeconds, c.miles, c.seconds)
			}
		})
	}
}

func TestTransformCopiesTheRest(t *testing.T) {
	loc := chicago(t)
	in := features.Trip{
		Pickup: utc("2015-01-01T18:00:00Z"), Miles: 1.5, Seconds: 420, Fare: 7.25,
		PaymentType: "Cash", Company: "Taxi Affiliation Services", PickupArea: 8, DropoffArea: 32,
	}
	r := features.Transform(in, loc)
	if r.Fare != 7.25 || r.PaymentType != "Cash" || r.Company != "Taxi Affiliation Services" ||
		r.PickupArea != 8 || r.DropoffArea != 32 {
		t.Errorf("Transform(%+v) = %+v", in, r)
	}
	in.Fare = math.NaN()
	if r := features.Transform(in, loc); !math.IsNaN(r.Fare) {
		t.Errorf("unknown fare became %v, want NaN", r.Fare)
	}
}

func rowsWith(payment, company []string) []features.Row {
	n := max(len(payment), len(company))
	rows := make([]features.Row, n)
	for i := range rows {
		if i < len(payment) {
			rows[i].PaymentType = payment[i]
		}
		if i < len(company) {
			rows[i].Company = company[i]
		}
	}
	return rows
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func TestNewSpecVocabulary(t *testing.T) {
	var payment []string
	payment = append(payment, repeat("Cash", 3)...)
	payment = append(payment, repeat("", 10)...) // most frequent but empty: not a value
	payment = append(payment, repeat("Credit Card", 5)...)
	payment = append(payment, "No Charge", "Dispute", "Unknown", "Unknown", "Dispute")
	var company []string
	company = append(company, repeat("", 7)...)
	company = append(company, repeat("Zeta Cab", 2)...)
	company = append(company, repeat("Alpha Cab", 2)...)
	company = append(company, repeat("Flash Cab", 4)...)

	s, err := features.NewSpec(features.FareFeatures, rowsWith(payment, company))
	if err != nil {
		t.Fatal(err)
	}
	// Descending frequency; equal counts by name.
	if want := []string{"Credit Card", "Cash", "Dispute", "Unknown", "No Charge"}; !slices.Equal(s.PaymentVocab, want) {
		t.Errorf("PaymentVocab = %q, want %q", s.PaymentVocab, want)
	}
	if want := []string{"Flash Cab", "Alpha Cab", "Zeta Cab"}; !slices.Equal(s.CompanyVocab, want) {
		t.Errorf("CompanyVocab = %q, want %q", s.CompanyVocab, want)
	}
	if s.Version != features.Version {
		t.Errorf("Version = %q, want %q", s.Version, features.Version)
	}
	if !slices.Equal(s.Names, features.FareFeatures) {
		t.Errorf("Names = %q, want %q", s.Names, features.FareFeatures)
	}
}

func TestNewSpecCapsCompanies(t *testing.T) {
	// 30 companies: company c%02d appears 100-c times, so c00 is the most
	// frequent; two more tie with c05's count and sort by name around it.
	var company []string
	for c := range 30 {
		company = append(company, repeat(fmt.Sprintf("c%02d", c), 100-c)...)
	}
	company = append(company, repeat("b-tie", 95)...)
	company = append(company, repeat("d-tie", 95)...)
	s, err := features.NewSpec(features.FareFeatures, rowsWith(nil, company))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.CompanyVocab) != features.MaxCompanies {
		t.Fatalf("%d companies in the vocabulary, want MaxCompanies = %d", len(s.CompanyVocab), features.MaxCompanies)
	}
	want := []string{"c00", "c01", "c02", "c03", "c04", "b-tie", "c05", "d-tie"}
	for c := 6; len(want) < features.MaxCompanies; c++ {
		want = append(want, fmt.Sprintf("c%02d", c))
	}
	if !slices.Equal(s.CompanyVocab, want) {
		t.Errorf("CompanyVocab = %q\nwant %q", s.CompanyVocab, want)
	}
	// Payment types are not capped.
	var payment []string
	for p := range 3 * features.MaxCompanies {
		payment = append(payment, fmt.Sprintf("p%03d", p))
	}
	s, err = features.NewSpec(features.FareFeatures, rowsWith(payment, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.PaymentVocab) != len(payment) || len(s.CompanyVocab) != 0 {
		t.Errorf("%d payment types and %d companies, want %d and 0", len(s.PaymentVocab), len(s.CompanyVocab), len(payment))
	}
}

func TestNewSpecOwnsItsNames(t *testing.T) {
	names := []string{features.TripMiles, features.Fare}
	s, err := features.NewSpec(names, nil)
	if err != nil {
		t.Fatal(err)
	}
	names[0] = features.Company
	if s.Names[0] != features.TripMiles {
		t.Errorf("changing the caller's slice changed the spec: %q", s.Names)
	}
	if len(s.PaymentVocab) != 0 || len(s.CompanyVocab) != 0 {
		t.Errorf("vocabularies from no rows: %q, %q", s.PaymentVocab, s.CompanyVocab)
	}
}

func TestNewSpecRejectsBadNames(t *testing.T) {
	for _, names := range [][]string{nil, {"wind_speed"}, {features.Fare, features.Fare}} {
		if _, err := features.NewSpec(names, nil); err == nil {
			t.Errorf("NewSpec(%q) succeeded", names)
		}
	}
}

func TestSpecInitErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		spec features.Spec
		want string // in the error
	}{
		{"wrong version", features.Spec{Version: "v0", Names: []string{features.TripMiles}}, `version "v0"`},
		{"no version", features.Spec{Names: []string{features.TripMiles}}, `version ""`},
		{"unknown feature", features.Spec{Version: features.Version, Names: []string{features.TripMiles, "tolls"}}, `"tolls"`},
		{"duplicate", features.Spec{Version: features.Version, Names: []string{features.Company, features.TripMiles, features.Company}}, `"company" twice`},
		{"empty", features.Spec{Version: features.Version}, "no features"},
		{"empty slice", features.Spec{Version: features.Version, Names: []string{}}, "no features"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.spec.Init()
			if err == nil {
				t.Fatal("Init succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("Init: %v; want it to mention %s", err, c.want)
			}
		})
	}
	ok := features.Spec{Version: features.Version, Names: features.TipperFeatures}
	if err := ok.Init(); err != nil {
		t.Errorf("Init of the tipper features: %v", err)
	}
}

// allFeatures in an order unlike the Row's, so the test sees that the vector
// follows Names.
var allFeatures = []string{
	features.Company, features.Fare, features.DropoffArea, features.PickupMonth, features.TripMiles,
	features.PaymentType, features.AvgSpeedMph, features.PickupHour, features.TripSeconds,
	features.PickupArea, features.PickupDayOfWeek,
}

func specOf(t testing.TB, names []string) *features.Spec {
	t.Helper()
	s := &features.Spec{
		Version:      features.Version,
		Names:        names,
		PaymentVocab: []string{"Credit Card", "Cash", "No Charge"},
		CompanyVocab: []string{"Flash Cab", "Taxi Affiliation Services"},
	}
	if err := s.Init(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVector(t *testing.T) {
	s := specOf(t, allFeatures)
	if s.Len() != len(allFeatures) {
		t.Fatalf("Len = %d, want %d", s.Len(), len(allFeatures))
	}
	nan := math.NaN()
	base := features.Row{
		TripMiles: 2.5, TripSeconds: 600, AvgSpeedMph: 15, PickupHour: 17, PickupDayOfWeek: 6, PickupMonth: 11,
		PickupArea: 8, DropoffArea: 32, PaymentType: "Cash", Company: "Taxi Affiliation Services", Fare: 9.75,
	}
	// want is by feature name; every other feature as in base.
	baseWant := map[string]float64{
		features.TripMiles: 2.5, features.TripSeconds: 600, features.AvgSpeedMph: 15, features.PickupHour: 17,
		features.PickupDayOfWeek: 6, features.PickupMonth: 11, features.PickupArea: 8, features.DropoffArea: 32,
		features.PaymentType: 1, features.Company: 1, features.Fare: 9.75,
	}
	for _, c := range []struct {
		name   string
		change func(*features.Row)
		want   map[string]float64
	}{
		{"known categories", func(*features.Row) {}, nil},
		{"first vocabulary entry", func(r *features.Row) { r.PaymentType, r.Company = "Credit Card", "Flash Cab" },
			map[string]float64{features.PaymentType: 0, features.Company: 0}},
		{"unknown categories encode as the vocabulary length", func(r *features.Row) { r.PaymentType, r.Company = "Bitcoin", "Yellow Cab" },
			map[string]float64{features.PaymentType: 3, features.Company: 2}},
		{"empty categories are missing", func(r *features.Row) { r.PaymentType, r.Company = "", "" },
			map[string]float64{features.PaymentType: nan, features.Company: nan}},
		{"unknown areas are missing", func(r *features.Row) { r.PickupArea, r.DropoffArea = 0, -1 },
			map[string]float64{features.PickupArea: nan, features.DropoffArea: nan}},
		{"missing numbers stay missing", func(r *features.Row) { r.TripSeconds, r.AvgSpeedMph, r.Fare = nan, nan, nan },
			map[string]float64{features.TripSeconds: nan, features.AvgSpeedMph: nan, features.Fare: nan}},
		{"case matters", func(r *features.Row) { r.PaymentType = "cash" },
			map[string]float64{features.PaymentType: 3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := base
			c.change(&r)
			dst := make([]float32, s.Len())
			for i := range dst {
				dst[i] = -12345 // every element must be written
			}
			s.Vector(&r, dst)
			for i, n := range s.Names {
				want, ok := c.want[n]
				if !ok {
					want = baseWant[n]
				}
				if !sameFloat(float64(dst[i]), float64(float32(want))) {
					t.Errorf("column %d (%s) = %v, want %v", i, n, dst[i], want)
				}
			}
		})
	}
}

func TestVectorFollowsNames(t *testing.T) {
	r := features.Row{TripMiles: 1, TripSeconds: 2, AvgSpeedMph: 3, PickupHour: 4, PickupDayOfWeek: 5, PickupMonth: 6,
		PickupArea: 7, DropoffArea: 8, PaymentType: "No Charge", Company: "Flash Cab", Fare: 11}
	value := map[string]float32{
		features.TripMiles: 1, features.TripSeconds: 2, features.AvgSpeedMph: 3, features.PickupHour: 4,
		features.PickupDayOfWeek: 5, features.PickupMonth: 6, features.PickupArea: 7, features.DropoffArea: 8,
		features.PaymentType: 2, features.Company: 0, features.Fare: 11,
	}
	for _, names := range [][]string{
		features.FareFeatures, features.TipperFeatures, allFeatures,
		{features.Fare}, {features.DropoffArea, features.PickupArea}, {features.PickupMonth, features.PickupHour, features.PickupDayOfWeek},
	} {
		s := specOf(t, names)
		got := make([]float32, s.Len())
		s.Vector(&r, got)
		want := make([]float32, len(names))
		for i, n := range names {
			want[i] = value[n]
		}
		if !slices.Equal(got, want) {
			t.Errorf("Vector with names %q = %v, want %v", names, got, want)
		}
	}
}

func TestVectorDoesNotAllocate(t *testing.T) {
	s := specOf(t, allFeatures)
	rows := []features.Row{
		{TripMiles: 1, PaymentType: "Cash", Company: "Flash Cab", PickupArea: 3},
		{TripMiles: 1, PaymentType: "Bitcoin", Company: "Unknown Cab", DropoffArea: 77},
		{TripMiles: math.NaN(), Fare: math.NaN()},
	}
	dst := make([]float32, s.Len())
	allocs := testing.AllocsPerRun(200, func() {
		for i := range rows {
			s.Vector(&rows[i], dst)
		}
	})
	if allocs != 0 {
		t.Errorf("Vector allocates %v times per run, want 0", allocs)
	}
}

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		name string
		kind features.Kind
		ok   bool
	}{
		{features.TripMiles, features.Numeric, true},
		{features.TripSeconds, features.Numeric, true},
		{features.AvgSpeedMph, features.Numeric, true},
		{features.Fare, features.Numeric, true},
		{features.PickupHour, features.Categorical, true},
		{features.PickupDayOfWeek, features.Categorical, true},
		{features.PickupMonth, features.Categorical, true},
		{features.PickupArea, features.Categorical, true},
		{features.DropoffArea, features.Categorical, true},
		{features.PaymentType, features.Categorical, true},
		{features.Company, features.Categorical, true},
		{"tolls", "", false},
		{"", "", false},
		{"Trip_Miles", "", false},
	} {
		k, ok := features.KindOf(c.name)
		if k != c.kind || ok != c.ok {
			t.Errorf("KindOf(%q) = %q, %v; want %q, %v", c.name, k, ok, c.kind, c.ok)
		}
	}
	// Every feature a model uses has a kind, and Spec.Kinds agrees with KindOf.
	s := specOf(t, features.TipperFeatures)
	ks := s.Kinds()
	if len(ks) != len(features.TipperFeatures) {
		t.Fatalf("Kinds has %d entries, want %d", len(ks), len(features.TipperFeatures))
	}
	for i, n := range features.TipperFeatures {
		k, ok := features.KindOf(n)
		if !ok || ks[i] != k {
			t.Errorf("Kinds()[%d] = %q, KindOf(%q) = %q, %v", i, ks[i], n, k, ok)
		}
	}
}

func TestFareAndTipperFeatures(t *testing.T) {
	// The tipper's inputs are the fare model's plus the fare, and building
	// them did not alias the fare model's slice.
	if len(features.TipperFeatures) != len(features.FareFeatures)+1 ||
		!slices.Equal(features.TipperFeatures[:len(features.FareFeatures)], features.FareFeatures) ||
		features.TipperFeatures[len(features.FareFeatures)] != features.Fare {
		t.Errorf("TipperFeatures = %q, FareFeatures = %q", features.TipperFeatures, features.FareFeatures)
	}
	if slices.Contains(features.FareFeatures, features.Fare) {
		t.Error("the fare model takes the fare as input")
	}
}

func TestSpecJSONRoundTrip(t *testing.T) {
	loc := chicago(t)
	var rows []features.Row
	payments := []string{"Cash", "Credit Card", "Cash", "", "No Charge", "Cash"}
	companies := []string{"Flash Cab", "", "Taxi Affiliation Services", "Flash Cab", "Blue Ribbon Taxi", "Flash Cab"}
	for i := range 60 {
		rows = append(rows, features.Transform(features.Trip{
			Pickup:      utc("2015-03-01T00:00:00Z").Add(time.Duration(i) * 37 * time.Hour),
			Miles:       float64(i%9) * 0.7,
			Seconds:     float64(i%5) * 240,
			Fare:        3.25 + float64(i%11),
			PaymentType: payments[i%len(payments)],
			Company:     companies[i%len(companies)],
			PickupArea:  i % 78,
			DropoffArea: (i * 7) % 78,
		}, loc))
	}
	rows = append(rows, features.Row{PaymentType: "Prcard", Company: "Unseen Cab", Fare: math.NaN(), TripSeconds: math.NaN(), AvgSpeedMph: math.NaN()})

	orig, err := features.NewSpec(features.TipperFeatures, rows[:40])
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(orig)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"version":"v1"`, `"names":[`, `"payment_vocab":[`, `"company_vocab":[`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var got features.Spec
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if err := got.Init(); err != nil {
		t.Fatalf("Init of the decoded spec: %v", err)
	}
	if !slices.Equal(got.Names, orig.Names) || !slices.Equal(got.PaymentVocab, orig.PaymentVocab) ||
		!slices.Equal(got.CompanyVocab, orig.CompanyVocab) {
		t.Errorf("decoded spec %+v differs from %+v", got, orig)
	}
	a, c := make([]float32, orig.Len()), make([]float32, got.Len())
	for i := range rows {
		orig.Vector(&rows[i], a)
		got.Vector(&rows[i], c)
		for j := range a {
			if math.Float32bits(a[j]) != math.Float32bits(c[j]) {
				t.Errorf("row %d, %s: %v before the round trip, %v after", i, orig.Names[j], a[j], c[j])
			}
		}
	}
}
