package xgb

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The JSON layout of a model file. Parameters are strings, as xgboost writes
// every dmlc parameter. Fields that play no part in prediction (parents,
// split statistics beyond what is kept for writing) are not read.
type fileJSON struct {
	Version []int        `json:"version"`
	Learner *learnerJSON `json:"learner"`
}

type learnerJSON struct {
	Attributes        map[string]string `json:"attributes"`
	FeatureNames      []string          `json:"feature_names"`
	FeatureTypes      []string          `json:"feature_types"`
	GradientBooster   *boosterJSON      `json:"gradient_booster"`
	LearnerModelParam *learnerParamJSON `json:"learner_model_param"`
	Objective         json.RawMessage   `json:"objective"`
}

type learnerParamJSON struct {
	BaseScore        string `json:"base_score"`
	BoostFromAverage string `json:"boost_from_average,omitempty"`
	NumClass         string `json:"num_class"`
	NumFeature       string `json:"num_feature"`
	NumTarget        string `json:"num_target,omitempty"`
}

type boosterJSON struct {
	Name  string      `json:"name"`
	Model *gbtreeJSON `json:"model,omitempty"`
}

type gbtreeJSON struct {
	Param    gbtreeParamJSON `json:"gbtree_model_param"`
	TreeInfo []int32         `json:"tree_info"`
	Trees    []treeJSON      `json:"trees"`
}

type gbtreeParamJSON struct {
	NumParallelTree string `json:"num_parallel_tree,omitempty"`
	NumTrees        string `json:"num_trees"`
	SizeLeafVector  string `json:"size_leaf_vector"`
}

type treeJSON struct {
	BaseWeights     []float32       `json:"base_weights"`
	Categories      json.RawMessage `json:"categories"`
	CategoriesNodes json.RawMessage `json:"categories_nodes"`
	DefaultLeft     flags           `json:"default_left"`
	LeftChildren    []int32         `json:"left_children"`
	LossChanges     []float32       `json:"loss_changes"`
	RightChildren   []int32         `json:"right_children"`
	SplitConditions []float32       `json:"split_conditions"`
	SplitIndices    []int32         `json:"split_indices"`
	SplitType       []int32         `json:"split_type"`
	SumHessian      []float32       `json:"sum_hessian"`
	Param           treeParamJSON   `json:"tree_param"`
}

type treeParamJSON struct {
	NumDeleted     string `json:"num_deleted"`
	NumFeature     string `json:"num_feature"`
	NumNodes       string `json:"num_nodes"`
	SizeLeafVector string `json:"size_leaf_vector"`
}

// flags reads default_left, which xgboost writes as 0/1 numbers (and some
// tools as booleans), and writes it as numbers.
type flags []bool

func (f *flags) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		*f = nil
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return fmt.Errorf("default_left is not an array")
	}
	body := bytes.TrimSpace(b[1 : len(b)-1])
	out := make([]bool, 0, bytes.Count(body, []byte(","))+1)
	if len(body) > 0 {
		for tok := range bytes.SplitSeq(body, []byte(",")) {
			switch string(bytes.TrimSpace(tok)) {
			case "0", "false":
				out = append(out, false)
			case "1", "true":
				out = append(out, true)
			default:
				return fmt.Errorf("default_left holds %.20q", tok)
			}
		}
	}
	*f = out
	return nil
}

func (f flags) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2*len(f)+2)
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		if v {
			b = append(b, '1')
		} else {
			b = append(b, '0')
		}
	}
	return append(b, ']'), nil
}

// Load reads a model in XGBoost's JSON format from r (at most MaxBytes).
func Load(r io.Reader) (*Model, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read xgboost model: %w", err)
	}
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("read xgboost model: %w: larger than %d bytes", ErrInvalid, MaxBytes)
	}
	return Parse(b)
}

