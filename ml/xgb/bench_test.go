package xgb

import (
	"encoding/json"
	"os"
	"testing"
)

// xgbTiming is what testdata/gen_fixtures.py measured for xgboost 1.7.4 on
// the same model (fare_d6_t100) on the machine that made the fixtures.
type xgbTiming struct {
	BatchNsPerRow1 float64 `json:"batch_ns_per_row_1_thread"`
	BatchNsPerRow2 float64 `json:"batch_ns_per_row_2_threads"`
	SingleRowNs    float64 `json:"single_row_ns"`
}

func benchModel(b *testing.B) (*Model, [][]float32, xgbTiming) {
	b.Helper()
	m, err := Parse(readFile(b, "testdata/models/fare_d6_t100.json.gz"))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := os.ReadFile("testdata/xgb_timing.json")
	if err != nil {
		b.Fatal(err)
	}
	var tm xgbTiming
	if err := json.Unmarshal(raw, &tm); err != nil {
		b.Fatal(err)
	}
	return m, readInputs(b, "testdata/inputs_fare.csv"), tm
}

// BenchmarkPredict: one row through 100 trees of depth 6. xgb-ns is
// xgboost's Booster.inplace_predict on one row, Python call included.
func BenchmarkPredict(b *testing.B) {
	m, rows, tm := benchModel(b)
	var sink float64
	i := 0
	for b.Loop() {
		sink += m.Predict(rows[i%len(rows)])
		i++
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(tm.SingleRowNs, "xgb-ns/row")
	b.ReportMetric(tm.SingleRowNs/ns, "speedup-vs-xgb")
	_ = sink
}

// BenchmarkPredictBatch: all fixture input rows per call, on one core;
// ns/row beside xgboost's inplace_predict on a 30,010-row batch with one
// thread (xgb-ns/row) and two threads (xgb2-ns/row).
func BenchmarkPredictBatch(b *testing.B) {
	m, rows, tm := benchModel(b)
	X := make([]float32, 0, len(rows)*m.NumFeatures())
	for _, r := range rows {
		X = append(X, r...)
	}
	out := make([]float64, len(rows))
	for b.Loop() {
		m.PredictBatch(X, out)
	}
	ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / float64(len(rows))
	b.ReportMetric(ns, "ns/row")
	b.ReportMetric(tm.BatchNsPerRow1, "xgb-ns/row")
	b.ReportMetric(tm.BatchNsPerRow1/ns, "speedup-vs-xgb")
	b.ReportMetric(tm.BatchNsPerRow2, "xgb2-ns/row")
}

func BenchmarkParse(b *testing.B) {
	raw := readFile(b, "testdata/models/fare_d6_t100.json.gz")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := Parse(raw); err != nil {
			b.Fatal(err)
		}
	}
}
