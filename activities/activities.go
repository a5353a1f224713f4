// Package activities holds every effect of the control plane's workflows:
// reading Kafka, writing datasets to S3, training, scoring, promoting in the
// model registry and announcing to the streamers.
//
// Activities are methods of one struct holding the clients, built once by the
// worker; workflows reference the methods through a nil *Activities. Errors
// that retrying cannot fix are returned as non-retryable application errors
// with a type from this package (ErrType*); everything else is retried by
// the workflow's retry policy. Every activity is idempotent for the same
// input: datasets and versions are named by the calling workflow.
package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/feast"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/kfp"
	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/schemas"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Activities holds the clients the activities use.
type Activities struct {
	Kafka     kafka.Config
	KafkaDeps kafka.Deps
	// Producer publishes model-updates and model-metrics, framed by Framer
	// when a Schema Registry is configured.
	Producer      *kgo.Client
	Framer        *schemas.Framer
	S3            *minio.Client
	Registry      *registry.Registry
	DatasetBucket string
	Areas         *geo.Areas
	Location      *time.Location
	Logger        *slog.Logger
	// FeatureBucket holds the offline feature table Feast reads.
	FeatureBucket string
	// KFP runs the "kfp" pipeline; nil when Kubeflow Pipelines is not
	// configured.
	KFP *kfp.Client
	// Feast is the feature server; nil when none is configured.
	Feast *feast.Client
}

func permanent(kind string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), kind, err)
}

func lookupModel(name string) (training.Model, error) {
	m, err := training.Lookup(name)
	if err != nil {
		return m, permanent(ErrTypeInvalidInput, err)
	}
	return m, nil
}

// CurrentChampion reads a model's champion and its recorded metrics.
func (a *Activities) CurrentChampion(ctx context.Context, in ChampionInput) (ChampionInfo, error) {
	if _, err := lookupModel(in.ModelName); err != nil {
		return ChampionInfo{}, err
	}
	out := ChampionInfo{ModelName: in.ModelName}
	c, err := a.Registry.Champion(ctx, in.ModelName)
	if errors.Is(err, registry.ErrNoChampion) {
		return out, nil
	}
	if err != nil {
		return out, fmt.Errorf("read champion of %s: %w", in.ModelName, err)
	}
	meta, err := a.Registry.GetMetadata(ctx, in.ModelName, c.Version)
	if err != nil {
		return out, fmt.Errorf("read champion of %s: %w", in.ModelName, err)
	}
	out.Version, out.Metrics = c.Version, meta.Metrics
	return out, nil
}

// labelled reads up to maxRows of the most recent rides and joins them with
// their actuals by trip id. Rides without an actual yet are counted, not
// returned; malformed records (already dead-lettered by the streamers) and
// duplicates are skipped.
func (a *Activities) labelled(ctx context.Context, clientID string, maxRows int) ([]dataset.Row, int, map[string][]kafka.Range, error) {
	if maxRows <= 0 {
		return nil, 0, nil, permanent(ErrTypeInvalidInput, fmt.Errorf("max_rows must be positive, got %d", maxRows))
	}
	admin, err := kafka.NewClient(a.Kafka, clientID+"-admin", kafka.Deps{Logger: a.KafkaDeps.Logger})
	if err != nil {
		return nil, 0, nil, err
	}
	defer admin.Close()
	rideTopic, _ := contracts.Lookup(contracts.TopicRidesRaw)
	perPartition := int64(math.Ceil(float64(maxRows) / float64(rideTopic.Partitions)))
	rideRanges, err := kafka.TailRanges(ctx, admin, contracts.TopicRidesRaw, perPartition)
	if err != nil {
		return nil, 0, nil, err
	}
	// Actuals trail their rides by the trip's duration; read a margin more
	// so the newest labelled rides find theirs.
	actualRanges, err := kafka.TailRanges(ctx, admin, contracts.TopicActuals, perPartition+perPartition/4+10)
	if err != nil {
		return nil, 0, nil, err
	}

	rides := map[string]*contracts.RawRide{}
	var order []string
	n := 0
	err = kafka.ReadRanges(ctx, a.Kafka, clientID+"-rides", a.KafkaDeps, contracts.TopicRidesRaw, rideRanges, func(r *kgo.Record) error {
		if n++; n%5000 == 0 {
			activity.RecordHeartbeat(ctx, n)
		}
		ride, err := contracts.Decode[contracts.RawRide](r.Value)
		if err != nil {
			return nil
		}
		if _, dup := rides[ride.TripID]; !dup {
			order = append(order, ride.TripID)
		}
		rides[ride.TripID] = ride
		return nil
	})
	if err != nil {
		return nil, 0, nil, err
	}
	actuals := map[string]*contracts.Actual{}
	err = kafka.ReadRanges(ctx, a.Kafka, clientID+"-actuals", a.KafkaDeps, contracts.TopicActuals, actualRanges, func(r *kgo.Record) error {
		if n++; n%5000 == 0 {
			activity.RecordHeartbeat(ctx, n)
		}
		act, err := contracts.Decode[contracts.Actual](r.Value)
		if err != nil {
			return nil
		}
		if _, ok := rides[act.TripID]; ok {
			actuals[act.TripID] = act
		}
		return nil
	})
	if err != nil {
		return nil, 0, nil, err
	}
	rows := make([]dataset.Row, 0, len(actuals))
	unlabelled := 0
	for _, id := range order {
		act, ok := actuals[id]
		if !ok {
			unlabelled++
			continue
		}
		rows = append(rows, dataset.Row{Ride: *rides[id], Actual: *act})
	}
	offsets := map[string][]kafka.Range{contracts.TopicRidesRaw: rideRanges, contracts.TopicActuals: actualRanges}
	return rows, unlabelled, offsets, nil
}

