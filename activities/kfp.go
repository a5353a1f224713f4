package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/taxi-mlops/taxi-mlops/kfp"
	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/ml/drift"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Runtime parameters of the TFX pipeline (deploy/tfx/pipeline.py declares
// the same names; a test keeps the two lists equal). Every run gets all of
// them:
//
//   - train_uri, holdout_uri (string): the snapshot's Parquet files,
//     s3://<datasets bucket>/<model>/<dataset id>/{train,holdout}.parquet.
//   - model_name, model_version (string): the catalogue model and the
//     candidate version the workflow named.
//   - objective (string): reg:squarederror or binary:logistic.
//   - label (string): what the model predicts, from the snapshot's columns:
//     "fare", "tips", or "big_tipper" (tips > 0.2 × fare).
//   - feature_names (string): JSON array of the model's features, in
//     order (ml/features names).
//   - timezone (string): the IANA zone hour, weekday and month are read in
//     (America/Chicago).
//   - community_areas_uri (string): s3:// URI of the GeoJSON boundaries the
//     control plane assigns community areas with (rides.FeatureTrip); ""
//     means: use the areas the city labelled.
//   - validation_fraction (double): the newest share of the training rows
//     held out for early stopping and the recorded metrics (0.1).
//   - max_companies (int): size bound of the company vocabulary (20).
//   - xgb_params (string): JSON object of xgboost parameters, named as
//     xgboost names them (tree_method, max_depth, eta, min_child_weight,
//     lambda, alpha, gamma, subsample, colsample_bytree, max_bin, seed,
//     eval_metric, and base_score when the catalogue fixes one).
//   - num_boost_round, early_stopping_rounds (int).
//   - push_destination (string): where the Pusher writes model.json,
//     feature_spec.json and push.json: s3://<models bucket>/<model>/<version>/kfp/.
const (
	KFPParamTrainURI            = "train_uri"
	KFPParamHoldoutURI          = "holdout_uri"
	KFPParamModelName           = "model_name"
	KFPParamModelVersion        = "model_version"
	KFPParamObjective           = "objective"
	KFPParamLabel               = "label"
	KFPParamFeatureNames        = "feature_names"
	KFPParamTimezone            = "timezone"
	KFPParamCommunityAreasURI   = "community_areas_uri"
	KFPParamValidationFraction  = "validation_fraction"
	KFPParamMaxCompanies        = "max_companies"
	KFPParamXGBParams           = "xgb_params"
	KFPParamNumBoostRound       = "num_boost_round"
	KFPParamEarlyStoppingRounds = "early_stopping_rounds"
	KFPParamPushDestination     = "push_destination"
)

// KFPParameterNames lists the runtime parameters every kfp run gets.
func KFPParameterNames() []string {
	return []string{
		KFPParamTrainURI, KFPParamHoldoutURI, KFPParamModelName, KFPParamModelVersion,
		KFPParamObjective, KFPParamLabel, KFPParamFeatureNames, KFPParamTimezone,
		KFPParamCommunityAreasURI, KFPParamValidationFraction, KFPParamMaxCompanies,
		KFPParamXGBParams, KFPParamNumBoostRound, KFPParamEarlyStoppingRounds,
		KFPParamPushDestination,
	}
}

// What the pipeline's Pusher writes at the push destination, in this
// order: the XGBoost model (Booster.save_model JSON), its features.Spec,
// and a manifest written last.
const (
	KFPModelFile    = "model.json"
	KFPSpecFile     = "feature_spec.json"
	KFPManifestFile = "push.json"
)

// Error types of kfp runs that ended badly; both are non-retryable (the
// run is resumed by id, so a retry would find the same ending).
const (
	// ErrTypePipelineFailed: the run FAILED or was SKIPPED.
	ErrTypePipelineFailed = "PipelineFailed"
	// ErrTypePipelineCanceled: the run was terminated from outside.
	ErrTypePipelineCanceled = "PipelineCanceled"
)

// kfpLabels names the label of each catalogue model in the terms of the
// pipeline's "label" parameter; training.Model.Label is the Go side.
var kfpLabels = map[string]string{
	training.Fare:      "fare",
	training.Tip:       "tips",
	training.BigTipper: "big_tipper",
}

// KFPLabel is the "label" runtime parameter of a catalogue model.
func KFPLabel(model string) (string, bool) {
	l, ok := kfpLabels[model]
	return l, ok
}

