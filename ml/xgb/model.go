// Package xgb reads, evaluates and writes gradient boosted tree models in
// XGBoost's JSON model format (what Booster.save_model("m.json") writes, in
// the layouts of xgboost 1.x to 3.x).
//
// Only scalar-output tree ensembles are supported: booster "gbtree" with
// numerical splits and one output, objectives with an identity, sigmoid or
// exp link. Anything else is refused with an error wrapping ErrUnsupported.
// Files are validated thoroughly, so a hostile file yields an error wrapping
// ErrInvalid, never a panic, an endless walk or an unbounded allocation.
//
// Trees are flattened into one contiguous node array; prediction does not
// allocate and sums leaves in float32 in tree order, as xgboost does, so
// margins agree with xgboost's bit for bit in the usual case.
package xgb

import (
	"errors"
	"fmt"
	"math"
)

// Limits on what a model may hold; they bound memory for untrusted files.
const (
	// MaxNodes bounds the total number of tree nodes of a model.
	MaxNodes = 1 << 24
	// MaxFeatures bounds the number of input features.
	MaxFeatures = 1 << 24
	// MaxBytes bounds the size of a model file read by Load.
	MaxBytes = 1 << 30
)

var (
	// ErrInvalid marks a model file or tree set that is malformed.
	ErrInvalid = errors.New("invalid xgboost model")
	// ErrUnsupported marks a well-formed model using a feature this package
	// does not implement.
	ErrUnsupported = errors.New("unsupported xgboost model")
)

// Objectives this package evaluates.
const (
	ObjSquaredError     = "reg:squarederror"
	ObjAbsoluteError    = "reg:absoluteerror"
	ObjPseudoHuberError = "reg:pseudohubererror"
	ObjBinaryLogistic   = "binary:logistic"
	ObjCountPoisson     = "count:poisson"
	ObjTweedie          = "reg:tweedie"
)

type link uint8

const (
	identity link = iota
	sigmoid
	exponential
)

// linkOf maps a supported objective to its inverse link.
func linkOf(objective string) (link, bool) {
	switch objective {
	case ObjSquaredError, ObjAbsoluteError, ObjPseudoHuberError:
		return identity, true
	case ObjBinaryLogistic:
		return sigmoid, true
	case ObjCountPoisson, ObjTweedie:
		return exponential, true
	}
	return 0, false
}

// Tree is one regression tree in xgboost's per-node array layout: node i is
// described by element i of each array and node 0 is the root.
type Tree struct {
	// LeftChildren and RightChildren hold child node indices, -1 for a leaf.
	LeftChildren  []int32
	RightChildren []int32
	// SplitIndices holds the feature a node splits on (0 for a leaf).
	SplitIndices []int32
	// SplitConditions holds the threshold of a split (x < condition goes
	// left) or, for a leaf, the leaf value that is added to the margin.
	SplitConditions []float32
	// DefaultLeft says where a missing (NaN) value goes.
	DefaultLeft []bool

	// Training statistics, kept in the file for tools; optional (nil).
	BaseWeights []float32
	LossChanges []float32
	SumHessian  []float32
}

// NumNodes is the number of nodes of the tree.
func (t Tree) NumNodes() int { return len(t.LeftChildren) }

// node is a flattened tree node. Children of a node are adjacent: the left
// child is at child, the right one at child+1. A leaf is its own child with
// a NaN condition, which no value reaches or passes, so a walk that arrives
// at a leaf stays there: every tree is walked for exactly its depth without
// a branch on the node kind. Leaf values are kept in Model.leafValue.
type node struct {
	cond  float32 // split condition; NaN for a leaf
	feat  uint32  // feature index | missingRight
	child int32
}

const (
	missingRight = 1 << 31 // missing values go right
	featMask     = missingRight - 1
)

// tree is a flattened tree: its root and the length of its longest path.
type tree struct {
	root, depth int32
}

