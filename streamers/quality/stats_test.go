package quality

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/taxi-mlops/taxi-mlops/ml/drift"
)

// uniform is the profile of a reference spread evenly on [0, 10]: edges
// 0…10, ten values per unit bin, nothing outside.
func uniform() *drift.FeatureProfile {
	f := &drift.FeatureProfile{Name: "x", Kind: drift.Numeric}
	for i := range 11 {
		f.Edges = append(f.Edges, float64(i))
	}
	f.Counts = make([]float64, len(f.Edges)+2)
	for i := 1; i <= 10; i++ {
		f.Counts[i] = 10
	}
	f.N = 100
	return f
}

func TestWassersteinAgainstAnExactReference(t *testing.T) {
	f := uniform()
	// A fine grid on [0, 10] is the reference the profile describes.
	grid := make([]float64, 100001)
	for i := range grid {
		grid[i] = float64(i) / 10000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, c := range []struct {
		name   string
		values []float64
		want   float64 // NaN: compare with drift.Wasserstein1 against the grid
	}{
		{"all at the middle", []float64{5, 5, 5}, 2.5},
		{"all at an edge", []float64{3}, 0.3*3/2 + 0.7*7/2},
		{"the reference itself", grid, 0},
		{"uniform on [2, 8]", nil, math.NaN()},
		{"skewed", nil, math.NaN()},
		{"one point each side of the range", []float64{-5, 15}, 2.5},
	} {
		t.Run(c.name, func(t *testing.T) {
			vals := c.values
			switch c.name {
			case "uniform on [2, 8]":
				for range 2000 {
					vals = append(vals, 2+6*rng.Float64())
				}
			case "skewed":
				for range 2000 {
					vals = append(vals, 10*math.Pow(rng.Float64(), 3))
				}
			}
			vals = slices.Sorted(slices.Values(vals))
			w, spread, ok := wasserstein(f, vals)
			if !ok || spread != 10 {
				t.Fatalf("ok %v, spread %v", ok, spread)
			}
			want := c.want
			if math.IsNaN(want) {
				want = drift.Wasserstein1(vals, grid)
			}
			if math.Abs(w-want) > 2e-4 {
				t.Errorf("W = %.6f, want %.6f", w, want)
			}
		})
	}
	// Values outside the range count as its ends (winsorised).
	in, _, _ := wasserstein(f, []float64{0, 10})
	out, _, _ := wasserstein(f, []float64{-100, 1000})
	if in != out {
		t.Errorf("clipping: %v vs %v", in, out)
	}
	// Not enough to say anything.
	short := &drift.FeatureProfile{Name: "x", Kind: drift.Numeric, Edges: []float64{1}, Counts: []float64{1, 1, 0}, N: 2}
	if _, _, ok := wasserstein(short, []float64{1}); ok {
		t.Error("W with one edge")
	}
	if _, _, ok := wasserstein(f, nil); ok {
		t.Error("W of no values")
	}
}

func TestKSAtEdges(t *testing.T) {
	f := uniform()
	// Window: everything in the first unit bin.
	w := make([]float64, len(f.Counts))
	w[1] = 50
	d, p, ok := ksAtEdges(f, w)
	if !ok || math.Abs(d-0.9) > 1e-12 {
		t.Fatalf("D = %v (%v), want 0.9", d, ok)
	}
	if p > 1e-10 {
		t.Errorf("p = %v for D 0.9 over 100 and 50 values", p)
	}
	same, p, _ := ksAtEdges(f, f.Counts)
	if same != 0 || p != 1 {
		t.Errorf("identical: D %v, p %v", same, p)
	}
	// Missing values are left out of both CDFs.
	withMissing := slices.Clone(f.Counts)
	withMissing[len(withMissing)-1] = 1000
	if d, _, _ := ksAtEdges(f, withMissing); d > 1e-12 {
		t.Errorf("missing values moved D to %v", d)
	}
	if _, _, ok := ksAtEdges(f, make([]float64, len(f.Counts))); ok {
		t.Error("KS of an empty window")
	}
}

// TestKolmogorovSF checks the alternating series against the theta-function
// form of the same distribution, Q(λ) = 1 − (√(2π)/λ) Σ exp(−(2k−1)²π²/(8λ²)).
func TestKolmogorovSF(t *testing.T) {
	theta := func(l float64) float64 {
		s := 0.0
		for k := 1; k <= 50; k++ {
			s += math.Exp(-float64((2*k-1)*(2*k-1)) * math.Pi * math.Pi / (8 * l * l))
		}
		return 1 - math.Sqrt(2*math.Pi)/l*s
	}
	const n = 1e24 // Stephens' correction vanishes: λ = √n·d
	for _, l := range []float64{0.3, 0.5, 0.8, 1, 1.36, 1.5, 2, 3} {
		got := kolmogorovSF(l/math.Sqrt(n), n)
		if want := theta(l); math.Abs(got-want) > 1e-9 {
			t.Errorf("Q(%v) = %.12f, want %.12f", l, got, want)
		}
	}
	if kolmogorovSF(0, 100) != 1 || kolmogorovSF(1, 100) > 1e-30 {
		t.Error("ends of the distribution")
	}
}

func TestAbsIntegral(t *testing.T) {
	for _, c := range []struct{ a, b, h, want float64 }{
		{1, 1, 2, 2},
		{-1, -3, 1, 2},
		{1, -1, 2, 1},  // two triangles of area 1/2
		{0, 2, 1, 1},   // one triangle
		{-2, 6, 4, 10}, // crosses at a quarter: 1 + 9
		{0, 0, 5, 0},
	} {
		if got := absIntegral(c.a, c.b, c.h); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("∫|g| from %v to %v over %v = %v, want %v", c.a, c.b, c.h, got, c.want)
		}
	}
}

func BenchmarkJudge(b *testing.B) {
	f := uniform()
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float64, 500)
	for i := range vals {
		vals[i] = 10 * rng.Float64()
	}
	slices.Sort(vals)
	counts := make([]float64, len(f.Counts))
	for _, v := range vals {
		counts[f.Bin(v)]++
	}
	b.ReportAllocs()
	for b.Loop() {
		_, _, _ = wasserstein(f, vals)
		_, _, _ = ksAtEdges(f, counts)
	}
}
