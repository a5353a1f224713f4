package geo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

var (
	areasOnce sync.Once
	areas     *geo.Areas
	areasErr  error
)

func communityAreas(t testing.TB) *geo.Areas {
	t.Helper()
	areasOnce.Do(func() { areas, areasErr = geo.LoadCommunityAreas() })
	if areasErr != nil {
		t.Fatalf("LoadCommunityAreas: %v", areasErr)
	}
	return areas
}

// shared is the project's reference data directory, /work/shared/data when
// the repository is at /work/main.
func shared(t testing.TB, name string) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(wd, "..", "..", "shared", "data", name)
}

// trips reads the reference copy of the taxi sample when present, else the
// copy embedded in tripdata (the two are tested equal there).
func trips(t testing.TB) []tripdata.Trip {
	t.Helper()
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shared(t, filepath.Join("chicago_taxi", "data.csv")))
	if errors.Is(err, os.ErrNotExist) {
		ts, err := tripdata.Load(loc)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts, err := tripdata.Parse(f, loc)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestLabelledTaxiPoints(t *testing.T) {
	a := communityAreas(t)
	var pickups, dropoffs, unlabelled int
	for _, tr := range trips(t) {
		if tr.PickupArea != 0 && !math.IsNaN(tr.PickupLat) {
			pickups++
			if got := a.Lookup(tr.PickupLat, tr.PickupLon); got != tr.PickupArea {
				t.Errorf("row %d: pickup (%v, %v) in area %d, labelled %d", tr.Row, tr.PickupLat, tr.PickupLon, got, tr.PickupArea)
			}
		}
		if tr.DropoffArea != 0 && !math.IsNaN(tr.DropoffLat) {
			dropoffs++
			if got := a.Lookup(tr.DropoffLat, tr.DropoffLon); got != tr.DropoffArea {
				t.Errorf("row %d: dropoff (%v, %v) in area %d, labelled %d", tr.Row, tr.DropoffLat, tr.DropoffLon, got, tr.DropoffArea)
			}
		}
		if tr.DropoffArea == 0 && !math.IsNaN(tr.DropoffLat) {
			// All at one point, in O'Hare: a dropoff whose area the City left
			// empty.
			unlabelled++
			if got := a.Lookup(tr.DropoffLat, tr.DropoffLon); got != 76 {
				t.Errorf("row %d: unlabelled dropoff (%v, %v) in area %d, want 76 (O'Hare)", tr.Row, tr.DropoffLat, tr.DropoffLon, got)
			}
		}
	}
	// Every labelled point of the sample: all pickups but the two edge rows,
	// and every dropoff with both a label and coordinates.
	if pickups != 15000 || dropoffs != 14495 {
		t.Errorf("checked %d pickups and %d dropoffs, want 15000 and 14495", pickups, dropoffs)
	}
	if unlabelled != 24 {
		t.Errorf("%d dropoffs with coordinates but no area, want 24", unlabelled)
	}
}

func TestOutside(t *testing.T) {
	a := communityAreas(t)
	for _, c := range []struct {
		name     string
		lat, lon float64
	}{
		{"Lake Michigan off the Loop", 41.8827, -87.55},
		{"Lake Michigan off Rogers Park", 42.01, -87.64},
		{"null island", 0, 0},
		{"Evanston", 42.0451, -87.6877},
		{"Oak Park", 41.8850, -87.7845},
		{"NaN latitude", math.NaN(), -87.63},
		{"NaN longitude", 41.88, math.NaN()},
		{"infinite", math.Inf(1), math.Inf(-1)},
		{"swapped lat and lon", -87.6298, 41.8781},
	} {
		if got := a.Lookup(c.lat, c.lon); got != 0 {
			t.Errorf("%s (%v, %v): area %d, want 0", c.name, c.lat, c.lon, got)
		}
	}
	for _, c := range []struct {
		name     string
		lat, lon float64
		want     int
	}{
		{"Willis Tower", 41.8789, -87.6359, 32},
		{"Wrigley Field", 41.9484, -87.6553, 6},
		{"Midway airport", 41.7868, -87.7522, 56},
		{"O'Hare terminals", 41.9786, -87.9048, 76},
		{"Hyde Park, University of Chicago", 41.7886, -87.5987, 41},
	} {
		if got := a.Lookup(c.lat, c.lon); got != c.want {
			t.Errorf("%s (%v, %v): area %d (%s), want %d (%s)", c.name, c.lat, c.lon, got, a.Name(got), c.want, a.Name(c.want))
		}
	}
}

// doc is the embedded GeoJSON read independently of the package.
type doc struct {
	Features []struct {
		Properties struct {
			Number int    `json:"area_number"`
			Name   string `json:"community"`
		} `json:"properties"`
		Geometry struct {
			Type        string          `json:"type"`
			Coordinates [][][][]float64 `json:"coordinates"`
		} `json:"geometry"`
	} `json:"features"`
}

func readDoc(t testing.TB, a *geo.Areas) doc {
	t.Helper()
	var d doc
	if err := json.Unmarshal(a.GeoJSON(), &d); err != nil {
		t.Fatal(err)
	}
	for _, f := range d.Features {
		if f.Geometry.Type != "MultiPolygon" {
			t.Fatalf("area %d: %s, the test reads MultiPolygons only", f.Properties.Number, f.Geometry.Type)
		}
	}
	return d
}

// inRing is plain even-odd ray casting over one ring.
func inRing(ring [][]float64, lat, lon float64) bool {
	in := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		p, q := ring[i], ring[j]
		if (p[1] > lat) != (q[1] > lat) && lon < p[0]+(lat-p[1])*(q[0]-p[0])/(q[1]-p[1]) {
			in = !in
		}
	}
	return in
}