// Model is a tree ensemble ready for prediction. It is immutable and safe
// for concurrent use.
type Model struct {
	objective  string
	objConfig  []byte // objective object as read, written back verbatim
	link       link
	baseScore  float32 // as stored (after the link), e.g. a probability
	baseMargin float32 // before the link
	numFeature int
	names      []string
	types      []string
	attributes map[string]string
	parallel   int // trees per boosting round (num_parallel_tree)
	trees      []Tree
	nodes      []node
	leafValue  []float32 // by node index; 0 for inner nodes
	flat       []tree
}

// New builds a model from trees, for a trainer. baseScore is the initial
// prediction after the link (a probability for binary:logistic), as xgboost
// stores it. featureNames may be nil; otherwise it sets the number of
// features. Without names the number of features is one more than the
// largest split index.
func New(objective string, baseScore float64, featureNames []string, trees []Tree) (*Model, error) {
	numFeature := len(featureNames)
	if featureNames == nil {
		for ti := range trees {
			t := &trees[ti]
			for i, f := range t.SplitIndices {
				if i < len(t.LeftChildren) && t.LeftChildren[i] != -1 && int(f)+1 > numFeature {
					numFeature = int(f) + 1
				}
			}
		}
	}
	m, err := newModel(objective, nil, float32(baseScore), numFeature, featureNames, nil, nil, 1, trees)
	if err != nil {
		return nil, fmt.Errorf("build xgboost model: %w", err)
	}
	return m, nil
}

func newModel(objective string, objConfig []byte, baseScore float32, numFeature int, names, types []string,
	attributes map[string]string, parallel int, trees []Tree) (*Model, error) {
	lk, ok := linkOf(objective)
	if !ok {
		return nil, fmt.Errorf("%w: objective %q (supported: %s, %s, %s, %s, %s, %s)", ErrUnsupported, objective,
			ObjSquaredError, ObjAbsoluteError, ObjPseudoHuberError, ObjBinaryLogistic, ObjCountPoisson, ObjTweedie)
	}
	if numFeature < 0 || numFeature > MaxFeatures {
		return nil, fmt.Errorf("%w: %d features (at most %d)", ErrInvalid, numFeature, MaxFeatures)
	}
	if len(names) != 0 && len(names) != numFeature {
		return nil, fmt.Errorf("%w: %d feature names for %d features", ErrInvalid, len(names), numFeature)
	}
	if len(types) != 0 && len(types) != numFeature {
		return nil, fmt.Errorf("%w: %d feature types for %d features", ErrInvalid, len(types), numFeature)
	}
	margin, err := toMargin(lk, baseScore)
	if err != nil {
		return nil, err
	}
	m := &Model{
		objective:  objective,
		objConfig:  objConfig,
		link:       lk,
		baseScore:  baseScore,
		baseMargin: margin,
		numFeature: numFeature,
		attributes: attributes,
		parallel:   max(parallel, 1),
	}
	if len(names) != 0 {
		m.names = append([]string(nil), names...)
	}
	if len(types) != 0 {
		m.types = append([]string(nil), types...)
	}
	total := 0
	for i := range trees {
		n := trees[i].NumNodes()
		if n > MaxNodes-total {
			return nil, fmt.Errorf("%w: more than %d nodes", ErrInvalid, MaxNodes)
		}
		total += n
	}
	m.trees = make([]Tree, len(trees))
	reachable := 0
	for i := range trees {
		ct, err := canonical(&trees[i], numFeature)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %w", i, err)
		}
		m.trees[i] = ct
		reachable += ct.NumNodes()
	}
	m.nodes = make([]node, 0, reachable)
	m.leafValue = make([]float32, 0, reachable)
	m.flat = make([]tree, len(m.trees))
	for i := range m.trees {
		m.flat[i] = m.flatten(&m.trees[i])
	}
	return m, nil
}

