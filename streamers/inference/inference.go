// Package inference is the inference streamer: it scores each feature record
// with the current champions — fare, tip and big-tipper probability — and
// publishes a prediction that names the model versions that made it.
package inference

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Processor scores features with the champions of Models.
type Processor struct {
	Models *champions.Set
}

// Topics the processor consumes.
func (p *Processor) Topics() []string { return []string{contracts.TopicFeaturesRealtime} }

// champions are the models a prediction needs, looked up once per batch so
// every record of a batch is scored by the same versions.
type champs struct{ fare, tip, tipper *champions.Model }

func (p *Processor) champions() (champs, error) {
	var c champs
	var err error
	if c.fare, err = p.Models.Require(training.Fare); err != nil {
		return c, err
	}
	if c.tipper, err = p.Models.Require(training.BigTipper); err != nil {
		return c, err
	}
	if c.tip, err = p.Models.Require(training.Tip); err != nil {
		return c, err
	}
	return c, nil
}

// Process predicts for one trip. Without a loaded champion it returns a
// transient error, so the record waits rather than going unscored.
func (p *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	f, err := contracts.Decode[contracts.Features](in.Value)
	if err != nil {
		return nil, err
	}
	c, err := p.champions()
	if err != nil {
		return nil, err
	}
	x := make([]float32, width(c))
	return predict(c, f, x)
}

// ProcessBatch scores a batch with one lookup of the champions and one
// feature buffer: the micro-batched path the runner takes.
func (p *Processor) ProcessBatch(_ context.Context, in []*kgo.Record) []stream.Result {
	res := make([]stream.Result, len(in))
	c, cerr := p.champions()
	var x []float32
	if cerr == nil {
		x = make([]float32, width(c))
	}
	for i, r := range in {
		f, err := contracts.Decode[contracts.Features](r.Value)
		switch {
		case err != nil:
			res[i].Err = err
		case cerr != nil:
			res[i].Err = cerr
		default:
			res[i].Out, res[i].Err = predict(c, f, x)
		}
	}
	return res
}

func width(c champs) int { return max(c.fare.Spec.Len(), c.tipper.Spec.Len(), c.tip.Spec.Len()) }

func predict(c champs, f *contracts.Features, x []float32) ([]*kgo.Record, error) {
	fare, tipper, tip := c.fare, c.tipper, c.tip
	row := rides.Row(f)

	fare.Spec.Vector(&row, x[:fare.Spec.Len()])
	predFare := math.Max(0, fare.Eval.Predict(x[:fare.Spec.Len()]))

	// The tip models take the fare; a ride request has none yet, so the
	// predicted fare stands in for it.
	if math.IsNaN(row.Fare) {
		row.Fare = predFare
	}
	tipper.Spec.Vector(&row, x[:tipper.Spec.Len()])
	prob := tipper.Eval.Predict(x[:tipper.Spec.Len()])
	tip.Spec.Vector(&row, x[:tip.Spec.Len()])
	predTip := math.Max(0, tip.Eval.Predict(x[:tip.Spec.Len()]))

	pred := contracts.Prediction{
		TripID:          f.TripID,
		Timestamp:       f.Timestamp,
		PredictedFare:   predFare,
		PredictedTip:    &predTip,
		BigTipperProb:   &prob,
		ConfidenceScore: Confidence(predFare, fare.Metrics[training.MetricResidualStd]),
		ModelVersion:    fare.Version,
		ModelVersions:   map[string]string{fare.Name: fare.Version, tipper.Name: tipper.Version, tip.Name: tip.Version},
		RequestID:       f.RequestID,
	}
	b, err := contracts.Encode(&pred)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Topic: contracts.TopicPredictions, Key: []byte(f.TripID), Value: b}}, nil
}

// Tolerance is the relative error within which a fare prediction counts as
// right for the confidence score.
const Tolerance = 0.2

// Confidence is the probability that the true fare lies within ±Tolerance of
// the prediction, taking the model's errors as normal with the standard
// deviation of its validation residuals: erf(Tolerance·pred / (σ·√2)). A
// model without a recorded spread gets 0: no claim.
func Confidence(pred, residualStd float64) float64 {
	if !(residualStd > 0) || math.IsNaN(pred) {
		return 0
	}
	// Below a dollar the relative band says little; use a dollar.
	band := Tolerance * math.Max(pred, 1)
	return math.Erf(band / (residualStd * math.Sqrt2))
}
