package drift

import "math"

// This file holds the distribution functions behind the p-values: the
// chi-square survival function (regularized upper incomplete gamma) and the
// two-sided one-sample Kolmogorov–Smirnov distribution, which scipy's
// ks_2samp uses for its asymptotic two-sample p-value.

// chi2SF is the chi-square survival function Pr(X > x) for k degrees of
// freedom: Q(k/2, x/2).
func chi2SF(x float64, k int) float64 {
	switch {
	case math.IsNaN(x) || k <= 0:
		return math.NaN()
	case x <= 0:
		return 1
	}
	return gammaQ(float64(k)/2, x/2)
}

// gammaQ is the regularized upper incomplete gamma function
// Q(a, x) = Γ(a, x)/Γ(a): by its power series (as 1 − P) below x = a+1,
// where that converges fast, and by its continued fraction above, where it
// does and where Q is small and must keep its relative precision.
func gammaQ(a, x float64) float64 {
	switch {
	case math.IsNaN(a) || math.IsNaN(x) || a <= 0 || x < 0:
		return math.NaN()
	case x == 0:
		return 1
	case math.IsInf(x, 1):
		return 0
	}
	if x < a+1 {
		return 1 - gammaPSeries(a, x)
	}
	return gammaQFraction(a, x)
}

// logGammaPrefix is log(x^a e^-x / Γ(a)).
func logGammaPrefix(a, x float64) float64 {
	lg, _ := math.Lgamma(a)
	return a*math.Log(x) - x - lg
}

