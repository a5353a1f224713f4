package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"

	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// calibrationBins is the number of equal-width probability bins of the
// calibration table.
const calibrationBins = 10

func (e *env) predict(ctx context.Context, args []string) error {
	fs := e.newFlags("predict", "--model model.json --data FILE [--meta FILE] [--out preds.csv]")
	var modelPath, metaPath, data, out string
	fs.StringVar(&modelPath, "model", "", "model file written by mltool train (required)")
	fs.StringVar(&metaPath, "meta", "", "its meta file (default: --model with .json replaced by .meta.json)")
	fs.StringVar(&data, "data", "", "trips: .csv or .csv.gz in the city's format, or .parquet (required)")
	fs.StringVar(&out, "out", "", "where to write the predictions as CSV (default: stdout)")
	if err := parse(fs, args, "model", "data"); err != nil {
		return err
	}
	if _, err := formatOf(data); err != nil {
		return usageErr("predict: --data: %w", err)
	}
	if out != "" {
		if err := checkOut("out", out); err != nil {
			return fmt.Errorf("predict: %w", err)
		}
	}
	l, err := loadModel(modelPath, metaPath)
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
	ex := e.examples(t)
	pred := training.Predict(l.eval, l.spec, ex)

	withActual := false
	for _, ok := range t.labelled {
		withActual = withActual || ok
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	header := []string{"trip_id", "prediction"}
	if withActual {
		header = append(header, "actual")
	}
	w.Write(header)
	rec := make([]string, len(header))
	for i := range ex {
		rec[0], rec[1] = ex[i].TripID, formatFloat(pred[i], 64)
		if withActual {
			rec[2] = ""
			if t.labelled[i] {
				// Labels are float32, as the trainer sees them; 32-bit
				// formatting prints the fare as the file has it.
				rec[2] = formatFloat(float64(l.model.Label(&ex[i])), 32)
			}
		}
		w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("predict: encode CSV: %w", err)
	}
	if out == "" {
		_, err := e.stdout.Write(buf.Bytes())
		return err
	}
	return writeFile(out, buf.Bytes())
}

// evaluateReport is what evaluate prints.
type evaluateReport struct {
	Model             string         `json:"model"`
	Version           string         `json:"version"`
	ModelFile         string         `json:"model_file"`
	Data              string         `json:"data"`
	Rows              int            `json:"rows"`
	SkippedUnlabelled int            `json:"skipped_unlabelled"`
	PrimaryMetric     string         `json:"primary_metric"`
	Metrics           map[string]num `json:"metrics"`
	Calibration       *calibration   `json:"calibration,omitempty"`
}

// calibration is metrics.Calibration for a classifier.
type calibration struct {
	Bins  int              `json:"bins"`
	ECE   num              `json:"ece"`
	Table []calibrationBin `json:"table"`
}

type calibrationBin struct {
	Lo       num `json:"lo"`
	Hi       num `json:"hi"`
	Count    int `json:"count"`
	MeanPred num `json:"mean_pred"`
	FracPos  num `json:"frac_pos"`
}

func (e *env) evaluate(ctx context.Context, args []string) error {
	fs := e.newFlags("evaluate", "--model model.json --data FILE [--meta FILE]")
	var modelPath, metaPath, data string
	fs.StringVar(&modelPath, "model", "", "model file written by mltool train (required)")
	fs.StringVar(&metaPath, "meta", "", "its meta file (default: --model with .json replaced by .meta.json)")
	fs.StringVar(&data, "data", "", "labelled trips: .csv or .csv.gz in the city's format, or .parquet (required)")
	if err := parse(fs, args, "model", "data"); err != nil {
		return err
	}
	if _, err := formatOf(data); err != nil {
		return usageErr("evaluate: --data: %w", err)
	}
	l, err := loadModel(modelPath, metaPath)
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
	if len(ex) == 0 {
		return fmt.Errorf("evaluate: data file %s has no trip with a known fare", data)
	}
	m := l.model
	rep := evaluateReport{
		Model: m.Name, Version: l.meta.Version, ModelFile: modelPath, Data: data,
		Rows: len(ex), SkippedUnlabelled: skipped, PrimaryMetric: m.PrimaryMetric,
		Metrics: nums(training.Score(m, l.eval, l.spec, ex)),
	}
	if m.Objective == boost.BinaryLogistic {
		pred := training.Predict(l.eval, l.spec, ex)
		y := make([]float64, len(ex))
		for i := range ex {
			y[i] = float64(m.Label(&ex[i]))
		}
		ece, table := metrics.Calibration(y, pred, calibrationBins)
		c := &calibration{Bins: calibrationBins, ECE: num(ece)}
		for _, b := range table {
			c.Table = append(c.Table, calibrationBin{
				Lo: num(b.Lo), Hi: num(b.Hi), Count: b.Count, MeanPred: num(b.MeanPred), FracPos: num(b.FracPos),
			})
		}
		rep.Calibration = c
	}
	return writeJSON(e.stdout, rep)
}
