package activities

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Backtest scores a model version on the labelled trips whose pickup falls
// in [From, To): every ride still on taxi-rides-raw joined with its actual.
// It reports the metrics over the whole range and the primary metric per
// calendar month, so a model can be checked against a past period (or a
// new one against the data its predecessor served).
func (a *Activities) Backtest(ctx context.Context, in BacktestInput) (BacktestResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return BacktestResult{}, err
	}
	if in.Version == "" {
		return BacktestResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("version is required"))
	}
	if !in.To.After(in.From) {
		return BacktestResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("the range ends (%v) before it starts (%v)", in.To, in.From))
	}
	model, err := a.load(ctx, in.ModelName, in.Version)
	if err != nil {
		return BacktestResult{}, err
	}
	rows, err := a.between(ctx, "taxi-mlops-backtest-"+in.ModelName, in)
	if err != nil {
		return BacktestResult{}, fmt.Errorf("backtest %s/%s: %w", in.ModelName, in.Version, err)
	}
	if len(rows) == 0 {
		return BacktestResult{}, permanent(ErrTypeBadDataset, fmt.Errorf("backtest %s/%s: %w between %v and %v",
			in.ModelName, in.Version, errNoRows, in.From, in.To))
	}
	sortRows(rows)
	ex := training.Examples(rows, a.Areas, a.Location)
	res := BacktestResult{ModelName: in.ModelName, Version: in.Version, Rows: len(ex),
		Metrics: training.Score(m, model.Eval, model.Spec, ex), ByMonth: map[string]float64{}}
	byMonth := map[string][]training.Example{}
	for _, e := range ex {
		k := e.Time.In(a.Location).Format("2006-01")
		byMonth[k] = append(byMonth[k], e)
	}
	months := make([]string, 0, len(byMonth))
	for k := range byMonth {
		months = append(months, k)
	}
	slices.Sort(months)
	for _, k := range months {
		if v, ok := training.Score(m, model.Eval, model.Spec, byMonth[k])[m.PrimaryMetric]; ok && !math.IsNaN(v) {
			res.ByMonth[k] = v
		}
	}
	return res, nil
}

// between reads every ride and actual still on the topics and keeps the
// labelled rides picked up in [in.From, in.To). Kafka cannot seek by event
// time (record timestamps are when the replay produced them), so the read
// is whole; the offline store is the place for long histories.
func (a *Activities) between(ctx context.Context, clientID string, in BacktestInput) ([]dataset.Row, error) {
	admin, err := kafka.NewClient(a.Kafka, clientID+"-admin", kafka.Deps{Logger: a.KafkaDeps.Logger})
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	rideRanges, err := kafka.TailRanges(ctx, admin, contracts.TopicRidesRaw, math.MaxInt64/2)
	if err != nil {
		return nil, err
	}
	actualRanges, err := kafka.TailRanges(ctx, admin, contracts.TopicActuals, math.MaxInt64/2)
	if err != nil {
		return nil, err
	}
	ridesByID := map[string]*contracts.RawRide{}
	n := 0
	if err := kafka.ReadRanges(ctx, a.Kafka, clientID+"-rides", a.KafkaDeps, contracts.TopicRidesRaw, rideRanges, func(r *kgo.Record) error {
		if n++; n%10000 == 0 {
			activity.RecordHeartbeat(ctx, n)
		}
		ride, err := contracts.Decode[contracts.RawRide](r.Value)
		if err != nil || ride.PickupDatetime.Before(in.From) || !ride.PickupDatetime.Before(in.To) {
			return nil
		}
		ridesByID[ride.TripID] = ride
		return nil
	}); err != nil {
		return nil, err
	}
	var rows []dataset.Row
	if err := kafka.ReadRanges(ctx, a.Kafka, clientID+"-actuals", a.KafkaDeps, contracts.TopicActuals, actualRanges, func(r *kgo.Record) error {
		if n++; n%10000 == 0 {
			activity.RecordHeartbeat(ctx, n)
		}
		act, err := contracts.Decode[contracts.Actual](r.Value)
		if err != nil {
			return nil
		}
		if ride, ok := ridesByID[act.TripID]; ok {
			rows = append(rows, dataset.Row{Ride: *ride, Actual: *act})
			delete(ridesByID, act.TripID) // one row per trip, whatever the duplicates
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return rows, nil
}
