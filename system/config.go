// Package system assembles taxi-mlops' processes from configuration: the
// streamers, the Temporal worker, the replayer and the bootstrap of the
// first champions. The mains parse flags into a Config and call one Run
// function; the embedded development stack and the end-to-end tests call
// the same functions, so what is tested is what runs.
package system

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/feast"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/kfp"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/anomaly"
	"github.com/taxi-mlops/taxi-mlops/streamers/demand"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/metrics"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// S3Config says how to reach the object store and which buckets to use.
type S3Config struct {
	Endpoint      string
	AccessKey     string
	SecretKey     string
	SecretKeyFile string
	UseTLS        bool
	Region        string
	ModelBucket   string
	DatasetBucket string
	FeatureBucket string
}

// Bind registers the flags of c.
func (c *S3Config) Bind(b *config.Binder) {
	b.String(&c.Endpoint, "s3-endpoint", "127.0.0.1:9000", "S3 endpoint host:port (MinIO or the embedded server)")
	b.String(&c.AccessKey, "s3-access-key", "taxi-mlops", "S3 access key")
	b.String(&c.SecretKey, "s3-secret-key", "taxi-mlops-dev-secret", "S3 secret key (prefer --s3-secret-key-file outside development)")
	b.String(&c.SecretKeyFile, "s3-secret-key-file", "", "file holding the S3 secret key; overrides --s3-secret-key")
	b.Bool(&c.UseTLS, "s3-tls", false, "use HTTPS to reach S3")
	b.String(&c.Region, "s3-region", "us-east-1", "S3 region")
	b.String(&c.ModelBucket, "s3-model-bucket", "models", "bucket of the model registry")
	b.String(&c.DatasetBucket, "s3-dataset-bucket", "datasets", "bucket of training snapshots")
	b.String(&c.FeatureBucket, "s3-feature-bucket", "features", "bucket of the offline feature store")
}

// Buckets lists the buckets the system uses.
func (c *S3Config) Buckets() []string {
	return []string{c.ModelBucket, c.DatasetBucket, c.FeatureBucket}
}

// NewClient returns a minio client for the configuration.
func (c *S3Config) NewClient() (*minio.Client, error) {
	secret, err := config.ReadSecret(c.SecretKey, c.SecretKeyFile)
	if err != nil {
		return nil, err
	}
	cl, err := minio.New(c.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(c.AccessKey, secret, ""),
		Secure: c.UseTLS,
		Region: c.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", c.Endpoint, err)
	}
	return cl, nil
}

// TemporalConfig says how to reach Temporal.
type TemporalConfig struct {
	HostPort  string
	Namespace string
	TaskQueue string
}

// Bind registers the flags of c.
func (c *TemporalConfig) Bind(b *config.Binder) {
	b.String(&c.HostPort, "temporal-address", "127.0.0.1:7233", "Temporal frontend host:port")
	b.String(&c.Namespace, "temporal-namespace", "default", "Temporal namespace")
	b.String(&c.TaskQueue, "temporal-task-queue", workflows.TaskQueue, "task queue of the control plane's workflows")
}

// Dial connects to Temporal.
func (c *TemporalConfig) Dial(log *slog.Logger) (client.Client, error) {
	cl, err := client.Dial(client.Options{
		HostPort:  c.HostPort,
		Namespace: c.Namespace,
		Logger:    tlog.NewStructuredLogger(log),
	})
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %s: %w", c.HostPort, err)
	}
	return cl, nil
}

// Config is everything a process of the system may need.
type Config struct {
	Kafka    kafka.Config
	S3       S3Config
	Temporal TemporalConfig
	Quality  quality.Config
	// Policy of drift monitors the bridge starts.
	Policy workflows.Policy
	// Aggregates defines the hopping windows of the aggregates role.
	Aggregates aggregates.Config
	// Anomaly configures the anomaly detector.
	Anomaly anomaly.Config
	// Metrics configures the live model-metrics join.
	Metrics metrics.Config
	// Demand configures the demand forecaster.
	Demand demand.Config
	// Features configures the weather and demand joins.
	Features features.Config
	// KFP is the Kubeflow Pipelines server of the "kfp" training pipeline
	// (no endpoint: only the built-in trainer).
	KFP kfp.Config
	// Feast is the feature server the worker materializes into (no URL:
	// only the offline tables are written).
	Feast feast.Config
	// SchemaRegistryURL, when set, frames every value in the Confluent
	// wire format with schemas registered there.
	SchemaRegistryURL string
	// Guarantee of the streamers: exactly-once or at-least-once.
	Guarantee string
	// BootstrapTrips is how many trips of the sample, the earliest, a first
	// champion is trained on (0 = all).
	BootstrapTrips int
}

