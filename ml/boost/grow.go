package boost

import (
	"math"
	"sync"

	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
)

// kRtEps is xgboost's least loss change that counts as a split.
const kRtEps = 1e-6

// gradPair is a row's gradient and hessian, in float32 as xgboost keeps them.
type gradPair struct{ g, h float32 }

// stat is a sum of gradient pairs, in float64 as xgboost's histograms are.
type stat struct{ g, h float64 }

func (a stat) sub(b stat) stat { return stat{a.g - b.g, a.h - b.h} }

// split is the best split found for a node.
type split struct {
	loss    float64
	feat    int
	leftMax int // bins 0..leftMax go left
	defLeft bool
	left    stat
	right   stat
	found   bool
}

// better is xgboost's SplitEntry::NeedReplace: a larger loss change wins;
// on a tie the smaller feature index is kept.
func (s *split) better(loss float64, feat int) bool {
	if math.IsInf(loss, 0) {
		return false
	}
	if s.feat <= feat {
		return loss > s.loss
	}
	return !(s.loss > loss)
}

type gnode struct {
	begin, end int // the node's rows: grower.rows[begin:end]
	sum        stat
	depth      int
	hist       []stat
	best       split
	id         int32 // position in the output tree
}

// grower grows one tree per call; its buffers are reused across rounds.
type grower struct {
	p       *Params
	b       *bins
	gh      []gradPair
	rows    []int32
	scratch []int32
	pool    [][]stat
	workers int
	// leaves of the last tree: rows[begin:end] end in the leaf.
	leaves []leafRows
}

type leafRows struct {
	begin, end int
	value      float32
}

func (g *grower) getHist() []stat {
	if n := len(g.pool); n > 0 {
		h := g.pool[n-1]
		g.pool = g.pool[:n-1]
		return h
	}
	return make([]stat, g.b.slots)
}

func (g *grower) putHist(h []stat) {
	if h != nil {
		g.pool = append(g.pool, h)
	}
}

func thresholdL1(w, alpha float64) float64 {
	switch {
	case w > alpha:
		return w - alpha
	case w < -alpha:
		return w + alpha
	}
	return 0
}

// gain is xgboost's CalcGain without constraints: T(G)²/(H+λ).
func (g *grower) gain(s stat) float64 {
	if s.h <= 0 {
		return 0
	}
	t := thresholdL1(s.g, g.p.Alpha)
	return t * t / (s.h + g.p.Lambda)
}

// weight is xgboost's CalcWeight: −T(G)/(H+λ), 0 below min_child_weight.
func (g *grower) weight(s stat) float64 {
	if s.h < g.p.MinChildWeight || s.h <= 0 {
		return 0
	}
	return -thresholdL1(s.g, g.p.Alpha) / (s.h + g.p.Lambda)
}

// parallelWork is the least work (rows × features) worth handing to other
// goroutines: below it, waking and waiting for them costs more than it
// saves, more so on a machine whose cores are shared.
const parallelWork = 1 << 18

// buildHists fills the histograms of nodes for the features feats. The
// work is split into (node, feature group) tasks with fixed owners; every
// histogram slot is written by one goroutine in row order, so the sums do
// not depend on scheduling or the number of CPUs.
func (g *grower) buildHists(nodes []*gnode, feats []int) {
	work := 0
	for _, n := range nodes {
		work += n.end - n.begin
	}
	work *= len(feats)
	groups := 1
	if g.workers > 1 && work >= parallelWork {
		groups = min(g.workers, len(feats))
	}
	// Feature groups: contiguous runs of feats.
	part := func(k int) []int { return feats[k*len(feats)/groups : (k+1)*len(feats)/groups] }
	tasks := len(nodes) * groups
	workers := min(g.workers, tasks)
	if work < parallelWork || workers <= 1 {
		for _, n := range nodes {
			g.buildHist(n, feats)
		}
		return
	}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t := w; t < tasks; t += workers {
				g.buildHist(nodes[t/groups], part(t%groups))
			}
		}()
	}
	wg.Wait()
}