// SnapshotDataset writes the most recent labelled trips to S3 as Parquet:
// train.parquet and, the latest HoldoutFraction by pickup time,
// holdout.parquet, with a manifest recording rows, times and offsets.
func (a *Activities) SnapshotDataset(ctx context.Context, in SnapshotInput) (SnapshotResult, error) {
	if _, err := lookupModel(in.ModelName); err != nil {
		return SnapshotResult{}, err
	}
	if in.DatasetID == "" || strings.ContainsAny(in.DatasetID, "/\\ ") {
		return SnapshotResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("dataset_id %q must be a non-empty name without slashes or spaces", in.DatasetID))
	}
	if in.HoldoutFraction < 0 || in.HoldoutFraction >= 1 {
		return SnapshotResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("holdout_fraction must be in [0, 1), got %g", in.HoldoutFraction))
	}
	rows, unlabelled, offsets, err := a.labelled(ctx, "taxi-mlops-snapshot-"+in.DatasetID, in.MaxRows)
	if err != nil {
		return SnapshotResult{}, fmt.Errorf("snapshot %s: %w", in.DatasetID, err)
	}
	if len(rows) < in.MinRows {
		return SnapshotResult{}, permanent(ErrTypeBadDataset, fmt.Errorf(
			"snapshot %s: %d labelled trips (%d more without actuals yet), need at least %d", in.DatasetID, len(rows), unlabelled, in.MinRows))
	}
	sortRows(rows)
	nHold := int(math.Round(float64(len(rows)) * in.HoldoutFraction))
	train, hold := rows[:len(rows)-nHold], rows[len(rows)-nHold:]

	prefix := in.ModelName + "/" + in.DatasetID + "/"
	res := SnapshotResult{
		URI:         a.uri(prefix),
		TrainURI:    a.uri(prefix + "train.parquet"),
		HoldoutURI:  a.uri(prefix + "holdout.parquet"),
		Rows:        len(rows),
		TrainRows:   len(train),
		HoldoutRows: len(hold),
		Unlabelled:  unlabelled,
		From:        rows[0].Ride.PickupDatetime,
		To:          rows[len(rows)-1].Ride.PickupDatetime,
		Offsets:     offsets,
	}
	if len(hold) > 0 {
		res.SplitTime = hold[0].Ride.PickupDatetime
	}
	for _, part := range []struct {
		key  string
		rows []dataset.Row
	}{{"train.parquet", train}, {"holdout.parquet", hold}} {
		b, err := dataset.Encode(part.rows)
		if err != nil {
			return res, fmt.Errorf("snapshot %s: %w", in.DatasetID, err)
		}
		if err := a.put(ctx, prefix+part.key, b, "application/vnd.apache.parquet"); err != nil {
			return res, fmt.Errorf("snapshot %s: %w", in.DatasetID, err)
		}
	}
	manifest, _ := json.MarshalIndent(res, "", "  ")
	if err := a.put(ctx, prefix+"manifest.json", manifest, "application/json"); err != nil {
		return res, fmt.Errorf("snapshot %s: %w", in.DatasetID, err)
	}
	a.Logger.Info("dataset snapshot written", "model", in.ModelName, "uri", res.URI, "rows", res.Rows, "holdout", res.HoldoutRows)
	return res, nil
}

