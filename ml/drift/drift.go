// Package drift measures how far live feature values have moved from the
// values a model was trained on.
//
// A Profile is a compact summary of the reference (training) data, small
// enough to store as JSON next to a model: per feature, fixed bins and the
// reference counts in them. A Window counts live rows into the same bins
// without allocating; PSI, Jensen–Shannon distance and the chi-square test
// then compare the window's counts with the profile's. Profile.Merge,
// Profile.Observe and Profile.Decay refresh a profile from a stream.
//
// The statistics on raw samples (KS, Wasserstein1) and on counts (PSI,
// JensenShannon, ChiSquare) are exported on their own; each is documented
// with its exact definition and the scipy function it agrees with. The
// package is pure: no I/O, no state outside its values.
package drift

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
)

// Kind says how a feature's values are binned.
type Kind string

const (
	// Numeric values are ordered quantities, binned by quantile cut points.
	Numeric Kind = "numeric"
	// Categorical values are codes (an area number, a vocabulary index),
	// binned by value.
	Categorical Kind = "categorical"
)

// DefaultBins is the number of quantile bins of a numeric feature when
// NewProfile is given bins <= 0.
const DefaultBins = 10

// MaxCategories bounds the categories of a categorical feature; rarer codes
// share the "other" bin.
const MaxCategories = 30

// Profile is the reference distribution of a model's input features.
type Profile struct {
	Features []FeatureProfile `json:"features"`
}

// FeatureProfile is one feature's bins and reference counts.
//
// Numeric: value bin i (0 <= i <= len(Edges)) holds Edges[i-1] < x <=
// Edges[i], with Edges[-1] = −∞ and Edges[len(Edges)] = +∞.
//
// Categorical: bin i < len(Categories) holds x == Categories[i]; bin
// len(Categories) holds every other value ("other").
//
// In both, the last bin counts missing values (NaN). So len(Counts) is
// len(Edges)+2 or len(Categories)+2.
type FeatureProfile struct {
	Name string `json:"name"`
	Kind Kind   `json:"kind"`
	// Edges are the ascending, distinct, finite interior cut points of a
	// numeric feature: for i = 1…bins−1 the reference quantile at i/bins by
	// the inverted empirical CDF (Hyndman–Fan type 1, numpy's
	// method='inverted_cdf'): the k-th smallest non-NaN value with
	// k = ⌈n·i/bins⌉. With ties, fewer than bins−1 remain.
	Edges []float64 `json:"edges,omitempty"`
	// Categories are the most frequent non-NaN codes of a categorical
	// feature, most frequent first (ties by code), at most MaxCategories.
	Categories []float64 `json:"categories,omitempty"`
	// Counts per bin; the last bin is missing values.
	Counts []float64 `json:"counts"`
	// N is the number of rows counted: the sum of Counts.
	N float64 `json:"n"`
}

