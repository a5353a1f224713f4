// Package geo finds the Chicago community area of a point.
//
// The City of Chicago's official boundaries of its 77 community areas are
// embedded (see README.md for provenance and the City's terms).
// LoadCommunityAreas reads them; ParseGeoJSON reads any FeatureCollection of
// Polygon and MultiPolygon features that carry an area number.
//
// Lookup answers from a uniform grid over the areas' bounding box. Each cell
// lists the areas that may contain its points: an area whose boundary does
// not touch the cell either contains all of it (answered at once) or none
// of it (not listed). For the others, even-odd ray casting runs over only
// the area's edges that cross the cell's row of the grid, which are all the
// edges a horizontal ray from the point can cross.
package geo

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

//go:embed chicago_community_areas.geojson.gz
var embedded []byte

// Notice is the City of Chicago's notice, which must be shown wherever an
// application lets these data be accessed or downloaded.
const Notice = "This site provides applications using data that has been modified for use from its original source, www.cityofchicago.org, the official website of the City of Chicago. The City of Chicago makes no claims as to the content, accuracy, timeliness, or completeness of any of the data provided at this site. The data provided at this site is subject to change at any time. It is understood that the data provided at this site is being used at one's own risk."

// Areas is a set of numbered areas indexed for point lookup. It is
// immutable and safe for concurrent use.
type Areas struct {
	raw   []byte
	areas []area      // ascending by number
	pos   map[int]int // area number → index in areas

	minLat, minLon, maxLat, maxLon float64

	// The grid: nx columns (longitude) by ny rows (latitude).
	nx, ny int
	sx, sy float64 // cells per degree of longitude and latitude
	// Candidates of cell i are cand[cellStart[i]:cellStart[i+1]], ascending
	// by area index: a value k >= 0 means area k is to be tested, ^k means
	// area k contains the whole cell.
	cellStart []int32
	cand      []int32
	// Edges of area k that may cross row r are
	// edges[rowStart[k*ny+r]:rowStart[k*ny+r+1]].
	rowStart []int32
	edges    []edge
}

type area struct {
	number      int
	name        string
	centroidLat float64
	centroidLon float64
	// Bounding box, in grid cells.
	r0, r1, c0, c1 int
	// All ring edges, before bucketing.
	edges []edge
}

// edge is a ring segment; x is longitude, y latitude.
type edge struct{ x0, y0, x1, y1 float64 }

// LoadCommunityAreas reads the embedded boundaries of Chicago's 77
// community areas.
func LoadCommunityAreas() (*Areas, error) {
	zr, err := gzip.NewReader(bytes.NewReader(embedded))
	if err != nil {
		return nil, fmt.Errorf("load community areas: %w", err)
	}
	a, err := ParseGeoJSON(zr)
	if err != nil {
		return nil, fmt.Errorf("load community areas: %w", err)
	}
	return a, nil
}

// Lookup returns the number of the area containing the point, or 0 when no
// area does or a coordinate is NaN. If areas overlap, the lowest number
// wins. Points exactly on a boundary go to one side by the half-open rule of
// ray casting. It does not allocate.
func (a *Areas) Lookup(lat, lon float64) int {
	// Written so that NaN fails.
	if !(lat >= a.minLat && lat <= a.maxLat && lon >= a.minLon && lon <= a.maxLon) {
		return 0
	}
	r, c := a.row(lat), a.col(lon)
	cell := r*a.nx + c
	for _, k := range a.cand[a.cellStart[cell]:a.cellStart[cell+1]] {
		if k < 0 {
			return a.areas[^k].number
		}
		if a.inside(int(k), r, lon, lat) {
			return a.areas[k].number
		}
	}
	return 0
}

// inside is even-odd ray casting of (x, y) against area k, with the edges of
// grid row r: a ray towards +x crosses only edges whose latitude range holds
// y, and those are all bucketed in y's row.
func (a *Areas) inside(k, r int, x, y float64) bool {
	in := false
	i := k*a.ny + r
	for _, e := range a.edges[a.rowStart[i]:a.rowStart[i+1]] {
		if (e.y0 > y) != (e.y1 > y) && x < e.x0+(y-e.y0)*(e.x1-e.x0)/(e.y1-e.y0) {
			in = !in
		}
	}
	return in
}