func sortRows(rows []dataset.Row) {
	slices.SortStableFunc(rows, func(x, y dataset.Row) int {
		if c := x.Ride.PickupDatetime.Compare(y.Ride.PickupDatetime); c != 0 {
			return c
		}
		return strings.Compare(x.Ride.TripID, y.Ride.TripID)
	})
}

func (a *Activities) uri(key string) string { return "s3://" + a.DatasetBucket + "/" + key }

func (a *Activities) put(ctx context.Context, key string, b []byte, contentType string) error {
	_, err := a.S3.PutObject(ctx, a.DatasetBucket, key, bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("put s3://%s/%s: %w", a.DatasetBucket, key, err)
	}
	return nil
}

// readDataset downloads a Parquet dataset by its s3:// URI.
func (a *Activities) readDataset(ctx context.Context, uri string) ([]dataset.Row, error) {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.Path == "" {
		return nil, permanent(ErrTypeInvalidInput, fmt.Errorf("dataset uri %q is not s3://bucket/key", uri))
	}
	obj, err := a.S3.GetObject(ctx, u.Host, strings.TrimPrefix(u.Path, "/"), minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", uri, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, permanent(ErrTypeBadDataset, fmt.Errorf("get %s: no such object", uri))
		}
		return nil, fmt.Errorf("get %s: %w", uri, err)
	}
	rows, err := dataset.Read(ctx, b)
	if err != nil {
		return nil, permanent(ErrTypeBadDataset, fmt.Errorf("%s: %w", uri, err))
	}
	return rows, nil
}

// Pipelines the control plane can train with.
const (
	PipelineBuiltin = "builtin"
	PipelineKFP     = "kfp"
)

// RunPipeline trains a candidate on a snapshot with the chosen pipeline and
// stores it in the registry under the given version (not as champion): the
// built-in Go trainer, or the TFX pipeline on Kubeflow Pipelines, whose
// Pusher writes an XGBoost model the streamers serve unchanged.
func (a *Activities) RunPipeline(ctx context.Context, in PipelineInput) (TrainResult, error) {
	switch in.Pipeline {
	case "", PipelineBuiltin:
		return a.trainBuiltin(ctx, TrainInput{
			ModelName: in.ModelName, Version: in.Version, Pipeline: PipelineBuiltin,
			TrainURI: in.TrainURI, DatasetURI: in.DatasetURI, Lineage: in.Lineage,
		})
	case PipelineKFP:
		if a.KFP == nil {
			return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New(
				"pipeline kfp: no Kubeflow Pipelines server is configured (--kfp-endpoint)"))
		}
		return a.runKFP(ctx, in)
	}
	return TrainResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("pipeline %q is not one of %s, %s", in.Pipeline, PipelineBuiltin, PipelineKFP))
}

// trainBuiltin trains with the Go trainer.
func (a *Activities) trainBuiltin(ctx context.Context, in TrainInput) (TrainResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return TrainResult{}, err
	}
	if in.Version == "" {
		return TrainResult{}, permanent(ErrTypeInvalidInput, errors.New("version is required"))
	}
	rows, err := a.readDataset(ctx, in.TrainURI)
	if err != nil {
		return TrainResult{}, err
	}
	ex := training.Examples(rows, a.Areas, a.Location)
	cand, err := training.Fit(ctx, m, ex, func(r boost.Round) {
		activity.RecordHeartbeat(ctx, r.Iteration)
	})
	if err != nil {
		return TrainResult{}, permanent(ErrTypeBadDataset, fmt.Errorf("train %s %s: %w", in.ModelName, in.Version, err))
	}
	meta, err := Metadata(m, in.Version, cand, in.TrainURI, registry.Lineage{
		WorkflowID: in.Lineage.WorkflowID, RunID: in.Lineage.RunID,
		TriggerType: in.Lineage.TriggerType, TriggerID: in.Lineage.TriggerID, Reason: in.Lineage.Reason,
		DatasetURI: in.DatasetURI, ParentVersion: in.Lineage.ParentVersion,
	})
	if err != nil {
		return TrainResult{}, err
	}
	stored, err := a.Registry.Put(ctx, meta, cand.JSON)
	if err != nil {
		if errors.Is(err, registry.ErrVersionExists) {
			return TrainResult{}, permanent(ErrTypeConflict, err)
		}
		return TrainResult{}, fmt.Errorf("store %s %s: %w", in.ModelName, in.Version, err)
	}
	a.Logger.Info("candidate trained", "model", in.ModelName, "version", in.Version, "rows", cand.Rows, "metrics", cand.Metrics)
	return TrainResult{
		ModelName: in.ModelName, Version: in.Version,
		URI: a.Registry.URI(in.ModelName, in.Version), SHA256: stored.SHA256,
		Rows: cand.Rows, BestIteration: cand.BestIteration, Metrics: cand.Metrics,
	}, nil
}

