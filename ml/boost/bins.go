package boost

import (
	"cmp"
	"math"
	"slices"
	"sort"
)

// bins holds each feature's quantile cuts and the training rows bucketed by
// them, column by column.
//
// As in xgboost's HistogramCuts, cuts[f] are ascending upper bounds: a value
// x is in bin i when cuts[f][i-1] <= x < cuts[f][i], and the last cut lies
// above every training value. A split "left = bins 0..i" is therefore the
// condition x < cuts[f][i], exactly how the model file is evaluated.
type bins struct {
	cuts [][]float32
	// minVal[f] lies below every training value of f; it is the condition
	// of a split that sends only the missing values left.
	minVal []float32
	// bin[row*nf+f] is the row's bin for f, or len(cuts[f]) when the value
	// is missing. Rows are contiguous, as in xgboost's GHistIndexMatrix, so
	// a histogram pass reads memory in order and successive updates of one
	// bin are a row's worth of features apart.
	bin []uint16
	nf  int
	// col[f] is feature f's column of bin, for partitioning rows by one
	// feature without striding through whole rows.
	col [][]uint16
	// off[f] is where feature f's slots start in a histogram; feature f has
	// len(cuts[f]) bins and one slot for missing values.
	off   []int
	slots int
}

type weighted struct {
	v float32
	w float64
}

func newBins(d *Dataset, maxBin int) *bins {
	nf, n := d.NumFeatures, d.Rows()
	b := &bins{
		cuts:   make([][]float32, nf),
		minVal: make([]float32, nf),
		off:    make([]int, nf),
		bin:    make([]uint16, n*nf),
		nf:     nf,
		col:    make([][]uint16, nf),
	}
	vals := make([]weighted, 0, n)
	for f := 0; f < nf; f++ {
		vals = vals[:0]
		for r := 0; r < n; r++ {
			if x := d.X[r*nf+f]; x == x {
				vals = append(vals, weighted{x, float64(d.weight(r))})
			}
		}
		b.cuts[f], b.minVal[f] = quantileCuts(vals, maxBin)
		b.off[f] = b.slots
		b.slots += len(b.cuts[f]) + 1
		cuts := b.cuts[f]
		col := make([]uint16, n)
		for r := 0; r < n; r++ {
			col[r] = uint16(len(cuts))
			if x := d.X[r*nf+f]; x == x {
				col[r] = uint16(binOf(cuts, x))
			}
			b.bin[r*nf+f] = col[r]
		}
		b.col[f] = col
	}
	return b
}

// binOf is the first cut above x (the last bin for values beyond the cuts).
func binOf(cuts []float32, x float32) int {
	i := sort.Search(len(cuts), func(i int) bool { return cuts[i] > x })
	return min(i, len(cuts)-1)
}

// quantileCuts picks at most maxBin bins for the values of one feature.
// With few distinct values every value starts its own bin (cuts are the
// distinct values but the smallest, then a sentinel, as in xgboost);
// otherwise the cuts are the values at ranks k·W/maxBin of the weighted
// sorted sample. The sentinel and the minimum are xgboost's:
// last + (|last| + 1e-5) and min − (|min| + 1e-5), in float32.
func quantileCuts(vals []weighted, maxBin int) (cuts []float32, minVal float32) {
	if len(vals) == 0 {
		return nil, 0
	}
	slices.SortFunc(vals, func(a, b weighted) int { return cmp.Compare(a.v, b.v) })
	// Distinct values with the cumulative weight up to and including each.
	uniq := make([]float32, 0, 64)
	cum := make([]float64, 0, 64)
	var total float64
	for i, v := range vals {
		total += v.w
		if i > 0 && v.v == vals[i-1].v {
			cum[len(cum)-1] = total
			continue
		}
		uniq = append(uniq, v.v)
		cum = append(cum, total)
	}
	lo, hi := uniq[0], uniq[len(uniq)-1]
	minVal = lo - (float32(math.Abs(float64(lo))) + 1e-5)
	if len(uniq) <= maxBin {
		cuts = make([]float32, 0, len(uniq))
		cuts = append(cuts, uniq[1:]...)
	} else {
		cuts = make([]float32, 0, maxBin)
		j := 0
		for k := 1; k < maxBin; k++ {
			target := float64(k) * total / float64(maxBin)
			for j < len(uniq)-1 && cum[j] <= target {
				j++
			}
			if c := uniq[j]; c > lo && (len(cuts) == 0 || c > cuts[len(cuts)-1]) {
				cuts = append(cuts, c)
			}
		}
	}
	cuts = append(cuts, hi+(float32(math.Abs(float64(hi)))+1e-5))
	return cuts, minVal
}

// cond is the split condition of "left = bins 0..leftMax" (leftMax = -1:
// no value goes left, only missing ones).
func (b *bins) cond(f, leftMax int) float32 {
	if leftMax < 0 {
		return b.minVal[f]
	}
	return b.cuts[f][leftMax]
}
