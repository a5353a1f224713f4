package xgb

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

// TestParityWithXGBoost checks every fixture model against the margins and
// predictions xgboost made for the same inputs.
func TestParityWithXGBoost(t *testing.T) {
	for _, f := range loadFixtures(t) {
		t.Run(f.name, func(t *testing.T) {
			var maxMargin, maxPred float64
			exact := 0
			for i, x := range f.inputs {
				x = x[:f.model.NumFeatures()]
				gm, gp := f.model.PredictMargin(x), f.model.Predict(x)
				if !close(gm, f.margin[i]) || !close(gp, f.pred[i]) {
					t.Errorf("row %d %v: margin %v pred %v, xgboost %v %v", i, x, gm, gp, f.margin[i], f.pred[i])
				}
				if gm == f.margin[i] {
					exact++
				}
				maxMargin = math.Max(maxMargin, math.Abs(gm-f.margin[i]))
				maxPred = math.Max(maxPred, math.Abs(gp-f.pred[i]))
			}
			t.Logf("%d rows, %d trees: max |diff| margin %.3g, prediction %.3g; %d margins bit-identical",
				len(f.inputs), f.model.NumTrees(), maxMargin, maxPred, exact)
		})
	}
}

func TestPredictBatchMatchesSingle(t *testing.T) {
	for _, f := range loadFixtures(t) {
		nf := f.model.NumFeatures()
		X := make([]float32, 0, len(f.inputs)*nf)
		for _, x := range f.inputs {
			X = append(X, x[:nf]...)
		}
		out := make([]float64, len(f.inputs))
		margins := make([]float64, len(f.inputs))
		f.model.PredictBatch(X, out)
		f.model.PredictMarginBatch(X, margins)
		for i, x := range f.inputs {
			if p := f.model.Predict(x); p != out[i] {
				t.Fatalf("%s row %d: batch %v, single %v", f.name, i, out[i], p)
			}
			if m := f.model.PredictMargin(x); m != margins[i] {
				t.Fatalf("%s row %d: batch margin %v, single %v", f.name, i, margins[i], m)
			}
		}
	}
}

// TestRoundTrip writes every fixture model and reads it back: same
// predictions, same accessors, and writing again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	for _, f := range loadFixtures(t) {
		b, err := f.model.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %v", f.name, err)
		}
		m2, err := Parse(b)
		if err != nil {
			t.Fatalf("%s: parse written model: %v", f.name, err)
		}
		if m2.NumTrees() != f.model.NumTrees() || m2.NumFeatures() != f.model.NumFeatures() ||
			m2.Objective() != f.model.Objective() || m2.BaseScore() != f.model.BaseScore() ||
			!slices.Equal(m2.FeatureNames(), f.model.FeatureNames()) {
			t.Errorf("%s: accessors differ after a round trip", f.name)
		}
		for i, x := range f.inputs {
			if a, b := f.model.PredictMargin(x), m2.PredictMargin(x); a != b {
				t.Fatalf("%s row %d: %v before, %v after", f.name, i, a, b)
			}
		}
		var buf bytes.Buffer
		if err := m2.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Errorf("%s: second write differs", f.name)
		}
	}
}

