package boost

import (
	"fmt"
	"math"
	"slices"
)

// Dataset is a table of training or validation rows.
type Dataset struct {
	// X holds the rows one after another (row-major), NumFeatures values
	// each; NaN marks a missing value.
	X []float32
	// Y holds one label per row (0 or 1 for binary:logistic).
	Y []float32
	// Weight holds optional row weights (nil = all 1).
	Weight []float32
	// NumFeatures is the length of a row.
	NumFeatures int
	// FeatureNames are optional; the model records them, or xgboost's
	// default names f0, f1, … without them.
	FeatureNames []string
}

// Rows is the number of rows.
func (d *Dataset) Rows() int { return len(d.Y) }

func (d *Dataset) check(objective string) error {
	if d.NumFeatures < 1 {
		return fmt.Errorf("NumFeatures %d is not positive", d.NumFeatures)
	}
	if len(d.Y) == 0 {
		return fmt.Errorf("no rows")
	}
	if len(d.X) != len(d.Y)*d.NumFeatures {
		return fmt.Errorf("X has %d values, want %d rows × %d features", len(d.X), len(d.Y), d.NumFeatures)
	}
	if d.FeatureNames != nil && len(d.FeatureNames) != d.NumFeatures {
		return fmt.Errorf("%d feature names for %d features", len(d.FeatureNames), d.NumFeatures)
	}
	for i, x := range d.X {
		if math.IsInf(float64(x), 0) {
			return fmt.Errorf("row %d feature %d is infinite", i/d.NumFeatures, i%d.NumFeatures)
		}
	}
	for i, y := range d.Y {
		if math.IsNaN(float64(y)) || math.IsInf(float64(y), 0) {
			return fmt.Errorf("label of row %d is %v", i, y)
		}
		if objective == BinaryLogistic && (y < 0 || y > 1) {
			return fmt.Errorf("label of row %d is %v, not in [0, 1]", i, y)
		}
	}
	if d.Weight != nil {
		if len(d.Weight) != len(d.Y) {
			return fmt.Errorf("%d weights for %d rows", len(d.Weight), len(d.Y))
		}
		var sum float64
		for i, w := range d.Weight {
			if !(w >= 0) || math.IsInf(float64(w), 0) {
				return fmt.Errorf("weight of row %d is %v", i, w)
			}
			sum += float64(w)
		}
		if sum <= 0 {
			return fmt.Errorf("weights sum to zero")
		}
	}
	return nil
}

func (d *Dataset) weight(i int) float32 {
	if d.Weight == nil {
		return 1
	}
	return d.Weight[i]
}

// featureNames returns the dataset's names, or xgboost's default names
// f0, f1, … so that the model always records its number of features.
func (d *Dataset) featureNames() []string {
	if d.FeatureNames != nil {
		return slices.Clone(d.FeatureNames)
	}
	names := make([]string, d.NumFeatures)
	for i := range names {
		names[i] = fmt.Sprintf("f%d", i)
	}
	return names
}
