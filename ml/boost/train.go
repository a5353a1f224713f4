package boost

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
)

// Round is the outcome of one boosting round.
type Round struct {
	// Iteration counts rounds from 0.
	Iteration int
	// TrainLoss and ValidLoss are the metric (RMSE or log loss) of the
	// model so far; ValidLoss is NaN without a validation set.
	TrainLoss, ValidLoss float64
}

// Result is a trained model and how training went.
type Result struct {
	// Model holds the trees up to and including BestIteration.
	Model *xgb.Model
	// BestIteration is the round with the lowest validation loss when early
	// stopping is on, else the last round.
	BestIteration int
	// BestScore is the metric at BestIteration (validation loss if there is
	// a validation set, else training loss).
	BestScore float64
	// Metric names the loss: "rmse" or "logloss", as xgboost names them.
	Metric string
	// History has one entry per round trained.
	History []Round
	// BaseScore is the initial prediction the model starts from.
	BaseScore float64
}

// ErrEarlyStoppingNeedsValid is returned when EarlyStoppingRounds is set
// without a validation set.
var ErrEarlyStoppingNeedsValid = errors.New("early stopping needs a validation set")

// Train fits a model on train. valid (optional) is scored each round and
// drives early stopping; progress (optional) is called after each round.
// Training stops with ctx's error if ctx is done between rounds.
func Train(ctx context.Context, p Params, train, valid *Dataset, progress func(Round)) (*Result, error) {
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	if train == nil {
		return nil, fmt.Errorf("train: no training set")
	}
	if err := train.check(p.Objective); err != nil {
		return nil, fmt.Errorf("train: training set: %w", err)
	}
	if valid != nil {
		if err := valid.check(p.Objective); err != nil {
			return nil, fmt.Errorf("train: validation set: %w", err)
		}
		if valid.NumFeatures != train.NumFeatures {
			return nil, fmt.Errorf("train: validation set has %d features, training set %d",
				valid.NumFeatures, train.NumFeatures)
		}
	}
	if p.EarlyStoppingRounds > 0 && valid == nil {
		return nil, fmt.Errorf("train: %w", ErrEarlyStoppingNeedsValid)
	}

	base := p.BaseScore
	if base == 0 {
		base = defaultBaseScore(p.Objective, train)
	}
	names := train.featureNames()
	empty, err := xgb.New(p.Objective, base, names, nil)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	baseMargin := float32(empty.PredictMargin(make([]float32, train.NumFeatures)))

	t := &trainer{
		p:       &p,
		train:   train,
		valid:   valid,
		workers: runtime.GOMAXPROCS(0),
	}
	t.g = &grower{
		p:       &p,
		b:       newBins(train, p.MaxBin),
		gh:      make([]gradPair, train.Rows()),
		rows:    make([]int32, train.Rows()),
		scratch: make([]int32, train.Rows()),
		workers: t.workers,
	}
	t.trainMargin = filled(train.Rows(), baseMargin)
	t.prob = make([]float32, train.Rows())
	if valid != nil {
		t.validMargin = filled(valid.Rows(), baseMargin)
	}
	t.evalTrain()
	// The PCG stream is fixed by Seed; draws happen in one goroutine in a
	// fixed order, so sampling does not depend on scheduling.
	rng := rand.New(rand.NewPCG(p.Seed, 0x5851f42d4c957f2d))

	res := &Result{Metric: metricName(p.Objective), BaseScore: float64(empty.BaseScore())}
	var trees []xgb.Tree
	best, bestScore := 0, math.Inf(1)
	for round := 0; round < p.NumRounds; round++ {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("train: stopped before round %d: %w", round, err)
		}
		feats := t.sampleFeatures(rng)
		nrows := t.sampleRows(rng)
		t.gradients()
		tree := t.g.grow(nrows, feats)
		trees = append(trees, tree)
		t.addTree(&tree, nrows)

		r := Round{Iteration: round, TrainLoss: t.evalTrain(), ValidLoss: math.NaN()}
		score := r.TrainLoss
		if valid != nil {
			r.ValidLoss = t.evalValid()
			score = r.ValidLoss
		}
		res.History = append(res.History, r)
		if progress != nil {
			progress(r)
		}
		if p.EarlyStoppingRounds == 0 {
			best, bestScore = round, score
			continue
		}
		if score < bestScore {
			best, bestScore = round, score
		} else if round-best >= p.EarlyStoppingRounds {
			break
		}
	}
	m, err := xgb.New(p.Objective, base, names, trees[:best+1])
	if err != nil {
		return nil, fmt.Errorf("train: build model: %w", err)
	}
	res.Model, res.BestIteration, res.BestScore = m, best, bestScore
	return res, nil
}

func filled(n int, v float32) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func defaultBaseScore(objective string, d *Dataset) float64 {
	if objective == BinaryLogistic {
		return 0.5
	}
	var sw, swy float64
	for i, y := range d.Y {
		w := float64(d.weight(i))
		sw += w
		swy += w * float64(y)
	}
	return float64(float32(swy / sw))
}

func metricName(objective string) string {
	if objective == BinaryLogistic {
		return "logloss"
	}
	return "rmse"
}

type trainer struct {
	p            *Params
	train, valid *Dataset
	g            *grower
	trainMargin  []float32
	validMargin  []float32
	// prob is sigmoid(trainMargin) for binary:logistic, kept from the loss
	// pass for the next round's gradients.
	prob    []float32
	workers int
}