func gammaPSeries(a, x float64) float64 {
	// P(a, x) = x^a e^-x / Γ(a+1) · Σ_n x^n / ((a+1)…(a+n))
	sum, term := 1.0, 1.0
	for n := 1; n < 100000; n++ {
		term *= x / (a + float64(n))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return math.Exp(logGammaPrefix(a, x)-math.Log(a)) * sum
}

func gammaQFraction(a, x float64) float64 {
	// Q(a, x) = x^a e^-x / Γ(a) · 1/(x+1-a- 1(1-a)/(x+3-a- 2(2-a)/(x+5-a- …)))
	// evaluated by the modified Lentz method.
	const tiny = 1e-300
	b := x + 1 - a
	c := 1 / tiny
	d := 1 / b
	f := d
	for i := 1; i < 100000; i++ {
		an := -float64(i) * (float64(i) - a)
		b += 2
		d = an*d + b
		if math.Abs(d) < tiny {
			d = tiny
		}
		c = b + an/c
		if math.Abs(c) < tiny {
			c = tiny
		}
		d = 1 / d
		delta := d * c
		f *= delta
		if math.Abs(delta-1) < 1e-16 {
			break
		}
	}
	return math.Exp(logGammaPrefix(a, x)) * f
}

// kstwoSF is Pr(D_n > d) for the two-sided one-sample Kolmogorov–Smirnov
// statistic D_n, as scipy.stats.kstwo.sf(d, n). It follows the method
// selection of Simard and L'Ecuyer (2011) that scipy implements: exact
// closed forms near the ends of the support, the Durbin matrix (Marsaglia,
// Tsang and Wang 2003) or Pomeranz's recursion for small n·d², the Pelz–Good
// expansion for large n, and twice the one-sided Smirnov probability in the
// upper tail.
func kstwoSF(n int, d float64) float64 {
	switch {
	case n <= 0 || math.IsNaN(d):
		return math.NaN()
	case d <= 0.5/float64(n):
		return 1
	case d >= 1:
		return 0
	}
	nf := float64(n)
	t := nf * d
	if t <= 1 {
		// Ruben and Gambino: Pr(D_n <= d) = n!/n^n (2t-1)^n for 1/2n <= d <= 1/n.
		var p float64
		if n <= 140 {
			p = 1
			for i := 1; i <= n; i++ {
				p *= float64(i) * (1 / nf) * (2*t - 1)
			}
		} else {
			p = math.Exp(logFactorialOverPower(n) + nf*math.Log(2*t-1))
		}
		return clip01(1 - p)
	}
	if t >= nf-1 {
		return clip01(2 * math.Pow(1-d, nf))
	}
	if d >= 0.5 {
		return clip01(2 * smirnovSF(n, d))
	}
	nd2 := t * d
	if n <= 140 {
		switch {
		case nd2 <= 0.754693:
			return clip01(1 - durbinCDF(n, d))
		case nd2 <= 4:
			return clip01(1 - pomeranzCDF(n, d))
		}
		return clip01(2 * smirnovSF(n, d))
	}
	switch {
	case nd2 >= 370:
		return 0
	case nd2 >= 2.2:
		return clip01(2 * smirnovSF(n, d))
	}
	var cdf float64
	if n <= 100000 && nf*math.Pow(d, 1.5) <= 1.4 {
		cdf = durbinCDF(n, d)
	} else {
		cdf = pelzGoodCDF(n, d)
	}
	return clip01(1 - cdf)
}

func clip01(p float64) float64 { return min(max(p, 0), 1) }

// logFactorialOverPower is log(n!/n^n) by Stirling's series, with n·log n
// removed analytically to avoid cancellation.
func logFactorialOverPower(n int) float64 {
	// Stirling coefficients B_2j/(2j(2j-1)), j = 8…1, for Horner in 1/n².
	coeffs := [...]float64{
		-2.955065359477124183e-2, 6.4102564102564102564e-3,
		-1.9175269175269175269e-3, 8.4175084175084175084e-4,
		-5.952380952380952381e-4, 7.9365079365079365079e-4,
		-2.7777777777777777778e-3, 8.3333333333333333333e-2,
	}
	nf := float64(n)
	rn := 1 / nf
	x := rn / nf
	poly := 0.0
	for _, c := range coeffs {
		poly = poly*x + c
	}
	return math.Log(nf)/2 - nf + math.Log(2*math.Pi)/2 + rn*poly
}

// Scaling used to keep the Durbin and Pomeranz computations in range.
const (
	exp128  = 128
	pow128  = 0x1p128
	pow128m = 0x1p-128
)

// durbinCDF is Pr(D_n <= d) by the Durbin matrix method: with
// d = (k - h)/n, k a positive integer and 0 <= h < 1, it is n!/n^n times the
// (k,k) element of H^n for an explicit (2k-1)×(2k-1) matrix H.
func durbinCDF(n int, d float64) float64 {
	if d >= 1 {
		return 1
	}
	nd := float64(n) * d
	if nd <= 0.5 {
		return 0
	}
	k := int(math.Ceil(nd))
	h := float64(k) - nd
	m := 2*k - 1

	// v holds (1 - h^(j+1))/(j+1)!, the first column of H (and, reversed,
	// its last row); w holds 1/j!.
	v := make([]float64, m)
	w := make([]float64, m)
	fac := 1.0
	for j := 1; j <= m; j++ {
		w[j-1] = fac
		fac /= float64(j)
		v[j-1] = (1 - math.Pow(h, float64(j))) * fac
	}
	tt := math.Pow(max(2*h-1, 0), float64(m)) - 2*math.Pow(h, float64(m))
	v[m-1] = (1 + tt) * fac

	H := newMatrix(m)
	for i := 1; i < m; i++ {
		for r := i - 1; r < m; r++ {
			H.set(r, i, w[r-i+1])
		}
	}
	for r := range m {
		H.set(r, 0, v[r])
	}
	for c := range m {
		H.set(m-1, c, v[m-1-c])
	}

	// H^n by squaring, with power-of-two scaling tracked in exponents.
	P := identity(m)
	expP, expH := 0, 0
	tmp := newMatrix(m)
	for nn := n; nn > 0; nn /= 2 {
		if nn%2 == 1 {
			P.mul(P, H, tmp)
			P, tmp = tmp, P
			expP += expH
		}
		H.mul(H, H, tmp)
		H, tmp = tmp, H
		expH *= 2
		if math.Abs(H.at(k-1, k-1)) > pow128 {
			H.scale(pow128m)
			expH += exp128
		}
	}
	p := P.at(k-1, k-1)
	// Times n!/n^n.
	for i := 1; i <= n; i++ {
		p = float64(i) * p / float64(n)
		if math.Abs(p) < pow128m {
			p *= pow128
			expP -= exp128
		}
	}
	return clip01(math.Ldexp(p, expP))
}

type matrix struct {
	n int
	a []float64
}

func newMatrix(n int) matrix { return matrix{n, make([]float64, n*n)} }

func identity(n int) matrix {
	m := newMatrix(n)
	for i := range n {
		m.set(i, i, 1)
	}
	return m
}

func (m matrix) at(r, c int) float64     { return m.a[r*m.n+c] }
func (m matrix) set(r, c int, v float64) { m.a[r*m.n+c] = v }

func (m matrix) scale(f float64) {
	for i := range m.a {
		m.a[i] *= f
	}
}

// mul writes x·y into dst, which must be distinct from both.
func (matrix) mul(x, y, dst matrix) {
	n := x.n
	for r := range n {
		row := dst.a[r*n : (r+1)*n]
		clear(row)
		for k := range n {
			xv := x.a[r*n+k]
			if xv == 0 {
				continue
			}
			yr := y.a[k*n : (k+1)*n]
			for c := range n {
				row[c] += xv * yr[c]
			}
		}
	}
}

// pomeranzCDF is Pr(D_n <= d) by Pomeranz's recursion (1974): 2n+1 steps,
// each a convolution of a band of the previous row with Poisson-like
// weights, of which only three kinds occur.
func pomeranzCDF(n int, d float64) float64 {
	t := float64(n) * d
	ll := int(math.Floor(t))
	f := t - float64(ll)
	g := min(f, 1-f)
	ceilf, roundf := 0, 0
	if f > 0 {
		ceilf = 1
	}
	if f > 0.5 {
		roundf = 1
	}
	npwrs := 2 * (ll + 1)
	// (g/n)^m/m!, (2g/n)^m/m!, ((1-2g)/n)^m/m!
	gp := make([]float64, npwrs)
	g2p := make([]float64, npwrs)
	g12p := make([]float64, npwrs)
	gp[0], g2p[0], g12p[0] = 1, 1, 1
	nf := float64(n)
	for m := 1; m < npwrs; m++ {
		gp[m] = gp[m-1] * (g / nf) / float64(m)
		g2p[m] = g2p[m-1] * (2 * g / nf) / float64(m)
		g12p[m] = g12p[m-1] * ((1 - 2*g) / nf) / float64(m)
	}

	band := func(i int) (int, int) {
		var j1, j2 int
		if i == 0 {
			j1, j2 = -ll-ceilf-1, ll+ceilf-1
		} else {
			half, odd := (i+1)/2, (i+1)%2
			switch {
			case odd == 0 && half == n+1:
				j1, j2 = n-ll-ceilf-1, n+ll+ceilf-1
			case odd == 0:
				j1, j2 = half-1-ll-roundf-1, half+ll-1+ceilf-1
			default:
				j1, j2 = half-1-ll-1, half+ll+roundf-1
			}
		}
		return max(j1+2, 0), min(j2, n)
	}

	// Two rows, each stored from its own start index.
	v0 := make([]float64, npwrs)
	v1 := make([]float64, npwrs)
	v1[0] = 1
	s0, s1 := 0, 0
	expnt := 0
	j1, _ := band(0)
	conv := make([]float64, 2*npwrs)
	for i := 1; i < 2*n+2; i++ {
		k1 := j1
		v0, v1 = v1, v0
		s0, s1 = s1, s0
		clear(v1)
		var j2 int
		j1, j2 = band(i)
		pw := g12p
		switch {
		case i == 1 || i == 2*n+1:
			pw = gp
		case i%2 == 1:
			pw = g2p
		}
		ln2 := j2 - k1 + 1
		if ln2 <= 0 {
			continue
		}
		// Full convolution of v0[k1-s0 : k1-s0+ln2] with pw[:ln2], both
		// cut at their ends as numpy slices are.
		lo := k1 - s0
		src := v0[lo:min(lo+ln2, len(v0))]
		ws := pw[:min(ln2, len(pw))]
		c := conv[:len(src)+len(ws)-1]
		clear(c)
		for a, x := range src {
			for b, y := range ws {
				c[a+b] += x * y
			}
		}
		start, count := j1-k1, j2-j1+1
		copy(v1[:count], c[start:min(start+count, len(c))])
		if mx := maxOf(v1); mx > 0 && mx < pow128m {
			for j := range v1 {
				v1[j] *= pow128
			}
			expnt -= exp128
		}
		s1 = s0 + j1 - k1
	}
	ans := v1[n-s1]
	for m := 1; m <= n; m++ {
		if math.Abs(ans) > pow128 {
			ans *= pow128m
			expnt += exp128
		}
		ans *= float64(m)
	}
	return clip01(math.Ldexp(ans, expnt))
}

func maxOf(xs []float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = max(m, x)
	}
	return m
}

