package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"time"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// progressEvery is how often training reports a round on stderr.
const progressEvery = 10

// trainReport is what train prints.
type trainReport struct {
	Model             string    `json:"model"`
	Version           string    `json:"version"`
	Data              string    `json:"data"`
	Rows              int       `json:"rows"`
	SkippedUnlabelled int       `json:"skipped_unlabelled"`
	TrainRows         int       `json:"train_rows"`
	ValidationRows    int       `json:"validation_rows"`
	HoldoutRows       int       `json:"holdout_rows"`
	HoldoutFrom       time.Time `json:"holdout_from,omitzero"`
	BestIteration     int       `json:"best_iteration"`
	ModelFile         string    `json:"model_file"`
	MetaFile          string    `json:"meta_file"`
	// Validation metrics are on the newest training.ValidationFraction of
	// the trips trained on (also stored in the meta file); holdout metrics
	// on the newest --holdout share, which training never saw.
	Validation map[string]num `json:"validation"`
	Holdout    map[string]num `json:"holdout"`
}

func (e *env) train(ctx context.Context, args []string) error {
	fs := e.newFlags("train", "--model fare|big_tipper --data FILE [flags]")
	var (
		name, data, out, metaPath string
		holdout, eta              float64
		rounds, maxDepth          int
		seed                      uint64
		quiet                     bool
	)
	fs.StringVar(&name, "model", "", "model to train: "+modelNames(training.ModelNames())+" (required)")
	fs.StringVar(&data, "data", "", "labelled trips: .csv or .csv.gz in the city's format, or .parquet (required)")
	fs.Float64Var(&holdout, "holdout", 0.2, "share of the newest trips held out of training and scored, in [0, 1)")
	fs.StringVar(&out, "out", "model.json", "where to write the model (XGBoost JSON)")
	fs.StringVar(&metaPath, "meta", "", "where to write the metadata (default: --out with .json replaced by .meta.json)")
	fs.IntVar(&rounds, "rounds", 0, "boosting rounds (default: the model's, 100)")
	fs.IntVar(&maxDepth, "max-depth", 0, "depth of each tree (default: the model's, 6)")
	fs.Float64Var(&eta, "eta", 0, "learning rate in (0, 1] (default: the model's, 0.1)")
	fs.Uint64Var(&seed, "seed", 0, "seed of row and feature sampling")
	fs.BoolVar(&quiet, "quiet", false, "no progress lines on stderr")
	if err := parse(fs, args, "model", "data"); err != nil {
		return err
	}
	m, err := training.Lookup(name)
	if err != nil {
		return usageErr("train: --model: %w", err)
	}
	if !(holdout >= 0 && holdout < 1) {
		return usageErr("train: --holdout %v is not in [0, 1)", holdout)
	}
	// Flags override the catalogue's parameters only when given, so the
	// defaults stay the system's.
	p := m.Params
	if isSet(fs, "rounds") {
		p.NumRounds = rounds
	}
	if isSet(fs, "max-depth") {
		p.MaxDepth = maxDepth
	}
	if isSet(fs, "eta") {
		p.Eta = eta
	}
	if isSet(fs, "seed") {
		p.Seed = seed
	}
	if err := p.Validate(); err != nil {
		return usageErr("train: %w", err)
	}
	m.Params = p
	if metaPath == "" {
		metaPath = metaPathFor(out)
	}
	if filepath.Clean(metaPath) == filepath.Clean(out) {
		return usageErr("train: --out and --meta are the same file %s", out)
	}
	if _, err := formatOf(data); err != nil {
		return usageErr("train: --data: %w", err)
	}
	for _, o := range [][2]string{{"out", out}, {"meta", metaPath}} {
		if err := checkOut(o[0], o[1]); err != nil {
			return fmt.Errorf("train: %w", err)
		}
	}

	logOut := e.stderr
	if quiet {
		logOut = io.Discard
	}
	log, err := system.NewLogger(logOut, "info", "text")
	if err != nil {
		return err
	}
	if err := e.load(); err != nil {
		return err
	}
	t, err := e.readTable(ctx, data)
	if err != nil {
		return err
	}
	ex, skipped := e.labelledExamples(t)
	if skipped > 0 {
		log.Warn("trips without a fare are not trained on", "skipped", skipped)
	}
	training.SortByTime(ex)
	fit, held, at := training.SplitByTime(ex, holdout)
	log.Info("training", "model", m.Name, "data", data, "trips", len(ex), "fit", len(fit), "holdout", len(held),
		"rounds", p.NumRounds, "max_depth", p.MaxDepth, "eta", p.Eta)

	start := time.Now()
	cand, err := training.Fit(ctx, m, fit, progress(log, m, p.NumRounds))
	if err != nil {
		return fmt.Errorf("train %s on %s: %w", m.Name, data, err)
	}
	rep := trainReport{
		Model: m.Name, Data: data, Rows: len(t.rows), SkippedUnlabelled: skipped,
		TrainRows: cand.Rows, ValidationRows: int(cand.Metrics[training.MetricRows]), HoldoutRows: len(held),
		HoldoutFrom: at, BestIteration: cand.BestIteration, ModelFile: out, MetaFile: metaPath,
		Validation: nums(cand.Metrics),
	}
	if len(held) > 0 {
		rep.Holdout = nums(training.Score(m, cand.Model, cand.Spec, held))
	}

	sum := sha256.Sum256(cand.JSON)
	rep.Version = "v" + start.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(sum[:3])
	dataURI := data
	if abs, err := filepath.Abs(data); err == nil {
		dataURI = "file://" + filepath.ToSlash(abs)
	}
	meta, err := activities.Metadata(m, rep.Version, cand, dataURI, registry.Lineage{
		TriggerType: "manual", Reason: "mltool train", DatasetURI: dataURI,
	})
	if err != nil {
		return fmt.Errorf("train %s: %w", m.Name, err)
	}
	// As the registry's Put records them, so the pair can be checked on
	// load and uploaded unchanged.
	meta.SHA256, meta.SizeBytes = hex.EncodeToString(sum[:]), int64(len(cand.JSON))
	for k, v := range meta.Metrics {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(meta.Metrics, k) // JSON has no such number; the registry refuses them too
		}
	}
	metaJSON, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("train %s: encode meta: %w", m.Name, err)
	}
	// Model first, then its meta: a meta file always describes a model
	// that is there.
	if err := writeFile(out, cand.JSON); err != nil {
		return err
	}
	if err := writeFile(metaPath, append(metaJSON, '\n')); err != nil {
		return err
	}
	log.Info("model written", "model", out, "meta", metaPath, "version", rep.Version,
		"took", time.Since(start).Round(time.Millisecond))
	return writeJSON(e.stdout, rep)
}

// progress logs every progressEvery-th round and the last one.
func progress(log *slog.Logger, m training.Model, rounds int) func(boost.Round) {
	metric := "rmse"
	if m.Objective == boost.BinaryLogistic {
		metric = "logloss"
	}
	return func(r boost.Round) {
		if (r.Iteration+1)%progressEvery != 0 && r.Iteration+1 != rounds {
			return
		}
		log.Info("round", "iteration", r.Iteration+1, "of", rounds,
			"train_"+metric, round4(r.TrainLoss), "valid_"+metric, round4(r.ValidLoss))
	}
}

// round4 keeps four decimals: enough to watch a loss fall.
func round4(v float64) float64 { return math.Round(v*1e4) / 1e4 }
