package system

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/feast"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/kfp"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/schemas"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// Worker is the control plane's Temporal worker.
type Worker struct {
	tc     client.Client
	w      worker.Worker
	closer func()
}

// NewWorker connects to Temporal, Kafka and S3 and registers the workflows
// and activities.
func NewWorker(cfg Config, deps Deps) (*Worker, error) {
	tc, err := cfg.Temporal.Dial(deps.Logger)
	if err != nil {
		return nil, err
	}
	mc, err := cfg.S3.NewClient()
	if err != nil {
		tc.Close()
		return nil, err
	}
	framer, err := schemas.Connect(context.Background(), cfg.SchemaRegistryURL)
	if err != nil {
		tc.Close()
		return nil, err
	}
	kdeps := kafka.Deps{Logger: deps.Logger, Metrics: deps.Metrics}
	producer, err := kafka.NewClient(cfg.Kafka, "taxi-mlops-worker", kdeps)
	if err != nil {
		tc.Close()
		return nil, err
	}
	acts := &activities.Activities{
		Kafka:         cfg.Kafka,
		KafkaDeps:     kafka.Deps{Logger: deps.Logger},
		Producer:      producer,
		Framer:        framer,
		S3:            mc,
		Registry:      registry.New(mc, cfg.S3.ModelBucket),
		DatasetBucket: cfg.S3.DatasetBucket,
		Areas:         deps.Areas,
		Location:      deps.Location,
		Logger:        deps.Logger,
		FeatureBucket: cfg.S3.FeatureBucket,
	}
	if cfg.KFP.Endpoint != "" {
		kc, err := kfp.New(cfg.KFP)
		if err != nil {
			tc.Close()
			return nil, fmt.Errorf("--kfp-endpoint: %w", err)
		}
		acts.KFP = kc
	}
	if cfg.Feast.URL != "" {
		fc, err := feast.New(cfg.Feast)
		if err != nil {
			tc.Close()
			return nil, fmt.Errorf("--feast-url: %w", err)
		}
		acts.Feast = fc
	}
	w := worker.New(tc, cfg.Temporal.TaskQueue, worker.Options{})
	Register(w, acts)
	return &Worker{tc: tc, w: w, closer: func() { producer.Close(); tc.Close() }}, nil
}

// Register registers every workflow and the activities on w.
func Register(w worker.Registry, acts *activities.Activities) {
	w.RegisterWorkflow(workflows.DriftMonitorWorkflow)
	w.RegisterWorkflow(workflows.RetrainWorkflow)
	w.RegisterWorkflow(workflows.EvaluationWorkflow)
	w.RegisterWorkflow(workflows.RollbackWorkflow)
	w.RegisterWorkflow(workflows.BacktestWorkflow)
	w.RegisterWorkflow(workflows.FeastMaterializationWorkflow)
	w.RegisterActivity(acts)
}

// Run polls until ctx ends, then stops the worker, letting running
// activities finish within the worker's stop timeout.
func (w *Worker) Run(ctx context.Context) error {
	defer w.closer()
	if err := w.w.Start(); err != nil {
		return fmt.Errorf("start temporal worker: %w", err)
	}
	<-ctx.Done()
	w.w.Stop()
	return nil
}