// Bin returns the index in Counts of a value.
func (f *FeatureProfile) Bin(x float64) int {
	if f.Kind == Categorical {
		if math.IsNaN(x) {
			return len(f.Categories) + 1
		}
		for i, c := range f.Categories {
			if x == c {
				return i
			}
		}
		return len(f.Categories)
	}
	if math.IsNaN(x) {
		return len(f.Edges) + 1
	}
	// The first edge >= x: bin i holds Edges[i-1] < x <= Edges[i].
	lo, hi := 0, len(f.Edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if f.Edges[m] < x {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// PSI is the population stability index of counts (over this feature's
// bins) against the reference counts.
func (f *FeatureProfile) PSI(counts []float64) float64 { return PSI(f.Counts, counts) }

// JensenShannon is the Jensen–Shannon distance of counts from the
// reference counts.
func (f *FeatureProfile) JensenShannon(counts []float64) float64 {
	return JensenShannon(f.Counts, counts)
}

// ChiSquare tests counts against the reference counts for homogeneity.
func (f *FeatureProfile) ChiSquare(counts []float64) (stat, pvalue float64, dof int) {
	return ChiSquare(f.Counts, counts)
}

// NewProfile builds a profile from reference rows. X holds the rows
// row-major, numFeatures values each, NaN for missing; names and kinds
// describe the columns. bins is the number of quantile bins of numeric
// features (DefaultBins when <= 0).
//
// Infinite values are counted (in the outermost bins, or "other") but never
// become cut points or categories, so that a profile always encodes as
// JSON.
func NewProfile(names []string, kinds []Kind, X []float32, numFeatures int, bins int) (*Profile, error) {
	if numFeatures <= 0 {
		return nil, fmt.Errorf("new drift profile: %d features", numFeatures)
	}
	if len(names) != numFeatures || len(kinds) != numFeatures {
		return nil, fmt.Errorf("new drift profile: %d features but %d names and %d kinds", numFeatures, len(names), len(kinds))
	}
	if len(X) == 0 || len(X)%numFeatures != 0 {
		return nil, fmt.Errorf("new drift profile: %d values are not rows of %d features", len(X), numFeatures)
	}
	if bins <= 0 {
		bins = DefaultBins
	}
	rows := len(X) / numFeatures
	p := &Profile{Features: make([]FeatureProfile, numFeatures)}
	col := make([]float64, 0, rows)
	for j := range numFeatures {
		f := &p.Features[j]
		f.Name, f.Kind = names[j], kinds[j]
		col = col[:0]
		for r := range rows {
			if x := float64(X[r*numFeatures+j]); !math.IsNaN(x) {
				col = append(col, x)
			}
		}
		switch f.Kind {
		case Numeric:
			f.Edges = quantileEdges(col, bins)
			f.Counts = make([]float64, len(f.Edges)+2)
		case Categorical:
			f.Categories = topCategories(col, MaxCategories)
			f.Counts = make([]float64, len(f.Categories)+2)
		default:
			return nil, fmt.Errorf("new drift profile: feature %q has kind %q", f.Name, f.Kind)
		}
	}
	for r := range rows {
		p.Observe(X[r*numFeatures : (r+1)*numFeatures])
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("new drift profile: %w", err)
	}
	return p, nil
}

// quantileEdges sorts vs and returns the distinct finite cut points at
// i/bins, i = 1…bins−1, by the inverted empirical CDF.
func quantileEdges(vs []float64, bins int) []float64 {
	slices.Sort(vs)
	n := len(vs)
	var edges []float64
	if n == 0 {
		return edges
	}
	for i := 1; i < bins; i++ {
		k := (n*i + bins - 1) / bins // ⌈n·i/bins⌉ in exact arithmetic
		e := vs[k-1]
		if math.IsInf(e, 0) || len(edges) > 0 && e == edges[len(edges)-1] {
			continue
		}
		edges = append(edges, e)
	}
	return edges
}

// topCategories returns the at most max most frequent finite values, most
// frequent first, ties by value.
func topCategories(vs []float64, max int) []float64 {
	counts := map[float64]int{}
	for _, v := range vs {
		if !math.IsInf(v, 0) {
			counts[v]++
		}
	}
	cats := make([]float64, 0, len(counts))
	for v := range counts {
		cats = append(cats, v)
	}
	sort.Slice(cats, func(i, j int) bool {
		if counts[cats[i]] != counts[cats[j]] {
			return counts[cats[i]] > counts[cats[j]]
		}
		return cats[i] < cats[j]
	})
	if len(cats) > max {
		cats = cats[:max]
	}
	return cats
}

// ErrInvalidProfile is wrapped by Validate's errors.
var ErrInvalidProfile = errors.New("invalid drift profile")

// Validate checks a profile, typically one read from JSON: known kinds,
// ascending finite edges, distinct finite categories (at most
// MaxCategories), the right number of non-negative counts.
func (p *Profile) Validate() error {
	if len(p.Features) == 0 {
		return fmt.Errorf("%w: no features", ErrInvalidProfile)
	}
	for i := range p.Features {
		if err := p.Features[i].validate(); err != nil {
			return fmt.Errorf("%w: feature %d (%s): %w", ErrInvalidProfile, i, p.Features[i].Name, err)
		}
	}
	return nil
}

func (f *FeatureProfile) validate() error {
	want := 0
	switch f.Kind {
	case Numeric:
		if len(f.Categories) != 0 {
			return errors.New("numeric feature has categories")
		}
		for i, e := range f.Edges {
			if math.IsNaN(e) || math.IsInf(e, 0) || i > 0 && e <= f.Edges[i-1] {
				return fmt.Errorf("edges are not ascending finite values: %v", f.Edges)
			}
		}
		want = len(f.Edges) + 2
	case Categorical:
		if len(f.Edges) != 0 {
			return errors.New("categorical feature has edges")
		}
		if len(f.Categories) > MaxCategories {
			return fmt.Errorf("%d categories, at most %d", len(f.Categories), MaxCategories)
		}
		seen := map[float64]bool{}
		for _, c := range f.Categories {
			if math.IsNaN(c) || math.IsInf(c, 0) || seen[c] {
				return fmt.Errorf("categories are not distinct finite values: %v", f.Categories)
			}
			seen[c] = true
		}
		want = len(f.Categories) + 2
	default:
		return fmt.Errorf("kind %q", f.Kind)
	}
	if len(f.Counts) != want {
		return fmt.Errorf("%d counts, want %d", len(f.Counts), want)
	}
	for _, c := range f.Counts {
		if !(c >= 0) || math.IsInf(c, 1) {
			return fmt.Errorf("counts are not finite non-negative values: %v", f.Counts)
		}
	}
	if !(f.N >= 0) || math.IsInf(f.N, 1) {
		return fmt.Errorf("n = %v", f.N)
	}
	return nil
}

// Clone returns a deep copy.
func (p *Profile) Clone() *Profile {
	c := &Profile{Features: slices.Clone(p.Features)}
	for i := range c.Features {
		f := &c.Features[i]
		f.Edges = slices.Clone(f.Edges)
		f.Categories = slices.Clone(f.Categories)
		f.Counts = slices.Clone(f.Counts)
	}
	return c
}

// Observe adds one row (a value per feature) to the profile's counts. It
// does not allocate; it panics if len(x) is not the number of features.
func (p *Profile) Observe(x []float32) {
	if len(x) != len(p.Features) {
		panic(fmt.Sprintf("drift: row of %d values for a profile of %d features", len(x), len(p.Features)))
	}
	for i := range p.Features {
		f := &p.Features[i]
		f.Counts[f.Bin(float64(x[i]))]++
		f.N++
	}
}

// Merge adds a window's counts to the profile. The window must count into
// the same bins: made by NewWindow of this profile or of one with the same
// features, kinds, edges and categories.
func (p *Profile) Merge(w *Window) error {
	if err := sameBins(p, w.p); err != nil {
		return fmt.Errorf("merge drift window: %w", err)
	}
	for i := range p.Features {
		f := &p.Features[i]
		for j, c := range w.counts[w.off[i]:w.off[i+1]] {
			f.Counts[j] += c
		}
		f.N += float64(w.n)
	}
	return nil
}

// Decay multiplies every count by factor in [0, 1], so that, merged with
// new windows, older data weighs less: decaying by f before each merge
// gives a window k merges old the weight f^k.
func (p *Profile) Decay(factor float64) error {
	if !(factor >= 0 && factor <= 1) {
		return fmt.Errorf("decay drift profile: factor %v is not in [0, 1]", factor)
	}
	for i := range p.Features {
		f := &p.Features[i]
		for j := range f.Counts {
			f.Counts[j] *= factor
		}
		f.N *= factor
	}
	return nil
}

func sameBins(p, q *Profile) error {
	if p == q {
		return nil
	}
	if len(p.Features) != len(q.Features) {
		return fmt.Errorf("%d features, want %d", len(q.Features), len(p.Features))
	}
	for i := range p.Features {
		a, b := &p.Features[i], &q.Features[i]
		if a.Name != b.Name || a.Kind != b.Kind || !slices.Equal(a.Edges, b.Edges) || !slices.Equal(a.Categories, b.Categories) {
			return fmt.Errorf("feature %d (%s) has other bins", i, a.Name)
		}
	}
	return nil
}

// Window counts live rows into a profile's bins.
type Window struct {
	p      *Profile
	off    []int // counts of feature i are counts[off[i]:off[i+1]]
	counts []float64
	n      int
}

// NewWindow returns an empty window over the profile's bins. The profile
// must be valid (from NewProfile, or Validate returned nil); statistics
// compare with its counts as they are when computed.
func (p *Profile) NewWindow() *Window {
	w := &Window{p: p, off: make([]int, len(p.Features)+1)}
	for i := range p.Features {
		w.off[i+1] = w.off[i] + len(p.Features[i].Counts)
	}
	w.counts = make([]float64, w.off[len(p.Features)])
	return w
}

// Add counts one row, a value per feature of the profile in its order (NaN
// for missing). It does not allocate; it panics if len(x) is not the
// number of features.
func (w *Window) Add(x []float32) {
	fs := w.p.Features
	if len(x) != len(fs) {
		panic(fmt.Sprintf("drift: row of %d values for a window of %d features", len(x), len(fs)))
	}
	for i := range fs {
		w.counts[w.off[i]+fs[i].Bin(float64(x[i]))]++
	}
	w.n++
}

// N is the number of rows added since the last Reset.
func (w *Window) N() int { return w.n }

// Reset empties the window.
func (w *Window) Reset() {
	clear(w.counts)
	w.n = 0
}

// Counts returns a copy of the counts of a feature, by bin.
func (w *Window) Counts(feature int) []float64 {
	return slices.Clone(w.counts[w.off[feature]:w.off[feature+1]])
}

func (w *Window) view(i int) []float64 { return w.counts[w.off[i]:w.off[i+1]] }

// PSI returns the population stability index of each feature of the window
// against the profile (NaN for all features of an empty window).
func (w *Window) PSI() []float64 {
	out := make([]float64, len(w.p.Features))
	for i := range w.p.Features {
		out[i] = w.p.Features[i].PSI(w.view(i))
	}
	return out
}

// JensenShannon returns the Jensen–Shannon distance of each feature of the
// window from the profile.
func (w *Window) JensenShannon() []float64 {
	out := make([]float64, len(w.p.Features))
	for i := range w.p.Features {
		out[i] = w.p.Features[i].JensenShannon(w.view(i))
	}
	return out
}

// FeatureDrift is every count-based statistic of one feature of a window.
type FeatureDrift struct {
	Name          string
	PSI           float64
	JensenShannon float64
	ChiSquare     float64
	ChiSquareP    float64
	DoF           int
}

// Drift returns every count-based statistic for each feature.
func (w *Window) Drift() []FeatureDrift {
	out := make([]FeatureDrift, len(w.p.Features))
	for i := range w.p.Features {
		f := &w.p.Features[i]
		c := w.view(i)
		d := FeatureDrift{Name: f.Name, PSI: f.PSI(c), JensenShannon: f.JensenShannon(c)}
		d.ChiSquare, d.ChiSquareP, d.DoF = f.ChiSquare(c)
		out[i] = d
	}
	return out
}
