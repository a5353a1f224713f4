package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/deploy/devstack"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// stack is the embedded infrastructure and the system running on it.
type stack struct {
	t        *testing.T
	cfg      system.Config
	deps     system.Deps
	temporal client.Client
	reg      *registry.Registry
	streams  *system.Streamers
}

func temporalCLI(t *testing.T) string {
	cli := devstack.FindTemporal(os.LookupEnv)
	if cli == "" {
		msg := "the Temporal CLI is not installed: go install " + devstack.TemporalCLIModule
		if os.Getenv("TAXI_E2E_REQUIRE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return cli
}

func logger(t *testing.T) *slog.Logger {
	if os.Getenv("TAXI_E2E_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.DiscardHandler)
}

func startStack(t *testing.T, policy workflows.Policy) *stack {
	t.Helper()
	cli := temporalCLI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := logger(t)
	loc, err := time.LoadLocation(system.City)
	if err != nil {
		t.Fatal(err)
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		t.Fatal(err)
	}
	base, err := system.SampleBaseline(loc, areas)
	if err != nil {
		t.Fatal(err)
	}
	deps := system.Deps{Logger: log, Metrics: prometheus.NewRegistry(), Location: loc, Areas: areas, Baseline: base}

	srv, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{CLIPath: cli, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	broker, kcfg, err := devstack.StartKafka(ctx, 0, "", log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)

	cfg := system.Config{
		Kafka:    kcfg,
		Temporal: system.TemporalConfig{HostPort: srv.FrontendHostPort(), Namespace: "default", TaskQueue: workflows.TaskQueue},
		S3: system.S3Config{AccessKey: "e2e", SecretKey: "e2e-secret-key", Region: "us-east-1",
			ModelBucket: "models", DatasetBucket: "datasets", FeatureBucket: "features"},
		Quality:    quality.Config{WindowSize: 500, Warning: 0.1, Critical: 0.25},
		Aggregates: aggregates.Config{Grace: 7 * 24 * time.Hour},
		Policy:     policy,
	}
	s3, err := devstack.StartS3("127.0.0.1:0", t.TempDir(), cfg.S3.AccessKey, cfg.S3.SecretKey, cfg.S3.Buckets(), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s3.Close() })
	cfg.S3.Endpoint = s3.Addr
	mc, err := cfg.S3.NewClient()
	if err != nil {
		t.Fatal(err)
	}
	return &stack{t: t, cfg: cfg, deps: deps, temporal: srv.Client(), reg: registry.New(mc, cfg.S3.ModelBucket)}
}

// run starts the worker and every streamer until the test ends.
func (s *stack) run() {
	s.t.Helper()
	w, err := system.NewWorker(s.cfg, s.deps)
	if err != nil {
		s.t.Fatal(err)
	}
	streams, err := system.NewStreamers(s.cfg, system.Roles(), s.deps)
	if err != nil {
		s.t.Fatal(err)
	}
	s.streams = streams
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, f := range []func(context.Context) error{w.Run, streams.Run} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				s.t.Errorf("component stopped: %v", err)
			}
		}()
	}
	s.t.Cleanup(func() { cancel(); wg.Wait() })
}

func (s *stack) replay(opts replay.Options) replay.Stats {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := system.RunReplayer(ctx, s.cfg, opts, s.deps)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *stack) produce(recs ...*kgo.Record) {
	s.t.Helper()
	cl, err := kafka.NewClient(s.cfg.Kafka, "e2e-producer", kafka.Deps{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		s.t.Fatal(err)
	}
}

// read returns every record of topic so far.
func (s *stack) read(topic string) []*kgo.Record {
	s.t.Helper()
	ctx := context.Background()
	adm, err := kafka.NewClient(s.cfg.Kafka, "e2e-admin", kafka.Deps{})
	if err != nil {
		s.t.Fatal(err)
	}
	defer adm.Close()
	ranges, err := kafka.TailRanges(ctx, adm, topic, 1<<40)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []*kgo.Record
	if err := kafka.ReadRanges(ctx, s.cfg.Kafka, "e2e-reader", kafka.Deps{}, topic, ranges, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		s.t.Fatal(err)
	}
	return out
}

// eventually polls cond until it holds or the wait is over.
func eventually(t *testing.T, wait time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(wait)
	last := ""
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (last: %s)", what, wait, last)
}

func (s *stack) retrains(model string) []*workflowpb.WorkflowExecutionInfo {
	s.t.Helper()
	resp, err := s.temporal.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{
		Namespace: s.cfg.Temporal.Namespace,
		Query:     fmt.Sprintf("WorkflowType = '%s' AND ModelName = '%s'", workflows.RetrainWorkflowName, model),
	})
	if err != nil {
		s.t.Fatalf("list retrains: %v", err)
	}
	return resp.Executions
}

