package activities

import (
	"time"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
)

// Error types of non-retryable failures. Workflows list them in their retry
// policies; everything else is retried.
const (
	// ErrTypeInvalidInput: the request cannot succeed as given (unknown
	// model, bad parameters).
	ErrTypeInvalidInput = "InvalidInput"
	// ErrTypeBadDataset: the dataset is too small or malformed to train on.
	ErrTypeBadDataset = "BadDataset"
	// ErrTypeConflict: the champion changed under us; the caller must decide
	// again rather than retry.
	ErrTypeConflict = "ChampionConflict"
	// ErrTypeCorruptModel: a stored model does not match its checksum.
	ErrTypeCorruptModel = "CorruptModel"
)

// NonRetryable lists the error types above, for retry policies.
var NonRetryable = []string{ErrTypeInvalidInput, ErrTypeBadDataset, ErrTypeConflict, ErrTypeCorruptModel,
	ErrTypePipelineFailed, ErrTypePipelineCanceled}

// ChampionInput names a model.
type ChampionInput struct {
	ModelName string `json:"model_name"`
}

// ChampionInfo is the current champion of a model; Version is "" when the
// model has none yet.
type ChampionInfo struct {
	ModelName string             `json:"model_name"`
	Version   string             `json:"version"`
	Metrics   map[string]float64 `json:"metrics"`
}

// SnapshotInput asks for a labelled dataset of the most recent trips.
type SnapshotInput struct {
	ModelName string `json:"model_name"`
	// DatasetID names the snapshot; the same id always names the same
	// objects, so a retried activity overwrites rather than duplicates.
	DatasetID string `json:"dataset_id"`
	// MaxRows bounds how many recent rides are read.
	MaxRows int `json:"max_rows"`
	// HoldoutFraction of the rows, the most recent by event time, is kept
	// out of training for evaluation.
	HoldoutFraction float64 `json:"holdout_fraction"`
	// MinRows below which the dataset is refused.
	MinRows int `json:"min_rows"`
}