// KFPManifest is push.json: what the pipeline says about the model it
// pushed. Every field is optional; a manifest naming another model or
// version is refused.
type KFPManifest struct {
	ModelName    string `json:"model_name,omitempty"`
	ModelVersion string `json:"model_version,omitempty"`
	// BestIteration is the last tree kept (early stopping), 0-based.
	BestIteration *int `json:"best_iteration,omitempty"`
	TrainRows     int  `json:"train_rows,omitempty"`
	// ValidationMetrics are the pipeline's own metrics on the validation
	// slice; the activity recomputes them with the Go evaluator and refuses
	// the model when the primary metric disagrees (training/serving skew).
	ValidationMetrics map[string]float64 `json:"validation_metrics,omitempty"`
	HoldoutMetrics    map[string]float64 `json:"holdout_metrics,omitempty"`
	XGBoostVersion    string             `json:"xgboost_version,omitempty"`
}

// skewTolerance is how far (relative) the pipeline's validation metric may
// be from the Go evaluator's: the margins are bit-identical, so only
// float rounding in the metric itself remains.
const skewTolerance = 1e-6

// KFPDisplayName is the display name of the run training version of
// model: deterministic, so a retried activity that lost the run id can
// find its run (kfp.Client.FindRuns) instead of starting a second one.
func KFPDisplayName(model, version string) string {
	return "taxi-mlops/" + model + "/" + version
}

// runKFP runs the TFX pipeline on Kubeflow Pipelines and stores what it
// pushed as the candidate version.
//
// The run id is heartbeated as soon as the run exists and on every poll; a
// retried attempt resumes from the heartbeat details, or, when it has none
// (the first attempt died before a heartbeat reached the server), from the
// run named KFPDisplayName, and only then creates a run. Polls whose read
// fails transiently are repeated, up to kfp.Config.MaxPollErrors in a row,
// after which the attempt fails retryably and the next one resumes. When
// the workflow cancels the activity (or goes away), the run is terminated;
// a timed-out attempt or a worker shutting down leaves it running for the
// next attempt.
func (a *Activities) runKFP(ctx context.Context, in PipelineInput) (TrainResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return TrainResult{}, err
	}
	switch {
	case in.Version == "":
		return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New("pipeline kfp: version is required"))
	case in.TrainURI == "" || in.HoldoutURI == "":
		return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New("pipeline kfp: train_uri and holdout_uri are required"))
	case a.Location == nil:
		return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New("pipeline kfp: the worker has no time zone for the feature transform"))
	}
	cfg := a.KFP.Config()
	if cfg.PipelineID == "" || cfg.PipelineVersionID == "" {
		return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New(
			"pipeline kfp: no pipeline version is configured (--kfp-pipeline-id, --kfp-pipeline-version-id)"))
	}
	push := a.Registry.URI(m.Name, in.Version) + "kfp/"

	runID, err := a.kfpRun(ctx, m, in, push)
	if err != nil {
		return TrainResult{}, err
	}
	if err := a.followKFP(ctx, runID); err != nil {
		return TrainResult{}, err
	}
	return a.collectKFP(ctx, m, in, push, runID)
}

// kfpRun returns the id of the run training in.Version: resumed from the
// heartbeat details, found by name on a retry, or created.
func (a *Activities) kfpRun(ctx context.Context, m training.Model, in PipelineInput, push string) (string, error) {
	cfg := a.KFP.Config()
	name := KFPDisplayName(m.Name, in.Version)
	if activity.HasHeartbeatDetails(ctx) {
		var id string
		if err := activity.GetHeartbeatDetails(ctx, &id); err == nil && id != "" {
			a.Logger.Info("resuming kfp run", "model", m.Name, "version", in.Version, "run", id)
			return id, nil
		}
	}
	if activity.GetInfo(ctx).Attempt > 1 {
		runs, err := a.KFP.FindRuns(ctx, name, cfg.ExperimentID)
		if err != nil {
			return "", kfpError("find run "+name, err)
		}
		if len(runs) > 0 {
			id := runs[0].RunID
			activity.RecordHeartbeat(ctx, id)
			a.Logger.Info("found kfp run by name", "model", m.Name, "version", in.Version, "run", id)
			return id, nil
		}
	}
	areas, err := a.kfpAreasURI(ctx)
	if err != nil {
		return "", err
	}
	params, err := kfpParameters(m, in, push, areas, a.Location.String())
	if err != nil {
		return "", permanent(ErrTypeInvalidInput, err)
	}
	run, err := a.KFP.CreateRun(ctx, &kfp.Run{
		DisplayName: name,
		Description: fmt.Sprintf("%s candidate %s from %s (workflow %s, trigger %s)",
			m.Name, in.Version, in.DatasetURI, in.Lineage.WorkflowID, in.Lineage.TriggerType),
		ExperimentID: cfg.ExperimentID,
		PipelineVersionReference: &kfp.PipelineVersionReference{
			PipelineID: cfg.PipelineID, PipelineVersionID: cfg.PipelineVersionID,
		},
		RuntimeConfig:  &kfp.RuntimeConfig{Parameters: params, PipelineRoot: cfg.PipelineRoot},
		ServiceAccount: cfg.ServiceAccount,
	})
	if err != nil {
		return "", kfpError("create run "+name, err)
	}
	activity.RecordHeartbeat(ctx, run.RunID)
	a.Logger.Info("kfp run created", "model", m.Name, "version", in.Version, "run", run.RunID, "url", a.KFP.UIURL(run.RunID))
	return run.RunID, nil
}

