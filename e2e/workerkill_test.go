package e2e

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// processEnv is the environment of a worker or streamers process pointed
// at the test stack.
func (s *stack) processEnv() []string {
	return []string{
		"TAXI_KAFKA_BROKERS=" + strings.Join(s.cfg.Kafka.Brokers, ","),
		"TAXI_S3_ENDPOINT=" + s.cfg.S3.Endpoint,
		"TAXI_S3_ACCESS_KEY=" + s.cfg.S3.AccessKey,
		"TAXI_S3_SECRET_KEY=" + s.cfg.S3.SecretKey,
		"TAXI_TEMPORAL_ADDRESS=" + s.cfg.Temporal.HostPort,
		"TAXI_SETUP=false",
		"TAXI_OPS_ADDR=",
		"TAXI_LOG_LEVEL=info",
	}
}

// activityRunning reports whether the workflow has a started attempt of
// an activity of the given type in flight. (History records an activity's
// start only when the attempt ends; pending activities say it now.)
func (s *stack) activityRunning(id, activityType string) bool {
	d, err := s.temporal.DescribeWorkflowExecution(context.Background(), id, "")
	if err != nil {
		return false
	}
	for _, p := range d.GetPendingActivities() {
		if p.GetActivityType().GetName() == activityType && p.GetState() == enumspb.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}

// TestWorkerKilledMidRetrain kills the Temporal worker process with
// SIGKILL while a RetrainWorkflow waits in its shadow run, starts another
// worker, and checks the workflow completes and the champion changed
// exactly once: Temporal replays the workflow on the new worker, does not
// repeat completed activities, and retries the interrupted one.
func TestWorkerKilledMidRetrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the worker command and runs it as a process")
	}
	bin := build(t, "worker")
	s := startStack(t, workflows.Policy{})
	ctx := context.Background()
	rows, err := system.SampleRows(s.deps.Location)
	if err != nil {
		t.Fatal(err)
	}
	if err := system.Bootstrap(ctx, s.reg, rows[:3000], s.deps); err != nil {
		t.Fatal(err)
	}
	first, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	// Only the features streamer: the shadow run reads its records.
	streams, err := system.NewStreamers(s.cfg, []string{system.RoleFeatures}, s.deps)
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- streams.Run(sctx) }()
	t.Cleanup(func() { stop(); <-done })
	s.replay(replay.Options{Limit: 6000, Drift: replay.Drift{Kind: replay.DriftMilesToKm, After: 3000}})

	a := startProcess(t, bin, "worker-a", s.processEnv())
	const id = "retrain/fare/worker-kill"
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.cfg.Temporal.TaskQueue},
		workflows.RetrainWorkflowName, workflows.RetrainInput{ModelName: training.Fare, Reason: "worker kill test",
			RetrainOptions: workflows.RetrainOptions{MaxRows: 3000, ShadowRecords: 200, ShadowMaxWait: workflows.Duration(3 * time.Minute)}})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Minute, "the retrain waiting in its shadow run", func() (bool, string) {
		if s.activityRunning(id, "ShadowEvaluate") {
			return true, ""
		}
		d, err := s.temporal.DescribeWorkflowExecution(ctx, id, "")
		if err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			var res workflows.RetrainResult
			err := run.Get(ctx, &res)
			t.Fatalf("the retrain ended before its shadow run: %+v %v", res, err)
		}
		return false, "not yet"
	})
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	startProcess(t, bin, "worker-b", s.processEnv())

	// Live trips for the shadow run on the new worker, drifted like the
	// recent past.
	rctx, stopReplay := context.WithCancel(ctx)
	replayed := make(chan error, 1)
	go func() {
		_, err := system.RunReplayer(rctx, s.cfg, replay.Options{Skip: 6000, Limit: 8000, Rate: 100,
			Drift: replay.Drift{Kind: replay.DriftMilesToKm}}, s.deps)
		replayed <- err
	}()
	defer func() { stopReplay(); <-replayed }()

	wctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	var res workflows.RetrainResult
	if err := run.Get(wctx, &res); err != nil {
		t.Fatalf("retrain after the worker was killed: %v", err)
	}
	if !res.Promoted || res.Shadow == nil || res.Shadow.Labelled == 0 {
		t.Fatalf("result %+v: want a promotion after a shadow run on live trips", res)
	}
	c, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	changes := 0
	for _, h := range c.History {
		if h.WorkflowID == id {
			changes++
		}
	}
	if c.Version != res.CandidateVersion || changes != 1 || c.Version == first.Version {
		t.Fatalf("champion %s with %d changes by %s (history %+v); want %s once", c.Version, changes, id, c.History, res.CandidateVersion)
	}
	t.Logf("%s → %s; shadow: %s", first.Version, c.Version, res.Shadow.Reason)
}