// Metadata is the registry record of a fitted candidate.
func Metadata(m training.Model, version string, c *training.Candidate, dataURI string, lin registry.Lineage) (registry.Metadata, error) {
	profile, err := training.ProfileJSON(c.Profile)
	if err != nil {
		return registry.Metadata{}, err
	}
	params, err := json.Marshal(c.Params)
	if err != nil {
		return registry.Metadata{}, fmt.Errorf("encode params: %w", err)
	}
	return registry.Metadata{
		Name:             m.Name,
		Version:          version,
		CreatedAt:        time.Now().UTC(),
		Objective:        m.Objective,
		Features:         *c.Spec,
		ReferenceProfile: profile,
		Metrics:          c.Metrics,
		Params:           params,
		TrainingDataURI:  dataURI,
		Lineage:          lin,
	}, nil
}

// EvaluateCandidate scores challenger and champion on the same holdout and
// says whether the challenger is better by the required margin.
func (a *Activities) EvaluateCandidate(ctx context.Context, in EvaluateInput) (EvaluateResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return EvaluateResult{}, err
	}
	rows, err := a.readDataset(ctx, in.HoldoutURI)
	if err != nil {
		return EvaluateResult{}, err
	}
	if len(rows) == 0 {
		return EvaluateResult{}, permanent(ErrTypeBadDataset, fmt.Errorf("holdout %s is empty", in.HoldoutURI))
	}
	ex := training.Examples(rows, a.Areas, a.Location)
	out := EvaluateResult{PrimaryMetric: m.PrimaryMetric, Rows: len(ex)}
	ch, err := a.load(ctx, in.ModelName, in.Challenger)
	if err != nil {
		return out, err
	}
	out.Challenger = training.Score(m, ch.Eval, ch.Spec, ex)
	if in.Champion == "" {
		out.Better, out.Reason = true, fmt.Sprintf("no champion yet; challenger %s = %.4f", m.PrimaryMetric, out.Challenger[m.PrimaryMetric])
		return out, nil
	}
	cp, err := a.load(ctx, in.ModelName, in.Champion)
	if err != nil {
		return out, err
	}
	out.Champion = training.Score(m, cp.Eval, cp.Spec, ex)
	out.Better, out.Reason = training.Gate(m, out.Challenger, out.Champion, in.MinImprovement, in.GuardTolerance)
	return out, nil
}

func (a *Activities) load(ctx context.Context, name, version string) (*training.Loaded, error) {
	l, err := training.LoadModel(ctx, a.Registry, name, version)
	switch {
	case errors.Is(err, registry.ErrChecksum):
		return nil, permanent(ErrTypeCorruptModel, err)
	case errors.Is(err, registry.ErrNotFound):
		return nil, permanent(ErrTypeInvalidInput, err)
	}
	return l, err
}

// PromoteModel makes a version the champion by compare-and-swap: it is a
// no-op when the version already is the champion, and a non-retryable
// conflict when the champion is no longer the one expected.
func (a *Activities) PromoteModel(ctx context.Context, in PromoteInput) (PromoteResult, error) {
	if _, err := lookupModel(in.ModelName); err != nil {
		return PromoteResult{}, err
	}
	c, changed, err := a.Registry.Promote(ctx, in.ModelName, in.Version, in.Expected, registry.ChampionChange{
		Version:    in.Version,
		Previous:   in.Expected,
		Reason:     in.Reason,
		WorkflowID: in.WorkflowID,
	})
	switch {
	case errors.Is(err, registry.ErrConflict):
		return PromoteResult{}, permanent(ErrTypeConflict, err)
	case errors.Is(err, registry.ErrNotFound):
		return PromoteResult{}, permanent(ErrTypeInvalidInput, err)
	case err != nil:
		return PromoteResult{}, fmt.Errorf("promote %s %s: %w", in.ModelName, in.Version, err)
	}
	if changed {
		a.Logger.Info("champion promoted", "model", in.ModelName, "version", in.Version, "previous", in.Expected)
	}
	return PromoteResult{Changed: changed, Champion: c.Version, Previous: in.Expected}, nil
}

