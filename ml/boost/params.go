// Package boost trains gradient boosted trees the way xgboost's
// tree_method=hist does and returns them as xgb models, which xgboost itself
// can load.
//
// Features are bucketed into at most MaxBin quantile bins; trees grow depth
// by depth from gradient/hessian histograms; each split learns where missing
// values go. Training is deterministic for a given Seed (and independent of
// the number of CPUs).
package boost

import (
	"errors"
	"fmt"
	"math"

	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
)

// Supported objectives.
const (
	SquaredError   = xgb.ObjSquaredError
	BinaryLogistic = xgb.ObjBinaryLogistic
)

// MaxDepthLimit bounds Params.MaxDepth.
const MaxDepthLimit = 24

// Params are the training parameters, named and defined as in xgboost.
type Params struct {
	// Objective is "reg:squarederror" or "binary:logistic".
	Objective string
	// NumRounds is the number of boosting rounds (trees).
	NumRounds int
	// MaxDepth is the depth of each tree, 1..MaxDepthLimit.
	MaxDepth int
	// Eta shrinks each tree's leaf values (learning rate), in (0, 1].
	Eta float64
	// MinChildWeight is the least hessian sum a child must have.
	MinChildWeight float64
	// Lambda (L2) and Alpha (L1) regularise leaf weights.
	Lambda, Alpha float64
	// Gamma is the least loss reduction a split must bring (min_split_loss),
	// compared, as in xgboost, with G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)
	// without the factor ½ of the objective.
	Gamma float64
	// Subsample is the share of rows drawn (without replacement, each row
	// independently) for each tree, in (0, 1].
	Subsample float64
	// ColsampleByTree is the share of features drawn for each tree, in (0, 1].
	ColsampleByTree float64
	// MaxBin is the most histogram bins per feature, 2..65535.
	MaxBin int
	// EarlyStoppingRounds stops training when the validation loss has not
	// improved for that many rounds (0 = never); it needs a validation set.
	EarlyStoppingRounds int
	// Seed drives row and feature sampling.
	Seed uint64
	// BaseScore is the initial prediction (a probability for
	// binary:logistic). 0 means: the (weighted) mean label for
	// reg:squarederror, which is what xgboost 2.x estimates, and 0.5 for
	// binary:logistic. xgboost 1.7 itself starts both objectives at 0.5
	// (its boost_from_average only acts for reg:absoluteerror).
	BaseScore float64
}

// DefaultParams returns the parameters taxi-mlops trains with: xgboost's
// hist defaults (max_depth 6, min_child_weight 1, lambda 1, alpha 0, gamma 0,
// subsample 1, colsample_bytree 1, max_bin 256) with 100 rounds at eta 0.1
// instead of xgboost's 10 rounds at eta 0.3.
func DefaultParams(objective string) Params {
	return Params{
		Objective:       objective,
		NumRounds:       100,
		MaxDepth:        6,
		Eta:             0.1,
		MinChildWeight:  1,
		Lambda:          1,
		Subsample:       1,
		ColsampleByTree: 1,
		MaxBin:          256,
	}
}

// Validate reports every parameter that is out of range.
func (p Params) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("boost params: "+format, args...))
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch p.Objective {
	case SquaredError, BinaryLogistic:
	default:
		bad("objective %q is not supported (want %q or %q)", p.Objective, SquaredError, BinaryLogistic)
	}
	if p.NumRounds < 1 {
		bad("NumRounds %d is not positive", p.NumRounds)
	}
	if p.MaxDepth < 1 || p.MaxDepth > MaxDepthLimit {
		bad("MaxDepth %d is not in [1, %d]", p.MaxDepth, MaxDepthLimit)
	}
	if !(p.Eta > 0 && p.Eta <= 1) {
		bad("Eta %v is not in (0, 1]", p.Eta)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"MinChildWeight", p.MinChildWeight}, {"Lambda", p.Lambda}, {"Alpha", p.Alpha}, {"Gamma", p.Gamma}} {
		if !(f.v >= 0) || !finite(f.v) {
			bad("%s %v is not a finite number ≥ 0", f.name, f.v)
		}
	}
	if !(p.Subsample > 0 && p.Subsample <= 1) {
		bad("Subsample %v is not in (0, 1]", p.Subsample)
	}
	if !(p.ColsampleByTree > 0 && p.ColsampleByTree <= 1) {
		bad("ColsampleByTree %v is not in (0, 1]", p.ColsampleByTree)
	}
	if p.MaxBin < 2 || p.MaxBin > math.MaxUint16 {
		bad("MaxBin %d is not in [2, %d]", p.MaxBin, math.MaxUint16)
	}
	if p.EarlyStoppingRounds < 0 {
		bad("EarlyStoppingRounds %d is negative", p.EarlyStoppingRounds)
	}
	if !finite(p.BaseScore) || math.Abs(p.BaseScore) > math.MaxFloat32 {
		bad("BaseScore %v is not a finite float32", p.BaseScore)
	} else if p.Objective == BinaryLogistic && p.BaseScore != 0 && !(p.BaseScore > 0 && p.BaseScore < 1) {
		bad("BaseScore %v of binary:logistic is not a probability in (0, 1)", p.BaseScore)
	}
	return errors.Join(errs...)
}
