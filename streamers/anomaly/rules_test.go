package anomaly

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
)

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

// TestRobustZHandComputed checks the z-score against values worked out by
// hand.
func TestRobustZHandComputed(t *testing.T) {
	for _, c := range []struct {
		name                  string
		window                []float64
		x                     float64
		median, mad, scale, z float64
		method                string
		ok                    bool
	}{
		// Sorted 8 9 10 10 11 12 40: median 10; deviations 2 1 0 0 1 2 30,
		// sorted 0 0 1 1 2 2 30: MAD 1. The outlier 40 does not move them.
		{"odd window with an outlier", []float64{12, 40, 8, 10, 11, 9, 10}, 20, 10, 1, 1.4826, 10 / 1.4826, MethodMAD, true},
		{"below the median is negative", []float64{12, 40, 8, 10, 11, 9, 10}, 7, 10, 1, 1.4826, -3 / 1.4826, MethodMAD, true},
		// 1 2 3 4: median 2.5; deviations 1.5 .5 .5 1.5: MAD (.5+1.5)/2 = 1.
		{"even window", []float64{4, 1, 3, 2}, 7, 2.5, 1, 1.4826, 4.5 / 1.4826, MethodMAD, true},
		// 5 5 5 5 6 9: median 5, MAD 0; mean |dev| = (1+4)/6.
		{"MAD zero falls back to the mean absolute deviation", []float64{5, 9, 5, 6, 5, 5}, 9, 5, 0, 1.253314 * 5 / 6, 4 / (1.253314 * 5 / 6), MethodMeanAD, true},
		{"the median itself scores zero", []float64{1, 2, 3}, 2, 2, 1, 1.4826, 0, MethodMAD, true},
		{"one repeated value has no scale", []float64{7, 7, 7}, 9, 7, 0, 0, 0, MethodMAD, false},
		{"empty window", nil, 9, 0, 0, 0, 0, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := slices.Clone(c.window)
			z, ok := RobustZ(c.window, c.x, nil)
			if ok != c.ok {
				t.Fatalf("ok = %v, want %v (%+v)", ok, c.ok, z)
			}
			if !slices.Equal(before, c.window) {
				t.Fatalf("window changed: %v → %v", before, c.window)
			}
			if !ok {
				return
			}
			if !near(z.Median, c.median) || !near(z.MAD, c.mad) || !near(z.Scale, c.scale) || !near(z.Z, c.z) || z.Method != c.method || z.N != len(c.window) {
				t.Fatalf("got %+v, want median %v MAD %v scale %v z %v method %s", z, c.median, c.mad, c.scale, c.z, c.method)
			}
		})
	}
}

// TestMedianAgreesWithSorting checks quickselect against sorting on random
// windows, with many ties.
func TestMedianAgreesWithSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 1; n <= 64; n++ {
		for range 50 {
			a := make([]float64, n)
			for i := range a {
				a[i] = float64(rng.IntN(8)) + float64(rng.IntN(2))*rng.Float64()
			}
			s := slices.Clone(a)
			slices.Sort(s)
			want := s[n/2]
			if n%2 == 0 {
				want = s[n/2-1] + (s[n/2]-s[n/2-1])/2
			}
			if got := median(slices.Clone(a)); got != want {
				t.Fatalf("median(%v) = %v, want %v", a, got, want)
			}
		}
	}
}

// TestResidualStdInvertsConfidence recovers the σ inference used.
func TestResidualStdInvertsConfidence(t *testing.T) {
	for _, pred := range []float64{0, 0.5, 1, 7.25, 12, 45, 80} {
		for _, sigma := range []float64{0.5, 1, 3.06, 5, 10, 40} {
			c := inference.Confidence(pred, sigma)
			got, ok := ResidualStd(pred, c)
			if c >= 1 {
				if ok {
					t.Errorf("pred %v σ %v: confidence saturated at 1 but σ %v recovered", pred, sigma, got)
				}
				continue
			}
			if !ok || math.Abs(got-sigma) > 1e-6*sigma {
				t.Errorf("pred %v σ %v: confidence %v gives σ %v (ok %v)", pred, sigma, c, got, ok)
			}
		}
	}
	for _, c := range []float64{0, 1, math.NaN(), -0.5, 1.5} {
		if s, ok := ResidualStd(10, c); ok {
			t.Errorf("confidence %v: σ %v, want none", c, s)
		}
	}
}

func TestSpeedMph(t *testing.T) {
	sec := func(v float64) *float64 { return &v }
	for _, c := range []struct {
		miles   float64
		seconds *float64
		mph     float64
		ok      bool
	}{
		{90, sec(3600), 90, true},
		{1.5, sec(60), 90, true},
		{0, sec(60), 0, true},
		{3, sec(0), 0, false},
		{3, nil, 0, false},
	} {
		mph, ok := SpeedMph(c.miles, c.seconds)
		if ok != c.ok || !near(mph, c.mph) {
			t.Errorf("SpeedMph(%v, %v) = %v, %v; want %v, %v", c.miles, c.seconds, mph, ok, c.mph, c.ok)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []Config{
		{MaxSpeedMph: -1},
		{FareK: math.Inf(1)},
		{JoinTTL: -1},
		{Window: 10, MinCount: 20},
		{Window: 1},
	} {
		if err := c.WithDefaults().Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}
