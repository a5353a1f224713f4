package drift

import (
	"math"
	"slices"
)

// PSIFloor is the smallest proportion PSI uses: empty bins would make the
// logarithm infinite.
const PSIFloor = 1e-4

// PSI is the population stability index of actual against expected, both
// counts (or proportions) over the same bins:
//
//	PSI = Σ_i (q_i − p_i) · ln(q_i / p_i)
//
// where p = expected/Σexpected and q = actual/Σactual, each proportion
// first raised to at least PSIFloor (1e-4), without renormalising. It is
// symmetric and 0 for identical distributions; 0.1 and 0.25 are the usual
// "watch" and "act" thresholds. NaN when the lengths differ, a sum is not
// positive, or a value is negative or NaN.
func PSI(expected, actual []float64) float64 {
	se, ok1 := total(expected)
	sa, ok2 := total(actual)
	if !ok1 || !ok2 || len(expected) != len(actual) {
		return math.NaN()
	}
	s := 0.0
	for i := range expected {
		p := max(expected[i]/se, PSIFloor)
		q := max(actual[i]/sa, PSIFloor)
		s += (q - p) * math.Log(q/p)
	}
	return s
}

// total sums non-negative values; ok is false for an empty slice, a NaN or
// negative value, or a zero sum.
func total(xs []float64) (float64, bool) {
	s := 0.0
	for _, x := range xs {
		if !(x >= 0) {
			return math.NaN(), false
		}
		s += x
	}
	return s, s > 0 && !math.IsInf(s, 1)
}

// JensenShannon is the Jensen–Shannon distance between two distributions
// given as counts or proportions over the same bins, as
// scipy.spatial.distance.jensenshannon(p, q) with its default natural
// logarithm:
//
//	JS = sqrt((KL(p‖m) + KL(q‖m)) / 2),  m = (p + q)/2
//
// after normalising p and q to sum to 1, with 0·ln(0/x) = 0. It is the
// square root of the Jensen–Shannon divergence, lies in [0, √ln 2] and is a
// metric. NaN when the lengths differ, a sum is not positive, or a value is
// negative or NaN.
func JensenShannon(p, q []float64) float64 {
	sp, ok1 := total(p)
	sq, ok2 := total(q)
	if !ok1 || !ok2 || len(p) != len(q) {
		return math.NaN()
	}
	var left, right float64
	for i := range p {
		pi, qi := p[i]/sp, q[i]/sq
		m := (pi + qi) / 2
		left += relEntr(pi, m)
		right += relEntr(qi, m)
	}
	// Rounding can leave a tiny negative sum for identical inputs.
	return math.Sqrt(max(left+right, 0) / 2)
}

// relEntr is x·ln(x/y), 0 for x = 0, as scipy.special.rel_entr.
func relEntr(x, y float64) float64 {
	switch {
	case x > 0 && y > 0:
		return x * math.Log(x/y)
	case x == 0 && y >= 0:
		return 0
	}
	return math.Inf(1)
}

// ChiSquare is Pearson's chi-square test of homogeneity of two count
// vectors over the same bins: the test of independence on the 2×k
// contingency table with rows expectedCounts and observedCounts, as
// scipy.stats.chi2_contingency(table, correction=False).
//
//	stat = Σ_ij (O_ij − E_ij)² / E_ij,  E_ij = rowsum_i · colsum_j / total
//
// with dof = k' − 1 for the k' bins that are not empty in both rows (such
// bins carry no information, and scipy rejects the table when they are
// present). The p-value is the chi-square survival function at stat, the
// regularized upper incomplete gamma function Q(dof/2, stat/2). No Yates
// continuity correction is applied, also when dof = 1. With dof = 0 the
// result is 0, 1, 0. NaN, NaN, 0 when the lengths differ, a row sums to 0,
// or a count is negative or NaN.
func ChiSquare(expectedCounts, observedCounts []float64) (stat, pvalue float64, dof int) {
	r0, ok0 := total(expectedCounts)
	r1, ok1 := total(observedCounts)
	if !ok0 || !ok1 || len(expectedCounts) != len(observedCounts) {
		return math.NaN(), math.NaN(), 0
	}
	n := r0 + r1
	k := 0
	var s0, s1 float64
	for j := range expectedCounts {
		o0, o1 := expectedCounts[j], observedCounts[j]
		c := o0 + o1
		if c == 0 {
			continue
		}
		k++
		e0, e1 := r0*c/n, r1*c/n
		s0 += (o0 - e0) * (o0 - e0) / e0
		s1 += (o1 - e1) * (o1 - e1) / e1
	}
	dof = k - 1
	if dof == 0 {
		return 0, 1, 0
	}
	stat = s0 + s1
	return stat, chi2SF(stat, dof), dof
}

