package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// EvaluationInput configures a scheduled evaluation. Example:
//
//	{"model_names": ["fare"], "max_rows": 2000}
type EvaluationInput struct {
	// ModelNames to evaluate (default: every model of the system).
	ModelNames []string `json:"model_names,omitempty"`
	// MaxRows of the most recent rides to score on (default 2000).
	MaxRows int `json:"max_rows,omitempty"`
	// Degradation over the champion's validation metric that counts as a
	// breach (default 1.5: 50% worse).
	Degradation float64 `json:"degradation,omitempty"`
}

// EvaluationResult lists what was published.
type EvaluationResult struct {
	Metrics []MetricSummary `json:"metrics"`
}

// MetricSummary is one published metric.
type MetricSummary struct {
	ModelName    string  `json:"model_name"`
	ModelVersion string  `json:"model_version"`
	MetricName   string  `json:"metric_name"`
	Value        float64 `json:"value"`
	Threshold    float64 `json:"threshold"`
	Breached     bool    `json:"breached"`
	Rows         int     `json:"rows"`
}

// EvaluationWorkflow scores each champion on the latest labelled trips and
// publishes the metrics to model-metrics, where the bridge hands them to the
// drift monitors. A Temporal Schedule runs it.
func EvaluationWorkflow(ctx workflow.Context, in EvaluationInput) (EvaluationResult, error) {
	if len(in.ModelNames) == 0 {
		in.ModelNames = training.ModelNames()
	}
	if in.MaxRows == 0 {
		in.MaxRows = 2000
	}
	if in.Degradation == 0 {
		in.Degradation = 1.5
	}
	info := workflow.GetInfo(ctx)
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrTriggerType.ValueSet(TriggerSchedule))
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, activityOptions(10*time.Minute, ""))
	var res EvaluationResult
	for _, name := range in.ModelNames {
		var score activities.ScoreResult
		if err := workflow.ExecuteActivity(withSummary(actx, "score champion of "+name), a.ScoreChampion, activities.ScoreInput{
			ModelName:      name,
			MaxRows:        in.MaxRows,
			MetricIDPrefix: info.WorkflowExecution.ID + "/" + info.WorkflowExecution.RunID,
			Degradation:    in.Degradation,
		}).Get(ctx, &score); err != nil {
			return res, fmt.Errorf("score %s: %w", name, err)
		}
		if len(score.Metrics) == 0 {
			continue
		}
		if err := workflow.ExecuteActivity(withSummary(actx, fmt.Sprintf("publish %d metrics of %s", len(score.Metrics), name)),
			a.PublishMetrics, score.Metrics).Get(ctx, nil); err != nil {
			return res, fmt.Errorf("publish metrics of %s: %w", name, err)
		}
		for _, m := range score.Metrics {
			res.Metrics = append(res.Metrics, MetricSummary{
				ModelName: m.ModelName, ModelVersion: m.ModelVersion, MetricName: m.MetricName,
				Value: m.MetricValue, Threshold: m.Threshold, Breached: m.Breached(), Rows: m.SampleSize,
			})
		}
	}
	return res, nil
}
