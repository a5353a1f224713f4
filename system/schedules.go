package system

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// Schedule is one Temporal Schedule the system keeps.
type Schedule struct {
	ID       string
	Every    time.Duration
	Workflow string
	Input    any
	Note     string
}

// Schedules lists the schedules `starter schedules apply` creates.
func Schedules() []Schedule {
	return []Schedule{
		{
			ID: "evaluation-hourly", Every: time.Hour, Workflow: workflows.EvaluationWorkflowName,
			Input: workflows.EvaluationInput{MaxRows: 2000},
			Note:  "scores each champion on the latest 2000 labelled trips and publishes model-metrics",
		},
		{
			ID: "evaluation-daily", Every: 24 * time.Hour, Workflow: workflows.EvaluationWorkflowName,
			Input: workflows.EvaluationInput{MaxRows: 20000},
			Note:  "scores each champion on the latest 20000 labelled trips and publishes model-metrics",
		},
		{
			ID: "feast-materialization", Every: time.Hour, Workflow: workflows.FeastMaterializationWorkflowName,
			Input: workflows.FeastMaterializationInput{},
			Note:  "writes the offline feature tables of the recent trips and materializes them into Feast",
		},
	}
}

func (s Schedule) options(taskQueue string) client.ScheduleOptions {
	return client.ScheduleOptions{
		ID:   s.ID,
		Spec: client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Every}}},
		Action: &client.ScheduleWorkflowAction{
			ID:        s.ID + "-run",
			Workflow:  s.Workflow,
			Args:      []any{s.Input},
			TaskQueue: taskQueue,
		},
		// A run still going when the next is due is not doubled up, and
		// after an outage only the last 10 minutes of missed runs catch up.
		Overlap:       enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		CatchupWindow: 10 * time.Minute,
		Note:          s.Note,
	}
}

// ApplySchedules creates the system's schedules, or updates them to the
// current definition when they exist. It is idempotent.
func ApplySchedules(ctx context.Context, tc client.Client, taskQueue string) ([]string, error) {
	var done []string
	for _, s := range Schedules() {
		opts := s.options(taskQueue)
		_, err := tc.ScheduleClient().Create(ctx, opts)
		switch {
		case err == nil:
			done = append(done, s.ID+" created")
		case errors.Is(err, temporal.ErrScheduleAlreadyRunning):
			h := tc.ScheduleClient().GetHandle(ctx, s.ID)
			err = h.Update(ctx, client.ScheduleUpdateOptions{
				DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
					sch := in.Description.Schedule
					sch.Spec = &opts.Spec
					sch.Action = opts.Action
					if sch.Policy == nil {
						sch.Policy = &client.SchedulePolicies{}
					}
					sch.Policy.Overlap = opts.Overlap
					sch.Policy.CatchupWindow = opts.CatchupWindow
					return &client.ScheduleUpdate{Schedule: &sch}, nil
				},
			})
			if err != nil {
				return done, fmt.Errorf("update schedule %s: %w", s.ID, err)
			}
			done = append(done, s.ID+" updated")
		default:
			return done, fmt.Errorf("create schedule %s: %w", s.ID, err)
		}
	}
	return done, nil
}

// Backfill runs a schedule's actions for the times it would have run in
// [from, to), overlapping runs allowed so the backfill is not skipped.
func Backfill(ctx context.Context, tc client.Client, id string, from, to time.Time) error {
	if !to.After(from) {
		return fmt.Errorf("backfill %s: --to (%v) must be after --from (%v)", id, to, from)
	}
	h := tc.ScheduleClient().GetHandle(ctx, id)
	if err := h.Backfill(ctx, client.ScheduleBackfillOptions{Backfill: []client.ScheduleBackfill{{
		Start: from, End: to, Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL,
	}}}); err != nil {
		return fmt.Errorf("backfill %s from %v to %v: %w", id, from, to, err)
	}
	return nil
}
