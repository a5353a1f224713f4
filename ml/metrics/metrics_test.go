package metrics

import (
	"encoding/json"
	"math"
	"os"
	"testing"
)

// testdata/sklearn.json is made by ml/xgb/testdata/gen_fixtures.py with
// scikit-learn 1.2.1.
type sklearnCases struct {
	Regression []struct {
		Name     string    `json:"name"`
		Y        []float64 `json:"y"`
		Pred     []float64 `json:"pred"`
		RMSE     float64   `json:"rmse"`
		MAE      float64   `json:"mae"`
		MAPE     *float64  `json:"mape"`
		MAPEUsed int       `json:"mape_used"`
	} `json:"regression"`
	Classification []struct {
		Name        string    `json:"name"`
		Y           []float64 `json:"y"`
		P           []float64 `json:"p"`
		LogLoss     float64   `json:"logloss"`
		Accuracy    float64   `json:"accuracy"`
		AUC         *float64  `json:"auc"`
		Bins        int       `json:"bins"`
		Calibration struct {
			FracPos  []float64 `json:"frac_pos"`
			MeanPred []float64 `json:"mean_pred"`
			Count    []int     `json:"count"`
			Bin      []int     `json:"bin"`
			ECE      float64   `json:"ece"`
		} `json:"calibration"`
	} `json:"classification"`
}

func loadCases(t *testing.T) sklearnCases {
	t.Helper()
	b, err := os.ReadFile("testdata/sklearn.json")
	if err != nil {
		t.Fatal(err)
	}
	var c sklearnCases
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.17g, sklearn %.17g", what, got, want)
	}
}

func TestRegressionAgainstSklearn(t *testing.T) {
	for _, c := range loadCases(t).Regression {
		t.Run(c.Name, func(t *testing.T) {
			near(t, "RMSE", RMSE(c.Y, c.Pred), c.RMSE)
			near(t, "MAE", MAE(c.Y, c.Pred), c.MAE)
			mape, used := MAPE(c.Y, c.Pred)
			if used != c.MAPEUsed {
				t.Errorf("MAPE used %d rows, want %d", used, c.MAPEUsed)
			}
			if c.MAPE != nil {
				near(t, "MAPE", mape, *c.MAPE)
			}
		})
	}
}

func TestClassificationAgainstSklearn(t *testing.T) {
	for _, c := range loadCases(t).Classification {
		t.Run(c.Name, func(t *testing.T) {
			near(t, "LogLoss", LogLoss(c.Y, c.P), c.LogLoss)
			near(t, "Accuracy", Accuracy(c.Y, c.P), c.Accuracy)
			if c.AUC != nil {
				near(t, "AUC", AUC(c.Y, c.P), *c.AUC)
			}
			ece, table := Calibration(c.Y, c.P, c.Bins)
			near(t, "ECE", ece, c.Calibration.ECE)
			k := 0
			for b, row := range table {
				if row.Count == 0 {
					continue
				}
				if k >= len(c.Calibration.Bin) || c.Calibration.Bin[k] != b {
					t.Fatalf("non-empty bin %d not in sklearn's %v", b, c.Calibration.Bin)
				}
				if row.Count != c.Calibration.Count[k] {
					t.Errorf("bin %d: %d rows, want %d", b, row.Count, c.Calibration.Count[k])
				}
				near(t, "MeanPred", row.MeanPred, c.Calibration.MeanPred[k])
				near(t, "FracPos", row.FracPos, c.Calibration.FracPos[k])
				k++
			}
			if k != len(c.Calibration.Bin) {
				t.Errorf("%d non-empty bins, sklearn has %d", k, len(c.Calibration.Bin))
			}
		})
	}
}

func TestEdgeCases(t *testing.T) {
	nan := math.NaN()
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"RMSE empty", RMSE([]float64{}, []float64{}), nan},
		{"MAE empty", MAE([]float32{}, []float64{}), nan},
		{"LogLoss empty", LogLoss([]float64{}, []float64{}), nan},
		{"Accuracy empty", Accuracy([]float64{}, []float64{}), nan},
		{"AUC one class", AUC([]float64{1, 1}, []float64{0.2, 0.8}), nan},
		{"AUC NaN score", AUC([]float64{0, 1}, []float64{nan, 0.8}), nan},
		{"AUC perfect", AUC([]float32{0, 0, 1}, []float32{0.1, 0.2, 0.9}), 1},
		{"AUC all tied", AUC([]float64{0, 1, 0, 1}, []float64{0.3, 0.3, 0.3, 0.3}), 0.5},
		{"LogLoss confident and wrong", LogLoss([]float64{1}, []float64{0}), -math.Log(1e-15)},
		{"LogLoss soft label", LogLoss([]float64{0.5}, []float64{0.5}), math.Ln2},
		{"Accuracy at 0.5 is negative", Accuracy([]float64{0, 1}, []float64{0.5, 0.5}), 0.5},
		{"RMSE mixed types", RMSE([]float32{1, 2}, []float64{1, 4}), math.Sqrt2},
	}
	for _, tt := range tests {
		if !(tt.got == tt.want || math.IsNaN(tt.got) && math.IsNaN(tt.want) ||
			math.Abs(tt.got-tt.want) < 1e-12) {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if m, n := MAPE([]float64{0, 0}, []float64{1, 2}); !math.IsNaN(m) || n != 0 {
		t.Errorf("MAPE of zero labels = %v over %d rows", m, n)
	}
	ece, table := Calibration([]float64{0, 1, 1}, []float64{-0.5, 1.5, 0.1}, 2)
	if table[0].Count != 2 || table[1].Count != 1 || table[1].Hi != 1 || math.IsNaN(ece) {
		t.Errorf("out-of-range probabilities: %+v, ece %v", table, ece)
	}
	if ece, _ := Calibration([]float64{}, []float64{}, 3); !math.IsNaN(ece) {
		t.Errorf("empty calibration ECE %v", ece)
	}
}

func TestLengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic")
		}
	}()
	RMSE([]float64{1}, []float64{1, 2})
}
