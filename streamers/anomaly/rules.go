package anomaly

import (
	"math"

	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
)

// MADScale turns a median absolute deviation into an estimate of the
// standard deviation of normal data: 1/Φ⁻¹(3/4) ≈ 1.4826.
const MADScale = 1.4826

// MeanADScale turns a mean absolute deviation (from the median) into an
// estimate of the standard deviation of normal data: √(π/2) ≈ 1.253314. It
// is the fallback scale when the MAD is zero.
const MeanADScale = 1.253314

// Z-score methods, as reported in an anomaly's details.
const (
	MethodMAD    = "mad"
	MethodMeanAD = "mean_absolute_deviation"
)

// ZScore is the robust z-score of a value against a window of values.
type ZScore struct {
	Z      float64 // (x − Median) / Scale
	Median float64
	MAD    float64 // median of |v − Median| over the window
	// Scale is MADScale·MAD, or MeanADScale·(mean of |v − Median|) when
	// the MAD is zero (Method says which).
	Scale  float64
	Method string
	N      int // values in the window
}

// RobustZ scores x against window: z = (x − median) / (1.4826·MAD), the
// modified z-score of Iglewicz and Hoaglin. When more than half the window
// holds the same value the MAD is zero; the scale is then 1.253314 times the
// mean absolute deviation from the median. ok is false when the window is
// empty or every value in it is the same (no scale at all). scratch, if
// long enough, is used instead of allocating; window is not modified.
func RobustZ(window []float64, x float64, scratch []float64) (z ZScore, ok bool) {
	n := len(window)
	if n == 0 {
		return ZScore{}, false
	}
	if cap(scratch) < n {
		scratch = make([]float64, n)
	}
	buf := scratch[:n]
	copy(buf, window)
	med := median(buf)
	var sumAbs float64
	for i, v := range window {
		d := math.Abs(v - med)
		buf[i] = d
		sumAbs += d
	}
	mad := median(buf)
	z = ZScore{Median: med, MAD: mad, N: n, Method: MethodMAD, Scale: MADScale * mad}
	if mad == 0 {
		meanAD := sumAbs / float64(n)
		if meanAD == 0 {
			return z, false
		}
		z.Method, z.Scale = MethodMeanAD, MeanADScale*meanAD
	}
	z.Z = (x - med) / z.Scale
	return z, !math.IsInf(z.Z, 0) && !math.IsNaN(z.Z)
}

// median of a (reordered in place); the mean of the two middle values when
// len(a) is even. a must not be empty or hold NaN.
func median(a []float64) float64 {
	n := len(a)
	k := n / 2
	hi := selectK(a, k)
	if n%2 == 1 {
		return hi
	}
	// selectK leaves a[:k] <= a[k]: the lower middle is their maximum.
	lo := a[0]
	for _, v := range a[1:k] {
		lo = max(lo, v)
	}
	return lo + (hi-lo)/2
}

// selectK reorders a so that a[k] is the value a sorted copy would have at
// k, with a[:k] <= a[k] <= a[k+1:] (quickselect, Hoare partition, median of
// three pivots: no randomness, and the answer is unique anyway).
func selectK(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// ResidualStd recovers the standard deviation σ of the fare model's
// validation residuals from a prediction's confidence score, inverting
// inference.Confidence: c = erf(0.2·max(pred, 1) / (σ√2)), so
// σ = 0.2·max(pred, 1) / (√2·erf⁻¹(c)). ok is false when c carries no
// spread: 0 (the model recorded none), 1 (erf saturated: σ is only known to
// be tiny against the band) or not a number.
func ResidualStd(pred, confidence float64) (sigma float64, ok bool) {
	if !(confidence > 0 && confidence < 1) || math.IsNaN(pred) || math.IsInf(pred, 0) {
		return 0, false
	}
	band := inference.Tolerance * math.Max(pred, 1)
	sigma = band / (math.Sqrt2 * math.Erfinv(confidence))
	if !(sigma > 0) || math.IsInf(sigma, 0) {
		return 0, false
	}
	return sigma, true
}

// SpeedMph is the average speed of a trip; ok is false when the duration is
// unknown or not positive.
func SpeedMph(miles float64, seconds *float64) (mph float64, ok bool) {
	if seconds == nil || !(*seconds > 0) {
		return 0, false
	}
	return miles / *seconds * 3600, true
}

// finite maps ±Inf to ±MaxFloat64 so a value can be written as JSON (an
// absurd distance over a tiny duration overflows).
func finite(v float64) float64 {
	switch {
	case math.IsInf(v, 1):
		return math.MaxFloat64
	case math.IsInf(v, -1):
		return -math.MaxFloat64
	}
	return v
}

// haversineKm is the great-circle distance between two points.
func haversineKm(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0088
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}