func (g *grower) buildHist(n *gnode, feats []int) {
	b := g.b
	hist := n.hist
	for _, f := range feats {
		clear(hist[b.off[f] : b.off[f]+len(b.cuts[f])+1])
	}
	nf, bins, off, gh := b.nf, b.bin, b.off, g.gh
	for _, r := range g.rows[n.begin:n.end] {
		p := gh[r]
		gg, hh := float64(p.g), float64(p.h)
		row := bins[int(r)*nf : int(r)*nf+nf]
		for _, f := range feats {
			s := &hist[off[f]+int(row[f])]
			s.g += gg
			s.h += hh
		}
	}
}

// subtract sets big's histogram to parent − small for feats.
func (g *grower) subtract(big, parent, small *gnode, feats []int) {
	b := g.b
	for _, f := range feats {
		lo, hi := b.off[f], b.off[f]+len(b.cuts[f])+1
		d, p, s := big.hist[lo:hi], parent.hist[lo:hi], small.hist[lo:hi]
		for i := range d {
			d[i] = p[i].sub(s[i])
		}
	}
}

// evaluate finds the node's best split as xgboost's hist evaluator does:
// bins are scanned upwards with missing values on the right, then, if the
// node has missing values, downwards with them on the left.
func (g *grower) evaluate(n *gnode, feats []int) {
	p := g.p
	parentGain := g.gain(n.sum)
	best := split{feat: 0}
	for _, f := range feats {
		nb := len(g.b.cuts[f])
		if nb == 0 {
			continue
		}
		h := n.hist[g.b.off[f] : g.b.off[f]+nb+1]
		var e stat
		for i := 0; i < nb; i++ {
			e.g += h[i].g
			e.h += h[i].h
			if e.h < p.MinChildWeight {
				continue
			}
			c := n.sum.sub(e)
			if c.h < p.MinChildWeight {
				continue
			}
			loss := g.gain(e) + g.gain(c) - parentGain
			if best.better(loss, f) {
				best = split{loss: loss, feat: f, leftMax: i, left: e, right: c, found: true}
			}
		}
		if miss := h[nb]; miss.h == 0 && miss.g == 0 {
			continue
		}
		e = stat{}
		for i := nb - 1; i >= 0; i-- {
			e.g += h[i].g
			e.h += h[i].h
			if e.h < p.MinChildWeight {
				continue
			}
			c := n.sum.sub(e)
			if c.h < p.MinChildWeight {
				continue
			}
			loss := g.gain(c) + g.gain(e) - parentGain
			if best.better(loss, f) {
				best = split{loss: loss, feat: f, leftMax: i - 1, defLeft: true, left: c, right: e, found: true}
			}
		}
	}
	n.best = best
}

// splits reports whether the node's best split is taken (xgboost's
// ExpandEntry::IsValid).
func (g *grower) splits(n *gnode) bool {
	s := &n.best
	return s.found && s.loss > kRtEps && s.left.h != 0 && s.right.h != 0 &&
		s.loss >= g.p.Gamma && n.depth < g.p.MaxDepth
}

// partition moves the node's left rows to the front of its segment,
// keeping row order on both sides, and returns the boundary. scratch holds
// the right rows meanwhile. The loop has no data-dependent branch: every
// row is written to both sides and only the side it belongs to advances.
func (g *grower) partition(n *gnode, scratch []int32) int {
	s := &n.best
	f := s.feat
	col := g.b.col[f]
	missing := uint16(len(g.b.cuts[f]))
	leftMax := uint16(max(s.leftMax, 0))
	none := b2i(s.leftMax < 0) // no value goes left, only missing ones
	dl := b2i(s.defLeft)
	seg := g.rows[n.begin:n.end]
	right := scratch[:len(seg)]
	l, k := 0, 0
	for _, r := range seg {
		b := col[r]
		left := b2i(b <= leftMax)&(none^1) | b2i(b == missing)&dl
		seg[l] = r
		right[k] = r
		l += left
		k += left ^ 1
	}
	copy(seg[l:], right[:k])
	return n.begin + l
}

