package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// ShadowEvaluate lets the challenger score the live stream beside the
// champion before it may replace it: from now on, the next Records trips
// of taxi-features-realtime are scored by both, joined with their actuals
// as those arrive, and the two compared on exactly those trips. It waits at
// most MaxWaitSeconds; trips whose actual has not come by then are left
// out. The holdout says whether the challenger is better on the recent
// past; the shadow says whether it is better on what comes next.
func (a *Activities) ShadowEvaluate(ctx context.Context, in ShadowInput) (ShadowResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return ShadowResult{}, err
	}
	if in.Records <= 0 {
		return ShadowResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("records must be positive, got %d", in.Records))
	}
	wait := time.Duration(in.MaxWaitSeconds) * time.Second
	if wait <= 0 {
		wait = 10 * time.Minute
	}
	ch, err := a.load(ctx, in.ModelName, in.Challenger)
	if err != nil {
		return ShadowResult{}, err
	}
	var cp *training.Loaded
	if in.Champion != "" {
		if cp, err = a.load(ctx, in.ModelName, in.Champion); err != nil {
			return ShadowResult{}, err
		}
	}

	// Both topics from their current ends: only trips that come after the
	// candidate exists count.
	adm, err := kafka.NewClient(a.Kafka, "taxi-mlops-shadow-admin", kafka.Deps{Logger: a.KafkaDeps.Logger})
	if err != nil {
		return ShadowResult{}, err
	}
	ends, err := kadm.NewClient(adm).ListEndOffsets(ctx, contracts.TopicFeaturesRealtime, contracts.TopicActuals)
	adm.Close()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return ShadowResult{}, fmt.Errorf("shadow: list offsets: %w", err)
	}
	start := map[string]map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		if start[o.Topic] == nil {
			start[o.Topic] = map[int32]kgo.Offset{}
		}
		start[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	cl, err := kafka.NewClient(a.Kafka, "taxi-mlops-shadow", kafka.Deps{Logger: a.KafkaDeps.Logger},
		kgo.ConsumePartitions(start), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return ShadowResult{}, err
	}
	defer cl.Close()

	deadline := time.Now().Add(wait)
	rows := map[string]training.Example{} // by trip, waiting for actuals
	var labelled []training.Example
	actuals := map[string]*contracts.Actual{} // arrived before their trip was chosen
	picked := 0
	for time.Now().Before(deadline) && (picked < in.Records || len(rows) > 0) {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return ShadowResult{}, ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			switch r.Topic {
			case contracts.TopicFeaturesRealtime:
				f, err := contracts.Decode[contracts.Features](r.Value)
				if err != nil || f.RequestID != "" || picked >= in.Records {
					return
				}
				picked++
				e := training.Example{TripID: f.TripID, Time: f.Timestamp, Row: rides.Row(f)}
				if act, ok := actuals[f.TripID]; ok {
					e.Fare, e.Tips = act.Fare, act.Tips
					labelled = append(labelled, e)
					delete(actuals, f.TripID)
					return
				}
				rows[f.TripID] = e
			case contracts.TopicActuals:
				act, err := contracts.Decode[contracts.Actual](r.Value)
				if err != nil {
					return
				}
				if e, ok := rows[act.TripID]; ok {
					e.Fare, e.Tips = act.Fare, act.Tips
					labelled = append(labelled, e)
					delete(rows, act.TripID)
				} else if picked < in.Records {
					actuals[act.TripID] = act
				}
			}
		})
		activity.RecordHeartbeat(ctx, fmt.Sprintf("%d of %d live trips, %d labelled", picked, in.Records, len(labelled)))
	}
	res := ShadowResult{PrimaryMetric: m.PrimaryMetric, Records: picked, Labelled: len(labelled)}
	if len(labelled) < min(in.Records/2, 50) {
		return res, permanent(ErrTypeBadDataset, fmt.Errorf(
			"shadow: %d live trips with actuals within %s (of %d wanted): too few to judge", len(labelled), wait, in.Records))
	}
	res.Challenger = training.Score(m, ch.Eval, ch.Spec, labelled)
	if cp == nil {
		res.Better, res.Reason = true, "no champion to shadow"
		return res, nil
	}
	res.Champion = training.Score(m, cp.Eval, cp.Spec, labelled)
	better, why := training.Better(m, res.Challenger, res.Champion, in.MinImprovement)
	res.Better, res.Reason = better, fmt.Sprintf("shadow over %d live trips: %s", len(labelled), why)
	return res, nil
}

var errNoRows = errors.New("no labelled trips in the range")
