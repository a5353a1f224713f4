package boost

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
)

// goRecipe is an entry of testdata/go_models.json, written by
// testdata/gomodel together with the model files it describes.
type goRecipe struct {
	Name      string
	Features  []string
	Label     string
	TrainRows int
	Params    Params
}

// TestGoModelsInXGBoost checks the models this trainer wrote
// (testdata/go_*.json): real xgboost 1.7.4 loaded them and predicted
// testdata/go_preds.csv; the evaluator must agree, and retraining with the
// same recipe must give the committed file byte for byte.
func TestGoModelsInXGBoost(t *testing.T) {
	raw, err := os.ReadFile("testdata/go_models.json")
	if err != nil {
		t.Fatal(err)
	}
	var recipes []goRecipe
	if err := json.Unmarshal(raw, &recipes); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/go_preds.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head, preds, err := readFloatCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	q := loadQuality(t)
	d := loadTaxi(t)
	for _, rc := range recipes {
		t.Run(rc.Name, func(t *testing.T) {
			file, err := os.ReadFile("testdata/" + rc.Name + ".json")
			if err != nil {
				t.Fatal(err)
			}
			m, err := xgb.Parse(file)
			if err != nil {
				t.Fatal(err)
			}
			prefix := strings.TrimPrefix(rc.Name, "go_")
			mc, pc := -1, -1
			for j, h := range head {
				switch h {
				case prefix + "_margin":
					mc = j
				case prefix + "_pred":
					pc = j
				}
			}
			if mc < 0 || pc < 0 {
				t.Fatalf("no %s columns in go_preds.csv", prefix)
			}
			test := d.dataset(t, q.Split.TrainRows, q.Split.TrainRows+len(preds), rc.Features, rc.Label)
			var maxDiff float64
			for i := range preds {
				x := test.X[i*test.NumFeatures : (i+1)*test.NumFeatures]
				gm, gp := m.PredictMargin(x), m.Predict(x)
				for _, c := range [][2]float64{{gm, preds[i][mc]}, {gp, preds[i][pc]}} {
					diff := math.Abs(c[0] - c[1])
					maxDiff = math.Max(maxDiff, diff)
					if diff > 1e-5*math.Max(1, math.Abs(c[1])) {
						t.Errorf("row %d: ours %v, xgboost %v", i, c[0], c[1])
					}
				}
			}
			t.Logf("%d rows, %d trees: max |diff| vs xgboost %.3g", len(preds), m.NumTrees(), maxDiff)

			if rc.TrainRows != q.Split.TrainRows {
				t.Errorf("recipe trains on %d rows, the split has %d", rc.TrainRows, q.Split.TrainRows)
			}
			res, err := Train(context.Background(), rc.Params, d.dataset(t, 0, rc.TrainRows, rc.Features, rc.Label), nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			again, err := res.Model.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			// Other architectures may fuse multiply-adds, which changes
			// low bits; amd64 does not.
			if runtime.GOARCH == "amd64" && !bytes.Equal(again, file) {
				t.Errorf("retraining %s does not reproduce the committed model", rc.Name)
			}
		})
	}
}

// TestTrainLossMatchesModel: the margins kept during training equal what
// the returned model predicts, so the reported losses are the model's.
func TestTrainLossMatchesModel(t *testing.T) {
	for _, obj := range []string{SquaredError, BinaryLogistic} {
		train, valid := synthetic(obj, 3000, 1), synthetic(obj, 1000, 2)
		p := DefaultParams(obj)
		p.NumRounds, p.Subsample, p.ColsampleByTree = 20, 0.7, 0.6
		res, err := Train(context.Background(), p, train, valid, nil)
		if err != nil {
			t.Fatal(err)
		}
		last := res.History[len(res.History)-1]
		for _, c := range []struct {
			d    *Dataset
			loss float64
		}{{train, last.TrainLoss}, {valid, last.ValidLoss}} {
			pred := make([]float64, c.d.Rows())
			res.Model.PredictBatch(c.d.X, pred)
			var got float64
			if obj == BinaryLogistic {
				got = metrics.LogLoss(c.d.Y, pred)
			} else {
				got = metrics.RMSE(c.d.Y, pred)
			}
			if math.Abs(got-c.loss) > 1e-9*math.Max(1, c.loss) {
				t.Errorf("%s: model loss %v, training reported %v", obj, got, c.loss)
			}
		}
	}
}

// synthetic makes a dataset where a missing x0 means a high label, so the
// learned default direction matters.
func synthetic(objective string, n int, seed uint64) *Dataset {
	rng := rand.New(rand.NewPCG(seed, 1))
	d := &Dataset{NumFeatures: 3}
	for i := 0; i < n; i++ {
		x0, x1, x2 := rng.Float32()*10, rng.Float32(), float32(rng.IntN(5))
		y := x0 + 3*x1 + float32(rng.NormFloat64())*0.5
		if rng.Float64() < 0.2 {
			x0 = float32(math.NaN())
			y = 20 + 3*x1
		}
		if objective == BinaryLogistic {
			if y > 8 {
				y = 1
			} else {
				y = 0
			}
		}
		d.X = append(d.X, x0, x1, x2)
		d.Y = append(d.Y, y)
	}
	return d
}

func TestMissingValuesLearnDirection(t *testing.T) {
	train := synthetic(SquaredError, 4000, 3)
	res, err := Train(context.Background(), DefaultParams(SquaredError), train, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	nan := float32(math.NaN())
	if got := res.Model.Predict([]float32{nan, 0.5, 1}); math.Abs(got-21.5) > 1 {
		t.Errorf("prediction for missing x0 = %v, want about 21.5", got)
	}
	if got := res.Model.Predict([]float32{2, 0.5, 1}); math.Abs(got-3.5) > 1 {
		t.Errorf("prediction for x0 = 2: %v, want about 3.5", got)
	}
	if names := res.Model.FeatureNames(); len(names) != 3 || names[0] != "f0" {
		t.Errorf("default feature names %v", names)
	}
}

func TestDeterminism(t *testing.T) {
	train, valid := synthetic(BinaryLogistic, 6000, 4), synthetic(BinaryLogistic, 1000, 5)
	p := DefaultParams(BinaryLogistic)
	p.NumRounds, p.Subsample, p.ColsampleByTree, p.Seed = 15, 0.8, 0.7, 42
	model := func(p Params, procs int) []byte {
		t.Helper()
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
		res, err := Train(context.Background(), p, train, valid, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := res.Model.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b, c := model(p, 2), model(p, 2), model(p, 1)
	if !bytes.Equal(a, b) {
		t.Error("two runs with the same seed differ")
	}
	if !bytes.Equal(a, c) {
		t.Error("the model depends on the number of CPUs")
	}
	p.Seed = 43
	if bytes.Equal(a, model(p, 2)) {
		t.Error("another seed gives the same model despite sampling")
	}
}

func TestEarlyStopping(t *testing.T) {
	train, valid := synthetic(SquaredError, 2000, 6), synthetic(SquaredError, 500, 7)
	p := DefaultParams(SquaredError)
	p.NumRounds, p.Eta, p.MaxDepth, p.MinChildWeight, p.EarlyStoppingRounds = 500, 0.5, 8, 0, 5
	var seen []Round
	res, err := Train(context.Background(), p, train, valid, func(r Round) { seen = append(seen, r) })
	if err != nil {
		t.Fatal(err)
	}
	h := res.History
	if len(h) == p.NumRounds || len(seen) != len(h) {
		t.Fatalf("%d rounds of %d (progress saw %d): no early stop", len(h), p.NumRounds, len(seen))
	}
	best := 0
	for i, r := range h {
		if r.ValidLoss < h[best].ValidLoss {
			best = i
		}
	}
	if res.BestIteration != best || len(h) != best+p.EarlyStoppingRounds+1 {
		t.Errorf("best %d (want %d) after %d rounds", res.BestIteration, best, len(h))
	}
	if res.Model.NumTrees() != best+1 || res.BestScore != h[best].ValidLoss || res.Metric != "rmse" {
		t.Errorf("model has %d trees, best score %v (history %v), metric %q",
			res.Model.NumTrees(), res.BestScore, h[best].ValidLoss, res.Metric)
	}
	pred := make([]float64, valid.Rows())
	res.Model.PredictBatch(valid.X, pred)
	if got := metrics.RMSE(valid.Y, pred); math.Abs(got-res.BestScore) > 1e-9 {
		t.Errorf("truncated model scores %v, best score %v", got, res.BestScore)
	}

	p.EarlyStoppingRounds = 3
	if _, err := Train(context.Background(), p, train, nil, nil); !errors.Is(err, ErrEarlyStoppingNeedsValid) {
		t.Errorf("early stopping without a validation set: %v", err)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := DefaultParams(SquaredError)
	rounds := 0
	_, err := Train(ctx, p, synthetic(SquaredError, 500, 8), nil, func(r Round) {
		rounds++
		if r.Iteration == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) || rounds != 3 {
		t.Errorf("error %v after %d rounds", err, rounds)
	}
}

func TestWeights(t *testing.T) {
	d := synthetic(SquaredError, 1000, 9)
	p := DefaultParams(SquaredError)
	p.NumRounds = 5
	a, err := Train(context.Background(), p, d, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := *d
	w.Weight = make([]float32, d.Rows())
	for i := range w.Weight {
		w.Weight[i] = 1
	}
	b, err := Train(context.Background(), p, &w, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ja, _ := a.Model.MarshalJSON()
	jb, _ := b.Model.MarshalJSON()
	if !bytes.Equal(ja, jb) {
		t.Error("unit weights change the model")
	}
	// Weighted base score: weight only the first row.
	for i := range w.Weight {
		w.Weight[i] = 0
	}
	w.Weight[0] = 1
	c, err := Train(context.Background(), p, &w, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.BaseScore != float64(d.Y[0]) {
		t.Errorf("base score %v, want the only weighted label %v", c.BaseScore, d.Y[0])
	}
}

func TestParamsValidate(t *testing.T) {
	ok := DefaultParams(SquaredError)
	tests := []struct {
		name   string
		change func(p *Params)
		want   string // "" = valid
	}{
		{"defaults", func(p *Params) {}, ""},
		{"logistic defaults", func(p *Params) { *p = DefaultParams(BinaryLogistic) }, ""},
		{"objective", func(p *Params) { p.Objective = "reg:gamma" }, `objective "reg:gamma" is not supported`},
		{"no objective", func(p *Params) { p.Objective = "" }, `objective "" is not supported`},
		{"rounds", func(p *Params) { p.NumRounds = 0 }, "NumRounds 0 is not positive"},
		{"depth 0", func(p *Params) { p.MaxDepth = 0 }, "MaxDepth 0 is not in [1, 24]"},
		{"depth 25", func(p *Params) { p.MaxDepth = 25 }, "MaxDepth 25 is not in [1, 24]"},
		{"eta 0", func(p *Params) { p.Eta = 0 }, "Eta 0 is not in (0, 1]"},
		{"eta NaN", func(p *Params) { p.Eta = math.NaN() }, "Eta NaN is not in (0, 1]"},
		{"eta 1.5", func(p *Params) { p.Eta = 1.5 }, "Eta 1.5 is not in (0, 1]"},
		{"min child weight", func(p *Params) { p.MinChildWeight = -1 }, "MinChildWeight -1 is not a finite number ≥ 0"},
		{"lambda inf", func(p *Params) { p.Lambda = math.Inf(1) }, "Lambda +Inf is not a finite number ≥ 0"},
		{"alpha", func(p *Params) { p.Alpha = -0.1 }, "Alpha -0.1 is not a finite number ≥ 0"},
		{"gamma NaN", func(p *Params) { p.Gamma = math.NaN() }, "Gamma NaN is not a finite number ≥ 0"},
		{"subsample 0", func(p *Params) { p.Subsample = 0 }, "Subsample 0 is not in (0, 1]"},
		{"colsample", func(p *Params) { p.ColsampleByTree = 1.1 }, "ColsampleByTree 1.1 is not in (0, 1]"},
		{"max bin 1", func(p *Params) { p.MaxBin = 1 }, "MaxBin 1 is not in [2, 65535]"},
		{"max bin huge", func(p *Params) { p.MaxBin = 70000 }, "MaxBin 70000 is not in [2, 65535]"},
		{"early stopping", func(p *Params) { p.EarlyStoppingRounds = -1 }, "EarlyStoppingRounds -1 is negative"},
		{"base score NaN", func(p *Params) { p.BaseScore = math.NaN() }, "BaseScore NaN is not a finite float32"},
		{"base score huge", func(p *Params) { p.BaseScore = 1e300 }, "BaseScore 1e+300 is not a finite float32"},
		{"logistic base score", func(p *Params) { p.Objective, p.BaseScore = BinaryLogistic, 1 },
			"BaseScore 1 of binary:logistic is not a probability in (0, 1)"},
		{"regression base score", func(p *Params) { p.BaseScore = -3 }, ""},
		{"several", func(p *Params) { p.NumRounds, p.MaxBin = -1, 0 }, "NumRounds -1 is not positive\nboost params: MaxBin 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ok
			tt.change(&p)
			err := p.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want it to contain %q", err, tt.want)
			}
			if tt.want != "" {
				if _, err := Train(context.Background(), p, synthetic(SquaredError, 10, 1), nil, nil); err == nil {
					t.Error("Train accepted invalid parameters")
				}
			}
		})
	}
}

func TestDatasetChecks(t *testing.T) {
	good := func() *Dataset {
		return &Dataset{X: []float32{1, 2, 3, 4}, Y: []float32{0, 1}, NumFeatures: 2}
	}
	tests := []struct {
		name   string
		change func(d *Dataset)
		want   string
	}{
		{"no features", func(d *Dataset) { d.NumFeatures = 0 }, "NumFeatures 0"},
		{"no rows", func(d *Dataset) { d.X, d.Y = nil, nil }, "no rows"},
		{"short X", func(d *Dataset) { d.X = d.X[:3] }, "X has 3 values"},
		{"names", func(d *Dataset) { d.FeatureNames = []string{"a"} }, "1 feature names for 2 features"},
		{"infinite x", func(d *Dataset) { d.X[1] = float32(math.Inf(-1)) }, "row 0 feature 1 is infinite"},
		{"NaN label", func(d *Dataset) { d.Y[1] = float32(math.NaN()) }, "label of row 1 is NaN"},
		{"logistic label", func(d *Dataset) { d.Y[1] = 2 }, "not in [0, 1]"},
		{"weights count", func(d *Dataset) { d.Weight = []float32{1} }, "1 weights for 2 rows"},
		{"negative weight", func(d *Dataset) { d.Weight = []float32{1, -1} }, "weight of row 1 is -1"},
		{"zero weights", func(d *Dataset) { d.Weight = []float32{0, 0} }, "weights sum to zero"},
	}
	for _, tt := range tests {
		d := good()
		tt.change(d)
		_, err := Train(context.Background(), DefaultParams(BinaryLogistic), d, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
	other := &Dataset{X: []float32{1, 2, 3}, Y: []float32{0}, NumFeatures: 3}
	if _, err := Train(context.Background(), DefaultParams(BinaryLogistic), good(), other, nil); err == nil ||
		!strings.Contains(err.Error(), "validation set has 3 features") {
		t.Errorf("mismatched validation set: %v", err)
	}
}

func TestQuantileCuts(t *testing.T) {
	few := []weighted{{3, 1}, {1, 1}, {2, 1}, {2, 1}}
	cuts, minVal := quantileCuts(few, 256)
	if len(cuts) != 3 || cuts[0] != 2 || cuts[1] != 3 || !(cuts[2] > 3) || !(minVal < 1) {
		t.Errorf("few values: cuts %v min %v", cuts, minVal)
	}
	var many []weighted
	for i := 0; i < 1000; i++ {
		many = append(many, weighted{float32(i), 1})
	}
	cuts, _ = quantileCuts(many, 10)
	if len(cuts) != 10 || cuts[0] != 100 || cuts[8] != 900 {
		t.Errorf("many values: cuts %v", cuts)
	}
	for i, v := range []float32{-5, 0, 99, 100, 999, 2000} {
		want := []int{0, 0, 0, 1, 9, 9}[i]
		if got := binOf(cuts, v); got != want {
			t.Errorf("bin of %v = %d, want %d", v, got, want)
		}
	}
	if cuts, _ := quantileCuts(nil, 10); cuts != nil {
		t.Errorf("no values: cuts %v", cuts)
	}
}