// pelzGoodCDF is the Pelz–Good (1976) approximation of Pr(D_n <= d): the
// Li-Chien/Korolyuk expansion K0 + K1/√n + K2/n + K3/n^1.5 in z = d√n,
// rewritten with Jacobi theta identities so it converges for small z.
func pelzGoodCDF(n int, d float64) float64 {
	if d <= 0 {
		return 0
	}
	if d >= 1 {
		return 1
	}
	pi := math.Pi
	pi2, pi4, pi6 := pi*pi, math.Pow(pi, 4), math.Pow(pi, 6)
	sqrt2pi := math.Sqrt(2 * math.Pi)
	nf := float64(n)
	z := math.Sqrt(nf) * d
	z2, z3, z4, z6 := z*z, z*z*z, z*z*z*z, math.Pow(z, 6)

	qlog := -pi2 / 8 / z2
	if qlog < -708 {
		return 0
	}
	q := math.Exp(qlog)

	k1a, k1b := -z2, pi2/4
	k2a := 6*z6 + 2*z4
	k2b := (2*z4 - 5*z2) * pi2 / 4
	k2c := pi4 * (1 - 2*z2) / 16
	k3d := pi6 * (5 - 30*z2) / 64
	k3c := pi4 * (-60*z2 + 212*z4) / 16
	k3b := pi2 * (135*z4 - 96*z6) / 4
	k3a := -30*z6 - 90*math.Pow(z, 8)

	// Σ c_k q^((2k-1)²) by Horner from the largest k: successive exponents
	// differ by 8k.
	var K [4]float64
	maxk := int(math.Ceil(16 * z / math.Pi))
	for k := maxk; k >= 1; k-- {
		m := float64(2*k - 1)
		m2 := m * m
		m4, m6 := m2*m2, m2*m2*m2
		qp := math.Pow(q, float64(8*k))
		c := [4]float64{
			1,
			k1a + k1b*m2,
			k2a + k2b*m2 + k2c*m4,
			k3a + k3b*m2 + k3c*m4 + k3d*m6,
		}
		for i := range K {
			K[i] = K[i]*qp + c[i]
		}
	}
	div := [4]float64{z, 6 * z4, 72 * math.Pow(z, 7), 6480 * math.Pow(z, 10)}
	for i := range K {
		K[i] = K[i] * q * sqrt2pi / div[i]
	}
	// The sums over all integers k in K2 and K3.
	q = math.Exp(-pi2 / 2 / z2)
	var e2, e3 float64
	sqrt3z := math.Sqrt(3) * z
	for k := maxk; k >= 1; k-- {
		kf := float64(k)
		k2 := kf * kf
		qp := math.Pow(q, k2)
		e2 += k2 * qp
		kpi := math.Pi * kf
		e3 += (sqrt3z + kpi) * (sqrt3z - kpi) * k2 * qp
	}
	K[2] += e2 * (pi2 * sqrt2pi / (-36 * z3))
	K[3] += e3 * (pi2 * sqrt2pi / (216 * z6))
	sum := 0.0
	for i := range K {
		sum += K[i] / math.Pow(nf, float64(i)/2)
	}
	return sum
}

