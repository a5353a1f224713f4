// Package training knows the system's models — what each predicts, from
// which features, judged by which metric — and fits and scores them on
// labelled trips with the shared feature transform and the Go trainer.
//
// It is used by the retraining activities, the bootstrap of the first
// champion and the evaluation workflow, so a model is always trained and
// scored the same way.
package training

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/ml/drift"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
	"github.com/taxi-mlops/taxi-mlops/rides"
)

// Model names.
const (
	Fare      = "fare"
	Tip       = "tip"
	BigTipper = "big_tipper"
)

// Metric names, as stored in model metadata and published on model-metrics.
const (
	MetricRMSE        = "rmse"
	MetricMAE         = "mae"
	MetricMAPE        = "mape"
	MetricResidualStd = "residual_std"
	MetricLogLoss     = "logloss"
	MetricAUC         = "auc"
	MetricAccuracy    = "accuracy"
	MetricRows        = "rows"
)

// Model is one model the system trains and serves.
type Model struct {
	Name      string
	Objective string
	Features  []string
	// Label of an example.
	Label func(*Example) float32
	// PrimaryMetric decides challenger against champion; lower is better
	// unless HigherIsBetter.
	PrimaryMetric  string
	HigherIsBetter bool
	// Guards are metrics a challenger must not make worse (beyond a
	// tolerance) even when it wins on the primary one.
	Guards []Guard
	// Params of the built-in trainer.
	Params boost.Params
}

// Guard is a metric that must not get worse.
type Guard struct {
	Metric         string
	HigherIsBetter bool
}

// Models lists the system's models.
func Models() []Model {
	fare := boost.DefaultParams("reg:squarederror")
	tipper := boost.DefaultParams("binary:logistic")
	return []Model{
		{
			Name: Fare, Objective: "reg:squarederror", Features: features.FareFeatures,
			Label:         func(e *Example) float32 { return float32(e.Fare) },
			PrimaryMetric: MetricRMSE, Params: fare,
			Guards: []Guard{{Metric: MetricMAE}},
		},
		{
			Name: Tip, Objective: "reg:squarederror", Features: features.TipperFeatures,
			Label:         func(e *Example) float32 { return float32(e.Tips) },
			PrimaryMetric: MetricRMSE, Params: boost.DefaultParams("reg:squarederror"),
			Guards: []Guard{{Metric: MetricMAE}},
		},
		{
			Name: BigTipper, Objective: "binary:logistic", Features: features.TipperFeatures,
			Label: func(e *Example) float32 {
				if e.Tips > 0.2*e.Fare {
					return 1
				}
				return 0
			},
			PrimaryMetric: MetricLogLoss, Params: tipper,
			Guards: []Guard{{Metric: MetricAUC, HigherIsBetter: true}},
		},
	}
}

// ModelNames lists the names of Models.
func ModelNames() []string {
	var ns []string
	for _, m := range Models() {
		ns = append(ns, m.Name)
	}
	return ns
}

// ErrUnknownModel is returned for a model name the system does not know.
var ErrUnknownModel = errors.New("unknown model")

// Lookup returns the model named name.
func Lookup(name string) (Model, error) {
	for _, m := range Models() {
		if m.Name == name {
			return m, nil
		}
	}
	return Model{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownModel, name, ModelNames())
}

// Example is one labelled trip in feature form.
type Example struct {
	TripID string
	Time   time.Time // pickup
	Row    features.Row
	Fare   float64 // actual fare
	Tips   float64 // actual tips
}

// Examples turns labelled rows into examples with the shared transform.
func Examples(rows []dataset.Row, areas *geo.Areas, loc *time.Location) []Example {
	out := make([]Example, len(rows))
	for i := range rows {
		r := &rows[i]
		out[i] = Example{
			TripID: r.Ride.TripID,
			Time:   r.Ride.PickupDatetime,
			Row:    features.Transform(rides.FeatureTrip(&r.Ride, areas), loc),
			Fare:   r.Actual.Fare,
			Tips:   r.Actual.Tips,
		}
	}
	return out
}