// AnnounceModel publishes a model-updates record so the streamers load the
// new champion. Announcing twice is harmless: streamers skip a version they
// already serve.
func (a *Activities) AnnounceModel(ctx context.Context, in AnnounceInput) error {
	meta, err := a.Registry.GetMetadata(ctx, in.ModelName, in.Version)
	if err != nil {
		if errors.Is(err, registry.ErrNotFound) {
			return permanent(ErrTypeInvalidInput, err)
		}
		return fmt.Errorf("announce %s %s: %w", in.ModelName, in.Version, err)
	}
	u := contracts.ModelUpdate{
		ModelName:  in.ModelName,
		Version:    in.Version,
		Previous:   in.Previous,
		ModelURI:   a.Registry.URI(in.ModelName, in.Version),
		SHA256:     meta.SHA256,
		Timestamp:  time.Now().UTC(),
		WorkflowID: in.WorkflowID,
	}
	b, err := contracts.Encode(&u)
	if err != nil {
		return permanent(ErrTypeInvalidInput, err)
	}
	rec := &kgo.Record{Topic: contracts.TopicModelUpdates, Key: []byte(in.ModelName), Value: a.Framer.Frame(contracts.TopicModelUpdates, b)}
	if err := a.Producer.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("announce %s %s: %w", in.ModelName, in.Version, err)
	}
	return nil
}

// ScoreChampion scores the champion on the most recent labelled trips and
// returns its metrics with thresholds derived from its recorded validation
// metrics.
func (a *Activities) ScoreChampion(ctx context.Context, in ScoreInput) (ScoreResult, error) {
	m, err := lookupModel(in.ModelName)
	if err != nil {
		return ScoreResult{}, err
	}
	if in.Degradation <= 1 {
		return ScoreResult{}, permanent(ErrTypeInvalidInput, fmt.Errorf("degradation must be > 1 (1.5 = 50%% worse than validation), got %g", in.Degradation))
	}
	c, err := a.Registry.Champion(ctx, in.ModelName)
	if errors.Is(err, registry.ErrNoChampion) {
		return ScoreResult{}, nil
	}
	if err != nil {
		return ScoreResult{}, fmt.Errorf("score %s: %w", in.ModelName, err)
	}
	champ, err := a.load(ctx, in.ModelName, c.Version)
	if err != nil {
		return ScoreResult{}, err
	}
	rows, _, _, err := a.labelled(ctx, "taxi-mlops-score-"+in.ModelName, in.MaxRows)
	if err != nil {
		return ScoreResult{}, fmt.Errorf("score %s: %w", in.ModelName, err)
	}
	if len(rows) == 0 {
		return ScoreResult{}, nil
	}
	sortRows(rows)
	ex := training.Examples(rows, a.Areas, a.Location)
	scores := training.Score(m, champ.Eval, champ.Spec, ex)
	res := ScoreResult{Rows: len(ex)}
	now := time.Now().UTC()
	for _, name := range []string{m.PrimaryMetric} {
		v, ok := scores[name]
		if !ok {
			continue
		}
		ref, ok := champ.Metrics[name]
		if !ok || ref <= 0 {
			continue
		}
		threshold := ref * in.Degradation
		if m.HigherIsBetter {
			threshold = ref / in.Degradation
		}
		res.Metrics = append(res.Metrics, contracts.ModelMetric{
			SchemaVersion:  contracts.SchemaVersion,
			MetricID:       in.MetricIDPrefix + "/" + in.ModelName + "/" + name,
			ModelName:      in.ModelName,
			ModelVersion:   c.Version,
			Timestamp:      now,
			MetricName:     name,
			MetricValue:    v,
			Threshold:      threshold,
			HigherIsBetter: m.HigherIsBetter,
			SampleSize:     len(ex),
			WindowStart:    rows[0].Ride.PickupDatetime,
			WindowEnd:      rows[len(rows)-1].Ride.PickupDatetime,
			Source:         "evaluation-workflow",
		})
	}
	return res, nil
}

// PublishMetrics produces metrics to model-metrics, keyed by model.
func (a *Activities) PublishMetrics(ctx context.Context, ms []contracts.ModelMetric) error {
	recs := make([]*kgo.Record, 0, len(ms))
	for i := range ms {
		b, err := contracts.Encode(&ms[i])
		if err != nil {
			return permanent(ErrTypeInvalidInput, err)
		}
		recs = append(recs, &kgo.Record{Topic: contracts.TopicModelMetrics, Key: []byte(ms[i].ModelName), Value: a.Framer.Frame(contracts.TopicModelMetrics, b)})
	}
	if err := a.Producer.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("publish %d metrics: %w", len(ms), err)
	}
	return nil
}
