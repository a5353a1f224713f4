package boost

import (
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

// TestFixtureEncodingMatchesFeatures checks that the Python encoding behind
// the fixtures (gen_fixtures.py encode()) is ml/features' encoding: raw
// trips of the city's CSV (testdata/raw_sample.csv) go through
// features.Transform and Spec.Vector with the fixture's vocabularies
// (testdata/spec.json) and must give the rows Python wrote.
func TestFixtureEncodingMatchesFeatures(t *testing.T) {
	b, err := os.ReadFile("testdata/spec.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec features.Spec
	if err := json.Unmarshal(b, &spec); err != nil {
		t.Fatal(err)
	}
	if err := spec.Init(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/raw_sample.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.Open("testdata/raw_sample_encoded.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	head, want, err := readFloatCSV(g)
	if err != nil {
		t.Fatal(err)
	}
	if !sameStrings(head, spec.Names) {
		t.Fatalf("encoded columns %v, spec %v", head, spec.Names)
	}
	col := map[string]int{}
	for i, h := range recs[0] {
		col[h] = i
	}
	num := func(rec []string, name string) float64 {
		s := rec[col[name]]
		if s == "" {
			return math.NaN()
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("%s %q: %v", name, s, err)
		}
		return v
	}
	area := func(rec []string, name string) int {
		if v := num(rec, name); !math.IsNaN(v) {
			return int(v)
		}
		return 0
	}
	if len(recs)-1 != len(want) {
		t.Fatalf("%d raw rows, %d encoded", len(recs)-1, len(want))
	}
	vec := make([]float32, spec.Len())
	for i, rec := range recs[1:] {
		// trip_start_timestamp is the Chicago clock read as UTC, so the
		// clock fields come out right on UTC.
		trip := features.Trip{
			Pickup:      time.Unix(int64(num(rec, "trip_start_timestamp")), 0).UTC(),
			Miles:       num(rec, "trip_miles"),
			Seconds:     num(rec, "trip_seconds"),
			Fare:        num(rec, "fare"),
			PaymentType: rec[col["payment_type"]],
			Company:     rec[col["company"]],
			PickupArea:  area(rec, "pickup_community_area"),
			DropoffArea: area(rec, "dropoff_community_area"),
		}
		row := features.Transform(trip, time.UTC)
		spec.Vector(&row, vec)
		for j, v := range vec {
			w := float32(want[i][j])
			if v != w && !(v != v && w != w) {
				t.Errorf("row %d %s: ml/features %v, fixture %v", i, spec.Names[j], v, w)
			}
		}
	}
}