// partitionAll partitions the nodes' disjoint segments, in parallel when
// there is enough work, and returns their boundaries.
func (g *grower) partitionAll(nodes []*gnode) []int {
	mids := make([]int, len(nodes))
	work := 0
	for _, n := range nodes {
		work += n.end - n.begin
	}
	w := min(g.workers, len(nodes))
	if work*4 < parallelWork || w <= 1 {
		for k, n := range nodes {
			mids[k] = g.partition(n, g.scratch[n.begin:n.end])
		}
		return mids
	}
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := i; k < len(nodes); k += w {
				n := nodes[k]
				mids[k] = g.partition(n, g.scratch[n.begin:n.end])
			}
		}()
	}
	wg.Wait()
	return mids
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// grow builds one tree on the first nrows of g.rows for the features feats
// (ascending), depth by depth.
func (g *grower) grow(nrows int, feats []int) xgb.Tree {
	p := g.p
	var t xgb.Tree
	addNode := func(n *gnode) {
		n.id = int32(len(t.LeftChildren))
		w := g.weight(n.sum)
		t.LeftChildren = append(t.LeftChildren, -1)
		t.RightChildren = append(t.RightChildren, -1)
		t.SplitIndices = append(t.SplitIndices, 0)
		t.SplitConditions = append(t.SplitConditions, float32(w*p.Eta))
		t.DefaultLeft = append(t.DefaultLeft, false)
		t.BaseWeights = append(t.BaseWeights, float32(w*p.Eta))
		t.LossChanges = append(t.LossChanges, 0)
		t.SumHessian = append(t.SumHessian, float32(n.sum.h))
	}
	var all []*gnode
	root := &gnode{begin: 0, end: nrows}
	all = append(all, root)
	for _, r := range g.rows[:nrows] {
		root.sum.g += float64(g.gh[r].g)
		root.sum.h += float64(g.gh[r].h)
	}
	addNode(root)
	level := []*gnode{root}
	if p.MaxDepth > 0 {
		root.hist = g.getHist()
		g.buildHists(level, feats)
	}
	for len(level) > 0 {
		var next, build, splitting []*gnode
		var pairs [][3]*gnode // big, parent, small
		for _, n := range level {
			g.evaluate(n, feats)
			if g.splits(n) {
				splitting = append(splitting, n)
			}
		}
		mids := g.partitionAll(splitting)
		for k, n := range splitting {
			s := n.best
			mid := mids[k]
			l := &gnode{begin: n.begin, end: mid, sum: s.left, depth: n.depth + 1}
			r := &gnode{begin: mid, end: n.end, sum: s.right, depth: n.depth + 1}
			addNode(l)
			addNode(r)
			all = append(all, l, r)
			i := n.id
			t.LeftChildren[i], t.RightChildren[i] = l.id, r.id
			t.SplitIndices[i] = int32(s.feat)
			t.SplitConditions[i] = g.b.cond(s.feat, s.leftMax)
			t.DefaultLeft[i] = s.defLeft
			t.BaseWeights[i] = float32(g.weight(n.sum))
			t.LossChanges[i] = float32(s.loss)
			if l.depth < p.MaxDepth {
				// Build the smaller child's histogram; the larger one is
				// the parent's minus it.
				small, big := l, r
				if r.end-r.begin < l.end-l.begin {
					small, big = r, l
				}
				small.hist, big.hist = g.getHist(), g.getHist()
				build = append(build, small)
				pairs = append(pairs, [3]*gnode{big, n, small})
				next = append(next, l, r)
			}
		}
		if len(build) > 0 {
			g.buildHists(build, feats)
			for _, pr := range pairs {
				g.subtract(pr[0], pr[1], pr[2], feats)
			}
		}
		for _, n := range level {
			g.putHist(n.hist)
			n.hist = nil
		}
		level = next
	}
	g.leaves = g.leaves[:0]
	for _, n := range all {
		if t.LeftChildren[n.id] == -1 {
			g.leaves = append(g.leaves, leafRows{n.begin, n.end, t.SplitConditions[n.id]})
		}
	}
	return t
}

// leafValue walks a tree for one row, as xgb.Model evaluates it.
func leafValue(t *xgb.Tree, x []float32) float32 {
	i := int32(0)
	for t.LeftChildren[i] != -1 {
		v := x[t.SplitIndices[i]]
		if v < t.SplitConditions[i] || (v != v && t.DefaultLeft[i]) {
			i = t.LeftChildren[i]
		} else {
			i = t.RightChildren[i]
		}
	}
	return t.SplitConditions[i]
}
