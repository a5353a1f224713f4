package workflows

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TestReplayHistories replays histories recorded from real runs (the e2e
// tests write them with TAXI_WRITE_HISTORIES=1) against today's workflow
// code: a change that makes the code issue different commands for the same
// history — a non-deterministic change — fails here, before it can break
// workflows running in production. Such a change needs workflow.GetVersion.
func TestReplayHistories(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	covered := map[string]bool{}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflow(DriftMonitorWorkflow)
			r.RegisterWorkflow(RetrainWorkflow)
			r.RegisterWorkflow(EvaluationWorkflow)
			r.RegisterWorkflow(RollbackWorkflow)
			r.RegisterWorkflow(BacktestWorkflow)
			r.RegisterWorkflow(FeastMaterializationWorkflow)
			log := tlog.NewStructuredLogger(slog.New(slog.DiscardHandler))
			if err := r.ReplayWorkflowHistoryFromJSONFile(log, f); err != nil {
				t.Fatalf("replay %s: %v", f, err)
			}
		})
		b, _ := os.ReadFile(f)
		for _, name := range []string{DriftMonitorWorkflowName, RetrainWorkflowName, EvaluationWorkflowName,
			RollbackWorkflowName, BacktestWorkflowName, FeastMaterializationWorkflowName} {
			if strings.Contains(string(b), `"workflowType": {`+"\n"+`        "name": "`+name+`"`) ||
				strings.Contains(string(b), `"name": "`+name+`"`) {
				covered[name] = true
			}
		}
	}
	for _, name := range []string{DriftMonitorWorkflowName, RetrainWorkflowName, EvaluationWorkflowName,
		RollbackWorkflowName, BacktestWorkflowName, FeastMaterializationWorkflowName} {
		if !covered[name] {
			t.Errorf("no recorded history of %s", name)
		}
	}
}