// TestDriftRetrainsAndHotSwaps replays real trips with distances switched to
// kilometres part-way and follows the loop to the end: the quality streamer
// alerts, the bridge signals the fare model's monitor, exactly one retrain
// runs and promotes a new champion, and the inference streamer swaps to it
// without losing or doubling a prediction.
func TestDriftRetrainsAndHotSwaps(t *testing.T) {
	const (
		clean   = 3000 // rides before the drift; the champion is trained on them
		drifted = 3000
		after   = 1000 // rides replayed once the new champion serves
	)
	s := startStack(t, workflows.Policy{
		DriftThreshold: 0.2,
		Cooldown:       workflows.Duration(time.Hour),
		Retrain:        workflows.RetrainOptions{MaxRows: 3000, MinImprovement: 0.01},
	})

	// The first champions know the first 3000 trips of the sample.
	rows, err := system.SampleRows(s.deps.Location)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := system.Bootstrap(ctx, s.reg, rows[:clean], s.deps); err != nil {
		t.Fatal(err)
	}
	first, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	s.run()

	// Malformed rides mixed into the stream go to the dead-letter topic.
	s.produce(
		&kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte("p1"), Value: []byte(`{"trip_id":"p1","pickup_datetime":`)},
		&kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte("p2"), Value: []byte(`{"schema_version":1,"trip_id":"p2","pickup_datetime":"2013-01-01T00:00:00Z","trip_distance":1}`)},
		&kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte("p3"), Value: []byte(`{"schema_version":1,"trip_id":"p3","pickup_datetime":"2013-01-01T00:00:00Z","trip_distance":NaN,"fare_amount":3}`)},
	)
	st := s.replay(replay.Options{Limit: clean + drifted, Drift: replay.Drift{Kind: replay.DriftMilesToKm, After: clean}})
	if st.Rides != clean+drifted || st.Drifted != drifted {
		t.Fatalf("replayed %+v", st)
	}

	eventually(t, 90*time.Second, "a drift alert for the fare model", func() (bool, string) {
		for _, r := range s.read(contracts.TopicDataQualityAlerts) {
			a, err := contracts.Decode[contracts.DataQualityAlert](r.Value)
			if err == nil && a.ModelName == training.Fare && a.DriftScore >= 0.2 {
				return true, ""
			}
		}
		return false, "no alert"
	})
	var second string
	eventually(t, 3*time.Minute, "a completed retrain of fare and a new champion", func() (bool, string) {
		ws := s.retrains(training.Fare)
		if len(ws) != 1 || ws[0].Status != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			return false, fmt.Sprintf("%d retrains", len(ws))
		}
		c, err := s.reg.Champion(ctx, training.Fare)
		if err != nil || c.Version == first.Version {
			return false, fmt.Sprintf("champion %s (%v)", c.Version, err)
		}
		second = c.Version
		return true, ""
	})
	eventually(t, time.Minute, "the inference streamer serving "+second, func() (bool, string) {
		for _, set := range s.streams.Champions() {
			if m := set.Get(training.Fare); m == nil || m.Version != second {
				return false, "still serving the old champion"
			}
		}
		return true, ""
	})

	// Once swapped, later trips are scored by the new champion.
	s.replay(replay.Options{Skip: clean + drifted, Limit: after, Drift: replay.Drift{Kind: replay.DriftMilesToKm}})
	total := clean + drifted + after
	var preds map[string][]string
	eventually(t, time.Minute, "a prediction for every trip", func() (bool, string) {
		preds = map[string][]string{}
		for _, r := range s.read(contracts.TopicPredictions) {
			p, err := contracts.Decode[contracts.Prediction](r.Value)
			if err != nil {
				t.Fatalf("bad prediction: %v", err)
			}
			preds[p.TripID] = append(preds[p.TripID], p.ModelVersion)
		}
		return len(preds) == total, fmt.Sprintf("%d of %d trips", len(preds), total)
	})
	trips, err := system.SampleRows(s.deps.Location)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range trips[:total] {
		vs := preds[r.Ride.TripID]
		if len(vs) != 1 {
			t.Fatalf("trip %s has %d predictions, want exactly 1", r.Ride.TripID, len(vs))
		}
		if i >= clean+drifted && vs[0] != second {
			t.Fatalf("trip %s replayed after the swap was scored by %s, not %s", r.Ride.TripID, vs[0], second)
		}
	}

	// Still exactly one retrain: later alerts met the in-flight retrain, the
	// cooldown or a replaced champion.
	if ws := s.retrains(training.Fare); len(ws) != 1 {
		t.Fatalf("%d retrains of fare, want 1", len(ws))
	}
	dlq := s.read(contracts.DeadLetterTopic("features"))
	if len(dlq) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dlq))
	}
	for _, d := range dlq {
		if kafka.Header(d, stream.HeaderReason) == "" {
			t.Errorf("dead letter %s has no reason", d.Key)
		}
	}
	// Clean data alone never reached the retrain threshold: the retrain
	// answered the injected drift.
	driftStart := trips[clean].Ride.PickupDatetime
	for _, r := range s.read(contracts.TopicDataQualityAlerts) {
		a, _ := contracts.Decode[contracts.DataQualityAlert](r.Value)
		if a.ModelVersion == first.Version && a.WindowEnd.Before(driftStart) && a.DriftScore >= 0.2 {
			t.Errorf("a window of clean trips (%s..%s) scored %.3f on %v", a.WindowStart, a.WindowEnd, a.DriftScore, a.AffectedFeatures)
		}
	}
	t.Logf("champion %s → %s; %d predictions; %d alerts; dead letters: %s", first.Version, second, len(preds),
		len(s.read(contracts.TopicDataQualityAlerts)), reasons(dlq))

	s.evaluate(second)
	if os.Getenv("TAXI_WRITE_HISTORIES") == "1" {
		s.writeHistory("drift_monitor_retraining", workflows.DriftMonitorID(training.Fare))
		s.writeHistory("retrain_drift", s.retrains(training.Fare)[0].GetExecution().GetWorkflowId())
	}
}