// SortByTime orders examples by pickup time, ties by trip id.
func SortByTime(ex []Example) {
	sort.SliceStable(ex, func(i, j int) bool {
		if !ex[i].Time.Equal(ex[j].Time) {
			return ex[i].Time.Before(ex[j].Time)
		}
		return ex[i].TripID < ex[j].TripID
	})
}

// SplitByTime returns the examples before and from the time that leaves
// fraction of them in the second part. Examples must be sorted.
func SplitByTime(ex []Example, fraction float64) (before, after []Example, at time.Time) {
	n := len(ex) - int(math.Round(float64(len(ex))*fraction))
	n = max(0, min(n, len(ex)))
	if n < len(ex) {
		at = ex[n].Time
	}
	return ex[:n], ex[n:], at
}

// Candidate is a fitted model with everything stored beside it.
type Candidate struct {
	Model         *xgb.Model
	JSON          []byte
	Spec          *features.Spec
	Profile       *drift.Profile
	Params        boost.Params
	Metrics       map[string]float64 // on the validation slice
	BestIteration int
	Rows          int
}

// MinExamples is the fewest examples Fit accepts.
const MinExamples = 50

// ValidationFraction of the training examples, the most recent, is used for
// early stopping and the recorded metrics.
const ValidationFraction = 0.1

// Fit trains m on examples: the latest ValidationFraction by time validate
// (early stopping, recorded metrics), the rest train. The reference profile
// for drift detection is taken from the training part.
func Fit(ctx context.Context, m Model, examples []Example, progress func(boost.Round)) (*Candidate, error) {
	if len(examples) < MinExamples {
		return nil, fmt.Errorf("fit %s: %d examples, need at least %d", m.Name, len(examples), MinExamples)
	}
	ex := slices.Clone(examples)
	SortByTime(ex)
	train, valid, _ := SplitByTime(ex, ValidationFraction)
	rows := make([]features.Row, len(train))
	for i := range train {
		rows[i] = train[i].Row
	}
	spec, err := features.NewSpec(m.Features, rows)
	if err != nil {
		return nil, fmt.Errorf("fit %s: %w", m.Name, err)
	}
	trainSet := matrix(m, spec, train)
	validSet := matrix(m, spec, valid)
	res, err := boost.Train(ctx, m.Params, trainSet, validSet, progress)
	if err != nil {
		return nil, fmt.Errorf("fit %s: %w", m.Name, err)
	}
	js, err := res.Model.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("fit %s: encode model: %w", m.Name, err)
	}
	kinds := make([]drift.Kind, spec.Len())
	for i, k := range spec.Kinds() {
		kinds[i] = drift.Numeric
		if k == features.Categorical {
			kinds[i] = drift.Categorical
		}
	}
	profile, err := drift.NewProfile(spec.Names, kinds, trainSet.X, spec.Len(), ProfileBins)
	if err != nil {
		return nil, fmt.Errorf("fit %s: reference profile: %w", m.Name, err)
	}
	return &Candidate{
		Model:         res.Model,
		JSON:          js,
		Spec:          spec,
		Profile:       profile,
		Params:        m.Params,
		Metrics:       Score(m, res.Model, spec, valid),
		BestIteration: res.BestIteration,
		Rows:          len(train),
	}, nil
}

// ProfileBins is the number of quantile bins of numeric features in a
// reference profile.
const ProfileBins = 10

func matrix(m Model, spec *features.Spec, ex []Example) *boost.Dataset {
	nf := spec.Len()
	d := &boost.Dataset{
		X:            make([]float32, len(ex)*nf),
		Y:            make([]float32, len(ex)),
		NumFeatures:  nf,
		FeatureNames: spec.Names,
	}
	for i := range ex {
		spec.Vector(&ex[i].Row, d.X[i*nf:(i+1)*nf])
		d.Y[i] = m.Label(&ex[i])
	}
	return d
}

// Predict scores examples with a model.
func Predict(model *xgb.Model, spec *features.Spec, ex []Example) []float64 {
	x := make([]float32, spec.Len())
	out := make([]float64, len(ex))
	for i := range ex {
		spec.Vector(&ex[i].Row, x)
		out[i] = model.Predict(x)
	}
	return out
}

