package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// RollbackInput names the version to put back. Example:
//
//	{"model_name": "fare", "to_version": "v20261128-172049-bootstrap", "reason": "new model overcharges airport trips"}
type RollbackInput struct {
	ModelName string `json:"model_name"`
	ToVersion string `json:"to_version"`
	Reason    string `json:"reason,omitempty"`
}

// RollbackResult says what changed.
type RollbackResult struct {
	ModelName string `json:"model_name"`
	Previous  string `json:"previous"`
	Champion  string `json:"champion"`
	Changed   bool   `json:"changed"`
}

// RollbackWorkflow makes an earlier version the champion again — a
// promotion like any other (compare-and-swap, recorded in the champion's
// history) — and tells the streamers.
func RollbackWorkflow(ctx workflow.Context, in RollbackInput) (RollbackResult, error) {
	res := RollbackResult{ModelName: in.ModelName}
	if in.ModelName == "" || in.ToVersion == "" {
		return res, temporal.NewNonRetryableApplicationError("model_name and to_version are required", activities.ErrTypeInvalidInput, nil)
	}
	if in.Reason == "" {
		in.Reason = "rollback"
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		AttrModelName.ValueSet(in.ModelName),
		AttrTriggerType.ValueSet(TriggerRollback),
		AttrCandidateVersion.ValueSet(in.ToVersion),
	)
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, activityOptions(time.Minute, ""))
	var champ activities.ChampionInfo
	if err := workflow.ExecuteActivity(withSummary(actx, "read champion of "+in.ModelName), a.CurrentChampion,
		activities.ChampionInput{ModelName: in.ModelName}).Get(ctx, &champ); err != nil {
		return res, fmt.Errorf("read champion: %w", err)
	}
	res.Previous = champ.Version
	var prom activities.PromoteResult
	if err := workflow.ExecuteActivity(withSummary(actx, "promote "+in.ToVersion+" back"), a.PromoteModel, activities.PromoteInput{
		ModelName:  in.ModelName,
		Version:    in.ToVersion,
		Expected:   champ.Version,
		Reason:     in.Reason,
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
	}).Get(ctx, &prom); err != nil {
		return res, fmt.Errorf("promote %s: %w", in.ToVersion, err)
	}
	res.Champion, res.Changed = prom.Champion, prom.Changed
	if err := workflow.ExecuteActivity(withSummary(actx, "announce "+in.ToVersion), a.AnnounceModel, activities.AnnounceInput{
		ModelName: in.ModelName, Version: in.ToVersion, Previous: champ.Version,
		WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID,
	}).Get(ctx, nil); err != nil {
		return res, fmt.Errorf("announce %s: %w", in.ToVersion, err)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPromoted.ValueSet(prom.Changed))
	_ = workflow.UpsertMemo(ctx, map[string]any{"summary": fmt.Sprintf("%s rolled back from %s to %s: %s",
		in.ModelName, orNone(champ.Version), in.ToVersion, in.Reason)})
	return res, nil
}

// BacktestInput scores a version over a past period. Example:
//
//	{"model_name": "fare", "version": "v20261128-172049-bootstrap", "from": "2014-01-01T00:00:00Z", "to": "2015-01-01T00:00:00Z"}
type BacktestInput struct {
	ModelName string    `json:"model_name"`
	Version   string    `json:"version"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
}

// BacktestWorkflow reports a model version's metrics over a past time range
// of the trips, in total and month by month.
func BacktestWorkflow(ctx workflow.Context, in BacktestInput) (activities.BacktestResult, error) {
	if in.ModelName == "" || in.Version == "" || !in.To.After(in.From) {
		return activities.BacktestResult{}, temporal.NewNonRetryableApplicationError(
			"model_name, version and a range with to after from are required", activities.ErrTypeInvalidInput, nil)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx,
		AttrModelName.ValueSet(in.ModelName),
		AttrTriggerType.ValueSet(TriggerBacktest),
		AttrCandidateVersion.ValueSet(in.Version),
	)
	var a *activities.Activities
	actx := workflow.WithActivityOptions(ctx, activityOptions(30*time.Minute,
		fmt.Sprintf("score %s %s from %s to %s", in.ModelName, in.Version, in.From.Format("2006-01-02"), in.To.Format("2006-01-02"))))
	var res activities.BacktestResult
	if err := workflow.ExecuteActivity(actx, a.Backtest, activities.BacktestInput{
		ModelName: in.ModelName, Version: in.Version, From: in.From, To: in.To,
	}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("backtest: %w", err)
	}
	m, _ := lookupPrimary(in.ModelName)
	_ = workflow.UpsertMemo(ctx, map[string]any{"summary": fmt.Sprintf("%s %s over %d trips: %s %.4f",
		in.ModelName, in.Version, res.Rows, m, res.Metrics[m])})
	return res, nil
}

// FeastMaterializationInput configures a scheduled materialization.
// Example: {"max_rows": 20000}
type FeastMaterializationInput struct {
	// MaxRows of the most recent labelled trips to snapshot (default 20000).
	MaxRows int `json:"max_rows,omitempty"`
}

// FeastMaterializationWorkflow snapshots the recent labelled trips, writes
// their offline feature table and materializes it into Feast's online
// store. A Temporal Schedule runs it.
func FeastMaterializationWorkflow(ctx workflow.Context, in FeastMaterializationInput) (activities.MaterializeResult, error) {
	if in.MaxRows == 0 {
		in.MaxRows = 20000
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrTriggerType.ValueSet(TriggerSchedule))
	info := workflow.GetInfo(ctx)
	var a *activities.Activities
	var snap activities.SnapshotResult
	sctx := workflow.WithActivityOptions(ctx, activityOptions(10*time.Minute, fmt.Sprintf("snapshot %d recent trips", in.MaxRows)))
	if err := workflow.ExecuteActivity(sctx, a.SnapshotDataset, activities.SnapshotInput{
		ModelName: "fare", DatasetID: datasetID(info.WorkflowExecution.ID, info.WorkflowExecution.RunID),
		MaxRows: in.MaxRows, MinRows: 1,
	}).Get(ctx, &snap); err != nil {
		return activities.MaterializeResult{}, fmt.Errorf("snapshot: %w", err)
	}
	var res activities.MaterializeResult
	mctx := workflow.WithActivityOptions(ctx, activityOptions(10*time.Minute, "materialize "+snap.URI))
	if err := workflow.ExecuteActivity(mctx, a.MaterializeFeatures, activities.MaterializeInput{
		DatasetURI: snap.URI, From: snap.From, To: snap.To,
	}).Get(ctx, &res); err != nil {
		return res, fmt.Errorf("materialize: %w", err)
	}
	_ = workflow.UpsertMemo(ctx, map[string]any{"summary": fmt.Sprintf("%d rows to %s (feast: %v)", res.Rows, res.OfflineURI, res.Feast)})
	return res, nil
}

func lookupPrimary(model string) (string, bool) {
	m, err := training.Lookup(model)
	if err != nil {
		return "", false
	}
	return m.PrimaryMetric, true
}
