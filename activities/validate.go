package activities

import (
	"context"
	"fmt"
	"math"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// ValidateDataset checks a snapshot before anything is trained on it:
// enough rows, no duplicate trips, a holdout strictly later than the
// training part, labels that are numbers and vary, and features mostly
// known. The result lists every check; the workflow stops on a failure.
func (a *Activities) ValidateDataset(ctx context.Context, in ValidateInput) (ValidateResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return ValidateResult{}, err
	}
	if in.MinRows <= 0 {
		in.MinRows = 500
	}
	train, err := a.readDataset(ctx, in.Snapshot.TrainURI)
	if err != nil {
		return ValidateResult{}, err
	}
	hold, err := a.readDataset(ctx, in.Snapshot.HoldoutURI)
	if err != nil {
		return ValidateResult{}, err
	}
	return Validate(m, train, hold, in.MinRows), nil
}

// Validate runs the dataset checks on a training part and a holdout.
func Validate(m training.Model, train, hold []dataset.Row, minRows int) ValidateResult {
	var res ValidateResult
	check := func(name string, ok bool, format string, args ...any) {
		res.Checks = append(res.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
	}
	check("rows", len(train) >= minRows, "%d training rows, at least %d needed", len(train), minRows)
	check("holdout_rows", len(hold) >= 50, "%d holdout rows, at least 50 needed", len(hold))

	seen := make(map[string]bool, len(train)+len(hold))
	dups := 0
	for _, part := range [][]dataset.Row{train, hold} {
		for i := range part {
			if seen[part[i].Ride.TripID] {
				dups++
			}
			seen[part[i].Ride.TripID] = true
		}
	}
	check("unique_trips", dups == 0, "%d trip ids appear more than once", dups)

	if len(train) > 0 && len(hold) > 0 {
		last := train[0].Ride.PickupDatetime
		for i := range train {
			if train[i].Ride.PickupDatetime.After(last) {
				last = train[i].Ride.PickupDatetime
			}
		}
		first := hold[0].Ride.PickupDatetime
		for i := range hold {
			if hold[i].Ride.PickupDatetime.Before(first) {
				first = hold[i].Ride.PickupDatetime
			}
		}
		check("time_split", !first.Before(last), "training ends %s, holdout starts %s",
			last.UTC().Format("2006-01-02T15:04Z"), first.UTC().Format("2006-01-02T15:04Z"))
	}

	for _, p := range []struct {
		name string
		rows []dataset.Row
	}{{"train", train}, {"holdout", hold}} {
		name, part := p.name, p.rows
		if len(part) == 0 {
			continue
		}
		ex := make([]training.Example, len(part))
		for i := range part {
			ex[i] = training.Example{Fare: part[i].Actual.Fare, Tips: part[i].Actual.Tips}
		}
		bad, pos := 0, 0
		var sum, sumsq float64
		for i := range ex {
			y := float64(m.Label(&ex[i]))
			if math.IsNaN(y) || math.IsInf(y, 0) {
				bad++
				continue
			}
			sum += y
			sumsq += y * y
			if y > 0.5 {
				pos++
			}
		}
		n := float64(len(ex) - bad)
		check(name+"_labels_finite", bad == 0, "%d of %d labels are not numbers", bad, len(ex))
		if m.Objective == "binary:logistic" {
			share := float64(pos) / math.Max(n, 1)
			check(name+"_both_classes", pos > 0 && pos < len(ex)-bad, "%.1f%% positive", 100*share)
		} else {
			variance := sumsq/math.Max(n, 1) - (sum/math.Max(n, 1))*(sum/math.Max(n, 1))
			check(name+"_label_varies", variance > 1e-9, "label variance %.4g", variance)
		}
		known := 0
		for i := range part {
			if part[i].Ride.PickupCommunityArea != nil || part[i].Ride.PickupLatitude != nil {
				known++
			}
		}
		share := float64(known) / float64(len(part))
		check(name+"_pickup_known", share >= 0.5, "%.1f%% of trips have a pickup place", 100*share)
	}
	res.OK = true
	for _, c := range res.Checks {
		res.OK = res.OK && c.OK
	}
	return res
}