// flatten appends a canonical tree to m.nodes.
func (m *Model) flatten(t *Tree) tree {
	off := int32(len(m.nodes))
	depth := make([]int32, t.NumNodes())
	var maxDepth int32
	for j := range t.LeftChildren {
		maxDepth = max(maxDepth, depth[j])
		if t.LeftChildren[j] == -1 {
			m.nodes = append(m.nodes, node{cond: float32(math.NaN()), child: off + int32(j)})
			m.leafValue = append(m.leafValue, t.SplitConditions[j])
			continue
		}
		// Breadth-first numbering: children come after their parent.
		depth[t.LeftChildren[j]] = depth[j] + 1
		depth[t.RightChildren[j]] = depth[j] + 1
		f := uint32(t.SplitIndices[j])
		if !t.DefaultLeft[j] {
			f |= missingRight
		}
		m.nodes = append(m.nodes, node{cond: t.SplitConditions[j], feat: f, child: off + t.LeftChildren[j]})
		m.leafValue = append(m.leafValue, 0)
	}
	return tree{root: off, depth: maxDepth}
}

// toMargin turns a stored base score into the initial margin, as xgboost's
// ProbToMargin does in float32.
func toMargin(lk link, bs float32) (float32, error) {
	if math.IsNaN(float64(bs)) || math.IsInf(float64(bs), 0) {
		return 0, fmt.Errorf("%w: base score %v", ErrInvalid, bs)
	}
	switch lk {
	case sigmoid:
		if !(bs > 0 && bs < 1) {
			return 0, fmt.Errorf("%w: base score %v of a logistic model is not in (0, 1)", ErrInvalid, bs)
		}
		return float32(-math.Log(float64(1/bs - 1))), nil
	case exponential:
		if !(bs > 0) {
			return 0, fmt.Errorf("%w: base score %v of a log-link model is not positive", ErrInvalid, bs)
		}
		return float32(math.Log(float64(bs))), nil
	}
	return bs, nil
}