// row and col map a coordinate inside the bounds to its grid cell. Both are
// monotone in their argument, which is what makes bucketing edges by the
// cells of their end points sufficient.
func (a *Areas) row(lat float64) int {
	return min(max(int((lat-a.minLat)*a.sy), 0), a.ny-1)
}

func (a *Areas) col(lon float64) int {
	return min(max(int((lon-a.minLon)*a.sx), 0), a.nx-1)
}

// Name returns the name of area n as the data spells it ("ROGERS PARK"), or
// "" for an unknown number.
func (a *Areas) Name(n int) string {
	if i, ok := a.pos[n]; ok {
		return a.areas[i].name
	}
	return ""
}

// Numbers returns the area numbers in ascending order.
func (a *Areas) Numbers() []int {
	ns := make([]int, len(a.areas))
	for i, ar := range a.areas {
		ns[i] = ar.number
	}
	return ns
}

// Centroid returns the area-weighted centroid of area n (holes subtracted),
// computed in degrees as planar coordinates, which is accurate at city
// scale. The centroid of a non-convex area may lie outside it. Unknown
// numbers give NaN, NaN.
func (a *Areas) Centroid(n int) (lat, lon float64) {
	if i, ok := a.pos[n]; ok {
		return a.areas[i].centroidLat, a.areas[i].centroidLon
	}
	return math.NaN(), math.NaN()
}

// Bounds returns the bounding box of all areas.
func (a *Areas) Bounds() (minLat, minLon, maxLat, maxLon float64) {
	return a.minLat, a.minLon, a.maxLat, a.maxLon
}

// GeoJSON returns the document the areas were parsed from, for drawing. The
// slice is shared and must not be modified.
func (a *Areas) GeoJSON() []byte { return a.raw }

// ErrGeoJSON is wrapped by every error about the content of a document.
var ErrGeoJSON = errors.New("invalid area GeoJSON")

type document struct {
	Type     string    `json:"type"`
	Features []feature `json:"features"`
}

type feature struct {
	Properties map[string]json.RawMessage `json:"properties"`
	Geometry   *struct {
		Type        string          `json:"type"`
		Coordinates json.RawMessage `json:"coordinates"`
	} `json:"geometry"`
}

// Property names that hold the area number: the first present is used. The
// City's own exports call it area_numbe (a shapefile's 10-character limit).
var numberProps = []string{"area_number", "area_numbe", "area_num_1"}

// ParseGeoJSON reads a FeatureCollection whose features are Polygons or
// MultiPolygons with a positive area number in their properties
// (area_number, as a number or a numeric string) and optionally a name
// (community). Holes are respected; rings need not be closed.
func ParseGeoJSON(r io.Reader) (*Areas, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("parse areas: read: %w", err)
	}
	var doc document
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("parse areas: %w: %w", ErrGeoJSON, err)
	}
	if doc.Type != "FeatureCollection" {
		return nil, fmt.Errorf("parse areas: %w: type %q, want FeatureCollection", ErrGeoJSON, doc.Type)
	}
	if len(doc.Features) == 0 {
		return nil, fmt.Errorf("parse areas: %w: no features", ErrGeoJSON)
	}
	a := &Areas{raw: raw, pos: map[int]int{}}
	for i, f := range doc.Features {
		ar, err := parseFeature(f)
		if err != nil {
			return nil, fmt.Errorf("parse areas: %w: feature %d: %w", ErrGeoJSON, i, err)
		}
		if _, dup := a.pos[ar.number]; dup {
			return nil, fmt.Errorf("parse areas: %w: feature %d: area %d appears twice", ErrGeoJSON, i, ar.number)
		}
		a.pos[ar.number] = -1
		a.areas = append(a.areas, ar)
	}
	slices.SortFunc(a.areas, func(x, y area) int { return x.number - y.number })
	for i, ar := range a.areas {
		a.pos[ar.number] = i
	}
	a.index()
	return a, nil
}

