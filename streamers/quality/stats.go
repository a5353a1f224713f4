package quality

import (
	"math"
	"slices"

	"github.com/taxi-mlops/taxi-mlops/ml/drift"
)

// A reference profile keeps bins, not values, so the statistics that need
// the reference's values are computed against what the bins say of them.

// refCDF returns the reference's cumulative fraction of non-missing values
// at each interior edge of a numeric feature, and how many non-missing
// values it counted.
func refCDF(f *drift.FeatureProfile) (cum []float64, n float64) {
	return cdfAtEdges(f.Counts, len(f.Edges))
}

// cdfAtEdges returns, for counts over the bins of k interior edges (k+1
// value bins, then the missing bin), the cumulative fraction of non-missing
// values at each edge, and the number of non-missing values.
func cdfAtEdges(counts []float64, k int) (cum []float64, n float64) {
	for _, c := range counts[:k+1] {
		n += c
	}
	if n <= 0 {
		return nil, 0
	}
	cum = make([]float64, k)
	s := 0.0
	for j := range k {
		s += counts[j]
		cum[j] = s / n
	}
	return cum, n
}

// ksAtEdges is the two-sample Kolmogorov–Smirnov statistic evaluated at the
// reference's cut points, where both empirical CDFs are known exactly from
// the bin counts: max_j |F_ref(e_j) − F_win(e_j)|. It is a lower bound of
// the statistic over every value. The p-value is the asymptotic Kolmogorov
// distribution at effective size n_ref·n_win/(n_ref+n_win) with Stephens'
// small-sample correction, so it is conservative (too large) when the
// maximum falls inside a bin. ok is false without edges or values.
func ksAtEdges(f *drift.FeatureProfile, window []float64) (d, p float64, ok bool) {
	k := len(f.Edges)
	ref, nr := refCDF(f)
	win, nw := cdfAtEdges(window, k)
	if k == 0 || nr <= 0 || nw <= 0 {
		return 0, 0, false
	}
	for j := range k {
		d = max(d, math.Abs(ref[j]-win[j]))
	}
	return d, kolmogorovSF(d, nr*nw/(nr+nw)), true
}

// kolmogorovSF is Pr(K > λ) for λ = (√n + 0.12 + 0.11/√n)·d, the
// asymptotic two-sided Kolmogorov distribution (Numerical Recipes' probks):
// 2 Σ_{k≥1} (−1)^{k−1} exp(−2k²λ²).
func kolmogorovSF(d, n float64) float64 {
	sn := math.Sqrt(n)
	lambda := (sn + 0.12 + 0.11/sn) * d
	if lambda < 0.2 {
		return 1 // the series has not converged yet; the sum is 1 to 1e-9
	}
	sum, sign := 0.0, 1.0
	for k := 1; k <= 100; k++ {
		term := sign * 2 * math.Exp(-2*float64(k*k)*lambda*lambda)
		sum += term
		if math.Abs(term) <= 1e-12*math.Abs(sum) || math.Abs(term) < 1e-300 {
			return min(max(sum, 0), 1)
		}
		sign = -sign
	}
	return 1
}

// wasserstein is the first Wasserstein distance between the window's
// values and the reference over the reference's central range
// [Edges[0], Edges[last]] — the 10th to 90th percentile with 10 bins:
//
//	W = ∫ |F_win(x) − F_ref(x)| dx  over that range,
//
// with F_win the window's empirical CDF (every value counts, those below
// the range in F_win at its start) and F_ref interpolated linearly between
// the reference's edges, where it is known exactly. It is W1 of both
// distributions clipped to the range (winsorised), exact for the window
// and for a reference spread evenly within its bins. It also returns the
// range (its spread); ok is false with fewer than two edges or no values.
// values must be sorted and free of NaN.
func wasserstein(f *drift.FeatureProfile, values []float64) (w, spread float64, ok bool) {
	edges := f.Edges
	cum, _ := refCDF(f)
	if len(edges) < 2 || cum == nil || len(values) == 0 {
		return 0, 0, false
	}
	m := float64(len(values))
	// k counts the values <= the current position.
	k, _ := slices.BinarySearchFunc(values, edges[0], func(v, e float64) int {
		if v <= e {
			return -1
		}
		return 1
	})
	total := 0.0
	for j := 1; j < len(edges); j++ {
		lo, hi := edges[j-1], edges[j]
		flo, fhi := cum[j-1], cum[j]
		ref := func(x float64) float64 { return flo + (fhi-flo)*(x-lo)/(hi-lo) }
		for a := lo; a < hi; {
			b := hi
			if k < len(values) && values[k] < hi {
				b = values[k]
			}
			fw := float64(k) / m
			total += absIntegral(fw-ref(a), fw-ref(b), b-a)
			a = b
			for k < len(values) && values[k] <= a {
				k++
			}
		}
	}
	spread = edges[len(edges)-1] - edges[0]
	return total, spread, true
}

// absIntegral is ∫|g| over an interval of width h on which g is linear
// from ga to gb.
func absIntegral(ga, gb, h float64) float64 {
	if ga*gb >= 0 {
		return (math.Abs(ga) + math.Abs(gb)) / 2 * h
	}
	// The sign changes at ga/(ga−gb) of the way: two triangles.
	return (ga*ga + gb*gb) / (2 * (math.Abs(ga) + math.Abs(gb))) * h
}