// Parse reads a model in XGBoost's JSON format.
func Parse(b []byte) (*Model, error) {
	m, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("parse xgboost model: %w", err)
	}
	return m, nil
}

func parse(b []byte) (*Model, error) {
	var f fileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if len(f.Version) == 0 {
		return nil, fmt.Errorf("%w: no version", ErrInvalid)
	}
	if v := f.Version[0]; v < 1 || v > 3 {
		return nil, fmt.Errorf("%w: format version %v", ErrUnsupported, f.Version)
	}
	l := f.Learner
	if l == nil {
		return nil, fmt.Errorf("%w: no learner", ErrInvalid)
	}
	var obj struct {
		Name string `json:"name"`
	}
	if len(l.Objective) == 0 {
		return nil, fmt.Errorf("%w: no objective", ErrInvalid)
	}
	if err := json.Unmarshal(l.Objective, &obj); err != nil {
		return nil, fmt.Errorf("%w: objective: %v", ErrInvalid, err)
	}
	if _, ok := linkOf(obj.Name); !ok {
		return nil, fmt.Errorf("%w: objective %q", ErrUnsupported, obj.Name)
	}
	lp := l.LearnerModelParam
	if lp == nil {
		return nil, fmt.Errorf("%w: no learner_model_param", ErrInvalid)
	}
	if n, err := intParam("num_class", lp.NumClass, 0); err != nil {
		return nil, err
	} else if n > 1 {
		return nil, fmt.Errorf("%w: multi-class model (num_class %d)", ErrUnsupported, n)
	}
	if n, err := intParam("num_target", lp.NumTarget, 1); err != nil {
		return nil, err
	} else if n > 1 {
		return nil, fmt.Errorf("%w: multi-target model (num_target %d)", ErrUnsupported, n)
	}
	numFeature, err := intParam("num_feature", lp.NumFeature, -1)
	if err != nil {
		return nil, err
	}
	if numFeature < 0 || numFeature > MaxFeatures {
		return nil, fmt.Errorf("%w: num_feature %q", ErrInvalid, lp.NumFeature)
	}
	baseScore, err := parseBaseScore(lp.BaseScore)
	if err != nil {
		return nil, err
	}
	gb := l.GradientBooster
	if gb == nil {
		return nil, fmt.Errorf("%w: no gradient_booster", ErrInvalid)
	}
	if gb.Name != "gbtree" {
		return nil, fmt.Errorf("%w: booster %q (only gbtree)", ErrUnsupported, gb.Name)
	}
	g := gb.Model
	if g == nil {
		return nil, fmt.Errorf("%w: gbtree without model", ErrInvalid)
	}
	if err := scalarLeaves("gbtree_model_param", g.Param.SizeLeafVector); err != nil {
		return nil, err
	}
	numTrees, err := intParam("num_trees", g.Param.NumTrees, -1)
	if err != nil {
		return nil, err
	}
	if numTrees != len(g.Trees) {
		return nil, fmt.Errorf("%w: num_trees %d but %d trees", ErrInvalid, numTrees, len(g.Trees))
	}
	if len(g.TreeInfo) != len(g.Trees) {
		return nil, fmt.Errorf("%w: tree_info has %d entries for %d trees", ErrInvalid, len(g.TreeInfo), len(g.Trees))
	}
	for i, grp := range g.TreeInfo {
		if grp != 0 {
			return nil, fmt.Errorf("%w: tree %d belongs to output group %d (multi-output model)", ErrUnsupported, i, grp)
		}
	}
	parallel, err := intParam("num_parallel_tree", g.Param.NumParallelTree, 1)
	if err != nil {
		return nil, err
	}
	if parallel < 1 || parallel > MaxNodes {
		return nil, fmt.Errorf("%w: num_parallel_tree %d", ErrInvalid, parallel)
	}
	trees := make([]Tree, len(g.Trees))
	total := 0
	for i := range g.Trees {
		t := &g.Trees[i]
		if err := checkTree(t); err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		if len(t.LeftChildren) > MaxNodes-total {
			return nil, fmt.Errorf("%w: more than %d nodes", ErrInvalid, MaxNodes)
		}
		total += len(t.LeftChildren)
		trees[i] = Tree{
			LeftChildren:    t.LeftChildren,
			RightChildren:   t.RightChildren,
			SplitIndices:    t.SplitIndices,
			SplitConditions: t.SplitConditions,
			DefaultLeft:     t.DefaultLeft,
			BaseWeights:     t.BaseWeights,
			LossChanges:     t.LossChanges,
			SumHessian:      t.SumHessian,
		}
	}
	objConfig := bytes.Clone(l.Objective)
	return newModel(obj.Name, objConfig, baseScore, numFeature, l.FeatureNames, l.FeatureTypes, l.Attributes, parallel, trees)
}