func parseFeature(f feature) (area, error) {
	var ar area
	for _, p := range numberProps {
		v, ok := f.Properties[p]
		if !ok {
			continue
		}
		n, err := areaNumber(v)
		if err != nil {
			return ar, fmt.Errorf("property %s: %w", p, err)
		}
		ar.number = n
		break
	}
	if ar.number == 0 {
		return ar, errors.New("no area_number property")
	}
	if v, ok := f.Properties["community"]; ok {
		if err := json.Unmarshal(v, &ar.name); err != nil {
			return ar, fmt.Errorf("area %d: property community: %w", ar.number, err)
		}
	}
	if f.Geometry == nil {
		return ar, fmt.Errorf("area %d: no geometry", ar.number)
	}
	var polys [][][][]float64
	switch f.Geometry.Type {
	case "Polygon":
		var p [][][]float64
		if err := json.Unmarshal(f.Geometry.Coordinates, &p); err != nil {
			return ar, fmt.Errorf("area %d: polygon coordinates: %w", ar.number, err)
		}
		polys = [][][][]float64{p}
	case "MultiPolygon":
		if err := json.Unmarshal(f.Geometry.Coordinates, &polys); err != nil {
			return ar, fmt.Errorf("area %d: multipolygon coordinates: %w", ar.number, err)
		}
	default:
		return ar, fmt.Errorf("area %d: geometry type %q, want Polygon or MultiPolygon", ar.number, f.Geometry.Type)
	}
	if len(polys) == 0 {
		return ar, fmt.Errorf("area %d: empty geometry", ar.number)
	}
	// Centroid sums, relative to the first vertex to keep precision.
	var sumA, sumX, sumY float64
	ox, oy := math.NaN(), math.NaN()
	for pi, poly := range polys {
		if len(poly) == 0 {
			return ar, fmt.Errorf("area %d: polygon %d has no rings", ar.number, pi)
		}
		for ri, ring := range poly {
			if len(ring) < 3 {
				return ar, fmt.Errorf("area %d: polygon %d ring %d has %d positions, want at least 3", ar.number, pi, ri, len(ring))
			}
			for _, p := range ring {
				if len(p) < 2 || !finite(p[0]) || !finite(p[1]) || p[0] < -180 || p[0] > 180 || p[1] < -90 || p[1] > 90 {
					return ar, fmt.Errorf("area %d: polygon %d ring %d: bad position %v", ar.number, pi, ri, p)
				}
			}
			if math.IsNaN(ox) {
				ox, oy = ring[0][0], ring[0][1]
			}
			// Shoelace over the ring, closed implicitly.
			var ra, rx, ry float64
			for j := range ring {
				p, q := ring[j], ring[(j+1)%len(ring)]
				if j == len(ring)-1 && p[0] == q[0] && p[1] == q[1] {
					continue
				}
				ar.edges = append(ar.edges, edge{p[0], p[1], q[0], q[1]})
				x0, y0, x1, y1 := p[0]-ox, p[1]-oy, q[0]-ox, q[1]-oy
				cross := x0*y1 - x1*y0
				ra += cross
				rx += (x0 + x1) * cross
				ry += (y0 + y1) * cross
			}
			// Outer rings add, holes subtract, whatever their winding.
			s := 1.0
			if ri > 0 {
				s = -1
			}
			if ra < 0 {
				s = -s
			}
			sumA += s * ra / 2
			sumX += s * rx / 6
			sumY += s * ry / 6
		}
	}
	if sumA == 0 {
		return ar, fmt.Errorf("area %d: zero area", ar.number)
	}
	ar.centroidLon = ox + sumX/sumA
	ar.centroidLat = oy + sumY/sumA
	return ar, nil
}