// evaluate applies the schedules (twice: idempotent) and runs the evaluation
// they schedule once by hand: it scores the new champion on the latest
// labelled trips and publishes the metric, which the bridge hands to the
// fare model's monitor.
func (s *stack) evaluate(champion string) {
	t := s.t
	ctx := context.Background()
	for i, want := range []string{"created", "updated"} {
		done, err := system.ApplySchedules(ctx, s.temporal, s.cfg.Temporal.TaskQueue)
		if err != nil || len(done) == 0 || !strings.HasSuffix(done[0], want) {
			t.Fatalf("apply schedules, pass %d: %v %v", i+1, done, err)
		}
	}
	run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: "evaluation-by-hand", TaskQueue: s.cfg.Temporal.TaskQueue},
		workflows.EvaluationWorkflowName, workflows.EvaluationInput{ModelNames: []string{training.Fare}, MaxRows: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var res workflows.EvaluationResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Metrics) != 1 || res.Metrics[0].ModelVersion != champion || res.Metrics[0].MetricName != training.MetricRMSE ||
		res.Metrics[0].Rows < 900 || !(res.Metrics[0].Value > 0) || !(res.Metrics[0].Threshold > 0) {
		t.Fatalf("evaluation result %+v", res)
	}
	eventually(t, 30*time.Second, "the metric reaching the fare monitor", func() (bool, string) {
		v, err := s.temporal.QueryWorkflow(ctx, workflows.DriftMonitorID(training.Fare), "", workflows.QueryState)
		if err != nil {
			return false, err.Error()
		}
		var st workflows.MonitorStatus
		if err := v.Get(&st); err != nil {
			return false, err.Error()
		}
		for _, e := range st.State.Evidence {
			if e.Kind == workflows.TriggerMetric && e.ModelVersion == champion {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d evidence, none a metric", len(st.State.Evidence))
	})
}

func reasons(rs []*kgo.Record) string {
	var out []string
	for _, r := range rs {
		out = append(out, string(r.Key)+": "+kafka.Header(r, stream.HeaderReason))
	}
	return strings.Join(out, "; ")
}
