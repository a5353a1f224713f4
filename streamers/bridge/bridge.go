// Package bridge turns data-quality alerts and model metrics into signals of
// each model's DriftMonitorWorkflow, starting the monitor if it is not
// running (signal-with-start).
//
// The runner commits a record's offset only after Process returned, and
// Process returns only after Temporal accepted the signal, so an alert is
// never lost between Kafka and Temporal. A redelivered alert is signalled
// again; the monitor drops it by its id.
package bridge

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/client"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// Processor signals the monitors of Models through Temporal.
type Processor struct {
	Temporal  client.Client
	TaskQueue string
	// Models the system has; a message about another model is dead-lettered.
	Models []string
	// Policy starts new monitors; running monitors keep theirs.
	Policy workflows.Policy
}

// Topics the processor consumes.
func (p *Processor) Topics() []string {
	return []string{contracts.TopicDataQualityAlerts, contracts.TopicModelMetrics}
}

// Process signals the monitor of the message's model and returns no records.
func (p *Processor) Process(ctx context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	switch in.Topic {
	case contracts.TopicDataQualityAlerts:
		a, err := contracts.Decode[contracts.DataQualityAlert](in.Value)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(p.Models, a.ModelName) {
			return nil, stream.Permanent(fmt.Errorf("model_name %q is not one of %v", a.ModelName, p.Models))
		}
		if a.AlertType != contracts.AlertTypeDrift {
			// Data-quality findings (nulls, ranges, schema) page people;
			// only distribution drift is evidence for retraining.
			return nil, nil
		}
		return nil, p.signal(ctx, a.ModelName, workflows.SignalDriftAlert, workflows.DriftSignal{
			AlertID:          a.AlertID,
			ModelVersion:     a.ModelVersion,
			DriftScore:       a.DriftScore,
			Severity:         a.Severity,
			AffectedFeatures: a.AffectedFeatures,
			Timestamp:        a.Timestamp,
		})
	case contracts.TopicModelMetrics:
		m, err := contracts.Decode[contracts.ModelMetric](in.Value)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(p.Models, m.ModelName) {
			// Metrics of models without a retraining loop (the demand
			// forecaster) are for dashboards, not monitors.
			return nil, nil
		}
		return nil, p.signal(ctx, m.ModelName, workflows.SignalModelMetric, workflows.MetricSignal{
			MetricID:     m.MetricID,
			ModelVersion: m.ModelVersion,
			MetricName:   m.MetricName,
			MetricValue:  m.MetricValue,
			Threshold:    m.Threshold,
			Breached:     m.Breached(),
			Timestamp:    m.Timestamp,
		})
	}
	return nil, stream.Permanent(fmt.Errorf("topic %s is not bridged", in.Topic))
}

func (p *Processor) signal(ctx context.Context, model, name string, arg any) error {
	if !slices.Contains(p.Models, model) {
		return stream.Permanent(fmt.Errorf("model_name %q is not one of %v", model, p.Models))
	}
	id := workflows.DriftMonitorID(model)
	_, err := p.Temporal.SignalWithStartWorkflow(ctx, id, name, arg, client.StartWorkflowOptions{
		ID:        id,
		TaskQueue: p.TaskQueue,
	}, workflows.DriftMonitorWorkflow, workflows.DriftMonitorInput{ModelName: model, Policy: p.Policy})
	if err != nil {
		return fmt.Errorf("signal %s of %s: %w", name, id, err)
	}
	return nil
}