// bruteForce is Lookup without an index: even-odd over every ring of every
// area, lowest number first.
func bruteForce(d doc, lat, lon float64) int {
	best := 0
	for _, f := range d.Features {
		in := false
		for _, poly := range f.Geometry.Coordinates {
			for _, ring := range poly {
				if inRing(ring, lat, lon) {
					in = !in
				}
			}
		}
		if in && (best == 0 || f.Properties.Number < best) {
			best = f.Properties.Number
		}
	}
	return best
}

func TestLookupEqualsBruteForce(t *testing.T) {
	a := communityAreas(t)
	d := readDoc(t, a)
	minLat, minLon, maxLat, maxLon := a.Bounds()
	rng := rand.New(rand.NewPCG(1, 2))
	n := 6000
	if testing.Short() {
		n = 1000
	}
	// Random points over the bounding box, and points close to vertices,
	// where boundaries are.
	var vertices [][]float64
	for _, f := range d.Features {
		for _, poly := range f.Geometry.Coordinates {
			for _, ring := range poly {
				vertices = append(vertices, ring...)
			}
		}
	}
	inside := 0
	for i := range n {
		var lat, lon float64
		if i%2 == 0 {
			lat = minLat - 0.01 + rng.Float64()*(maxLat-minLat+0.02)
			lon = minLon - 0.01 + rng.Float64()*(maxLon-minLon+0.02)
		} else {
			v := vertices[rng.IntN(len(vertices))]
			lat = v[1] + (rng.Float64()-0.5)*2e-4
			lon = v[0] + (rng.Float64()-0.5)*2e-4
		}
		got, want := a.Lookup(lat, lon), bruteForce(d, lat, lon)
		if got != want {
			t.Fatalf("Lookup(%v, %v) = %d, brute force %d", lat, lon, got, want)
		}
		if got != 0 {
			inside++
		}
	}
	if inside < n/4 {
		t.Errorf("only %d of %d points inside an area; the test is not exercising much", inside, n)
	}
}