// kfpParameters are the runtime parameters of the run (see KFPParam*).
func kfpParameters(m training.Model, in PipelineInput, push, areasURI, timezone string) (map[string]any, error) {
	label, ok := kfpLabels[m.Name]
	if !ok {
		return nil, fmt.Errorf("pipeline kfp: model %s has no label the pipeline knows", m.Name)
	}
	names, err := json.Marshal(m.Features)
	if err != nil {
		return nil, err
	}
	xp, err := json.Marshal(xgbParams(m.Params))
	if err != nil {
		return nil, err
	}
	return map[string]any{
		KFPParamTrainURI:            in.TrainURI,
		KFPParamHoldoutURI:          in.HoldoutURI,
		KFPParamModelName:           m.Name,
		KFPParamModelVersion:        in.Version,
		KFPParamObjective:           m.Objective,
		KFPParamLabel:               label,
		KFPParamFeatureNames:        string(names),
		KFPParamTimezone:            timezone,
		KFPParamCommunityAreasURI:   areasURI,
		KFPParamValidationFraction:  training.ValidationFraction,
		KFPParamMaxCompanies:        features.MaxCompanies,
		KFPParamXGBParams:           string(xp),
		KFPParamNumBoostRound:       m.Params.NumRounds,
		KFPParamEarlyStoppingRounds: m.Params.EarlyStoppingRounds,
		KFPParamPushDestination:     push,
	}, nil
}

// xgbParams are the built-in trainer's parameters under xgboost's names.
// base_score is left out when the catalogue leaves it to the trainer: the
// pipeline then applies ml/boost's rule (mean label for regression, 0.5
// for binary:logistic), which xgboost 2's own estimate does not follow.
func xgbParams(p boost.Params) map[string]any {
	metric := "rmse"
	if p.Objective == boost.BinaryLogistic {
		metric = "logloss"
	}
	out := map[string]any{
		"tree_method":      "hist",
		"max_depth":        p.MaxDepth,
		"eta":              p.Eta,
		"min_child_weight": p.MinChildWeight,
		"lambda":           p.Lambda,
		"alpha":            p.Alpha,
		"gamma":            p.Gamma,
		"subsample":        p.Subsample,
		"colsample_bytree": p.ColsampleByTree,
		"max_bin":          p.MaxBin,
		"seed":             p.Seed,
		"eval_metric":      metric,
	}
	if p.BaseScore != 0 {
		out["base_score"] = p.BaseScore
	}
	return out
}

// kfpAreasURI uploads the community-area boundaries the worker assigns
// areas with, once per content (the key holds its hash), so the pipeline
// encodes areas exactly as rides.FeatureTrip does. "" when the worker has
// none: both sides then use the city's labels.
func (a *Activities) kfpAreasURI(ctx context.Context) (string, error) {
	if a.Areas == nil {
		return "", nil
	}
	raw := a.Areas.GeoJSON()
	sum := sha256.Sum256(raw)
	key := "reference/community_areas-" + hex.EncodeToString(sum[:8]) + ".geojson"
	_, err := a.S3.StatObject(ctx, a.DatasetBucket, key, minio.StatObjectOptions{})
	if err == nil {
		return a.uri(key), nil
	}
	if minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return "", fmt.Errorf("pipeline kfp: stat %s: %w", a.uri(key), err)
	}
	if err := a.put(ctx, key, raw, "application/geo+json"); err != nil {
		return "", fmt.Errorf("pipeline kfp: %w", err)
	}
	return a.uri(key), nil
}