func TestAccessors(t *testing.T) {
	m, err := Parse(readFile(t, "testdata/models/fare_d6_t100.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"trip_miles", "trip_seconds", "avg_speed_mph", "pickup_hour", "pickup_day_of_week",
		"pickup_month", "pickup_community_area", "dropoff_community_area", "payment_type", "company"}
	if m.NumFeatures() != 10 || !slices.Equal(m.FeatureNames(), want) || m.NumTrees() != 100 ||
		m.Objective() != ObjSquaredError || math.Abs(m.BaseScore()-11.565177) > 1e-5 {
		t.Errorf("got %d features %v, %d trees, %q, base %v", m.NumFeatures(), m.FeatureNames(), m.NumTrees(),
			m.Objective(), m.BaseScore())
	}
	m, err = Parse(readFile(t, "testdata/models/fare_missing_d3_t10.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if m.FeatureNames() != nil || m.NumFeatures() != 10 {
		t.Errorf("unnamed model: names %v, %d features", m.FeatureNames(), m.NumFeatures())
	}
	m, err = Parse(readFile(t, "testdata/models/tipper_base03_d3_t10.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.BaseScore()-0.3) > 1e-7 || m.Objective() != ObjBinaryLogistic {
		t.Errorf("tipper: base %v objective %q", m.BaseScore(), m.Objective())
	}
	// Some fixture model must send missing values left somewhere, or the
	// missing-value path is not exercised.
	left := false
	for _, f := range loadFixtures(t) {
		for i := 0; i < f.model.NumTrees(); i++ {
			tr := f.model.Tree(i)
			for j, l := range tr.LeftChildren {
				left = left || (l != -1 && tr.DefaultLeft[j])
			}
		}
	}
	if !left {
		t.Error("no fixture split sends missing values left")
	}
}

func TestPredictDoesNotAllocate(t *testing.T) {
	m, err := Parse(readFile(t, "testdata/models/fare_d6_t100.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	inputs := readInputs(t, "testdata/inputs_fare.csv")
	x := inputs[0]
	X := make([]float32, 0, 100*m.NumFeatures())
	for _, r := range inputs[:100] {
		X = append(X, r...)
	}
	out := make([]float64, 100)
	var sink float64
	for name, fn := range map[string]func(){
		"Predict":       func() { sink += m.Predict(x) },
		"PredictMargin": func() { sink += m.PredictMargin(x) },
		"PredictBatch":  func() { m.PredictBatch(X, out) },
	} {
		if a := testing.AllocsPerRun(100, fn); a != 0 {
			t.Errorf("%s: %v allocations per call", name, a)
		}
	}
	_ = sink
}

func TestPredictPanicsOnShortRow(t *testing.T) {
	m, err := Parse(readFile(t, "testdata/models/fare_d1_t1.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a short row")
		}
	}()
	m.Predict(make([]float32, 3))
}

// stump: f0 < 0.5 → 1, else 2; missing → left.
func stump() Tree {
	return Tree{
		LeftChildren:    []int32{1, -1, -1},
		RightChildren:   []int32{2, -1, -1},
		SplitIndices:    []int32{0, 0, 0},
		SplitConditions: []float32{0.5, 1, 2},
		DefaultLeft:     []bool{true, false, false},
	}
}

func TestNew(t *testing.T) {
	nan := float32(math.NaN())
	deep := Tree{ // f1 < 0 → (f0 < 1 → 10 | 20), else 30; missing f1 → right, f0 → right
		LeftChildren:    []int32{2, -1, 3, -1, -1},
		RightChildren:   []int32{1, -1, 4, -1, -1},
		SplitIndices:    []int32{1, 0, 0, 0, 0},
		SplitConditions: []float32{0, 30, 1, 10, 20},
		DefaultLeft:     []bool{false, false, false, false, false},
	}
	tests := []struct {
		name   string
		obj    string
		base   float64
		names  []string
		trees  []Tree
		x      []float32
		margin float64
		pred   float64
	}{
		{"stump left", ObjSquaredError, 0.5, nil, []Tree{stump()}, []float32{0.25}, 1.5, 1.5},
		{"stump equal goes right", ObjSquaredError, 0.5, nil, []Tree{stump()}, []float32{0.5}, 2.5, 2.5},
		{"stump missing left", ObjSquaredError, 0, nil, []Tree{stump()}, []float32{nan}, 1, 1},
		{"two trees", ObjSquaredError, 1, []string{"a", "b"}, []Tree{stump(), deep}, []float32{0, -1}, 12, 12},
		{"deep right", ObjSquaredError, 0, nil, []Tree{deep}, []float32{5, nan}, 30, 30},
		{"deep left right", ObjSquaredError, 0, nil, []Tree{deep}, []float32{nan, -1}, 20, 20},
		{"logistic", ObjBinaryLogistic, 0.5, nil, []Tree{stump()}, []float32{1}, 2, 1 / (1 + math.Exp(-2))},
		{"poisson", ObjCountPoisson, 1, nil, []Tree{stump()}, []float32{0}, 1, math.E},
		{"no trees", ObjTweedie, 2, nil, nil, nil, float64(float32(math.Log(2))), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := New(tt.obj, tt.base, tt.names, tt.trees)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.PredictMargin(tt.x); got != tt.margin {
				t.Errorf("margin %v, want %v", got, tt.margin)
			}
			if got := m.Predict(tt.x); math.Abs(got-tt.pred) > 1e-7 {
				t.Errorf("pred %v, want %v", got, tt.pred)
			}
			b, err := m.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			m2, err := Parse(b)
			if err != nil {
				t.Fatalf("parse written: %v\n%s", err, b)
			}
			if got := m2.PredictMargin(tt.x); got != tt.margin {
				t.Errorf("after round trip: margin %v, want %v", got, tt.margin)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	short := stump()
	short.DefaultLeft = short.DefaultLeft[:2]
	cyclic := stump()
	cyclic.LeftChildren[0] = 0
	shared := stump()
	shared.RightChildren[0] = 1
	oneChild := stump()
	oneChild.LeftChildren[1] = 2
	farFeature := stump()
	farFeature.SplitIndices[0] = 3
	inf := stump()
	inf.SplitConditions[2] = float32(math.Inf(1))
	tests := []struct {
		name  string
		obj   string
		base  float64
		names []string
		trees []Tree
		want  error
	}{
		{"objective", "multi:softprob", 0.5, nil, []Tree{stump()}, ErrUnsupported},
		{"short array", ObjSquaredError, 0.5, nil, []Tree{short}, ErrInvalid},
		{"cycle", ObjSquaredError, 0.5, nil, []Tree{cyclic}, ErrInvalid},
		{"shared child", ObjSquaredError, 0.5, nil, []Tree{shared}, ErrInvalid},
		{"leaf with a right child only", ObjSquaredError, 0.5, nil, []Tree{oneChild}, ErrInvalid},
		{"feature beyond names", ObjSquaredError, 0.5, []string{"a", "b"}, []Tree{farFeature}, ErrInvalid},
		{"infinite leaf", ObjSquaredError, 0.5, nil, []Tree{inf}, ErrInvalid},
		{"empty tree", ObjSquaredError, 0.5, nil, []Tree{{}}, ErrInvalid},
		{"logistic base 1", ObjBinaryLogistic, 1, nil, []Tree{stump()}, ErrInvalid},
		{"poisson base 0", ObjCountPoisson, 0, nil, []Tree{stump()}, ErrInvalid},
		{"base NaN", ObjSquaredError, math.NaN(), nil, []Tree{stump()}, ErrInvalid},
		{"base beyond float32", ObjSquaredError, 1e300, nil, []Tree{stump()}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.obj, tt.base, tt.names, tt.trees)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
		})
	}
}

// TestParseRejects mutates a real model file in the ways a corrupt or
// hostile file could differ.
func TestParseRejects(t *testing.T) {
	base := readFile(t, "testdata/models/fare_d3_t10.json.gz")
	tree0 := func(d map[string]any) map[string]any {
		return d["learner"].(map[string]any)["gradient_booster"].(map[string]any)["model"].(map[string]any)["trees"].([]any)[0].(map[string]any)
	}
	learner := func(d map[string]any) map[string]any { return d["learner"].(map[string]any) }
	gbtree := func(d map[string]any) map[string]any {
		return learner(d)["gradient_booster"].(map[string]any)["model"].(map[string]any)
	}
	lparam := func(d map[string]any) map[string]any { return learner(d)["learner_model_param"].(map[string]any) }
	tests := []struct {
		name   string
		mutate func(d map[string]any)
		want   error
	}{
		{"num_nodes too large", func(d map[string]any) { tree0(d)["tree_param"].(map[string]any)["num_nodes"] = "99999999999" }, ErrInvalid},
		{"num_nodes disagrees", func(d map[string]any) { tree0(d)["tree_param"].(map[string]any)["num_nodes"] = "3" }, ErrInvalid},
		{"array short", func(d map[string]any) {
			a := tree0(d)["split_conditions"].([]any)
			tree0(d)["split_conditions"] = a[:len(a)-1]
		}, ErrInvalid},
		{"child out of range", func(d map[string]any) { tree0(d)["left_children"].([]any)[0] = 1000 }, ErrInvalid},
		{"child negative", func(d map[string]any) { tree0(d)["right_children"].([]any)[0] = -7 }, ErrInvalid},
		{"cycle to root", func(d map[string]any) { tree0(d)["left_children"].([]any)[1] = 0 }, ErrInvalid},
		{"self loop", func(d map[string]any) { tree0(d)["left_children"].([]any)[1] = 1 }, ErrInvalid},
		{"back edge", func(d map[string]any) {
			tc := tree0(d)
			tc["left_children"].([]any)[3], tc["right_children"].([]any)[3] = 1, 2
		}, ErrInvalid},
		{"split index too large", func(d map[string]any) { tree0(d)["split_indices"].([]any)[0] = 10 }, ErrInvalid},
		{"split index negative", func(d map[string]any) { tree0(d)["split_indices"].([]any)[0] = -1 }, ErrInvalid},
		{"condition overflows float32", func(d map[string]any) { tree0(d)["split_conditions"].([]any)[0] = 1e39 }, ErrInvalid},
		{"default_left not 0/1", func(d map[string]any) { tree0(d)["default_left"].([]any)[0] = 7 }, ErrInvalid},
		{"categorical split", func(d map[string]any) { tree0(d)["split_type"].([]any)[0] = 1 }, ErrUnsupported},
		{"categories", func(d map[string]any) { tree0(d)["categories_nodes"] = []any{0} }, ErrUnsupported},
		{"vector leaf", func(d map[string]any) { tree0(d)["tree_param"].(map[string]any)["size_leaf_vector"] = "3" }, ErrUnsupported},
		{"num_trees disagrees", func(d map[string]any) { gbtree(d)["gbtree_model_param"].(map[string]any)["num_trees"] = "11" }, ErrInvalid},
		{"tree_info group", func(d map[string]any) { gbtree(d)["tree_info"].([]any)[1] = 1 }, ErrUnsupported},
		{"tree_info short", func(d map[string]any) { gbtree(d)["tree_info"] = []any{0} }, ErrInvalid},
		{"gblinear", func(d map[string]any) { learner(d)["gradient_booster"] = map[string]any{"name": "gblinear"} }, ErrUnsupported},
		{"dart", func(d map[string]any) {
			gb := learner(d)["gradient_booster"]
			learner(d)["gradient_booster"] = map[string]any{"name": "dart", "gbtree": gb, "weight_drop": []any{}}
		}, ErrUnsupported},
		{"multi-class objective", func(d map[string]any) {
			learner(d)["objective"] = map[string]any{"name": "multi:softprob"}
		}, ErrUnsupported},
		{"num_class", func(d map[string]any) { lparam(d)["num_class"] = "3" }, ErrUnsupported},
		{"num_target", func(d map[string]any) { lparam(d)["num_target"] = "2" }, ErrUnsupported},
		{"intercept vector", func(d map[string]any) { lparam(d)["base_score"] = "[1E0,2E0]" }, ErrUnsupported},
		{"base_score text", func(d map[string]any) { lparam(d)["base_score"] = "abc" }, ErrInvalid},
		{"base_score missing", func(d map[string]any) { delete(lparam(d), "base_score") }, ErrInvalid},
		{"logistic base_score 2", func(d map[string]any) {
			learner(d)["objective"] = map[string]any{"name": "binary:logistic"}
			lparam(d)["base_score"] = "2"
		}, ErrInvalid},
		{"num_feature negative", func(d map[string]any) { lparam(d)["num_feature"] = "-1" }, ErrInvalid},
		{"num_feature huge", func(d map[string]any) { lparam(d)["num_feature"] = "2000000000" }, ErrInvalid},
		{"feature names count", func(d map[string]any) { learner(d)["feature_names"] = []any{"a"} }, ErrInvalid},
		{"no learner", func(d map[string]any) { delete(d, "learner") }, ErrInvalid},
		{"no objective", func(d map[string]any) { delete(learner(d), "objective") }, ErrInvalid},
		{"future version", func(d map[string]any) { d["version"] = []any{9, 0, 0} }, ErrUnsupported},
		{"no version", func(d map[string]any) { delete(d, "version") }, ErrInvalid},
		{"trees not array", func(d map[string]any) { gbtree(d)["trees"] = "x" }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(base, &d); err != nil {
				t.Fatal(err)
			}
			tt.mutate(d)
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(b)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v, want %v", err, tt.want)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "parse xgboost model: ") {
				t.Errorf("error %q does not say what was done", err)
			}
		})
	}
}

func TestParseAcceptsLayouts(t *testing.T) {
	base := readFile(t, "testdata/models/fare_d3_t10.json.gz")
	ref, err := Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	x := readInputs(t, "testdata/inputs_fare.csv")[0]
	tests := []struct {
		name   string
		mutate func(d map[string]any)
	}{
		{"xgboost 3 intercept vector", func(d map[string]any) {
			lp := d["learner"].(map[string]any)["learner_model_param"].(map[string]any)
			lp["base_score"] = "[" + lp["base_score"].(string) + "]"
			d["version"] = []any{3, 0, 0}
		}},
		{"xgboost 2 scalar leaves", func(d map[string]any) {
			for _, tr := range d["learner"].(map[string]any)["gradient_booster"].(map[string]any)["model"].(map[string]any)["trees"].([]any) {
				tr.(map[string]any)["tree_param"].(map[string]any)["size_leaf_vector"] = "1"
			}
			d["version"] = []any{2, 1, 0}
		}},
		{"boolean default_left", func(d map[string]any) {
			for _, tr := range d["learner"].(map[string]any)["gradient_booster"].(map[string]any)["model"].(map[string]any)["trees"].([]any) {
				dl := tr.(map[string]any)["default_left"].([]any)
				for i, v := range dl {
					dl[i] = v.(float64) != 0
				}
			}
		}},
		{"no split_type, parents or statistics", func(d map[string]any) {
			for _, tr := range d["learner"].(map[string]any)["gradient_booster"].(map[string]any)["model"].(map[string]any)["trees"].([]any) {
				for _, k := range []string{"split_type", "parents", "base_weights", "loss_changes", "sum_hessian"} {
					delete(tr.(map[string]any), k)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d map[string]any
			if err := json.Unmarshal(base, &d); err != nil {
				t.Fatal(err)
			}
			tt.mutate(d)
			b, _ := json.Marshal(d)
			m, err := Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			if m.PredictMargin(x) != ref.PredictMargin(x) {
				t.Errorf("margin %v, want %v", m.PredictMargin(x), ref.PredictMargin(x))
			}
		})
	}
}

// TestUnreachableNodes: xgboost may leave deleted nodes in the arrays after
// pruning; they are dropped, and the tree still predicts the same.
func TestUnreachableNodes(t *testing.T) {
	tr := Tree{
		LeftChildren:    []int32{3, -1, -1, -1, -1},
		RightChildren:   []int32{4, -1, -1, -1, -1},
		SplitIndices:    []int32{0, 0, 0, 0, 0},
		SplitConditions: []float32{0.5, 99, 99, 1, 2},
		DefaultLeft:     []bool{false, false, false, false, false},
	}
	m, err := New(ObjSquaredError, 0, nil, []Tree{tr})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Tree(0).NumNodes(); got != 3 {
		t.Errorf("%d nodes kept, want 3", got)
	}
	if a, b := m.PredictMargin([]float32{0}), m.PredictMargin([]float32{1}); a != 1 || b != 2 {
		t.Errorf("margins %v %v", a, b)
	}
}

// TestWrittenFloatsReadAsNumbers: xgboost's JSON reader takes 1200 for an
// integer and refuses it where a float is expected, so every float is
// written with a point or an exponent.
func TestWrittenFloatsReadAsNumbers(t *testing.T) {
	tr := stump()
	tr.SplitConditions = []float32{1200, -3, 0}
	tr.SumHessian = []float32{5, 2, 3}
	tr.LossChanges = []float32{1e-7, 0, 0}
	tr.BaseWeights = []float32{1e22, 0, 0}
	m, err := New(ObjSquaredError, 2, []string{"a"}, []Tree{tr})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Learner struct {
			GradientBooster struct {
				Model struct {
					Trees []map[string]json.RawMessage `json:"trees"`
				} `json:"model"`
			} `json:"gradient_booster"`
		} `json:"learner"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"split_conditions", "sum_hessian", "loss_changes", "base_weights"} {
		var nums []json.Number
		dec := json.NewDecoder(bytes.NewReader(d.Learner.GradientBooster.Model.Trees[0][k]))
		dec.UseNumber()
		if err := dec.Decode(&nums); err != nil {
			t.Fatal(err)
		}
		for _, n := range nums {
			if !strings.ContainsAny(string(n), ".eE") {
				t.Errorf("%s: %s would be read as an integer", k, n)
			}
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLoad(t *testing.T) {
	r := openMaybeGz(t, "testdata/models/tipper_d3_t10.json.gz")
	defer r.Close()
	m, err := Load(r)
	if err != nil {
		t.Fatal(err)
	}
	if m.NumTrees() != 10 || m.NumFeatures() != 11 {
		t.Errorf("%d trees, %d features", m.NumTrees(), m.NumFeatures())
	}
	if _, err := Load(failingReader{}); err == nil || !strings.Contains(err.Error(), "read xgboost model: disk on fire") {
		t.Errorf("error %v", err)
	}
}
