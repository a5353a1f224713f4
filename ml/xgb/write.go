package xgb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
)

// rootParent is what xgboost writes as the parent of a root.
const rootParent = 2147483647

type fileOut struct {
	Learner learnerOut `json:"learner"`
	Version [3]int     `json:"version"`
}

type learnerOut struct {
	Attributes        map[string]string `json:"attributes"`
	FeatureNames      []string          `json:"feature_names"`
	FeatureTypes      []string          `json:"feature_types"`
	GradientBooster   boosterOut        `json:"gradient_booster"`
	LearnerModelParam learnerParamJSON  `json:"learner_model_param"`
	Objective         json.RawMessage   `json:"objective"`
}

type boosterOut struct {
	Model gbtreeOut `json:"model"`
	Name  string    `json:"name"`
}

type gbtreeOut struct {
	Param    gbtreeParamJSON `json:"gbtree_model_param"`
	TreeInfo []int32         `json:"tree_info"`
	Trees    []treeOut       `json:"trees"`
}

type treeOut struct {
	BaseWeights        floats        `json:"base_weights"`
	Categories         []int32       `json:"categories"`
	CategoriesNodes    []int32       `json:"categories_nodes"`
	CategoriesSegments []int64       `json:"categories_segments"`
	CategoriesSizes    []int64       `json:"categories_sizes"`
	DefaultLeft        flags         `json:"default_left"`
	ID                 int           `json:"id"`
	LeftChildren       []int32       `json:"left_children"`
	LossChanges        floats        `json:"loss_changes"`
	Parents            []int32       `json:"parents"`
	RightChildren      []int32       `json:"right_children"`
	SplitConditions    floats        `json:"split_conditions"`
	SplitIndices       []int32       `json:"split_indices"`
	SplitType          []int32       `json:"split_type"`
	SumHessian         floats        `json:"sum_hessian"`
	Param              treeParamJSON `json:"tree_param"`
}

// floats writes float32 values so that xgboost reads them as numbers: its
// JSON reader takes a literal without '.' or exponent for an integer and
// refuses it where a float is expected, so 1200 is written "1200.0".
type floats []float32

func (fs floats) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 12*len(fs)+2)
	b = append(b, '[')
	for i, f := range fs {
		if i > 0 {
			b = append(b, ',')
		}
		v := float64(f)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("%w: value %v cannot be written", ErrInvalid, f)
		}
		if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) {
			b = strconv.AppendFloat(b, v, 'e', -1, 32)
			continue
		}
		start := len(b)
		b = strconv.AppendFloat(b, v, 'f', -1, 32)
		if !bytes.ContainsRune(b[start:], '.') {
			b = append(b, '.', '0')
		}
	}
	return append(b, ']'), nil
}

// defaultObjective is the objective object xgboost 1.7 writes for each
// supported objective with default parameters.
func defaultObjective(name string) json.RawMessage {
	var cfg map[string]any
	switch name {
	case ObjSquaredError, ObjBinaryLogistic:
		cfg = map[string]any{"reg_loss_param": map[string]string{"scale_pos_weight": "1"}}
	case ObjPseudoHuberError:
		cfg = map[string]any{"pseudo_huber_param": map[string]string{"huber_slope": "1"}}
	case ObjCountPoisson:
		cfg = map[string]any{"poisson_regression_param": map[string]string{"max_delta_step": "0.699999988"}}
	case ObjTweedie:
		cfg = map[string]any{"tweedie_regression_param": map[string]string{"tweedie_variance_power": "1.5"}}
	default:
		cfg = map[string]any{}
	}
	cfg["name"] = name
	b, _ := json.Marshal(cfg) // maps of strings always marshal
	return b
}

// MarshalJSON writes the model in XGBoost's JSON model format (the layout of
// xgboost 1.7, which later releases also load). Trees are written with their
// reachable nodes only, numbered breadth first.
func (m *Model) MarshalJSON() ([]byte, error) {
	obj := json.RawMessage(m.objConfig)
	if len(obj) == 0 {
		obj = defaultObjective(m.objective)
	}
	names := m.names
	if names == nil {
		names = []string{}
	}
	types := m.types
	if types == nil {
		types = []string{}
		if len(m.names) != 0 {
			types = make([]string, len(m.names))
			for i := range types {
				types[i] = "float"
			}
		}
	}
	attrs := m.attributes
	if attrs == nil {
		attrs = map[string]string{}
	}
	nf := strconv.Itoa(m.numFeature)
	out := fileOut{
		Version: [3]int{1, 7, 4}, // the layout written; later releases read it too
		Learner: learnerOut{
			Attributes:   attrs,
			FeatureNames: names,
			FeatureTypes: types,
			GradientBooster: boosterOut{
				Name: "gbtree",
				Model: gbtreeOut{
					Param: gbtreeParamJSON{
						NumParallelTree: strconv.Itoa(m.parallel),
						NumTrees:        strconv.Itoa(len(m.trees)),
						SizeLeafVector:  "0",
					},
					TreeInfo: make([]int32, len(m.trees)),
					Trees:    make([]treeOut, len(m.trees)),
				},
			},
			LearnerModelParam: learnerParamJSON{
				BaseScore:        strconv.FormatFloat(float64(m.baseScore), 'E', -1, 32),
				BoostFromAverage: "1",
				NumClass:         "0",
				NumFeature:       nf,
				NumTarget:        "1",
			},
			Objective: obj,
		},
	}
	for i := range m.trees {
		out.Learner.GradientBooster.Model.Trees[i] = treeToJSON(i, &m.trees[i], nf)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("write xgboost model: %w", err)
	}
	return b, nil
}

func treeToJSON(id int, t *Tree, nf string) treeOut {
	n := t.NumNodes()
	o := treeOut{
		BaseWeights:        floats(t.BaseWeights),
		Categories:         []int32{},
		CategoriesNodes:    []int32{},
		CategoriesSegments: []int64{},
		CategoriesSizes:    []int64{},
		DefaultLeft:        flags(t.DefaultLeft),
		ID:                 id,
		LeftChildren:       t.LeftChildren,
		LossChanges:        floats(t.LossChanges),
		Parents:            make([]int32, n),
		RightChildren:      t.RightChildren,
		SplitConditions:    floats(t.SplitConditions),
		SplitIndices:       t.SplitIndices,
		SplitType:          make([]int32, n),
		SumHessian:         floats(t.SumHessian),
		Param: treeParamJSON{
			NumDeleted:     "0",
			NumFeature:     nf,
			NumNodes:       strconv.Itoa(n),
			SizeLeafVector: "0",
		},
	}
	o.Parents[0] = rootParent
	for i := 0; i < n; i++ {
		if l := t.LeftChildren[i]; l != -1 {
			o.Parents[l] = int32(i)
			o.Parents[t.RightChildren[i]] = int32(i)
		}
	}
	if o.BaseWeights == nil {
		// A leaf's base weight is its value, as xgboost records it.
		o.BaseWeights = make(floats, n)
		for i := 0; i < n; i++ {
			if t.LeftChildren[i] == -1 {
				o.BaseWeights[i] = t.SplitConditions[i]
			}
		}
	}
	if o.LossChanges == nil {
		o.LossChanges = make(floats, n)
	}
	if o.SumHessian == nil {
		o.SumHessian = make(floats, n)
	}
	return o
}

// WriteJSON writes the model to w in XGBoost's JSON model format.
func (m *Model) WriteJSON(w io.Writer) error {
	b, err := m.MarshalJSON()
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("write xgboost model: %w", err)
	}
	return nil
}
