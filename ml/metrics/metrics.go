// Package metrics computes model quality measures the way scikit-learn does,
// so numbers reported by taxi-mlops can be compared with Python notebooks:
// RMSE, MAE, MAPE for regression; log loss, ROC AUC, accuracy and
// calibration for binary classifiers.
//
// Labels and predictions are slices of equal length (a mismatch panics, as
// it is a caller bug). Functions return NaN when there is nothing to
// measure, e.g. for empty input. Binary labels are positive when > 0.5.
package metrics

import (
	"fmt"
	"math"
	"slices"
)

// Float is the element type of labels and predictions.
type Float interface {
	~float32 | ~float64
}

func check(n, m int) {
	if n != m {
		panic(fmt.Sprintf("metrics: %d labels but %d predictions", n, m))
	}
}

// RMSE is the root mean squared error.
func RMSE[Y, P Float](y []Y, pred []P) float64 {
	check(len(y), len(pred))
	if len(y) == 0 {
		return math.NaN()
	}
	var s float64
	for i := range y {
		d := float64(y[i]) - float64(pred[i])
		s += d * d
	}
	return math.Sqrt(s / float64(len(y)))
}

// MAE is the mean absolute error.
func MAE[Y, P Float](y []Y, pred []P) float64 {
	check(len(y), len(pred))
	if len(y) == 0 {
		return math.NaN()
	}
	var s float64
	for i := range y {
		s += math.Abs(float64(y[i]) - float64(pred[i]))
	}
	return s / float64(len(y))
}

// MAPE is the mean absolute percentage error |y − pred| / |y| as a fraction
// (0.1 = 10%), over the rows whose label is not zero: a zero label has no
// relative error, and scikit-learn's division by machine epsilon would make
// one such row dominate. used is the number of rows counted; MAPE is NaN
// when it is 0.
func MAPE[Y, P Float](y []Y, pred []P) (mape float64, used int) {
	check(len(y), len(pred))
	var s float64
	for i := range y {
		if y[i] == 0 {
			continue
		}
		s += math.Abs(float64(y[i])-float64(pred[i])) / math.Abs(float64(y[i]))
		used++
	}
	if used == 0 {
		return math.NaN(), 0
	}
	return s / float64(used), used
}

// LogLossEps clips probabilities to [eps, 1−eps] before taking logs, as
// scikit-learn's log_loss(eps=1e-15) does, so a confident wrong prediction
// costs about 34.5 rather than infinity.
const LogLossEps = 1e-15

// LogLoss is the mean binary cross-entropy of probabilities p for labels y
// in [0, 1] (soft labels are allowed).
func LogLoss[Y, P Float](y []Y, p []P) float64 {
	check(len(y), len(p))
	if len(y) == 0 {
		return math.NaN()
	}
	var s float64
	for i := range y {
		q := min(max(float64(p[i]), LogLossEps), 1-LogLossEps)
		t := float64(y[i])
		// xlogy: a zero weight contributes nothing.
		if t != 0 {
			s -= t * math.Log(q)
		}
		if t != 1 {
			s -= (1 - t) * math.Log(1-q)
		}
	}
	return s / float64(len(y))
}

// AUC is the area under the ROC curve of scores for labels y. Tied scores
// form one step of the curve (a diagonal segment), as in scikit-learn's
// roc_auc_score, which equals counting a tied positive/negative pair as
// half right. AUC is NaN when only one class is present or a score is NaN.
func AUC[Y, P Float](y []Y, score []P) float64 {
	check(len(y), len(score))
	idx := make([]int, len(y))
	for i := range idx {
		if math.IsNaN(float64(score[i])) {
			return math.NaN()
		}
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		// Descending score.
		sa, sb := float64(score[a]), float64(score[b])
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	var tp, fp, area float64
	for i := 0; i < len(idx); {
		s := score[idx[i]]
		var pos, neg float64
		for ; i < len(idx) && score[idx[i]] == s; i++ {
			if y[idx[i]] > 0.5 {
				pos++
			} else {
				neg++
			}
		}
		area += neg * (2*tp + pos) / 2 // trapezoid from (fp, tp) to (fp+neg, tp+pos)
		tp += pos
		fp += neg
	}
	if tp == 0 || fp == 0 {
		return math.NaN()
	}
	return area / (tp * fp)
}

// Accuracy is the share of rows whose predicted class (positive when
// p > 0.5, as xgboost's "error" metric decides) equals the label's.
func Accuracy[Y, P Float](y []Y, p []P) float64 {
	check(len(y), len(p))
	if len(y) == 0 {
		return math.NaN()
	}
	right := 0
	for i := range y {
		if (y[i] > 0.5) == (p[i] > 0.5) {
			right++
		}
	}
	return float64(right) / float64(len(y))
}

// Bin is one bin of a calibration table.
type Bin struct {
	// Lo and Hi bound the predicted probabilities of the bin: (Lo, Hi], the
	// first bin also holds Lo = 0.
	Lo, Hi float64
	// Count is the number of rows in the bin; MeanPred and FracPos are 0
	// when it is 0.
	Count int
	// MeanPred is the mean predicted probability, FracPos the share of
	// positive labels.
	MeanPred, FracPos float64
}

// Calibration splits [0, 1] into bins equal-width bins of predicted
// probability and returns the table and the expected calibration error,
// ECE = Σ count/N · |FracPos − MeanPred|. Bins and their edges (i/bins,
// computed as numpy.linspace does) match scikit-learn's
// calibration_curve(strategy="uniform"), whose non-empty bins are the
// non-empty rows of the table. Probabilities outside [0, 1] count in the
// first or last bin. ECE is NaN for empty input; Calibration panics if bins
// < 1.
func Calibration[Y, P Float](y []Y, p []P, bins int) (ece float64, table []Bin) {
	check(len(y), len(p))
	if bins < 1 {
		panic(fmt.Sprintf("metrics: %d calibration bins", bins))
	}
	step := 1 / float64(bins)
	table = make([]Bin, bins)
	for b := range table {
		table[b].Lo = float64(b) * step
		table[b].Hi = float64(b+1) * step
	}
	table[bins-1].Hi = 1
	sumPred := make([]float64, bins)
	pos := make([]float64, bins)
	for i := range p {
		v := float64(p[i])
		// Number of inner edges strictly below v (numpy.searchsorted, left).
		b, _ := slices.BinarySearchFunc(table[1:], v, func(e Bin, v float64) int {
			if e.Lo < v {
				return -1
			}
			return 1
		})
		table[b].Count++
		sumPred[b] += v
		if y[i] > 0.5 {
			pos[b]++
		}
	}
	if len(p) == 0 {
		return math.NaN(), table
	}
	for b := range table {
		if c := float64(table[b].Count); c > 0 {
			table[b].MeanPred = sumPred[b] / c
			table[b].FracPos = pos[b] / c
			ece += c / float64(len(p)) * math.Abs(table[b].FracPos-table[b].MeanPred)
		}
	}
	return ece, table
}
