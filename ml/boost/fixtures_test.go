package boost

import (
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Fixtures made by ../xgb/testdata/gen_fixtures.py with xgboost 1.7.4.

// xgbQuality is testdata/xgb_quality.json.
type xgbQuality struct {
	XGBoostVersion string `json:"xgboost_version"`
	Split          struct {
		Rows      int `json:"rows"`
		TrainRows int `json:"train_rows"`
	} `json:"split"`
	Params struct {
		MaxDepth        int     `json:"max_depth"`
		Eta             float64 `json:"eta"`
		MaxBin          int     `json:"max_bin"`
		Lambda          float64 `json:"lambda"`
		Alpha           float64 `json:"alpha"`
		Gamma           float64 `json:"gamma"`
		MinChildWeight  float64 `json:"min_child_weight"`
		Subsample       float64 `json:"subsample"`
		ColsampleByTree float64 `json:"colsample_bytree"`
		Rounds          int     `json:"rounds"`
	} `json:"params"`
	Fare struct {
		Features      []string `json:"features"`
		BaseScore     float64  `json:"base_score"`
		TestRMSE      float64  `json:"test_rmse"`
		TestMAE       float64  `json:"test_mae"`
		TrainSeconds1 float64  `json:"train_seconds_1_thread"`
		TrainSeconds2 float64  `json:"train_seconds_2_threads"`
	} `json:"fare"`
	BigTipper struct {
		Features      []string `json:"features"`
		TestLogLoss   float64  `json:"test_logloss"`
		TestAUC       float64  `json:"test_auc"`
		TrainSeconds1 float64  `json:"train_seconds_1_thread"`
		TrainSeconds2 float64  `json:"train_seconds_2_threads"`
	} `json:"big_tipper"`
}

func loadQuality(t testing.TB) xgbQuality {
	t.Helper()
	b, err := os.ReadFile("testdata/xgb_quality.json")
	if err != nil {
		t.Fatal(err)
	}
	var q xgbQuality
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatal(err)
	}
	return q
}

// taxi is testdata/taxi.csv.gz: the encoded trips in time order.
type taxi struct {
	header    []string
	x         [][]float32 // features.TipperFeatures
	bigTipper []float32
}

var (
	taxiOnce sync.Once
	taxiData taxi
	taxiErr  error
)

func loadTaxi(t testing.TB) *taxi {
	t.Helper()
	taxiOnce.Do(func() { taxiData, taxiErr = readTaxi("testdata/taxi.csv.gz") })
	if taxiErr != nil {
		t.Fatal(taxiErr)
	}
	return &taxiData
}

func readTaxi(path string) (taxi, error) {
	f, err := os.Open(path)
	if err != nil {
		return taxi{}, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return taxi{}, err
	}
	head, rows, err := readFloatCSV(z)
	if err != nil {
		return taxi{}, err
	}
	d := taxi{header: head[:len(head)-1]}
	for _, r := range rows {
		x := make([]float32, len(r)-1)
		for j := range x {
			x[j] = float32(r[j])
		}
		d.x = append(d.x, x)
		d.bigTipper = append(d.bigTipper, float32(r[len(r)-1]))
	}
	return d, nil
}

func readFloatCSV(r io.Reader) ([]string, [][]float64, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, nil, err
	}
	rows := make([][]float64, len(recs)-1)
	for i, rec := range recs[1:] {
		rows[i] = make([]float64, len(rec))
		for j, s := range rec {
			if s == "" {
				rows[i][j] = math.NaN()
				continue
			}
			if rows[i][j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, nil, err
			}
		}
	}
	return recs[0], rows, nil
}

// dataset builds a Dataset of rows [lo, hi) with the named features and a
// label: "fare" or "big_tipper".
func (d *taxi) dataset(t testing.TB, lo, hi int, features []string, label string) *Dataset {
	t.Helper()
	cols := make([]int, len(features))
	for i, f := range features {
		cols[i] = -1
		for j, h := range d.header {
			if h == f {
				cols[i] = j
			}
		}
		if cols[i] < 0 {
			t.Fatalf("no column %q in %v", f, d.header)
		}
	}
	fareCol := -1
	for j, h := range d.header {
		if h == "fare" {
			fareCol = j
		}
	}
	ds := &Dataset{NumFeatures: len(features), FeatureNames: features}
	for r := lo; r < hi; r++ {
		for _, c := range cols {
			ds.X = append(ds.X, d.x[r][c])
		}
		switch label {
		case "fare":
			ds.Y = append(ds.Y, d.x[r][fareCol])
		case "big_tipper":
			ds.Y = append(ds.Y, d.bigTipper[r])
		default:
			t.Fatalf("label %q", label)
		}
	}
	return ds
}

func paramsFromFixture(q xgbQuality, objective string) Params {
	p := DefaultParams(objective)
	p.NumRounds = q.Params.Rounds
	p.MaxDepth = q.Params.MaxDepth
	p.Eta = q.Params.Eta
	p.MaxBin = q.Params.MaxBin
	p.Lambda = q.Params.Lambda
	p.Alpha = q.Params.Alpha
	p.Gamma = q.Params.Gamma
	p.MinChildWeight = q.Params.MinChildWeight
	p.Subsample = q.Params.Subsample
	p.ColsampleByTree = q.Params.ColsampleByTree
	return p
}

func sameStrings(a, b []string) bool {
	return strings.Join(a, "\x00") == strings.Join(b, "\x00")
}