func TestHole(t *testing.T) {
	a := communityAreas(t)
	d := readDoc(t, a)
	// Norwood Park (10) has a hole that no community area fills.
	var hole, outer [][]float64
	for _, f := range d.Features {
		if f.Properties.Number == 10 {
			outer, hole = f.Geometry.Coordinates[0][0], f.Geometry.Coordinates[0][1]
		}
	}
	if hole == nil {
		t.Fatal("Norwood Park has no hole")
	}
	// A scan of the hole's bounding box.
	var points [][2]float64
	lo, hi := [2]float64{90, 180}, [2]float64{-90, -180}
	for _, p := range hole {
		lo = [2]float64{min(lo[0], p[1]), min(lo[1], p[0])}
		hi = [2]float64{max(hi[0], p[1]), max(hi[1], p[0])}
	}
	for i := 1; i < 20; i++ {
		for j := 1; j < 20; j++ {
			points = append(points, [2]float64{lo[0] + (hi[0]-lo[0])*float64(i)/20, lo[1] + (hi[1]-lo[1])*float64(j)/20})
		}
	}
	inHole := 0
	for _, p := range points {
		if !inRing(hole, p[0], p[1]) {
			continue
		}
		inHole++
		if !inRing(outer, p[0], p[1]) {
			t.Fatalf("(%v, %v) is in the hole but not in the outer ring", p[0], p[1])
		}
		if got := a.Lookup(p[0], p[1]); got != 0 {
			t.Errorf("(%v, %v) in the hole of Norwood Park: area %d, want 0", p[0], p[1], got)
		}
	}
	if inHole < 50 {
		t.Errorf("only %d test points in the hole", inHole)
	}
}

const squares = `{"type":"FeatureCollection","features":[
 {"type":"Feature","properties":{"area_number":1,"community":"RING"},
  "geometry":{"type":"Polygon","coordinates":[
   [[0,0],[10,0],[10,10],[0,10],[0,0]],
   [[4,4],[4,6],[6,6],[6,4],[4,4]]]}},
 {"type":"Feature","properties":{"area_number":"2","community":"ISLAND"},
  "geometry":{"type":"Polygon","coordinates":[[[4.5,4.5],[5.5,4.5],[5.5,5.5],[4.5,5.5]]]}},
 {"type":"Feature","properties":{"area_number":3,"community":"PAIR"},
  "geometry":{"type":"MultiPolygon","coordinates":[
   [[[20,0],[21,0],[21,1],[20,1],[20,0]]],
   [[[22,0],[23,0],[23,1],[22,1],[22,0]]]]}}
]}`

func TestSyntheticSquares(t *testing.T) {
	a, err := geo.ParseGeoJSON(strings.NewReader(squares))
	if err != nil {
		t.Fatal(err)
	}
	// lat is y, lon is x.
	for _, c := range []struct {
		name     string
		lat, lon float64
		want     int
	}{
		{"ring body", 1, 1, 1},
		{"ring near corner", 9.999, 9.999, 1},
		{"ring between hole and island", 4.2, 4.2, 0},
		{"hole edge side", 5, 4.1, 0},
		{"island", 5, 5, 2},
		{"island corner inside", 5.49, 4.51, 2},
		{"left of everything", 5, -1, 0},
		{"below", -0.5, 5, 0},
		{"first of pair", 0.5, 20.5, 3},
		{"between the pair", 0.5, 21.5, 0},
		{"second of pair", 0.5, 22.5, 3},
		{"right of the pair", 0.5, 23.5, 0},
		{"above the pair", 1.5, 22.5, 0},
		{"NaN", math.NaN(), 5, 0},
		// Half-open rule: the left and bottom sides of the ring are inside,
		// the right and top sides outside.
		{"left side", 5, 0, 1},
		{"right side", 5, 10, 0},
		{"bottom side", 0, 5, 1},
		{"top side", 10, 5, 0},
	} {
		if got := a.Lookup(c.lat, c.lon); got != c.want {
			t.Errorf("%s (%v, %v): %d, want %d", c.name, c.lat, c.lon, got, c.want)
		}
	}
	if got := a.Numbers(); len(got) != 3 || got[0] != 1 || got[1] != 2 || got[2] != 3 {
		t.Errorf("Numbers() = %v", got)
	}
	if a.Name(2) != "ISLAND" || a.Name(4) != "" {
		t.Errorf("Name(2) = %q, Name(4) = %q", a.Name(2), a.Name(4))
	}
	for _, c := range []struct {
		n        int
		lat, lon float64
	}{
		{1, 5, 5},      // symmetric ring: the hole does not move it
		{2, 5, 5},      // square
		{3, 0.5, 21.5}, // two equal squares
	} {
		lat, lon := a.Centroid(c.n)
		if math.Abs(lat-c.lat) > 1e-12 || math.Abs(lon-c.lon) > 1e-12 {
			t.Errorf("Centroid(%d) = (%v, %v), want (%v, %v)", c.n, lat, lon, c.lat, c.lon)
		}
	}
	if lat, lon := a.Centroid(9); !math.IsNaN(lat) || !math.IsNaN(lon) {
		t.Errorf("Centroid of an unknown area = (%v, %v), want NaN", lat, lon)
	}
	minLat, minLon, maxLat, maxLon := a.Bounds()
	if minLat != 0 || minLon != 0 || maxLat != 10 || maxLon != 23 {
		t.Errorf("Bounds() = %v %v %v %v", minLat, minLon, maxLat, maxLon)
	}
	if string(a.GeoJSON()) != squares {
		t.Error("GeoJSON() is not the parsed document")
	}
	// An asymmetric hole moves the centroid away from it.
	offCentre := strings.Replace(squares, "[[4,4],[4,6],[6,6],[6,4],[4,4]]", "[[6,4],[6,6],[8,6],[8,4],[6,4]]", 1)
	b, err := geo.ParseGeoJSON(strings.NewReader(offCentre))
	if err != nil {
		t.Fatal(err)
	}
	// (100·5 − 4·7) / 96 = 4.9166…
	if lat, lon := b.Centroid(1); math.Abs(lat-5) > 1e-12 || math.Abs(lon-472.0/96) > 1e-12 {
		t.Errorf("Centroid with an off-centre hole = (%v, %v), want (5, %v)", lat, lon, 472.0/96)
	}
}

