// Package workflows holds the deterministic Temporal workflows of the control
// plane: a drift monitor per model that decides when to retrain, the
// retraining workflow itself, and the scheduled evaluation.
//
// Workflow code here does no I/O and reads no clock but workflow.Now; every
// effect is an activity of package activities. Each workflow takes one input
// struct and returns one result struct so inputs stay backward compatible and
// easy to type in `temporal workflow start --input '{...}'`.
package workflows

import (
	"go.temporal.io/sdk/temporal"
)

// TaskQueue is the task queue the worker polls and the starter targets.
const TaskQueue = "taxi-mlops"

// Workflow type names, as registered by the worker and used by
// `temporal workflow start --type`.
const (
	DriftMonitorWorkflowName = "DriftMonitorWorkflow"
	RetrainWorkflowName      = "RetrainWorkflow"
	EvaluationWorkflowName   = "EvaluationWorkflow"
	RollbackWorkflowName     = "RollbackWorkflow"
	BacktestWorkflowName     = "BacktestWorkflow"
	// FeastMaterializationWorkflowName materializes features on a schedule.
	FeastMaterializationWorkflowName = "FeastMaterializationWorkflow"
)

// Signals, queries and updates of DriftMonitorWorkflow.
const (
	SignalDriftAlert  = "drift-alert"
	SignalModelMetric = "model-metric"
	QueryState        = "state"
	// UpdateSetPolicy replaces the policy (validated before it is accepted).
	UpdateSetPolicy = "setPolicy"
	// UpdatePause and UpdateResume stop and restart retraining decisions;
	// evidence is still collected.
	UpdatePause  = "pause"
	UpdateResume = "resume"
)

// Trigger types, the TriggerType search attribute.
const (
	TriggerDrift    = "drift"
	TriggerMetric   = "metric"
	TriggerManual   = "manual"
	TriggerSchedule = "schedule"
	TriggerMonitor  = "monitor"
	TriggerRollback = "rollback"
	TriggerBacktest = "backtest"
)

// Search attributes of the system's workflows, filterable in the Web UI:
// ModelName = "fare" AND Promoted = true.
var (
	AttrModelName        = temporal.NewSearchAttributeKeyKeyword("ModelName")
	AttrTriggerType      = temporal.NewSearchAttributeKeyKeyword("TriggerType")
	AttrDriftScore       = temporal.NewSearchAttributeKeyFloat64("DriftScore")
	AttrCandidateVersion = temporal.NewSearchAttributeKeyKeyword("CandidateVersion")
	AttrPromoted         = temporal.NewSearchAttributeKeyBool("Promoted")
)

// SearchAttributes lists name and type of each attribute, the way
// `temporal operator search-attribute create` and the dev server's
// --search-attribute flag take them.
func SearchAttributes() [][2]string {
	return [][2]string{
		{AttrModelName.GetName(), "Keyword"},
		{AttrTriggerType.GetName(), "Keyword"},
		{AttrDriftScore.GetName(), "Double"},
		{AttrCandidateVersion.GetName(), "Keyword"},
		{AttrPromoted.GetName(), "Bool"},
	}
}

// DriftMonitorID is the workflow id of a model's drift monitor: one per model.
func DriftMonitorID(model string) string { return "drift-monitor/" + model }

// RetrainID is the workflow id of the retrain a monitor starts for a trigger.
func RetrainID(model, trigger string) string { return "retrain/" + model + "/" + trigger }