// kfpError classifies a client error: answers that repeating cannot change
// are non-retryable with the server's message; the rest is retried.
func kfpError(op string, err error) error {
	err = fmt.Errorf("pipeline kfp: %s: %w", op, err)
	if kfp.IsPermanent(err) {
		return permanent(ErrTypeInvalidInput, err)
	}
	return err
}

// followKFP polls the run until it ends, heartbeating its id on every
// poll. Only SUCCEEDED returns nil.
func (a *Activities) followKFP(ctx context.Context, runID string) error {
	cfg := a.KFP.Config()
	url := a.KFP.UIURL(runID)
	failures := 0
	for {
		run, err := a.KFP.GetRun(ctx, runID)
		if ctx.Err() != nil {
			return a.kfpStopped(ctx, runID)
		}
		switch {
		case err != nil && kfp.IsPermanent(err):
			return permanent(ErrTypeInvalidInput, fmt.Errorf("pipeline kfp: follow run %s: %w", runID, err))
		case err != nil:
			failures++
			if failures >= cfg.MaxPollErrors {
				return fmt.Errorf("pipeline kfp: follow run %s: %d reads in a row failed, the last: %w", runID, failures, err)
			}
			a.Logger.Warn("reading kfp run failed; polling on", "run", runID, "failures", failures, "err", err)
		default:
			failures = 0
			switch run.State {
			case kfp.StateSucceeded:
				activity.RecordHeartbeat(ctx, runID)
				return nil
			case kfp.StateFailed:
				return permanent(ErrTypePipelineFailed, fmt.Errorf("pipeline kfp: run %s failed: %s (%s)", runID, run.FailureMessage(), url))
			case kfp.StateCanceled:
				return permanent(ErrTypePipelineCanceled, fmt.Errorf("pipeline kfp: run %s was canceled: %s (%s)", runID, run.FailureMessage(), url))
			case kfp.StateSkipped:
				return permanent(ErrTypePipelineFailed, fmt.Errorf("pipeline kfp: run %s was skipped and trained nothing (%s)", runID, url))
			}
		}
		activity.RecordHeartbeat(ctx, runID)
		t := time.NewTimer(cfg.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return a.kfpStopped(ctx, runID)
		case <-t.C:
		}
	}
}

// kfpStopped handles the end of the activity's context while it follows a
// run: when nobody will wait for the run any more — the workflow cancelled
// the activity (the heartbeat answer says so), or the server no longer
// knows the activity because its workflow closed — the run is terminated.
// A deadline or a worker shutting down leaves it for the next attempt,
// which resumes it.
func (a *Activities) kfpStopped(ctx context.Context, runID string) error {
	cause := context.Cause(ctx)
	if kfpAbandoned(ctx, cause) {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := a.KFP.CancelRun(tctx, runID); err != nil {
			a.Logger.Warn("terminating kfp run failed", "run", runID, "err", err)
		} else {
			a.Logger.Info("kfp run terminated: the activity was cancelled", "run", runID, "cause", fmt.Sprintf("%T %v", cause, cause))
		}
	}
	return fmt.Errorf("pipeline kfp: run %s: %w", runID, ctx.Err())
}

func kfpAbandoned(ctx context.Context, cause error) bool {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return false
	}
	select {
	case <-activity.GetWorkerStopChannel(ctx):
		return false
	default:
	}
	var gone *serviceerror.NotFound
	return temporal.IsCanceledError(cause) || errors.As(cause, &gone)
}

