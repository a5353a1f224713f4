package workflows

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taxi-mlops/taxi-mlops/activities"
)

// RetrainOptions tune a retrain; zero fields take defaults.
type RetrainOptions struct {
	// Pipeline trains the candidate: "builtin" (the Go trainer).
	Pipeline string `json:"pipeline,omitempty"`
	// MaxRows of recent rides in the snapshot (default 5000).
	MaxRows int `json:"max_rows,omitempty"`
	// HoldoutFraction of the snapshot, the most recent part, is used to
	// compare challenger and champion (default 0.2).
	HoldoutFraction float64 `json:"holdout_fraction,omitempty"`
	// MinRows the snapshot needs (default 1000).
	MinRows int `json:"min_rows,omitempty"`
	// MinImprovement of the primary metric the challenger needs, relative
	// (default 0.01 = 1% better than the champion).
	MinImprovement float64 `json:"min_improvement,omitempty"`
	// GuardTolerance is how much worse, relative, a guard metric (MAE of
	// the regressions, AUC of the big tipper) may get (default 0.02).
	GuardTolerance float64 `json:"guard_tolerance,omitempty"`
	// ShadowRecords of the live stream the challenger scores beside the
	// champion before promotion (0: no shadow run).
	ShadowRecords int `json:"shadow_records,omitempty"`
	// ShadowMaxWait bounds the shadow run (default "10m").
	ShadowMaxWait Duration `json:"shadow_max_wait,omitempty"`
}

// Pipelines the retrain workflow can run.
const (
	PipelineBuiltin = activities.PipelineBuiltin
	PipelineKFP     = activities.PipelineKFP
)

// WithDefaults fills zero fields.
func (o RetrainOptions) WithDefaults() RetrainOptions {
	if o.Pipeline == "" {
		o.Pipeline = PipelineBuiltin
	}
	if o.MaxRows == 0 {
		o.MaxRows = 5000
	}
	if o.HoldoutFraction == 0 {
		o.HoldoutFraction = 0.2
	}
	if o.MinRows == 0 {
		o.MinRows = 1000
	}
	if o.MinImprovement == 0 {
		o.MinImprovement = 0.01
	}
	if o.GuardTolerance == 0 {
		o.GuardTolerance = 0.02
	}
	if o.ShadowMaxWait == 0 {
		o.ShadowMaxWait = Duration(10 * time.Minute)
	}
	return o
}

// Validate says what is wrong with the options.
func (o RetrainOptions) Validate() error {
	var errs []error
	if o.Pipeline != "" && o.Pipeline != PipelineBuiltin && o.Pipeline != PipelineKFP {
		errs = append(errs, fmt.Errorf("pipeline %q is not known (use %q or %q)", o.Pipeline, PipelineBuiltin, PipelineKFP))
	}
	if o.MaxRows < 0 {
		errs = append(errs, fmt.Errorf("max_rows must not be negative, got %d", o.MaxRows))
	}
	if o.HoldoutFraction < 0 || o.HoldoutFraction >= 1 {
		errs = append(errs, fmt.Errorf("holdout_fraction must be in [0, 1), got %g", o.HoldoutFraction))
	}
	if o.MinRows < 0 {
		errs = append(errs, fmt.Errorf("min_rows must not be negative, got %d", o.MinRows))
	}
	if o.MinImprovement < 0 || o.MinImprovement >= 1 {
		errs = append(errs, fmt.Errorf("min_improvement must be in [0, 1), got %g", o.MinImprovement))
	}
	if o.GuardTolerance < 0 || o.GuardTolerance >= 1 {
		errs = append(errs, fmt.Errorf("guard_tolerance must be in [0, 1), got %g", o.GuardTolerance))
	}
	if o.ShadowRecords < 0 || o.ShadowMaxWait < 0 {
		errs = append(errs, fmt.Errorf("shadow_records and shadow_max_wait must not be negative"))
	}
	return errors.Join(errs...)
}