// checkTree checks what the file says about a tree before anything is
// built from it.
func checkTree(t *treeJSON) error {
	n, err := intParam("num_nodes", t.Param.NumNodes, -1)
	if err != nil {
		return err
	}
	if n < 1 || n != len(t.LeftChildren) {
		return fmt.Errorf("%w: num_nodes %d but %d left_children", ErrInvalid, n, len(t.LeftChildren))
	}
	if err := scalarLeaves("tree_param", t.Param.SizeLeafVector); err != nil {
		return err
	}
	if len(t.SplitType) != 0 && len(t.SplitType) != n {
		return fmt.Errorf("%w: split_type has %d entries for %d nodes", ErrInvalid, len(t.SplitType), n)
	}
	for i, st := range t.SplitType {
		if st != 0 && t.LeftChildren[i] != -1 {
			return fmt.Errorf("%w: node %d is a categorical split", ErrUnsupported, i)
		}
	}
	if !emptyArray(t.CategoriesNodes) || !emptyArray(t.Categories) {
		return fmt.Errorf("%w: categorical splits", ErrUnsupported)
	}
	return nil
}

// emptyArray reports whether a field is absent, null or [].
func emptyArray(raw json.RawMessage) bool {
	t := string(bytes.TrimSpace(raw))
	if t == "" || t == "null" {
		return true
	}
	return strings.HasPrefix(t, "[") && strings.TrimSpace(t[1:len(t)-1]) == ""
}

// scalarLeaves refuses vector leaves; xgboost writes size_leaf_vector 0 (1.x)
// or 1 (2.x) for scalar leaves.
func scalarLeaves(where, s string) error {
	n, err := intParam(where+".size_leaf_vector", s, 0)
	if err != nil {
		return err
	}
	if n > 1 {
		return fmt.Errorf("%w: vector leaves (size_leaf_vector %d)", ErrUnsupported, n)
	}
	return nil
}

// intParam reads an integer parameter; def is used when it is absent
// (def < 0 makes it required).
func intParam(name, s string, def int) (int, error) {
	if s == "" {
		if def < 0 {
			return 0, fmt.Errorf("%w: no %s", ErrInvalid, name)
		}
		return def, nil
	}
	v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 32)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%w: %s %.40q", ErrInvalid, name, s)
	}
	return int(v), nil
}

// parseBaseScore reads base_score: "5E-1" (xgboost 1.x, 2.x) or "[5E-1]"
// (a one-element intercept vector, xgboost 3.x).
func parseBaseScore(s string) (float32, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
		t = strings.TrimSpace(t[1 : len(t)-1])
		if strings.Contains(t, ",") {
			return 0, fmt.Errorf("%w: base_score %.40q has several intercepts", ErrUnsupported, s)
		}
	}
	if t == "" {
		return 0, fmt.Errorf("%w: no base_score", ErrInvalid)
	}
	v, err := strconv.ParseFloat(t, 32)
	if err != nil {
		return 0, fmt.Errorf("%w: base_score %.40q", ErrInvalid, s)
	}
	return float32(v), nil
}