func areaNumber(v json.RawMessage) (int, error) {
	var n json.Number
	var s string
	if err := json.Unmarshal(v, &s); err == nil {
		n = json.Number(s)
	} else if err := json.Unmarshal(v, &n); err != nil {
		return 0, fmt.Errorf("area number %s is neither a number nor a string", v)
	}
	i, err := strconv.Atoi(string(n))
	if err != nil || i <= 0 {
		return 0, fmt.Errorf("area number %s is not a positive integer", v)
	}
	return i, nil
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// Grid size: about this many cells per edge, bounded per side.
const (
	cellsPerEdge = 2
	maxSide      = 2048
)

// index builds the grid. Edges go to the rows and cells spanned by their
// end points, computed with row and col themselves so that a point and the
// edges it can meet always map consistently.
func (a *Areas) index() {
	a.minLat, a.minLon = math.Inf(1), math.Inf(1)
	a.maxLat, a.maxLon = math.Inf(-1), math.Inf(-1)
	nEdges := 0
	for _, ar := range a.areas {
		for _, e := range ar.edges {
			a.minLon = min(a.minLon, e.x0, e.x1)
			a.maxLon = max(a.maxLon, e.x0, e.x1)
			a.minLat = min(a.minLat, e.y0, e.y1)
			a.maxLat = max(a.maxLat, e.y0, e.y1)
		}
		nEdges += len(ar.edges)
	}
	w, h := a.maxLon-a.minLon, a.maxLat-a.minLat
	side := math.Sqrt(w * h / float64(cellsPerEdge*nEdges))
	a.nx = min(max(int(math.Ceil(w/side)), 1), maxSide)
	a.ny = min(max(int(math.Ceil(h/side)), 1), maxSide)
	// w and h are positive: every area has a non-zero area.
	a.sx, a.sy = float64(a.nx)/w, float64(a.ny)/h

	// Edges by (area, row).
	a.rowStart = make([]int32, len(a.areas)*a.ny+1)
	for k := range a.areas {
		ar := &a.areas[k]
		ar.r0, ar.c0, ar.r1, ar.c1 = a.ny, a.nx, -1, -1
		for _, e := range ar.edges {
			r0, r1 := a.row(min(e.y0, e.y1)), a.row(max(e.y0, e.y1))
			for r := r0; r <= r1; r++ {
				a.rowStart[k*a.ny+r+1]++
			}
			ar.r0, ar.r1 = min(ar.r0, r0), max(ar.r1, r1)
			ar.c0 = min(ar.c0, a.col(min(e.x0, e.x1)))
			ar.c1 = max(ar.c1, a.col(max(e.x0, e.x1)))
		}
	}
	for i := 1; i < len(a.rowStart); i++ {
		a.rowStart[i] += a.rowStart[i-1]
	}
	a.edges = make([]edge, a.rowStart[len(a.rowStart)-1])
	next := slices.Clone(a.rowStart[:len(a.rowStart)-1])
	for k := range a.areas {
		for _, e := range a.areas[k].edges {
			r0, r1 := a.row(min(e.y0, e.y1)), a.row(max(e.y0, e.y1))
			for r := r0; r <= r1; r++ {
				a.edges[next[k*a.ny+r]] = e
				next[k*a.ny+r]++
			}
		}
	}

	// Candidates per cell, collected area by area (so ascending within a
	// cell), then grouped by cell.
	type pair struct{ cell, cand int32 }
	var pairs []pair
	mark := make([]int32, a.nx*a.ny) // k+1 when a boundary of area k touches the cell
	for k := range a.areas {
		ar := &a.areas[k]
		for _, e := range ar.edges {
			r0, r1 := a.row(min(e.y0, e.y1)), a.row(max(e.y0, e.y1))
			c0, c1 := a.col(min(e.x0, e.x1)), a.col(max(e.x0, e.x1))
			for r := r0; r <= r1; r++ {
				for c := c0; c <= c1; c++ {
					mark[r*a.nx+c] = int32(k + 1)
				}
			}
		}
		for r := ar.r0; r <= ar.r1; r++ {
			for c := ar.c0; c <= ar.c1; c++ {
				cell := r*a.nx + c
				if mark[cell] == int32(k+1) {
					pairs = append(pairs, pair{int32(cell), int32(k)})
					continue
				}
				// No boundary of area k in the cell: it holds all of the
				// cell or none, so one point decides.
				lat, lon, ok := a.cellCentre(r, c)
				switch {
				case !ok:
					pairs = append(pairs, pair{int32(cell), int32(k)})
				case a.inside(k, r, lon, lat):
					pairs = append(pairs, pair{int32(cell), ^int32(k)})
				}
			}
		}
	}
	a.cellStart = make([]int32, a.nx*a.ny+1)
	for _, p := range pairs {
		a.cellStart[p.cell+1]++
	}
	for i := 1; i < len(a.cellStart); i++ {
		a.cellStart[i] += a.cellStart[i-1]
	}
	a.cand = make([]int32, len(pairs))
	fill := slices.Clone(a.cellStart[:len(a.cellStart)-1])
	for _, p := range pairs {
		a.cand[fill[p.cell]] = p.cand
		fill[p.cell]++
	}
	for k := range a.areas {
		a.areas[k].edges = nil
	}
}

// cellCentre returns the centre of cell (r, c); ok is false in the unlikely
// case that rounding puts it in a neighbouring cell.
func (a *Areas) cellCentre(r, c int) (lat, lon float64, ok bool) {
	lat = a.minLat + (float64(r)+0.5)/a.sy
	lon = a.minLon + (float64(c)+0.5)/a.sx
	return lat, lon, a.row(lat) == r && a.col(lon) == c
}