// RetrainInput starts a retrain. Example for `temporal workflow start`:
//
//	{"model_name": "fare", "trigger_type": "manual", "reason": "new month"}
type RetrainInput struct {
	ModelName   string  `json:"model_name"`
	TriggerType string  `json:"trigger_type,omitempty"` // default "manual"
	TriggerID   string  `json:"trigger_id,omitempty"`
	Reason      string  `json:"reason,omitempty"`
	DriftScore  float64 `json:"drift_score,omitempty"`
	RetrainOptions
}

// RetrainResult is what a retrain did.
type RetrainResult struct {
	Checks           []activities.Check       `json:"checks"`
	Shadow           *activities.ShadowResult `json:"shadow,omitempty"`
	Materialized     string                   `json:"materialized,omitempty"`
	MaterializeError string                   `json:"materialize_error,omitempty"`
	PipelineRunID    string                   `json:"pipeline_run_id,omitempty"`
	ModelName        string                   `json:"model_name"`
	CandidateVersion string                   `json:"candidate_version"`
	ChampionBefore   string                   `json:"champion_before"`
	ChampionAfter    string                   `json:"champion_after"`
	Promoted         bool                     `json:"promoted"`
	Reason           string                   `json:"reason"`
	DatasetURI       string                   `json:"dataset_uri"`
	DatasetRows      int                      `json:"dataset_rows"`
	PrimaryMetric    string                   `json:"primary_metric"`
	Challenger       map[string]float64       `json:"challenger_metrics"`
	Champion         map[string]float64       `json:"champion_metrics"`
}

// CandidateVersion names the model a retrain produces: its start time, for
// order, and a hash of the workflow run, for uniqueness. Both are fixed
// for the run, so replays and retried activities agree on it.
func CandidateVersion(start time.Time, workflowID, runID string) string {
	h := sha256.Sum256([]byte(workflowID + "\x00" + runID))
	return "v" + start.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(h[:3])
}

// datasetID turns a workflow id into an S3-safe name.
func datasetID(workflowID, runID string) string {
	r := strings.NewReplacer("/", "_", " ", "_", ":", "_")
	id := r.Replace(workflowID)
	if len(runID) >= 8 {
		id += "-" + runID[:8]
	}
	return id
}

// activityOptions are shared by the control plane's activities: retries
// with backoff for everything but the error types that cannot succeed.
func activityOptions(startToClose time.Duration, summary string) workflow.ActivityOptions {
	return workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    time.Minute,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			BackoffCoefficient:     2,
			MaximumInterval:        time.Minute,
			MaximumAttempts:        20,
			NonRetryableErrorTypes: activities.NonRetryable,
		},
	}
}

