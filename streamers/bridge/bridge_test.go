package bridge_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/streamers/bridge"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// These cases never reach Temporal: the processor has no client, and would
// panic if it tried to signal. Valid signals are covered end to end.
func processor() *bridge.Processor {
	return &bridge.Processor{TaskQueue: "taxi-mlops", Models: training.ModelNames()}
}

func encode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var at = time.Date(2015, 6, 1, 12, 0, 0, 0, time.UTC)

func alert(model string) contracts.DataQualityAlert {
	return contracts.DataQualityAlert{
		SchemaVersion: contracts.SchemaVersion, AlertID: "dq-0123456789abcdef", Timestamp: at,
		AlertType: contracts.AlertTypeDrift, Severity: contracts.SeverityCritical, ModelName: model, ModelVersion: "v1",
		AffectedFeatures: []string{"trip_miles"}, Scores: map[string]float64{"trip_miles": 0.4}, DriftScore: 0.4,
		Threshold: 0.1, WindowSize: 500, WindowStart: at.Add(-time.Hour), WindowEnd: at,
	}
}

func metric(model string) contracts.ModelMetric {
	return contracts.ModelMetric{
		SchemaVersion: contracts.SchemaVersion, MetricID: "m-1", ModelName: model, ModelVersion: "v1", Timestamp: at,
		MetricName: training.MetricRMSE, MetricValue: 5, Threshold: 4, SampleSize: 1000, Source: "evaluation-workflow",
	}
}

func TestTopics(t *testing.T) {
	got := processor().Topics()
	want := []string{contracts.TopicDataQualityAlerts, contracts.TopicModelMetrics}
	if !slices.Equal(got, want) {
		t.Errorf("Topics = %q, want %q", got, want)
	}
}

func TestPermanentErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		topic string
		value []byte
		want  []string // in the error message
	}{
		{"alert about an unknown model", contracts.TopicDataQualityAlerts, encode(t, alert("demand")),
			[]string{`"demand"`, training.Fare, training.BigTipper}},
		{"record from an unbridged topic", contracts.TopicRidesRaw, encode(t, alert(training.Fare)),
			[]string{contracts.TopicRidesRaw, "not bridged"}},
		{"record without a topic", "", encode(t, alert(training.Fare)), []string{"not bridged"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := processor().Process(context.Background(), &kgo.Record{Topic: c.topic, Value: c.value})
			if err == nil {
				t.Fatal("no error")
			}
			if !stream.IsPermanent(err) {
				t.Errorf("error %v is not permanent: the record would be retried forever", err)
			}
			if contracts.IsInvalid(err) {
				t.Errorf("error %v says the record is malformed; it is well formed but not ours", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
			if len(out) != 0 {
				t.Errorf("%d records", len(out))
			}
		})
	}
}

func TestMalformedMessagesAreInvalid(t *testing.T) {
	noID := alert(training.Fare)
	noID.AlertID = ""
	badSeverity := alert(training.Fare)
	badSeverity.Severity = "fatal"
	noModel := alert("")
	noTime := alert(training.Fare)
	noTime.Timestamp = time.Time{}
	noMetricName := metric(training.Fare)
	noMetricName.MetricName = ""
	for _, c := range []struct {
		name  string
		topic string
		value []byte
	}{
		{"alert not JSON", contracts.TopicDataQualityAlerts, []byte("drift!")},
		{"alert without id", contracts.TopicDataQualityAlerts, encode(t, noID)},
		{"alert with an unknown severity", contracts.TopicDataQualityAlerts, encode(t, badSeverity)},
		{"alert without a model", contracts.TopicDataQualityAlerts, encode(t, noModel)},
		{"alert without a time", contracts.TopicDataQualityAlerts, encode(t, noTime)},
		{"alert with a string score", contracts.TopicDataQualityAlerts,
			[]byte(strings.Replace(string(encode(t, alert(training.Fare))), `"drift_score":0.4`, `"drift_score":"high"`, 1))},
		{"metric not JSON", contracts.TopicModelMetrics, []byte("{")},
		{"metric without a name", contracts.TopicModelMetrics, encode(t, noMetricName)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := processor().Process(context.Background(), &kgo.Record{Topic: c.topic, Value: c.value})
			if !contracts.IsInvalid(err) || !stream.IsPermanent(err) {
				t.Errorf("error %v, want an invalid-record error", err)
			}
		})
	}
}

// Data-quality findings other than drift are not evidence for a retrain:
// the bridge passes them by without calling Temporal (the client is nil).
func TestNonDriftAlertsAreNotSignalled(t *testing.T) {
	p := &bridge.Processor{Models: []string{"fare"}}
	for _, typ := range []string{contracts.AlertTypeNullRate, contracts.AlertTypeOutOfRange, contracts.AlertTypeSchema, contracts.AlertTypeMissingRequired} {
		a := contracts.DataQualityAlert{AlertID: "a-" + typ, ModelName: "fare", AlertType: typ, Severity: contracts.SeverityCritical,
			Timestamp: time.Unix(1, 0)}
		b, _ := contracts.Encode(&a)
		out, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicDataQualityAlerts, Value: b})
		if err != nil || len(out) != 0 {
			t.Fatalf("%s alert: %v, %d records", typ, err, len(out))
		}
	}
}

// Metrics of a model without a retraining loop (the demand forecaster's)
// are passed by: they are for dashboards, not for a monitor.
func TestMetricsOfModelsWithoutMonitorArePassedBy(t *testing.T) {
	for _, model := range []string{"demand", "Fare"} {
		out, err := processor().Process(context.Background(), &kgo.Record{Topic: contracts.TopicModelMetrics, Value: encode(t, metric(model))})
		if err != nil || len(out) != 0 {
			t.Fatalf("metric of %s: %v, %d records", model, err, len(out))
		}
	}
}