func TestParseErrors(t *testing.T) {
	poly := `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}`
	feat := func(props, geom string) string {
		return `{"type":"FeatureCollection","features":[{"type":"Feature","properties":` + props + `,"geometry":` + geom + `}]}`
	}
	for _, c := range []struct {
		name, doc, want string
	}{
		{"not JSON", `{`, "unexpected end of JSON input"},
		{"not a collection", `{"type":"Feature"}`, `type "Feature", want FeatureCollection`},
		{"no features", `{"type":"FeatureCollection","features":[]}`, "no features"},
		{"no number", feat(`{"community":"X"}`, poly), "feature 0: no area_number property"},
		{"zero number", feat(`{"area_number":0}`, poly), "area number 0 is not a positive integer"},
		{"fractional number", feat(`{"area_number":1.5}`, poly), "area number 1.5 is not a positive integer"},
		{"point", feat(`{"area_number":1}`, `{"type":"Point","coordinates":[0,0]}`), `area 1: geometry type "Point", want Polygon or MultiPolygon`},
		{"no geometry", feat(`{"area_number":1}`, `null`), "area 1: no geometry"},
		{"short ring", feat(`{"area_number":1}`, `{"type":"Polygon","coordinates":[[[0,0],[1,0]]]}`), "ring 0 has 2 positions, want at least 3"},
		{"bad position", feat(`{"area_number":1}`, `{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,200]]]}`), "bad position [1 200]"},
		{"flat", feat(`{"area_number":1}`, `{"type":"Polygon","coordinates":[[[0,0],[1,0],[2,0]]]}`), "area 1: zero area"},
		{"duplicate", `{"type":"FeatureCollection","features":[{"properties":{"area_number":1},"geometry":` + poly + `},{"properties":{"area_number":"1"},"geometry":` + poly + `}]}`, "feature 1: area 1 appears twice"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := geo.ParseGeoJSON(strings.NewReader(c.doc))
			if err == nil {
				t.Fatalf("parsed; want error containing %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "parse areas: ") {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
			if !errors.Is(err, geo.ErrGeoJSON) {
				t.Errorf("error %q does not wrap ErrGeoJSON", err)
			}
		})
	}
}

func TestCommunityAreas(t *testing.T) {
	a := communityAreas(t)
	ns := a.Numbers()
	if len(ns) != 77 || ns[0] != 1 || ns[76] != 77 {
		t.Fatalf("Numbers() = %v, want 1..77", ns)
	}
	for _, c := range []struct {
		n    int
		name string
	}{{1, "ROGERS PARK"}, {8, "NEAR NORTH SIDE"}, {32, "LOOP"}, {76, "OHARE"}, {77, "EDGEWATER"}, {0, ""}, {78, ""}} {
		if got := a.Name(c.n); got != c.name {
			t.Errorf("Name(%d) = %q, want %q", c.n, got, c.name)
		}
	}
	minLat, minLon, maxLat, maxLon := a.Bounds()
	if minLat < 41.64 || minLat > 41.65 || maxLat < 42.02 || maxLat > 42.03 || minLon < -87.95 || minLon > -87.93 || maxLon < -87.53 || maxLon > -87.52 {
		t.Errorf("Bounds() = %v, %v, %v, %v", minLat, minLon, maxLat, maxLon)
	}
	// Centroids lie in their own area unless the area is strongly
	// non-convex; count those.
	outside := 0
	for _, n := range ns {
		lat, lon := a.Centroid(n)
		if lat < minLat || lat > maxLat || lon < minLon || lon > maxLon {
			t.Errorf("Centroid(%d) = (%v, %v) outside the city's bounds", n, lat, lon)
		}
		if got := a.Lookup(lat, lon); got != n {
			outside++
			t.Logf("centroid of %d %s lies in area %d", n, a.Name(n), got)
		}
	}
	if outside > 3 {
		t.Errorf("%d centroids outside their own area", outside)
	}
	if lat, lon := a.Centroid(32); math.Abs(lat-41.878) > 0.005 || math.Abs(lon+87.628) > 0.005 {
		t.Errorf("Centroid(32) (the Loop) = (%v, %v)", lat, lon)
	}
}

func TestGeoJSONIsReferenceFile(t *testing.T) {
	path := shared(t, "chicago_community_areas.geojson")
	want, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no reference copy at %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(communityAreas(t).GeoJSON(), want) {
		t.Fatalf("embedded GeoJSON differs from %s", path)
	}
}

func TestREADMEHasNotice(t *testing.T) {
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "> "+geo.Notice+"\n") {
		t.Fatal("README.md does not quote Notice verbatim")
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	a := communityAreas(t)
	allocs := testing.AllocsPerRun(1000, func() {
		a.Lookup(41.8789, -87.6359)
		a.Lookup(41.9672, -87.8073)
		a.Lookup(41.7, -87.9)
	})
	if allocs != 0 {
		t.Errorf("Lookup allocates %v times per call", allocs)
	}
}

func BenchmarkLookupTaxiPoints(b *testing.B) {
	a := communityAreas(b)
	var pts [][2]float64
	for _, tr := range trips(b) {
		if !math.IsNaN(tr.PickupLat) {
			pts = append(pts, [2]float64{tr.PickupLat, tr.PickupLon})
		}
		if !math.IsNaN(tr.DropoffLat) {
			pts = append(pts, [2]float64{tr.DropoffLat, tr.DropoffLon})
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pts[i%len(pts)]
		a.Lookup(p[0], p[1])
		i++
	}
}

func BenchmarkLookupUniform(b *testing.B) {
	a := communityAreas(b)
	minLat, minLon, maxLat, maxLon := a.Bounds()
	rng := rand.New(rand.NewPCG(3, 4))
	pts := make([][2]float64, 1<<16)
	for i := range pts {
		pts[i] = [2]float64{minLat + rng.Float64()*(maxLat-minLat), minLon + rng.Float64()*(maxLon-minLon)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		p := pts[i&(len(pts)-1)]
		a.Lookup(p[0], p[1])
		i++
	}
}

func BenchmarkLoadCommunityAreas(b *testing.B) {
	for b.Loop() {
		if _, err := geo.LoadCommunityAreas(); err != nil {
			b.Fatal(err)
		}
	}
}