// sortedValues returns the non-NaN values of xs, sorted.
func sortedValues(xs []float64) []float64 {
	out := make([]float64, 0, len(xs))
	for _, x := range xs {
		if !math.IsNaN(x) {
			out = append(out, x)
		}
	}
	slices.Sort(out)
	return out
}

// Wasserstein1 is the first Wasserstein (earth mover's) distance between
// the empirical distributions of a and b, as
// scipy.stats.wasserstein_distance(a, b):
//
//	W1 = ∫ |F_a(x) − F_b(x)| dx
//
// with F the empirical CDFs, summed exactly over the merged sample. It is
// in the units of the values. NaN values are ignored; NaN if either sample
// has no other value.
func Wasserstein1(a, b []float64) float64 {
	x, y := sortedValues(a), sortedValues(b)
	if len(x) == 0 || len(y) == 0 {
		return math.NaN()
	}
	all := make([]float64, 0, len(x)+len(y))
	for i, j := 0, 0; i < len(x) || j < len(y); {
		if j >= len(y) || i < len(x) && x[i] <= y[j] {
			all = append(all, x[i])
			i++
		} else {
			all = append(all, y[j])
			j++
		}
	}
	// Between consecutive pooled values v_t <= v_t+1 the CDFs are the
	// fractions of each sample <= v_t.
	nx, ny := float64(len(x)), float64(len(y))
	var sum, comp float64 // Neumaier-compensated sum
	i, j := 0, 0
	for t := 0; t < len(all)-1; t++ {
		v := all[t]
		for i < len(x) && x[i] <= v {
			i++
		}
		for j < len(y) && y[j] <= v {
			j++
		}
		term := math.Abs(float64(i)/nx-float64(j)/ny) * (all[t+1] - v)
		s := sum + term
		if math.Abs(sum) >= math.Abs(term) {
			comp += (sum - s) + term
		} else {
			comp += (term - s) + sum
		}
		sum = s
	}
	return sum + comp
}

// KS is the two-sample Kolmogorov–Smirnov test, two-sided, as
// scipy.stats.ks_2samp(a, b) with its default method='auto'.
//
// The statistic is D = sup_x |F_a(x) − F_b(x)| over the empirical CDFs,
// evaluated at every sample value (ties handled exactly). The p-value is
// exact when neither sample has more than 10,000 values: the probability,
// under the null hypothesis, of a lattice path leaving the band
// |x/n_a − y/n_b| < D (Hodges 1958; computed as in Viehmann 2021, directly
// as the probability of leaving, so small p-values keep their precision);
// then, as in scipy, D is reported as h/lcm(n_a, n_b) with
// h = round(D·lcm). Larger samples use the asymptotic p-value of KSAsymp.
// NaN values are ignored; NaN, NaN if either sample has no other value.
func KS(a, b []float64) (stat, pvalue float64) {
	return ks(a, b, true)
}

// KSAsymp is KS with scipy's method='asymp' p-value: the two-sided
// one-sample Kolmogorov distribution Pr(D_n > D) (scipy.stats.kstwo.sf)
// at n = round(n_a·n_b/(n_a+n_b)), rounding half to even. As in scipy it is
// NaN when that n is 0 (two samples of one value each).
func KSAsymp(a, b []float64) (stat, pvalue float64) {
	return ks(a, b, false)
}

// maxExactKS is the largest sample size for which KS computes the exact
// p-value, scipy's MAX_AUTO_N.
const maxExactKS = 10000

func ks(a, b []float64, auto bool) (float64, float64) {
	x, y := sortedValues(a), sortedValues(b)
	n1, n2 := len(x), len(y)
	if n1 == 0 || n2 == 0 {
		return math.NaN(), math.NaN()
	}
	d := ksStatistic(x, y)
	if auto && max(n1, n2) <= maxExactKS {
		var p float64
		var ok bool
		if d, p, ok = ksExact(n1, n2, d); ok {
			return d, p
		}
	}
	m, n := float64(max(n1, n2)), float64(min(n1, n2))
	en := math.RoundToEven(m * n / (m + n))
	if en == 0 {
		return d, math.NaN()
	}
	return d, clip01(kstwoSF(int(en), d))
}

