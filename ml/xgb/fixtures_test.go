package xgb

import (
	"bufio"
	"compress/gzip"
	"encoding/csv"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Fixtures made by testdata/gen_fixtures.py with xgboost 1.7.4.

func openMaybeGz(t testing.TB, path string) io.ReadCloser {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return f
	}
	z, err := gzip.NewReader(bufio.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	return struct {
		io.Reader
		io.Closer
	}{z, f}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	r := openMaybeGz(t, path)
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readCSV returns the header and the rows of a CSV file; empty fields are NaN.
func readCSV(t testing.TB, path string) ([]string, [][]float64) {
	t.Helper()
	r := openMaybeGz(t, path)
	defer r.Close()
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	rows := make([][]float64, len(recs)-1)
	for i, rec := range recs[1:] {
		rows[i] = make([]float64, len(rec))
		for j, s := range rec {
			if s == "" {
				rows[i][j] = math.NaN()
				continue
			}
			v, err := strconv.ParseFloat(s, 64)
			if err != nil {
				t.Fatalf("%s row %d: %v", path, i, err)
			}
			rows[i][j] = v
		}
	}
	return recs[0], rows
}

// readInputs returns the rows of an inputs CSV as float32 vectors.
func readInputs(t testing.TB, path string) [][]float32 {
	t.Helper()
	_, rows := readCSV(t, path)
	out := make([][]float32, len(rows))
	for i, r := range rows {
		out[i] = make([]float32, len(r))
		for j, v := range r {
			out[i][j] = float32(v)
		}
	}
	return out
}

type fixture struct {
	name   string
	model  *Model
	raw    []byte
	inputs [][]float32
	margin []float64
	pred   []float64
}

func loadFixtures(t testing.TB) []fixture {
	t.Helper()
	paths, err := filepath.Glob("testdata/models/*.json.gz")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixture models: %v", err)
	}
	inputs := map[string][][]float32{
		"fare":   readInputs(t, "testdata/inputs_fare.csv"),
		"tipper": readInputs(t, "testdata/inputs_tipper.csv"),
	}
	var fs []fixture
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json.gz")
		raw := readFile(t, p)
		m, err := Parse(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, preds := readCSV(t, "testdata/preds_"+name+".csv.gz")
		f := fixture{name: name, model: m, raw: raw, inputs: inputs[strings.SplitN(name, "_", 2)[0]]}
		for _, r := range preds {
			f.margin = append(f.margin, r[0])
			f.pred = append(f.pred, r[1])
		}
		if len(f.inputs) != len(f.margin) {
			t.Fatalf("%s: %d inputs, %d predictions", name, len(f.inputs), len(f.margin))
		}
		fs = append(fs, f)
	}
	return fs
}

// close reports whether got is within 1e-5 × max(1, |want|) of want.
func close(got, want float64) bool {
	return math.Abs(got-want) <= 1e-5*math.Max(1, math.Abs(want))
}