// Score computes m's metrics of model on examples.
func Score(m Model, model *xgb.Model, spec *features.Spec, ex []Example) map[string]float64 {
	pred := Predict(model, spec, ex)
	y := make([]float64, len(ex))
	for i := range ex {
		y[i] = float64(m.Label(&ex[i]))
	}
	out := map[string]float64{MetricRows: float64(len(ex))}
	if len(ex) == 0 {
		return out
	}
	if m.Objective == "binary:logistic" {
		out[MetricLogLoss] = metrics.LogLoss(y, pred)
		out[MetricAccuracy] = metrics.Accuracy(y, pred)
		if auc, ok := aucOf(y, pred); ok {
			out[MetricAUC] = auc
		}
		return out
	}
	out[MetricRMSE] = metrics.RMSE(y, pred)
	out[MetricMAE] = metrics.MAE(y, pred)
	if mape, used := metrics.MAPE(y, pred); used > 0 {
		out[MetricMAPE] = mape
	}
	out[MetricResidualStd] = residualStd(y, pred)
	return out
}

// aucOf is undefined when only one class is present.
func aucOf(y, p []float64) (float64, bool) {
	var pos int
	for _, v := range y {
		if v > 0.5 {
			pos++
		}
	}
	if pos == 0 || pos == len(y) {
		return 0, false
	}
	return metrics.AUC(y, p), true
}

func residualStd(y, p []float64) float64 {
	var s, ss float64
	for i := range y {
		r := y[i] - p[i]
		s += r
		ss += r * r
	}
	n := float64(len(y))
	mean := s / n
	return math.Sqrt(math.Max(0, ss/n-mean*mean))
}

// Better says whether challenger beats champion on m's primary metric by at
// least minImprovement (relative), and why.
func Better(m Model, challenger, champion map[string]float64, minImprovement float64) (bool, string) {
	c, ok1 := challenger[m.PrimaryMetric]
	h, ok2 := champion[m.PrimaryMetric]
	if !ok1 {
		return false, fmt.Sprintf("challenger has no %s", m.PrimaryMetric)
	}
	if !ok2 {
		return true, fmt.Sprintf("champion has no %s; challenger %s = %.4f", m.PrimaryMetric, m.PrimaryMetric, c)
	}
	var rel float64
	if m.HigherIsBetter {
		rel = (c - h) / math.Max(math.Abs(h), 1e-12)
	} else {
		rel = (h - c) / math.Max(math.Abs(h), 1e-12)
	}
	verdict := fmt.Sprintf("%s challenger %.4f vs champion %.4f (%+.1f%%, needs %+.1f%%)",
		m.PrimaryMetric, c, h, 100*rel, 100*minImprovement)
	return rel >= minImprovement, verdict
}

// Gate decides whether a challenger may replace the champion: better on
// the primary metric by minImprovement (relative), and on no guard metric
// worse by more than guardTolerance (relative). It says why either way.
func Gate(m Model, challenger, champion map[string]float64, minImprovement, guardTolerance float64) (bool, string) {
	ok, why := Better(m, challenger, champion, minImprovement)
	if !ok {
		return false, why
	}
	for _, g := range m.Guards {
		c, ok1 := challenger[g.Metric]
		h, ok2 := champion[g.Metric]
		if !ok1 || !ok2 {
			continue
		}
		worse := (c - h) / math.Max(math.Abs(h), 1e-12)
		if g.HigherIsBetter {
			worse = -worse
		}
		if worse > guardTolerance {
			return false, fmt.Sprintf("%s; but guard %s got %.1f%% worse (%.4f vs %.4f, tolerance %.1f%%)",
				why, g.Metric, 100*worse, c, h, 100*guardTolerance)
		}
	}
	return true, why
}

// ProfileJSON encodes a profile for model metadata.
func ProfileJSON(p *drift.Profile) (json.RawMessage, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encode reference profile: %w", err)
	}
	return b, nil
}