// Bind registers the flags shared by the processes.
func (c *Config) Bind(b *config.Binder) {
	c.Kafka.Bind(b)
	c.S3.Bind(b)
	c.Temporal.Bind(b)
	b.Int(&c.Quality.WindowSize, "quality-window", 500, "records per drift judgement of the quality streamer")
	b.Float(&c.Quality.Warning, "quality-warning-psi", 0.1, "PSI at which a window raises a warning alert")
	b.Float(&c.Quality.Critical, "quality-critical-psi", 0.25, "PSI at which an alert is critical")
	b.Float(&c.Quality.WassersteinWarning, "quality-wasserstein-warning", 0.1, "normalised Wasserstein-1 of a numeric feature that raises a warning")
	b.Float(&c.Quality.WassersteinCritical, "quality-wasserstein-critical", 0.2, "normalised Wasserstein-1 of a numeric feature that is critical")
	b.Float(&c.Quality.JSWarning, "quality-js-warning", 0.15, "Jensen-Shannon distance of a categorical feature that raises a warning")
	b.Float(&c.Quality.JSCritical, "quality-js-critical", 0.25, "Jensen-Shannon distance of a categorical feature that is critical")
	b.Int(&c.Quality.SuppressDriftWindows, "quality-suppress-drift-windows", 0, "drift windows after an alert naming a feature before it is named again at the same severity")
	b.Bool(&c.Quality.Raw.Disabled, "quality-raw-disabled", false, "do not check raw rides for schema failures, nulls and ranges")
	b.Int(&c.Quality.Raw.WindowSize, "quality-raw-window", 0, "raw rides per data-quality judgement (0 = --quality-window)")
	b.Float(&c.Quality.Raw.Warning, "quality-raw-warning", 0.01, "share of a window's raw rides failing a check that raises a warning")
	b.Float(&c.Quality.Raw.Critical, "quality-raw-critical", 0.05, "share of a window's raw rides failing a check that is critical")
	b.Float(&c.Quality.Raw.NullRateWarning, "quality-null-rate-warning", 0.05, "rise of a field's null rate over its reference that raises a warning")
	b.Float(&c.Quality.Raw.NullRateCritical, "quality-null-rate-critical", 0.2, "rise of a field's null rate over its reference that is critical")
	b.Int(&c.Quality.Raw.SuppressWindows, "quality-suppress-windows", 10, "raw windows after an alert naming a field before it is named again at the same severity")
	b.String(&c.Features.WeatherStation, "weather-station", "chicago", "weather station whose observations trips join")
	b.Float(&c.Features.DemandLow, "demand-low", 0.5, "demand score under which an area's demand level is low")
	b.Float(&c.Features.DemandHigh, "demand-high", 1.5, "demand score over which an area's demand level is high")
	b.Float(&c.Anomaly.MaxSpeedMph, "anomaly-max-speed-mph", 90, "average speed above which a trip is impossible")
	b.Float(&c.Anomaly.ZeroDistanceFare, "anomaly-zero-distance-fare", 50, "fare above which a zero-distance trip is an anomaly")
	b.Duration(&c.Anomaly.DedupTTL, "anomaly-dedup-ttl", 7*24*time.Hour, "event time a trip id is remembered to find duplicates")
	b.Duration(&c.Anomaly.JoinTTL, "anomaly-join-ttl", 24*time.Hour, "event time a ride waits for its prediction (and back)")
	b.Float(&c.Anomaly.FareK, "anomaly-fare-k", 4, "residual spreads between fare and prediction that make an anomaly")
	b.Float(&c.Anomaly.FareFloor, "anomaly-fare-floor", 10, "dollars between fare and prediction below which no anomaly is raised")
	b.Int(&c.Anomaly.Window, "anomaly-window", 200, "recent fares per community area and hour for the robust z-score")
	b.Int(&c.Anomaly.MinCount, "anomaly-min-count", 30, "fares an area and hour needs before its z-score is used")
	b.Float(&c.Anomaly.ZThreshold, "anomaly-z-threshold", 3.5, "robust z-score (median and MAD) beyond which a fare is an anomaly")
	b.Int(&c.Metrics.WindowSize, "metrics-window", 500, "predictions joined with actuals per published metric window")
	b.Duration(&c.Metrics.JoinTTL, "metrics-join-ttl", 24*time.Hour, "event time a prediction waits for its actual (and back)")
	b.Duration(&c.Metrics.Grace, "metrics-grace", time.Hour, "how far out of event-time order predictions and actuals may arrive")
	b.Float(&c.Metrics.Degradation, "metrics-degradation", 1.5, "how much worse than its validation metric a live metric may get before it counts as breached")
	b.Duration(&c.Demand.Tick, "demand-tick", 15*time.Minute, "event time between demand forecasts; the horizons are one and four ticks")
	b.Duration(&c.Demand.Grace, "demand-grace", 10*time.Minute, "how late (event time) trips and pings may arrive at the demand forecaster")
	b.Duration(&c.Demand.AreaTTL, "demand-area-ttl", 3*time.Hour, "event time without trips or pings after which an area is no longer forecast")
	b.Duration(&c.Demand.MetricEvery, "demand-metric-every", 0, "event time between published forecast-error metrics (0 = every tick)")
	b.Float(&c.Demand.ThresholdFactor, "demand-threshold-factor", 1.2, "forecast error, as a multiple of the seasonal baseline's own, that counts as a breach")
	b.Bool(&c.Demand.WithoutGPS, "demand-without-gps", false, "forecast without waiting for the GPS stream (when the replayer runs with --gps-interval 0)")
	b.String(&c.KFP.Endpoint, "kfp-endpoint", "", "Kubeflow Pipelines API, like http://ml-pipeline.kubeflow:8888 (empty: the kfp pipeline is off)")
	b.String(&c.KFP.Token, "kfp-token", "", "bearer token for Kubeflow Pipelines (prefer --kfp-token-file)")
	b.String(&c.KFP.TokenFile, "kfp-token-file", "", "file holding the Kubeflow Pipelines token, re-read on every request")
	b.String(&c.KFP.UIEndpoint, "kfp-ui-url", "", "Kubeflow Pipelines UI base URL, for links to runs")
	b.String(&c.KFP.PipelineID, "kfp-pipeline-id", "", "id of the uploaded TFX pipeline (deploy/tfx)")
	b.String(&c.KFP.PipelineVersionID, "kfp-pipeline-version-id", "", "id of the pipeline version to run")
	b.String(&c.KFP.ExperimentID, "kfp-experiment-id", "", "experiment the runs belong to (empty: the default)")
	b.String(&c.KFP.ServiceAccount, "kfp-service-account", "", "service account of the runs' pods")
	b.String(&c.KFP.PipelineRoot, "kfp-pipeline-root", "", "pipeline root of the runs' artifacts")
	b.Duration(&c.KFP.PollInterval, "kfp-poll-interval", 10*time.Second, "time between polls of a run (under the 1-minute heartbeat timeout)")
	b.Int(&c.KFP.MaxPollErrors, "kfp-max-poll-errors", 10, "failed polls in a row before the attempt gives up (the next attempt resumes the run)")
	b.String(&c.Feast.URL, "feast-url", "", "Feast feature server URL, like http://feast:6566 (empty: write the offline feature tables only)")
	b.Duration(&c.Feast.Timeout, "feast-timeout", 30*time.Second, "time limit of Feast health, push and online-feature calls")
	b.Duration(&c.Feast.MaterializeTimeout, "feast-materialize-timeout", 8*time.Minute, "time limit of a Feast materialization (the activity allows 10 minutes)")
	b.String(&c.SchemaRegistryURL, "schema-registry-url", "", "Confluent Schema Registry URL; values are then framed with registered JSON Schemas (empty: plain JSON)")
	b.Float(&c.Policy.DriftThreshold, "policy-drift-threshold", 0.2, "drift score (PSI) at which an alert counts toward a retrain")
	b.Int(&c.Policy.MinEvidence, "policy-min-evidence", 1, "alerts or metric breaches within the evidence window that trigger a retrain")
	b.Duration((*time.Duration)(&c.Policy.Cooldown), "policy-cooldown", 15*time.Minute, "time after a retrain before another may start")
	b.Int(&c.Policy.Retrain.MaxRows, "policy-max-rows", 5000, "recent rides a drift-triggered retrain snapshots")
	b.Func("aggregates-windows", "hopping windows of the aggregates, size/advance, comma-separated (default \"1h/5m,24h/1h\")", func(v string) error {
		ws, err := aggregates.ParseWindows(v)
		c.Aggregates.Windows = ws
		return err
	})
	b.Duration(&c.Aggregates.Grace, "aggregates-grace", 10*time.Minute, "how long after a window's end trips may still arrive (event time; a fast replay needs days)")
	b.String(&c.Guarantee, "guarantee", "exactly-once", "delivery guarantee of the streamers: exactly-once (Kafka transactions) or at-least-once")
	b.Int(&c.BootstrapTrips, "bootstrap-trips", 0, "train first champions on the earliest N trips of the sample (0 = all)")
}

// Deps are built once per process by main and handed down.
type Deps struct {
	Logger   *slog.Logger
	Metrics  prometheus.Registerer
	Location *time.Location
	Areas    *geo.Areas
	// Baseline is the seasonal demand learnt from the shipped sample.
	Baseline *seasonal.Baseline
}