// canonical validates a tree and returns a copy holding only the nodes
// reachable from the root, numbered breadth first so that siblings are
// adjacent (right = left + 1). Every node is visited at most once, so a
// cyclic or shared child is caught and the walk is bounded by the node count.
func canonical(t *Tree, numFeature int) (Tree, error) {
	n := len(t.LeftChildren)
	if n == 0 {
		return Tree{}, fmt.Errorf("%w: tree has no nodes", ErrInvalid)
	}
	for _, a := range []struct {
		name string
		len  int
		opt  bool
	}{
		{"right_children", len(t.RightChildren), false},
		{"split_indices", len(t.SplitIndices), false},
		{"split_conditions", len(t.SplitConditions), false},
		{"default_left", len(t.DefaultLeft), false},
		{"base_weights", len(t.BaseWeights), true},
		{"loss_changes", len(t.LossChanges), true},
		{"sum_hessian", len(t.SumHessian), true},
	} {
		if a.len != n && !(a.opt && a.len == 0) {
			return Tree{}, fmt.Errorf("%w: %s has %d entries for %d nodes", ErrInvalid, a.name, a.len, n)
		}
	}
	order := make([]int32, 1, n) // canonical position → original index
	newID := make([]int32, n)    // original index → canonical position, 0 = not yet seen
	for k := 0; k < len(order); k++ {
		i := order[k]
		l, r := t.LeftChildren[i], t.RightChildren[i]
		if !finite32(t.SplitConditions[i]) {
			return Tree{}, fmt.Errorf("%w: node %d has value %v", ErrInvalid, i, t.SplitConditions[i])
		}
		if l == -1 {
			if r != -1 {
				return Tree{}, fmt.Errorf("%w: node %d has only a right child", ErrInvalid, i)
			}
			continue
		}
		if l <= 0 || int(l) >= n || r <= 0 || int(r) >= n || l == r {
			return Tree{}, fmt.Errorf("%w: node %d has children %d and %d (tree of %d nodes)", ErrInvalid, i, l, r, n)
		}
		if newID[l] != 0 || newID[r] != 0 {
			return Tree{}, fmt.Errorf("%w: node %d has a child reached twice (cycle or shared node)", ErrInvalid, i)
		}
		if f := t.SplitIndices[i]; f < 0 || int(f) >= numFeature {
			return Tree{}, fmt.Errorf("%w: node %d splits on feature %d of %d", ErrInvalid, i, f, numFeature)
		}
		newID[l] = int32(len(order))
		order = append(order, l)
		newID[r] = int32(len(order))
		order = append(order, r)
	}
	m := len(order)
	c := Tree{
		LeftChildren:    make([]int32, m),
		RightChildren:   make([]int32, m),
		SplitIndices:    make([]int32, m),
		SplitConditions: make([]float32, m),
		DefaultLeft:     make([]bool, m),
	}
	if len(t.BaseWeights) == n {
		c.BaseWeights = make([]float32, m)
	}
	if len(t.LossChanges) == n {
		c.LossChanges = make([]float32, m)
	}
	if len(t.SumHessian) == n {
		c.SumHessian = make([]float32, m)
	}
	for k, i := range order {
		c.SplitConditions[k] = t.SplitConditions[i]
		if t.LeftChildren[i] == -1 {
			c.LeftChildren[k], c.RightChildren[k] = -1, -1
		} else {
			c.LeftChildren[k], c.RightChildren[k] = newID[t.LeftChildren[i]], newID[t.RightChildren[i]]
			c.SplitIndices[k] = t.SplitIndices[i]
			c.DefaultLeft[k] = t.DefaultLeft[i]
		}
		if c.BaseWeights != nil {
			c.BaseWeights[k] = finiteOr0(t.BaseWeights[i])
		}
		if c.LossChanges != nil {
			c.LossChanges[k] = finiteOr0(t.LossChanges[i])
		}
		if c.SumHessian != nil {
			c.SumHessian[k] = finiteOr0(t.SumHessian[i])
		}
	}
	return c, nil
}

func finite32(v float32) bool {
	return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0)
}

// finiteOr0 keeps statistics writable as JSON; they play no part in
// prediction.
func finiteOr0(v float32) float32 {
	if finite32(v) {
		return v
	}
	return 0
}

// Objective is the xgboost objective name, e.g. "binary:logistic".
func (m *Model) Objective() string { return m.objective }

// NumFeatures is the length of the input vector.
func (m *Model) NumFeatures() int { return m.numFeature }

// FeatureNames returns the names of the inputs, or nil when the file has none.
func (m *Model) FeatureNames() []string { return append([]string(nil), m.names...) }

// NumTrees is the number of trees.
func (m *Model) NumTrees() int { return len(m.trees) }

// BaseScore is the initial prediction as stored in the file, i.e. after the
// link (a probability for binary:logistic).
func (m *Model) BaseScore() float64 { return float64(m.baseScore) }

// Tree returns a copy of tree i, with nodes numbered breadth first.
func (m *Model) Tree(i int) Tree {
	t := &m.trees[i]
	return Tree{
		LeftChildren:    append([]int32(nil), t.LeftChildren...),
		RightChildren:   append([]int32(nil), t.RightChildren...),
		SplitIndices:    append([]int32(nil), t.SplitIndices...),
		SplitConditions: append([]float32(nil), t.SplitConditions...),
		DefaultLeft:     append([]bool(nil), t.DefaultLeft...),
		BaseWeights:     append([]float32(nil), t.BaseWeights...),
		LossChanges:     append([]float32(nil), t.LossChanges...),
		SumHessian:      append([]float32(nil), t.SumHessian...),
	}
}

// PredictMargin returns the raw score of x (before the link). x holds
// NumFeatures values (more are ignored); NaN marks a missing value. It
// panics if x is shorter than NumFeatures.
func (m *Model) PredictMargin(x []float32) float64 {
	m.checkRow(x)
	return float64(m.margin(x))
}