// ksStatistic is max over the pooled values v of |F_x(v) − F_y(v)|, with the
// fractions computed exactly as scipy does (count/n, then the difference),
// so that the statistic matches to the last bit.
func ksStatistic(x, y []float64) float64 {
	n1, n2 := float64(len(x)), float64(len(y))
	var maxS, minS float64
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		var v float64
		if j >= len(y) || i < len(x) && x[i] <= y[j] {
			v = x[i]
		} else {
			v = y[j]
		}
		for i < len(x) && x[i] == v {
			i++
		}
		for j < len(y) && y[j] == v {
			j++
		}
		diff := float64(i)/n1 - float64(j)/n2
		maxS = max(maxS, diff)
		minS = min(minS, diff)
	}
	lo := min(max(-minS, 0), 1)
	if lo > maxS {
		return lo
	}
	return maxS
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// ksExact is scipy's exact two-sided p-value. ok is false when the
// computation did not give a probability, in which case the caller falls
// back to the asymptotic one (with the rounded statistic, as scipy does).
func ksExact(n1, n2 int, d float64) (float64, float64, bool) {
	g := gcd(n1, n2)
	lcm := (n1 / g) * n2
	h := int(math.RoundToEven(d * float64(lcm)))
	d = float64(h) / float64(lcm)
	if h == 0 {
		return d, 1, true
	}
	var p float64
	if n1 == n2 {
		p = ksOutsideSquare(n1, h)
	} else {
		p = ksOutsideBand(n1, n2, g, h)
	}
	if !(p >= 0 && p <= 1) {
		return d, p, false
	}
	return d, p, true
}

// ksOutsideSquare is Pr(D_{n,n} >= h/n) for two samples of equal size n:
//
//	2 Σ_{k>=1} (−1)^(k−1) C(2n, n−kh) / C(2n, n)
//
// evaluated in nested form 2·r_1(1 − r_2(1 − r_3(…))) with
// r_k = C(2n, n−kh)/C(2n, n−(k−1)h), which avoids the cancellation of the
// alternating sum.
func ksOutsideSquare(n, h int) float64 {
	p := 0.0
	for k := n / h; k >= 0; k-- {
		// r_{k+1}: the ratio of consecutive terms, as a product of h factors.
		r := 1.0
		for j := range h {
			r = float64(n-k*h-j) * r / float64(n+k*h+j+1)
		}
		p = r * (1 - p)
	}
	return 2 * p
}

// ksOutsideBand is the probability that a uniformly random monotone lattice
// path from (0,0) to (m,n) touches or leaves the band |x/m − y/n| < h/lcm,
// i.e. Pr(D_{m,n} >= h/lcm(m,n)). With P(x,y) the probability that a random
// path to (x,y) has left the band, P = 1 outside the band and inside
//
//	P(x,y) = (x·P(x−1,y) + y·P(x,y−1)) / (x+y)
//
// since a random path to (x,y) arrives from (x−1,y) with probability
// x/(x+y). Computing P rather than 1 − P keeps small p-values precise.
func ksOutsideBand(m, n, g, h int) float64 {
	if m < n {
		m, n = n, m
	}
	mg, ng := m/g, n/g
	// In units of 1/lcm, the band is |ng·x − mg·y| < h.
	// Column x holds P(x, y) for y = 0..n; outside the band it is 1.
	col := make([]float64, n+1)
	lo, hi := 0, min((h-1)/mg, n) // band of column 0: mg·y < h
	for y := range col {
		if y > hi {
			col[y] = 1
		}
	}
	for x := 1; x <= m; x++ {
		// mg·y > ng·x − h  and  mg·y < ng·x + h
		newLo := max(floorDiv(ng*x-h, mg)+1, 0)
		newHi := min(floorDiv(ng*x+h-1, mg), n)
		if newLo > newHi {
			return 1
		}
		// Rows below newLo are never read again; rows above the previous
		// band still hold 1.
		lo, hi = newLo, newHi
		prev := 1.0 // P(x, lo−1): outside the band, or unused when lo = 0
		xf := float64(x)
		for y := lo; y <= hi; y++ {
			yf := float64(y)
			col[y] = (col[y]*xf + prev*yf) / (xf + yf)
			prev = col[y]
		}
	}
	return col[n]
}

// floorDiv is ⌊a/b⌋ for b > 0.
func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