// sampleFeatures draws the tree's features (colsample_bytree): at least
// one, ascending.
func (t *trainer) sampleFeatures(rng *rand.Rand) []int {
	nf := t.train.NumFeatures
	if t.p.ColsampleByTree >= 1 {
		feats := make([]int, nf)
		for i := range feats {
			feats[i] = i
		}
		return feats
	}
	k := max(1, int(t.p.ColsampleByTree*float64(nf)))
	feats := rng.Perm(nf)[:k]
	slices.Sort(feats)
	return feats
}

// sampleRows puts the tree's rows (subsample: each row with probability
// Subsample) at the front of g.rows and the others after them, each part
// ascending, and returns the number drawn.
func (t *trainer) sampleRows(rng *rand.Rand) int {
	rows := t.g.rows
	n := len(rows)
	if t.p.Subsample >= 1 {
		for r := range rows {
			rows[r] = int32(r)
		}
		return n
	}
	out := t.g.scratch[:0]
	k := 0
	for r := 0; r < n; r++ {
		if rng.Float64() < t.p.Subsample {
			rows[k] = int32(r)
			k++
		} else {
			out = append(out, int32(r))
		}
	}
	copy(rows[k:], out)
	return k
}

// gradients computes each row's gradient pair, in float32 as xgboost does.
func (t *trainer) gradients() {
	d := t.train
	logistic := t.p.Objective == BinaryLogistic
	t.chunks(d.Rows(), 1, func(lo, hi int) float64 {
		for i := lo; i < hi; i++ {
			w, y := d.weight(i), d.Y[i]
			if logistic {
				p := t.prob[i]
				t.g.gh[i] = gradPair{(p - y) * w, max(p*(1-p), 1e-16) * w}
			} else {
				t.g.gh[i] = gradPair{(t.trainMargin[i] - y) * w, w}
			}
		}
		return 0
	})
}

// addTree adds the new tree's leaf values to the margins, in float32 and
// in tree order, so they equal what the final model predicts. Rows the
// tree was grown on are found through its leaves; the others are walked.
func (t *trainer) addTree(tree *xgb.Tree, nrows int) {
	rows, m := t.g.rows, t.trainMargin
	for _, l := range t.g.leaves {
		for _, r := range rows[l.begin:l.end] {
			m[r] += l.value
		}
	}
	d, idx := t.train, rows[nrows:]
	nf := d.NumFeatures
	t.chunks(len(idx), t.p.MaxDepth, func(lo, hi int) float64 {
		for _, i := range idx[lo:hi] {
			m[i] += leafValue(tree, d.X[int(i)*nf:(int(i)+1)*nf])
		}
		return 0
	})
	if v := t.valid; v != nil {
		t.chunks(v.Rows(), t.p.MaxDepth, func(lo, hi int) float64 {
			for i := lo; i < hi; i++ {
				t.validMargin[i] += leafValue(tree, v.X[i*nf:(i+1)*nf])
			}
			return 0
		})
	}
}

// evalTrain returns the training loss and refreshes prob.
func (t *trainer) evalTrain() float64 {
	return t.loss(t.train, t.trainMargin, t.prob)
}

func (t *trainer) evalValid() float64 {
	return t.loss(t.valid, t.validMargin, nil)
}

// loss is the weighted RMSE or log loss (probabilities clipped to
// [1e-15, 1−1e-15]) of margins. It stores sigmoid(margin) in prob when
// prob is not nil.
func (t *trainer) loss(d *Dataset, margin []float32, prob []float32) float64 {
	logistic := t.p.Objective == BinaryLogistic
	var sw float64
	if d.Weight == nil {
		sw = float64(d.Rows())
	} else {
		for _, w := range d.Weight {
			sw += float64(w)
		}
	}
	// exp and log cost some 20 histogram updates.
	cost := 1
	if logistic {
		cost = 20
	}
	s := t.chunks(d.Rows(), cost, func(lo, hi int) float64 {
		var s float64
		for i := lo; i < hi; i++ {
			m, y, w := margin[i], float64(d.Y[i]), float64(d.weight(i))
			if !logistic {
				e := float64(m) - y
				s += w * e * e
				continue
			}
			p := 1 / (1 + math.Exp(-float64(m)))
			if prob != nil {
				prob[i] = float32(p)
			}
			p = min(max(p, 1e-15), 1-1e-15)
			switch y {
			case 1:
				s -= w * math.Log(p)
			case 0:
				s -= w * math.Log(1-p)
			default:
				s -= w * (y*math.Log(p) + (1-y)*math.Log(1-p))
			}
		}
		return s
	})
	if logistic {
		return s / sw
	}
	return math.Sqrt(s / sw)
}

// chunkRows is the unit of parallel row work. Chunks are fixed by the row
// count alone and their results are added in order, so sums do not depend
// on the number of CPUs.
const chunkRows = 2048

// chunks runs fn over [0, n) in chunks on the workers and returns the sum
// of fn's results in chunk order. cost is fn's work per row, in histogram
// updates (see parallelWork). fn must only write per-row results.
func (t *trainer) chunks(n, cost int, fn func(lo, hi int) float64) float64 {
	nc := (n + chunkRows - 1) / chunkRows
	if n*cost < parallelWork || t.workers <= 1 {
		var s float64
		for lo := 0; lo < n; lo += chunkRows {
			s += fn(lo, min(lo+chunkRows, n))
		}
		return s
	}
	part := make([]float64, nc)
	var wg sync.WaitGroup
	w := min(t.workers, nc)
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := k; c < nc; c += w {
				lo := c * chunkRows
				part[c] = fn(lo, min(lo+chunkRows, n))
			}
		}()
	}
	wg.Wait()
	var s float64
	for _, v := range part {
		s += v
	}
	return s
}