// Predict returns the prediction for x: the margin through the objective's
// link (a probability for binary:logistic, exp(margin) for count:poisson and
// reg:tweedie).
func (m *Model) Predict(x []float32) float64 {
	m.checkRow(x)
	return m.apply(m.margin(x))
}

// PredictBatch predicts len(out) rows held row-major in X, which must have
// len(out)*NumFeatures values.
func (m *Model) PredictBatch(X []float32, out []float64) {
	m.predictBatch(X, out, true)
}

// PredictMarginBatch is PredictBatch without the link.
func (m *Model) PredictMarginBatch(X []float32, out []float64) {
	m.predictBatch(X, out, false)
}

func (m *Model) checkRow(x []float32) {
	if len(x) < m.numFeature {
		panic(fmt.Sprintf("xgb: row has %d values, the model reads %d features", len(x), m.numFeature))
	}
}

func (m *Model) apply(margin float32) float64 {
	v := float64(margin)
	switch m.link {
	case sigmoid:
		return 1 / (1 + math.Exp(-v))
	case exponential:
		return math.Exp(v)
	}
	return v
}

// b2u is 1 for true; the compiler turns it into a flag read, not a branch.
func b2u(b bool) uint32 {
	if b {
		return 1
	}
	return 0
}

// step moves from node i one level down for row x. x < cond goes left, so
// x >= cond goes right; NaN (missing) compares false with everything, so it
// goes right only when the node says so. A leaf's NaN condition keeps the
// walk in place.
func step(nodes []node, i int32, x []float32) int32 {
	n := &nodes[i]
	v := x[n.feat&featMask]
	right := b2u(v >= n.cond) | (b2u(v != v) & (n.feat >> 31))
	return n.child + int32(right)
}

// ilp trees are walked side by side so that their independent node loads
// overlap.
const ilp = 8

// margin sums the leaves of x in tree order, in float32 like xgboost.
func (m *Model) margin(x []float32) float32 {
	sum := m.baseMargin
	nodes, flat, leaf := m.nodes, m.flat, m.leafValue
	t := 0
	for ; t+ilp <= len(flat); t += ilp {
		g := flat[t : t+ilp : t+ilp]
		i0, i1, i2, i3 := g[0].root, g[1].root, g[2].root, g[3].root
		i4, i5, i6, i7 := g[4].root, g[5].root, g[6].root, g[7].root
		d := max(g[0].depth, g[1].depth, g[2].depth, g[3].depth, g[4].depth, g[5].depth, g[6].depth, g[7].depth)
		for ; d > 0; d-- {
			i0 = step(nodes, i0, x)
			i1 = step(nodes, i1, x)
			i2 = step(nodes, i2, x)
			i3 = step(nodes, i3, x)
			i4 = step(nodes, i4, x)
			i5 = step(nodes, i5, x)
			i6 = step(nodes, i6, x)
			i7 = step(nodes, i7, x)
		}
		sum += leaf[i0]
		sum += leaf[i1]
		sum += leaf[i2]
		sum += leaf[i3]
		sum += leaf[i4]
		sum += leaf[i5]
		sum += leaf[i6]
		sum += leaf[i7]
	}
	for ; t < len(flat); t++ {
		i := flat[t].root
		for d := flat[t].depth; d > 0; d-- {
			i = step(nodes, i, x)
		}
		sum += leaf[i]
	}
	return sum
}

func (m *Model) predictBatch(X []float32, out []float64, applyLink bool) {
	nf := m.numFeature
	if len(X) != len(out)*nf {
		panic(fmt.Sprintf("xgb: batch has %d values for %d rows of %d features", len(X), len(out), nf))
	}
	for r := range out {
		v := m.margin(X[r*nf : (r+1)*nf])
		if applyLink {
			out[r] = m.apply(v)
		} else {
			out[r] = float64(v)
		}
	}
}