// collectKFP checks what the run pushed and stores it as the candidate.
func (a *Activities) collectKFP(ctx context.Context, m training.Model, in PipelineInput, push, runID string) (TrainResult, error) {
	cfg := a.KFP.Config()
	runURL := a.KFP.UIURL(runID)
	bucket, prefix, err := splitS3(push)
	if err != nil {
		return TrainResult{}, permanent(ErrTypeInvalidInput, err)
	}
	corrupt := func(format string, args ...any) error {
		return permanent(ErrTypeCorruptModel, fmt.Errorf("pipeline kfp: run %s pushed to %s: "+format, append([]any{runID, push}, args...)...))
	}
	files := map[string][]byte{}
	for _, f := range []string{KFPModelFile, KFPSpecFile, KFPManifestFile} {
		b, ok, err := a.getObject(ctx, bucket, prefix+f)
		if err != nil {
			return TrainResult{}, fmt.Errorf("pipeline kfp: read %s%s: %w", push, f, err)
		}
		if !ok && f != KFPManifestFile {
			return TrainResult{}, corrupt("no %s although the run succeeded", f)
		}
		files[f] = b
	}
	model, err := xgb.Parse(files[KFPModelFile])
	if err != nil {
		return TrainResult{}, corrupt("%s: %v", KFPModelFile, err)
	}
	var spec features.Spec
	if err := json.Unmarshal(files[KFPSpecFile], &spec); err != nil {
		return TrainResult{}, corrupt("%s: %v", KFPSpecFile, err)
	}
	if err := spec.Init(); err != nil {
		return TrainResult{}, corrupt("%s: %v", KFPSpecFile, err)
	}
	var man KFPManifest
	if b := files[KFPManifestFile]; b != nil {
		if err := json.Unmarshal(b, &man); err != nil {
			return TrainResult{}, corrupt("%s: %v", KFPManifestFile, err)
		}
	}
	switch {
	case !slices.Equal(spec.Names, m.Features):
		return TrainResult{}, corrupt("the feature spec names %v, model %s reads %v", spec.Names, m.Name, m.Features)
	case model.NumFeatures() != spec.Len():
		return TrainResult{}, corrupt("the model has %d features, its feature spec %d", model.NumFeatures(), spec.Len())
	case model.Objective() != m.Objective:
		return TrainResult{}, corrupt("the model's objective is %s, model %s is %s", model.Objective(), m.Name, m.Objective)
	case len(model.FeatureNames()) > 0 && !slices.Equal(model.FeatureNames(), spec.Names):
		return TrainResult{}, corrupt("the model's feature names %v differ from its spec's %v", model.FeatureNames(), spec.Names)
	case man.ModelName != "" && man.ModelName != m.Name, man.ModelVersion != "" && man.ModelVersion != in.Version:
		return TrainResult{}, corrupt("the manifest describes %s %s", man.ModelName, man.ModelVersion)
	}

	// The reference profile and the validation metrics, the Go way: the
	// training part's rows through the pushed spec, and the Go evaluator
	// on the newest ValidationFraction, as training.Fit does.
	rows, err := a.readDataset(ctx, in.TrainURI)
	if err != nil {
		return TrainResult{}, err
	}
	ex := training.Examples(rows, a.Areas, a.Location)
	training.SortByTime(ex)
	train, valid, _ := training.SplitByTime(ex, training.ValidationFraction)
	if len(train) == 0 {
		return TrainResult{}, permanent(ErrTypeBadDataset, fmt.Errorf("pipeline kfp: %s has no training rows", in.TrainURI))
	}
	profile, err := ReferenceProfile(&spec, train)
	if err != nil {
		return TrainResult{}, corrupt("reference profile: %v", err)
	}
	metrics := training.Score(m, model, &spec, valid)
	if want, ok := man.ValidationMetrics[m.PrimaryMetric]; ok && len(valid) > 0 {
		got := metrics[m.PrimaryMetric]
		if !(math.Abs(got-want) <= skewTolerance*math.Max(1, math.Abs(want))) {
			return TrainResult{}, corrupt("training/serving skew: the pipeline measured %s %.9g on the %d validation rows, "+
				"the Go evaluator %.9g on the same rows through the pushed spec", m.PrimaryMetric, want, len(valid), got)
		}
	}
	a.compareVocabularies(m, &spec, train, runID)

	best := model.NumTrees() - 1
	if man.BestIteration != nil {
		best = *man.BestIteration
	}
	cand := &training.Candidate{
		Model: model, JSON: files[KFPModelFile], Spec: &spec, Profile: profile,
		Params: m.Params, Metrics: metrics, BestIteration: best, Rows: len(train),
	}
	meta, err := Metadata(m, in.Version, cand, in.TrainURI, registry.Lineage{
		WorkflowID: in.Lineage.WorkflowID, RunID: in.Lineage.RunID,
		TriggerType: in.Lineage.TriggerType, TriggerID: in.Lineage.TriggerID, Reason: in.Lineage.Reason,
		DatasetURI: in.DatasetURI, ParentVersion: in.Lineage.ParentVersion,
	})
	if err != nil {
		return TrainResult{}, err
	}
	if meta.Params, err = json.Marshal(KFPTrainParams{
		Params: m.Params, Pipeline: PipelineKFP,
		KFPRunID: runID, KFPRunURL: runURL,
		KFPPipelineID: cfg.PipelineID, KFPPipelineVersionID: cfg.PipelineVersionID,
		KFPPushDestination: push, XGBoostVersion: man.XGBoostVersion,
	}); err != nil {
		return TrainResult{}, fmt.Errorf("encode params: %w", err)
	}
	stored, err := a.Registry.Put(ctx, meta, files[KFPModelFile])
	if err != nil {
		if errors.Is(err, registry.ErrVersionExists) {
			return TrainResult{}, permanent(ErrTypeConflict, err)
		}
		return TrainResult{}, fmt.Errorf("store %s %s: %w", m.Name, in.Version, err)
	}
	a.Logger.Info("candidate trained by kfp", "model", m.Name, "version", in.Version, "run", runID, "rows", len(train), "metrics", metrics)
	return TrainResult{
		ModelName: m.Name, Version: in.Version,
		URI: a.Registry.URI(m.Name, in.Version), SHA256: stored.SHA256,
		Rows: len(train), BestIteration: best, Metrics: metrics,
		PipelineRunID: runID, PipelineRunURL: runURL,
	}, nil
}