// RetrainWorkflow snapshots recent labelled trips, trains a challenger,
// compares it with the champion on the most recent slice, promotes it when
// it is better and tells the streamers.
func RetrainWorkflow(ctx workflow.Context, in RetrainInput) (RetrainResult, error) {
	logger := workflow.GetLogger(ctx)
	if in.ModelName == "" {
		return RetrainResult{}, temporal.NewNonRetryableApplicationError("model_name is required", activities.ErrTypeInvalidInput, nil)
	}
	if in.TriggerType == "" {
		in.TriggerType = TriggerManual
	}
	if err := in.RetrainOptions.Validate(); err != nil {
		return RetrainResult{}, temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrTypeInvalidInput, nil)
	}
	opts := in.RetrainOptions.WithDefaults()
	info := workflow.GetInfo(ctx)
	wfID, runID := info.WorkflowExecution.ID, info.WorkflowExecution.RunID
	version := CandidateVersion(info.WorkflowStartTime, wfID, runID)
	res := RetrainResult{ModelName: in.ModelName, CandidateVersion: version}

	if err := workflow.UpsertTypedSearchAttributes(ctx,
		AttrModelName.ValueSet(in.ModelName),
		AttrTriggerType.ValueSet(in.TriggerType),
		AttrDriftScore.ValueSet(in.DriftScore),
		AttrCandidateVersion.ValueSet(version),
	); err != nil {
		return res, fmt.Errorf("set search attributes: %w", err)
	}
	summary := func(s string) {
		_ = workflow.UpsertMemo(ctx, map[string]any{"summary": s})
	}
	summary(fmt.Sprintf("retraining %s (%s): %s", in.ModelName, in.TriggerType, in.Reason))

	var a *activities.Activities
	short := workflow.WithActivityOptions(ctx, activityOptions(time.Minute, ""))

	var champ activities.ChampionInfo
	if err := workflow.ExecuteActivity(withSummary(short, "read champion of "+in.ModelName),
		a.CurrentChampion, activities.ChampionInput{ModelName: in.ModelName}).Get(ctx, &champ); err != nil {
		return res, fmt.Errorf("read champion: %w", err)
	}
	res.ChampionBefore, res.ChampionAfter = champ.Version, champ.Version

	var snap activities.SnapshotResult
	sctx := workflow.WithActivityOptions(ctx, activityOptions(10*time.Minute, fmt.Sprintf("snapshot %d recent trips", opts.MaxRows)))
	if err := workflow.ExecuteActivity(sctx, a.SnapshotDataset, activities.SnapshotInput{
		ModelName:       in.ModelName,
		DatasetID:       datasetID(wfID, runID),
		MaxRows:         opts.MaxRows,
		HoldoutFraction: opts.HoldoutFraction,
		MinRows:         opts.MinRows,
	}).Get(ctx, &snap); err != nil {
		return res, fmt.Errorf("snapshot dataset: %w", err)
	}
	res.DatasetURI, res.DatasetRows = snap.URI, snap.Rows

	var val activities.ValidateResult
	if err := workflow.ExecuteActivity(withSummary(short, fmt.Sprintf("validate %d rows", snap.Rows)), a.ValidateDataset, activities.ValidateInput{
		ModelName: in.ModelName, Snapshot: snap, MinRows: opts.MinRows / 2,
	}).Get(ctx, &val); err != nil {
		return res, fmt.Errorf("validate dataset: %w", err)
	}
	res.Checks = val.Checks
	if !val.OK {
		var failed []string
		for _, c := range val.Checks {
			if !c.OK {
				failed = append(failed, c.Name+" ("+c.Detail+")")
			}
		}
		summary(fmt.Sprintf("%s: dataset %s refused: %s", in.ModelName, snap.URI, strings.Join(failed, "; ")))
		return res, temporal.NewNonRetryableApplicationError("dataset "+snap.URI+" failed its checks: "+strings.Join(failed, "; "),
			activities.ErrTypeBadDataset, nil, val)
	}

	var trained activities.TrainResult
	tctx := workflow.WithActivityOptions(ctx, activityOptions(2*time.Hour, "train "+version+" ("+opts.Pipeline+")"))
	if err := workflow.ExecuteActivity(tctx, a.RunPipeline, activities.PipelineInput{
		ModelName:  in.ModelName,
		Version:    version,
		Pipeline:   opts.Pipeline,
		TrainURI:   snap.TrainURI,
		HoldoutURI: snap.HoldoutURI,
		DatasetURI: snap.URI,
		Lineage: activities.Lineage{
			WorkflowID: wfID, RunID: runID,
			TriggerType: in.TriggerType, TriggerID: in.TriggerID, Reason: in.Reason,
			ParentVersion: champ.Version,
		},
	}).Get(ctx, &trained); err != nil {
		return res, fmt.Errorf("run pipeline %s: %w", opts.Pipeline, err)
	}
	res.PipelineRunID = trained.PipelineRunID

	var eval activities.EvaluateResult
	ectx := workflow.WithActivityOptions(ctx, activityOptions(10*time.Minute, "evaluate "+version+" vs "+orNone(champ.Version)))
	if err := workflow.ExecuteActivity(ectx, a.EvaluateCandidate, activities.EvaluateInput{
		ModelName:      in.ModelName,
		Challenger:     version,
		Champion:       champ.Version,
		HoldoutURI:     snap.HoldoutURI,
		MinImprovement: opts.MinImprovement,
		GuardTolerance: opts.GuardTolerance,
	}).Get(ctx, &eval); err != nil {
		return res, fmt.Errorf("evaluate: %w", err)
	}
	res.PrimaryMetric, res.Challenger, res.Champion = eval.PrimaryMetric, eval.Challenger, eval.Champion
	res.Reason = eval.Reason

	if eval.Better && opts.ShadowRecords > 0 {
		var shadow activities.ShadowResult
		wait := opts.ShadowMaxWait.Std()
		so := activityOptions(wait+5*time.Minute,
			fmt.Sprintf("shadow %s beside %s on %d live trips", version, orNone(champ.Version), opts.ShadowRecords))
		// It waits on live traffic and heartbeats every poll: a lost
		// worker is noticed soon and the shadow starts over elsewhere.
		so.HeartbeatTimeout = 20 * time.Second
		sctx := workflow.WithActivityOptions(ctx, so)
		if err := workflow.ExecuteActivity(sctx, a.ShadowEvaluate, activities.ShadowInput{
			ModelName:      in.ModelName,
			Challenger:     version,
			Champion:       champ.Version,
			Records:        opts.ShadowRecords,
			MaxWaitSeconds: int(wait / time.Second),
			MinImprovement: opts.MinImprovement,
		}).Get(ctx, &shadow); err != nil {
			return res, fmt.Errorf("shadow run: %w", err)
		}
		res.Shadow = &shadow
		eval.Better, res.Reason = shadow.Better, eval.Reason+"; "+shadow.Reason
	}

	if !eval.Better {
		logger.Info("challenger not promoted", "model", in.ModelName, "version", version, "reason", eval.Reason)
		_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPromoted.ValueSet(false))
		summary(fmt.Sprintf("%s %s not promoted: %s", in.ModelName, version, eval.Reason))
		return res, nil
	}

	var prom activities.PromoteResult
	if err := workflow.ExecuteActivity(withSummary(short, "promote "+version), a.PromoteModel, activities.PromoteInput{
		ModelName:  in.ModelName,
		Version:    version,
		Expected:   champ.Version,
		Reason:     eval.Reason,
		WorkflowID: wfID,
	}).Get(ctx, &prom); err != nil {
		return res, fmt.Errorf("promote: %w", err)
	}
	res.Promoted, res.ChampionAfter = true, prom.Champion

	// The offline feature table (and the online store, with Feast) from the
	// data the new champion learnt on. A failure here must not keep the
	// streamers from the new champion: it is recorded, not fatal.
	mopts := activityOptions(10*time.Minute, "materialize features of "+snap.URI)
	mopts.RetryPolicy.MaximumAttempts = 3
	var mat activities.MaterializeResult
	if err := workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, mopts), a.MaterializeFeatures, activities.MaterializeInput{
		DatasetURI: snap.URI, From: snap.From, To: snap.To,
	}).Get(ctx, &mat); err != nil {
		res.MaterializeError = err.Error()
		logger.Warn("feature materialization failed", "model", in.ModelName, "version", version, "err", err)
	} else {
		res.Materialized = mat.OfflineURI
	}

	if err := workflow.ExecuteActivity(withSummary(short, "announce "+version), a.AnnounceModel, activities.AnnounceInput{
		ModelName:  in.ModelName,
		Version:    version,
		Previous:   champ.Version,
		WorkflowID: wfID,
	}).Get(ctx, nil); err != nil {
		return res, fmt.Errorf("announce: %w", err)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, AttrPromoted.ValueSet(true))
	summary(fmt.Sprintf("%s %s promoted over %s: %s", in.ModelName, version, orNone(champ.Version), eval.Reason))
	logger.Info("challenger promoted", "model", in.ModelName, "version", version, "previous", champ.Version)
	return res, nil
}

func withSummary(ctx workflow.Context, s string) workflow.Context {
	o := workflow.GetActivityOptions(ctx)
	o.Summary = s
	return workflow.WithActivityOptions(ctx, o)
}

func orNone(v string) string {
	if v == "" {
		return "no champion"
	}
	return v
}