// SnapshotResult describes a snapshot written to S3, with its lineage.
type SnapshotResult struct {
	URI         string `json:"uri"`
	TrainURI    string `json:"train_uri"`
	HoldoutURI  string `json:"holdout_uri"`
	Rows        int    `json:"rows"`
	TrainRows   int    `json:"train_rows"`
	HoldoutRows int    `json:"holdout_rows"`
	// Unlabelled rides had no actual yet and were left out.
	Unlabelled int       `json:"unlabelled"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	SplitTime  time.Time `json:"split_time"`
	// Offsets read, per topic, for lineage.
	Offsets map[string][]kafka.Range `json:"offsets"`
}

// TrainInput asks for a candidate model trained on a dataset.
type TrainInput struct {
	ModelName string `json:"model_name"`
	Version   string `json:"version"`
	// Pipeline is "builtin" (the Go trainer).
	Pipeline   string  `json:"pipeline"`
	TrainURI   string  `json:"train_uri"`
	DatasetURI string  `json:"dataset_uri"`
	Lineage    Lineage `json:"lineage"`
}

// Lineage is why and from what a model version was made.
type Lineage struct {
	WorkflowID    string `json:"workflow_id"`
	RunID         string `json:"run_id"`
	TriggerType   string `json:"trigger_type"`
	TriggerID     string `json:"trigger_id"`
	Reason        string `json:"reason"`
	ParentVersion string `json:"parent_version"`
}

// TrainResult is the candidate stored in the registry.
type TrainResult struct {
	ModelName     string             `json:"model_name"`
	Version       string             `json:"version"`
	URI           string             `json:"uri"`
	SHA256        string             `json:"sha256"`
	Rows          int                `json:"rows"`
	BestIteration int                `json:"best_iteration"`
	Metrics       map[string]float64 `json:"metrics"`
	// PipelineRunID and PipelineRunURL name the Kubeflow Pipelines run
	// (kfp pipeline only).
	PipelineRunID  string `json:"pipeline_run_id,omitempty"`
	PipelineRunURL string `json:"pipeline_run_url,omitempty"`
}

// EvaluateInput compares a challenger with the champion on a holdout.
type EvaluateInput struct {
	ModelName  string `json:"model_name"`
	Challenger string `json:"challenger"`
	// Champion is "" when the model has none; the challenger then wins.
	Champion   string `json:"champion"`
	HoldoutURI string `json:"holdout_uri"`
	// MinImprovement is the relative improvement of the primary metric the
	// challenger needs (0.01 = 1% better).
	MinImprovement float64 `json:"min_improvement"`
	// GuardTolerance is how much worse (relative) a guard metric may get.
	GuardTolerance float64 `json:"guard_tolerance"`
}

// EvaluateResult is the verdict with the numbers behind it.
type EvaluateResult struct {
	PrimaryMetric string             `json:"primary_metric"`
	Challenger    map[string]float64 `json:"challenger"`
	Champion      map[string]float64 `json:"champion"`
	Rows          int                `json:"rows"`
	Better        bool               `json:"better"`
	Reason        string             `json:"reason"`
}

// PromoteInput makes Version the champion if the champion still is Expected.
type PromoteInput struct {
	ModelName  string `json:"model_name"`
	Version    string `json:"version"`
	Expected   string `json:"expected"`
	Reason     string `json:"reason"`
	WorkflowID string `json:"workflow_id"`
}

// PromoteResult says whether this call changed the champion.
type PromoteResult struct {
	Changed  bool   `json:"changed"`
	Champion string `json:"champion"`
	Previous string `json:"previous"`
}

// AnnounceInput tells the streamers about a new champion.
type AnnounceInput struct {
	ModelName  string `json:"model_name"`
	Version    string `json:"version"`
	Previous   string `json:"previous"`
	WorkflowID string `json:"workflow_id"`
}

// ScoreInput asks for the champion's metrics on the latest labelled window.
type ScoreInput struct {
	ModelName string `json:"model_name"`
	MaxRows   int    `json:"max_rows"`
	// MetricIDPrefix makes metric ids unique and stable across retries.
	MetricIDPrefix string `json:"metric_id_prefix"`
	// Degradation is how much worse than its recorded validation metric the
	// champion may get before a metric counts as breached (1.5 = 50% worse).
	Degradation float64 `json:"degradation"`
}

// ScoreResult holds the metrics, ready to publish.
type ScoreResult struct {
	Metrics []contracts.ModelMetric `json:"metrics"`
	Rows    int                     `json:"rows"`
}

// ValidateInput asks whether a snapshot is fit to train on.
type ValidateInput struct {
	ModelName string         `json:"model_name"`
	Snapshot  SnapshotResult `json:"snapshot"`
	// MinRows the training part needs (default 500).
	MinRows int `json:"min_rows"`
}

// Check is one validation check and its outcome.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// ValidateResult lists the checks; OK when every one passed.
type ValidateResult struct {
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// PipelineInput asks a training pipeline for a candidate.
type PipelineInput struct {
	ModelName string `json:"model_name"`
	Version   string `json:"version"`
	// Pipeline is "builtin" (the Go trainer) or "kfp" (the TFX pipeline
	// on Kubeflow Pipelines).
	Pipeline   string  `json:"pipeline"`
	TrainURI   string  `json:"train_uri"`
	HoldoutURI string  `json:"holdout_uri"`
	DatasetURI string  `json:"dataset_uri"`
	Lineage    Lineage `json:"lineage"`
}

// ShadowInput asks for the challenger and the champion to score the same
// live trips.
type ShadowInput struct {
	ModelName  string `json:"model_name"`
	Challenger string `json:"challenger"`
	Champion   string `json:"champion"`
	// Records of the live stream, from now on, both models score.
	Records int `json:"records"`
	// MaxWait bounds how long the shadow waits for the records and their
	// actuals (default 10 minutes).
	MaxWaitSeconds int `json:"max_wait_seconds"`
	// MinImprovement of the primary metric the challenger needs.
	MinImprovement float64 `json:"min_improvement"`
}

// ShadowResult compares the two models on live trips.
type ShadowResult struct {
	PrimaryMetric string             `json:"primary_metric"`
	Records       int                `json:"records"`
	Labelled      int                `json:"labelled"`
	Challenger    map[string]float64 `json:"challenger"`
	Champion      map[string]float64 `json:"champion"`
	Better        bool               `json:"better"`
	Reason        string             `json:"reason"`
}

// MaterializeInput asks for the offline feature table of a snapshot and,
// with a Feast feature server configured, for its materialization.
type MaterializeInput struct {
	DatasetURI string `json:"dataset_uri"`
	// From and To bound the event times materialized into the online store.
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// MaterializeResult says what was written where.
type MaterializeResult struct {
	OfflineURI string `json:"offline_uri"`
	Rows       int    `json:"rows"`
	// Feast is true when a feature server was asked to materialize.
	Feast bool `json:"feast"`
}

// BacktestInput asks for a model version's metrics over past trips.
type BacktestInput struct {
	ModelName string    `json:"model_name"`
	Version   string    `json:"version"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
}

// BacktestResult holds the metrics and how many trips they cover.
type BacktestResult struct {
	ModelName string             `json:"model_name"`
	Version   string             `json:"version"`
	Rows      int                `json:"rows"`
	Metrics   map[string]float64 `json:"metrics"`
	// ByMonth holds the primary metric per calendar month of the range.
	ByMonth map[string]float64 `json:"by_month"`
}