// smirnovSF is Pr(D+_n >= d) for the one-sided statistic, by the
// Birnbaum–Tingey (Smirnov) sum
//
//	d · Σ_{v=0}^{⌊n(1-d)⌋} C(n,v) (d + v/n)^(v-1) (1 - d - v/n)^(n-v)
//
// whose terms are all positive, evaluated in logarithms. Like scipy, it uses
// closed forms at the ends of the support and, above n = 10⁶, the
// approximation exp(-(6nd+1)²/18n).
func smirnovSF(n int, d float64) float64 {
	switch {
	case math.IsNaN(d) || n <= 0 || d < 0 || d > 1:
		return math.NaN()
	case n == 1:
		return 1 - d
	case d == 0:
		return 1
	case d == 1:
		return 0
	}
	nf := float64(n)
	nxfl, alpha := floorProduct(nf, d)
	if nxfl == 0 || nxfl == 1 && alpha == 0 {
		// d <= 1/n: Pr(D+ < d) = d (1+d)^(n-1).
		return 1 - d*math.Pow(1+d, nf-1)
	}
	if -2*nf*d*d < minLog {
		return 0
	}
	if nxfl >= n-1 {
		return math.Pow(1-d, nf)
	}
	if n > 1000000 {
		logp := -math.Pow(6*nf*d+1, 2) / 18 / nf
		if logp < -math.Ln2 {
			return math.Exp(logp)
		}
		return 1 + math.Expm1(logp)
	}
	// v runs to ⌊n(1-d)⌋, excluding n(1-d) itself, whose term is 0.
	last := n - nxfl - 1
	// The logarithms of the terms are differences of numbers up to about
	// v·log n; log C(n, v) is accumulated in double-double so that the
	// terms keep about 12 significant digits even for n near 10⁶.
	var logC, logCLo float64
	sum, peak := 0.0, 0.0
	for v := 0; v <= last; v++ {
		vf := float64(v)
		if v > 0 {
			logC, logCLo = twoSum(logC, logCLo, math.Log((nf-vf+1)/vf))
		}
		u := d + vf/nf
		lt := ((logC + (vf-1)*math.Log(u)) + (nf-vf)*math.Log1p(-u)) + logCLo
		term := math.Exp(lt)
		sum += term
		peak = max(peak, term)
		// Past the peak the terms only shrink.
		if term < peak && term < 1e-20*sum {
			break
		}
	}
	return clip01(d * sum)
}

// twoSum adds x to the double-double hi+lo.
func twoSum(hi, lo, x float64) (float64, float64) {
	s := hi + x
	b := s - hi
	return s, lo + ((hi - (s - b)) + (x - b))
}

// minLog is the log of the smallest normal float64, below which scipy
// reports a zero survival probability.
const minLog = -708.3964185322641

// floorProduct returns ⌊n·d⌋ and the fractional part of n·d, computed
// exactly (the product's rounding error is recovered with a fused
// multiply-add), so that d = k/n gives exactly k and 0.
func floorProduct(n, d float64) (int, float64) {
	p := n * d
	e := math.FMA(n, d, -p) // n·d = p + e exactly
	fl := math.Floor(p)
	frac := (p - fl) + e
	switch {
	case frac < 0:
		fl--
		frac++
	case frac >= 1:
		fl++
		frac--
	}
	return int(fl), frac
}