// KFPTrainParams is the params record of a version trained on Kubeflow
// Pipelines: the catalogue's trainer parameters (the fields of
// boost.Params, as the built-in trainer records them) and where the model
// came from. The registry's Lineage has no place for a pipeline run.
type KFPTrainParams struct {
	boost.Params
	Pipeline             string
	KFPRunID             string
	KFPRunURL            string
	KFPPipelineID        string
	KFPPipelineVersionID string
	KFPPushDestination   string
	XGBoostVersion       string `json:",omitempty"`
}

// compareVocabularies logs when the pipeline learnt other vocabularies
// than ml/features learns from the same rows. Serving uses the pushed
// ones, so this is not skew; it says the two implementations drifted.
func (a *Activities) compareVocabularies(m training.Model, spec *features.Spec, train []training.Example, runID string) {
	rows := make([]features.Row, len(train))
	for i := range train {
		rows[i] = train[i].Row
	}
	goSpec, err := features.NewSpec(m.Features, rows)
	if err != nil {
		return
	}
	if !slices.Equal(goSpec.PaymentVocab, spec.PaymentVocab) || !slices.Equal(goSpec.CompanyVocab, spec.CompanyVocab) {
		a.Logger.Warn("the pipeline's vocabularies differ from ml/features' on the same rows", "run", runID,
			"pipeline_payment", spec.PaymentVocab, "go_payment", goSpec.PaymentVocab,
			"pipeline_company", spec.CompanyVocab, "go_company", goSpec.CompanyVocab)
	}
}

// ReferenceProfile is the drift reference of examples encoded with spec,
// built as training.Fit builds its candidates' (ProfileBins quantile bins,
// categorical codes by value), for models trained elsewhere.
func ReferenceProfile(spec *features.Spec, ex []training.Example) (*drift.Profile, error) {
	nf := spec.Len()
	x := make([]float32, len(ex)*nf)
	for i := range ex {
		spec.Vector(&ex[i].Row, x[i*nf:(i+1)*nf])
	}
	kinds := make([]drift.Kind, nf)
	for i, k := range spec.Kinds() {
		kinds[i] = drift.Numeric
		if k == features.Categorical {
			kinds[i] = drift.Categorical
		}
	}
	return drift.NewProfile(spec.Names, kinds, x, nf, training.ProfileBins)
}

// splitS3 splits s3://bucket/prefix.
func splitS3(uri string) (bucket, key string, err error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" || u.Host == "" {
		return "", "", fmt.Errorf("%q is not an s3://bucket/key URI", uri)
	}
	return u.Host, strings.TrimPrefix(u.Path, "/"), nil
}

// getObject reads an object; ok is false when it does not exist.
func (a *Activities) getObject(ctx context.Context, bucket, key string) ([]byte, bool, error) {
	obj, err := a.S3.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, false, err
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, false, nil
		}
		return nil, false, err
	}
	return b, true, nil
}
