package main

import (
	"context"
	"fmt"
	"math"

	"github.com/taxi-mlops/taxi-mlops/ml/drift"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// The usual reading of PSI, as the quality streamer's thresholds.
const (
	psiWarning  = 0.1
	psiCritical = 0.25
)

// driftReport is what drift prints.
type driftReport struct {
	Model     string         `json:"model"`
	Reference dataSummary    `json:"reference"`
	Current   dataSummary    `json:"current"`
	Bins      int            `json:"bins"`
	Features  []featureDrift `json:"features"`
	MaxPSI    num            `json:"max_psi"`
	// MaxPSIFeature names the feature with MaxPSI.
	MaxPSIFeature string  `json:"max_psi_feature"`
	PSIWarning    float64 `json:"psi_warning"`
	PSICritical   float64 `json:"psi_critical"`
	// The features whose PSI is at or over each threshold.
	OverWarning  []string `json:"features_over_warning"`
	OverCritical []string `json:"features_over_critical"`
	// FailOver is --fail-over (absent when not given); Failed says whether
	// a feature's PSI reached it.
	FailOver *float64 `json:"fail_over,omitempty"`
	Failed   bool     `json:"failed"`
}

type dataSummary struct {
	Path string `json:"path"`
	Rows int    `json:"rows"`
}

// featureDrift is one feature's statistics: on the reference profile's bins
// for all, and on the values themselves for numeric features.
type featureDrift struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	PSI           num       `json:"psi"`
	JensenShannon num       `json:"jensen_shannon"`
	ChiSquare     chiSquare `json:"chi_square"`
	KS            *ks       `json:"ks,omitempty"`
	Wasserstein1  *num      `json:"wasserstein1,omitempty"`
}

type chiSquare struct {
	Statistic num `json:"statistic"`
	PValue    num `json:"p_value"`
	DoF       int `json:"dof"`
}

type ks struct {
	Statistic num `json:"statistic"`
	PValue    num `json:"p_value"`
}

func (e *env) drift(ctx context.Context, args []string) error {
	fs := e.newFlags("drift", "--reference FILE --current FILE [flags]")
	var (
		refPath, curPath, name string
		bins                   int
		failOver               float64
	)
	fs.StringVar(&refPath, "reference", "", "trips the model was (or would be) trained on: .csv, .csv.gz or .parquet (required)")
	fs.StringVar(&curPath, "current", "", "trips to compare with them: .csv, .csv.gz or .parquet (required)")
	fs.StringVar(&name, "model", training.BigTipper, "whose feature vectors to compare: "+
		modelNames(training.ModelNames())+" (big_tipper's are fare's and the fare)")
	fs.IntVar(&bins, "bins", drift.DefaultBins, "quantile bins of numeric features, at least 2")
	fs.Float64Var(&failOver, "fail-over", 0, fmt.Sprintf("exit with status %d when a feature's PSI reaches this (0: never)", exitDrifted))
	if err := parse(fs, args, "reference", "current"); err != nil {
		return err
	}
	m, err := training.Lookup(name)
	if err != nil {
		return usageErr("drift: --model: %w", err)
	}
	if bins < 2 {
		return usageErr("drift: --bins %d: need at least 2", bins)
	}
	if !(failOver >= 0) || math.IsInf(failOver, 0) {
		return usageErr("drift: --fail-over %v is not a PSI ≥ 0", failOver)
	}
	for _, p := range []struct{ flag, path string }{{"reference", refPath}, {"current", curPath}} {
		if _, err := formatOf(p.path); err != nil {
			return usageErr("drift: --%s: %w", p.flag, err)
		}
	}
	if err := e.load(); err != nil {
		return err
	}
	ref, err := e.readTable(ctx, refPath)
	if err != nil {
		return err
	}
	cur, err := e.readTable(ctx, curPath)
	if err != nil {
		return err
	}
	refEx, curEx := e.examples(ref), e.examples(cur)

	// The spec (its vocabularies) is learnt on the reference, as training
	// would, so a new company in the current data lands in "other".
	rows := make([]features.Row, len(refEx))
	for i := range refEx {
		rows[i] = refEx[i].Row
	}
	spec, err := features.NewSpec(m.Features, rows)
	if err != nil {
		return fmt.Errorf("drift: %w", err)
	}
	nf := spec.Len()
	refX, curX := vectors(spec, refEx), vectors(spec, curEx)
	kinds := make([]drift.Kind, nf)
	for i, k := range spec.Kinds() {
		kinds[i] = drift.Numeric
		if k == features.Categorical {
			kinds[i] = drift.Categorical
		}
	}
	profile, err := drift.NewProfile(spec.Names, kinds, refX, nf, bins)
	if err != nil {
		return fmt.Errorf("drift: reference %s: %w", refPath, err)
	}
	w := profile.NewWindow()
	for r := 0; r < len(curEx); r++ {
		w.Add(curX[r*nf : (r+1)*nf])
	}

	rep := driftReport{
		Model:     m.Name,
		Reference: dataSummary{Path: refPath, Rows: len(refEx)},
		Current:   dataSummary{Path: curPath, Rows: len(curEx)},
		Bins:      bins, MaxPSI: num(math.NaN()),
		PSIWarning: psiWarning, PSICritical: psiCritical,
		OverWarning: []string{}, OverCritical: []string{},
	}
	if failOver > 0 {
		rep.FailOver = &failOver
	}
	for j, d := range w.Drift() {
		fd := featureDrift{
			Name: d.Name, Kind: string(kinds[j]), PSI: num(d.PSI), JensenShannon: num(d.JensenShannon),
			ChiSquare: chiSquare{Statistic: num(d.ChiSquare), PValue: num(d.ChiSquareP), DoF: d.DoF},
		}
		if kinds[j] == drift.Numeric {
			a, b := column(refX, nf, j), column(curX, nf, j)
			stat, p := drift.KS(a, b)
			w1 := num(drift.Wasserstein1(a, b))
			fd.KS, fd.Wasserstein1 = &ks{Statistic: num(stat), PValue: num(p)}, &w1
		}
		rep.Features = append(rep.Features, fd)
		if math.IsNaN(d.PSI) {
			continue
		}
		if math.IsNaN(float64(rep.MaxPSI)) || d.PSI > float64(rep.MaxPSI) {
			rep.MaxPSI, rep.MaxPSIFeature = num(d.PSI), d.Name
		}
		if d.PSI >= psiWarning {
			rep.OverWarning = append(rep.OverWarning, d.Name)
		}
		if d.PSI >= psiCritical {
			rep.OverCritical = append(rep.OverCritical, d.Name)
		}
	}
	rep.Failed = failOver > 0 && float64(rep.MaxPSI) >= failOver
	if err := writeJSON(e.stdout, rep); err != nil {
		return err
	}
	if rep.Failed {
		return &codeError{code: exitDrifted, err: fmt.Errorf("drift: PSI %.4f of %s reaches --fail-over %v",
			float64(rep.MaxPSI), rep.MaxPSIFeature, failOver)}
	}
	return nil
}

// vectors encodes examples row-major with spec.
func vectors(spec *features.Spec, ex []training.Example) []float32 {
	nf := spec.Len()
	x := make([]float32, len(ex)*nf)
	for i := range ex {
		spec.Vector(&ex[i].Row, x[i*nf:(i+1)*nf])
	}
	return x
}

// column returns feature j of row-major X as float64; NaN (missing) stays,
// and the statistics drop it.
func column(x []float32, nf, j int) []float64 {
	out := make([]float64, 0, len(x)/nf)
	for i := j; i < len(x); i += nf {
		out = append(out, float64(x[i]))
	}
	return out
}
