// Package metrics is the metrics streamer: it joins taxi-predictions with
// taxi-actuals by trip id and, every WindowSize matched pairs of a model
// version, publishes that version's quality on the live data to
// model-metrics (keyed by model name): MAE, RMSE and MAPE of the fare model,
// MAE and RMSE of the tip model, ROC AUC and log loss of the big-tipper
// model (label: tips > 0.2 × fare, both from the actual), computed with
// ml/metrics as training scores a model.
//
// # Count windows
//
// A window closes after a number of pairs, not an event-time span: the
// sample has about ten trips a day and a replay compresses time at will,
// while the precision of a metric depends only on the number of pairs (as
// for the quality streamer's drift windows). A prediction carries the
// version of each model that made it, so each model version has its own
// windows and a hot swap starts new ones; a window a version no longer
// fills is abandoned once the watermark has left it IdleTTL behind.
//
// # Join and order
//
// Predictions and actuals are co-partitioned by trip id; the state is per
// input partition, so every window is a uniform sample (by a hash of the
// trip id) of one partition's pairs, and each partition publishes its own
// windows. A prediction waits for its actual until the actuals' event-time
// clock (largest dropoff seen) has passed its pickup by JoinTTL, an actual
// for its prediction until the predictions' clock has passed its dropoff by
// JoinTTL. A pair's time is when its label became known: the later of the
// prediction's and the actual's event time. Pairs are counted in order of
// that time (ties by trip id) once the watermark — the smaller of the two
// clocks, less Grace — has passed it, so which pairs share a window does
// not depend on how the two topics interleave, as long as each topic's
// partitions are in event-time order to within Grace. A pair that completes
// behind the watermark is late: counted in a metric and dropped. After a
// pair is counted its trip id is remembered for JoinTTL, so a redelivered
// prediction and actual do not make a second pair.
//
// # Output
//
// Each metric names the model version its predictions name
// (Prediction.ModelVersions), the event time of the window's first and last
// pair (Timestamp is the last: a window is published the same whenever it
// is processed), the sample size (for MAPE, the pairs whose fare is not
// zero), Source "metrics-streamer" and a deterministic metric_id,
// metrics-streamer/<model>/<version>/<partition>/<first trip id>/<metric>,
// so a window published again is deduplicated downstream (the drift monitor
// remembers ids). A metric that is undefined on the window (AUC with a
// single class) is not published.
//
// Threshold is the model version's validation metric (from Reference)
// times Degradation for errors, divided by it for AUC. When the reference
// is unknown no breach is possible: the threshold is math.MaxFloat64 for
// errors (HigherIsBetter false: breached when above) and -math.MaxFloat64
// for AUC (breached when below). Infinity would say the same but JSON has
// none, and the contract requires a finite threshold.
//
// # State
//
// Pending predictions and actuals, pairs waiting for the watermark, the
// remembered trip ids, the open windows and the clocks are kept per
// partition in a state.Store on the metrics changelog; Flush writes each
// changed key once per batch, in the batch's transaction, so a restarted or
// rebalanced replica carries on where the last committed batch left off.
// As for the anomaly streamer, partition p of both inputs must go to the
// same replica (GroupOpts).
package metrics

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	mlmetrics "github.com/taxi-mlops/taxi-mlops/ml/metrics"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Name is the streamer role: consumer group, dead-letter topic and
// changelog are named after it.
const Name = "metrics"

// Source is the source of every metric the streamer publishes.
const Source = "metrics-streamer"

// BigTipShare defines the big-tipper label as training does: tips over this
// share of the fare.
const BigTipShare = 0.2

// Reference returns the recorded validation metrics of a model version
// (training's metric names: rmse, mae, mape, auc, logloss), or false when
// they are unknown. It is called when a window closes, from Process: it
// must be quick and safe for concurrent use.
type Reference func(model, version string) (map[string]float64, bool)

// Champions is a Reference backed by the champions a process serves (a
// champions.Set following model-updates): the validation metrics recorded
// with each model's current champion. Other versions — a predecessor whose
// last windows close after a hot swap — are unknown.
func Champions(set *champions.Set) Reference {
	return func(model, version string) (map[string]float64, bool) {
		m := set.Get(model)
		if m == nil || m.Version != version {
			return nil, false
		}
		return m.Metrics, true
	}
}

// Config configures the join and the windows.
type Config struct {
	// WindowSize is the number of pairs per window (default 500).
	WindowSize int
	// JoinTTL is how long, in the partner stream's event time, one side
	// waits for the other, and how long a counted trip id is remembered
	// (default 24h).
	JoinTTL time.Duration
	// Grace is how far both streams must have passed a pair's time before
	// it is counted (default 1h): the disorder the join tolerates.
	Grace time.Duration
	// IdleTTL abandons a window whose last pair the watermark has left this
	// far behind (default 30 days): a replaced model version's last,
	// partial window.
	IdleTTL time.Duration
	// Degradation turns a validation metric into a threshold: ×1.5 for
	// errors, ÷1.5 for AUC by default. Must be > 1.
	Degradation float64
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.WindowSize == 0 {
		c.WindowSize = 500
	}
	if c.JoinTTL == 0 {
		c.JoinTTL = 24 * time.Hour
	}
	if c.Grace == 0 {
		c.Grace = time.Hour
	}
	if c.IdleTTL == 0 {
		c.IdleTTL = 30 * 24 * time.Hour
	}
	if c.Degradation == 0 {
		c.Degradation = 1.5
	}
	return c
}

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.WindowSize < 2 {
		errs = append(errs, fmt.Errorf("window size %d: need at least 2 pairs", c.WindowSize))
	}
	if c.JoinTTL <= 0 || c.Grace < 0 || c.IdleTTL <= 0 {
		errs = append(errs, fmt.Errorf("join ttl %v and idle ttl %v must be positive, grace %v not negative", c.JoinTTL, c.IdleTTL, c.Grace))
	}
	if c.Grace >= c.JoinTTL {
		errs = append(errs, fmt.Errorf("grace %v must be shorter than the join ttl %v", c.Grace, c.JoinTTL))
	}
	if !(c.Degradation > 1) || math.IsInf(c.Degradation, 0) {
		errs = append(errs, fmt.Errorf("degradation must be > 1 (1.5 = 50%% worse than validation), got %g", c.Degradation))
	}
	return errors.Join(errs...)
}

// measure is one metric of one model.
type measure struct {
	name           string
	higherIsBetter bool
	// compute returns the value and the number of pairs it used; ok is
	// false when it is undefined on the window.
	compute func(y, p []float64) (v float64, used int, ok bool)
}

func regression(name string, f func(y, p []float64) float64) measure {
	return measure{name: name, compute: func(y, p []float64) (float64, int, bool) { return f(y, p), len(y), true }}
}

// models lists what is measured of each model, in publication order.
var models = []struct {
	name     string
	measures []measure
}{
	{training.Fare, []measure{
		regression(training.MetricMAE, mlmetrics.MAE[float64, float64]),
		regression(training.MetricRMSE, mlmetrics.RMSE[float64, float64]),
		{name: training.MetricMAPE, compute: func(y, p []float64) (float64, int, bool) {
			v, used := mlmetrics.MAPE(y, p)
			return v, used, used > 0
		}},
	}},
	{training.Tip, []measure{
		regression(training.MetricMAE, mlmetrics.MAE[float64, float64]),
		regression(training.MetricRMSE, mlmetrics.RMSE[float64, float64]),
	}},
	{training.BigTipper, []measure{
		{name: training.MetricAUC, higherIsBetter: true, compute: func(y, p []float64) (float64, int, bool) {
			v := mlmetrics.AUC(y, p)
			return v, len(y), !math.IsNaN(v)
		}},
		regression(training.MetricLogLoss, mlmetrics.LogLoss[float64, float64]),
	}},
}

// NoThreshold is the threshold of a metric whose reference is unknown: the
// finite value no metric can be on the bad side of.
func NoThreshold(higherIsBetter bool) float64 {
	if higherIsBetter {
		return -math.MaxFloat64
	}
	return math.MaxFloat64
}

// Threshold is the breach threshold of a metric given its reference
// (validation) value: ref × degradation, or ref ÷ degradation when higher
// is better; NoThreshold when the reference is not a positive number.
func Threshold(ref float64, known, higherIsBetter bool, degradation float64) float64 {
	if !known || !(ref > 0) || math.IsInf(ref, 0) {
		return NoThreshold(higherIsBetter)
	}
	if higherIsBetter {
		return ref / degradation
	}
	return ref * degradation
}

// Processor joins predictions with actuals and publishes windowed metrics.
// One mutex serialises it with the runner's rebalance callbacks.
type Processor struct {
	cfg     Config
	ref     Reference
	store   *state.Store
	metrics *Metrics
	log     *slog.Logger

	mu     sync.Mutex
	parts  map[int32]*partition
	owned  map[string]map[int32]bool // nil until the first assignment
	tally  tally
	failed error
}

// New returns a processor persisting to store, whose changelog must be
// contracts.ChangelogTopic(Name). ref may be nil: no thresholds.
func New(cfg Config, ref Reference, store *state.Store, m *Metrics, log *slog.Logger) (*Processor, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if store == nil {
		return nil, errors.New("metrics: a state store is required")
	}
	if ref == nil {
		ref = func(string, string) (map[string]float64, bool) { return nil, false }
	}
	if m == nil {
		m = NewMetrics(nil)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Processor{cfg: cfg, ref: ref, store: store, metrics: m, log: log, parts: map[int32]*partition{}, tally: newTally()}, nil
}

// Topics the processor consumes.
func (*Processor) Topics() []string {
	return []string{contracts.TopicPredictions, contracts.TopicActuals}
}

// ManualPartitions are the output topics whose records name their partition.
func (m *Processor) ManualPartitions() []string { return []string{m.store.Changelog()} }

// GroupOpts are the consumer-group options the processor needs
// (stream.Config.ExtraOpts): the range balancer, which gives partition p of
// both inputs to the same member.
func GroupOpts() []kgo.Opt { return []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())} }

// Config returns the configuration in force (defaults filled).
func (m *Processor) Config() Config { return m.cfg }

func (m *Processor) part(p int32) *partition {
	ps := m.parts[p]
	if ps == nil {
		ps = newPartition()
		m.parts[p] = ps
	}
	return ps
}

// Process adds a prediction or an actual and publishes the windows it
// completes.
func (m *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return nil, stream.Fatal(m.failed)
	}
	if in.Topic != contracts.TopicPredictions && in.Topic != contracts.TopicActuals {
		return nil, stream.Permanent(fmt.Errorf("metrics: record from unexpected topic %q", in.Topic))
	}
	if m.owned != nil && !m.owned[in.Topic][in.Partition] {
		// Revoked while its batch was in hand: that transaction aborts.
		return nil, nil
	}
	var out []contracts.ModelMetric
	switch in.Topic {
	case contracts.TopicPredictions:
		pr, err := contracts.Decode[contracts.Prediction](in.Value)
		if err != nil {
			return nil, err
		}
		if err := eventTime("timestamp", pr.Timestamp); err != nil {
			return nil, err
		}
		if pr.RequestID != "" {
			return nil, nil // a ride request: no actual will follow
		}
		out = m.prediction(in.Partition, pr)
	case contracts.TopicActuals:
		a, err := contracts.Decode[contracts.Actual](in.Value)
		if err != nil {
			return nil, err
		}
		if err := eventTime("dropoff_datetime", a.DropoffDatetime); err != nil {
			return nil, err
		}
		out = m.actual(in.Partition, a)
	}
	return m.records(out)
}

func eventTime(field string, t time.Time) error {
	if t.IsZero() {
		return contracts.Invalid(field, "required")
	}
	if y := t.Year(); y < 1900 || y > 2200 {
		return contracts.Invalid(field, "%v is not a plausible event time", t)
	}
	return nil
}

func (m *Processor) records(ms []contracts.ModelMetric) ([]*kgo.Record, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	out := make([]*kgo.Record, len(ms))
	for i := range ms {
		b, err := contracts.Encode(&ms[i])
		if err != nil {
			return nil, stream.Permanent(fmt.Errorf("encode metric %s: %w", ms[i].MetricID, err))
		}
		out[i] = &kgo.Record{Topic: contracts.TopicModelMetrics, Key: []byte(ms[i].ModelName), Value: b}
	}
	return out, nil
}

func (m *Processor) prediction(pn int32, pr *contracts.Prediction) []contracts.ModelMetric {
	p := m.part(pn)
	t := pr.Timestamp.UnixNano()
	if t > p.clocks.Pred {
		p.clocks.Pred = t
		p.touch(clockKey)
	}
	versions := map[string]string{}
	for _, md := range models {
		if v := pr.ModelVersions[md.name]; v != "" {
			versions[md.name] = v
		}
	}
	if versions[training.Fare] == "" {
		versions[training.Fare] = pr.ModelVersion
	}
	pd := &pred{T: t, Fare: pr.PredictedFare, Tip: pr.PredictedTip, Prob: pr.BigTipperProb, Versions: versions}
	e := p.trips[pr.TripID]
	switch {
	case e == nil:
		e = &trip{Pred: pd}
		p.trips[pr.TripID] = e
		p.queue(pr.TripID, e)
		p.touch(tripPrefix + pr.TripID)
	case e.Pred == nil && e.Actual != nil:
		e.Pred = pd
		m.paired(p, pr.TripID, e)
	default:
		m.tally.ignored["prediction"]++ // a repeat
	}
	return m.advance(pn, p)
}

func (m *Processor) actual(pn int32, a *contracts.Actual) []contracts.ModelMetric {
	p := m.part(pn)
	t := a.DropoffDatetime.UnixNano()
	if t > p.clocks.Actual {
		p.clocks.Actual = t
		p.touch(clockKey)
	}
	ac := &actual{T: t, Fare: a.Fare, Tips: a.Tips}
	e := p.trips[a.TripID]
	switch {
	case e == nil:
		e = &trip{Actual: ac}
		p.trips[a.TripID] = e
		p.queue(a.TripID, e)
		p.touch(tripPrefix + a.TripID)
	case e.Actual == nil && e.Pred != nil:
		e.Actual = ac
		m.paired(p, a.TripID, e)
	default:
		m.tally.ignored["actual"]++
	}
	return m.advance(pn, p)
}

// paired queues a completed pair for the watermark, or drops it when the
// watermark has passed it already.
func (m *Processor) paired(p *partition, id string, e *trip) {
	p.touch(tripPrefix + id)
	if w, ok := p.clocks.watermark(m.cfg.Grace.Nanoseconds()); ok && e.time() <= w {
		m.tally.late++
		e.Done, e.Pred, e.Actual = e.time(), nil, nil
	}
	p.queue(id, e)
}

// advance counts the pairs the watermark has passed, in order, publishing
// the windows they fill, then forgets what the clocks left behind.
func (m *Processor) advance(pn int32, p *partition) []contracts.ModelMetric {
	var out []contracts.ModelMetric
	grace, join := m.cfg.Grace.Nanoseconds(), m.cfg.JoinTTL.Nanoseconds()
	if w, ok := p.clocks.watermark(grace); ok {
		for len(p.ready) > 0 && p.ready[0].t <= w {
			it := heap.Pop(&p.ready).(item)
			e := p.trips[it.id]
			if e == nil || e.Pred == nil || e.Actual == nil || e.time() != it.t {
				continue
			}
			out = m.count(pn, p, it.id, e, out)
			e.Done, e.Pred, e.Actual = it.t, nil, nil
			p.touch(tripPrefix + it.id)
			heap.Push(&p.done, item{it.t, it.id})
		}
		// Counted trip ids are remembered JoinTTL past the watermark.
		for len(p.done) > 0 && w+grace-p.done[0].t > join {
			it := heap.Pop(&p.done).(item)
			if e := p.trips[it.id]; e != nil && e.Pred == nil && e.Actual == nil && e.Done == it.t {
				delete(p.trips, it.id)
				p.touch(tripPrefix + it.id)
			}
		}
		idle := m.cfg.IdleTTL.Nanoseconds()
		for k, win := range p.windows {
			if w-win.End > idle {
				delete(p.windows, k)
				p.touch(k.String())
				m.tally.abandoned[k.model]++
			}
		}
	}
	for len(p.waitActual) > 0 && p.clocks.Actual-p.waitActual[0].t > join {
		it := heap.Pop(&p.waitActual).(item)
		if e := p.trips[it.id]; e != nil && e.Pred != nil && e.Actual == nil && e.Pred.T == it.t {
			delete(p.trips, it.id)
			p.touch(tripPrefix + it.id)
			m.tally.expired["prediction"]++
		}
	}
	for len(p.waitPred) > 0 && p.clocks.Pred-p.waitPred[0].t > join {
		it := heap.Pop(&p.waitPred).(item)
		if e := p.trips[it.id]; e != nil && e.Actual != nil && e.Pred == nil && e.Actual.T == it.t {
			delete(p.trips, it.id)
			p.touch(tripPrefix + it.id)
			m.tally.expired["actual"]++
		}
	}
	return out
}

// count adds a pair to the window of each model that predicted it and
// publishes the windows it fills.
func (m *Processor) count(pn int32, p *partition, id string, e *trip, out []contracts.ModelMetric) []contracts.ModelMetric {
	t := e.time()
	for _, md := range models {
		version := e.Pred.Versions[md.name]
		var y, yhat float64
		switch md.name {
		case training.Fare:
			y, yhat = e.Actual.Fare, e.Pred.Fare
		case training.Tip:
			if e.Pred.Tip == nil {
				continue
			}
			y, yhat = e.Actual.Tips, *e.Pred.Tip
		case training.BigTipper:
			if e.Pred.Prob == nil {
				continue
			}
			if e.Actual.Tips > BigTipShare*e.Actual.Fare {
				y = 1
			}
			yhat = *e.Pred.Prob
		}
		if version == "" {
			continue
		}
		k := winKey{md.name, version}
		w := p.windows[k]
		if w == nil {
			w = &window{First: id, Start: t, Y: make(floats, 0, m.cfg.WindowSize), P: make(floats, 0, m.cfg.WindowSize)}
			p.windows[k] = w
		}
		w.End = t
		w.Y, w.P = append(w.Y, y), append(w.P, yhat)
		p.touch(k.String())
		m.tally.pairs[md.name]++
		if len(w.Y) < m.cfg.WindowSize {
			continue
		}
		out = append(out, m.publish(pn, k, w, md.measures)...)
		delete(p.windows, k)
	}
	return out
}

// MetricID names one metric of one window.
func MetricID(model, version string, partition int32, firstTrip, metric string) string {
	return Source + "/" + model + "/" + version + "/" + strconv.Itoa(int(partition)) + "/" + firstTrip + "/" + metric
}

func (m *Processor) publish(pn int32, k winKey, w *window, measures []measure) []contracts.ModelMetric {
	ref, known := m.ref(k.model, k.version)
	start, end := time.Unix(0, w.Start).UTC(), time.Unix(0, w.End).UTC()
	var out []contracts.ModelMetric
	for _, ms := range measures {
		v, used, ok := ms.compute(w.Y, w.P)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			m.tally.undefined[k.model+"/"+ms.name]++
			continue
		}
		r, has := ref[ms.name]
		out = append(out, contracts.ModelMetric{
			SchemaVersion:  contracts.SchemaVersion,
			MetricID:       MetricID(k.model, k.version, pn, w.First, ms.name),
			ModelName:      k.model,
			ModelVersion:   k.version,
			Timestamp:      end,
			MetricName:     ms.name,
			MetricValue:    v,
			Threshold:      Threshold(r, known && has, ms.higherIsBetter, m.cfg.Degradation),
			HigherIsBetter: ms.higherIsBetter,
			SampleSize:     used,
			WindowStart:    start,
			WindowEnd:      end,
			Source:         Source,
		})
	}
	m.tally.windows[k.model]++
	for _, mm := range out {
		m.tally.last[[2]string{mm.ModelName, mm.MetricName}] = mm.MetricValue
		if mm.Breached() {
			m.tally.breaches[mm.ModelName]++
		}
	}
	return out
}

// Flush writes each state entry the batch changed to the changelog once.
func (m *Processor) Flush(context.Context) ([]*kgo.Record, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*kgo.Record
	for _, pn := range slices.Sorted(maps.Keys(m.parts)) {
		p := m.parts[pn]
		for _, key := range slices.Sorted(maps.Keys(p.dirty)) {
			v, err := p.encode(key)
			if err != nil {
				return nil, fmt.Errorf("metrics: partition %d: %w", pn, err)
			}
			if v == nil {
				if _, ok := m.store.Get(pn, key); ok {
					out = append(out, m.store.Delete(pn, key))
				}
				continue
			}
			out = append(out, m.store.Put(pn, key, v))
		}
	}
	return out, nil
}

// Checkpoint: the batch committed.
func (m *Processor) Checkpoint() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, p := range m.parts {
		clear(p.dirty)
	}
	m.store.Checkpoint()
	m.tally.publish(m.metrics)
}

// Rollback returns the partitions the aborted batch touched to the
// committed state the store holds once it has rolled back.
func (m *Processor) Rollback() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.store.Rollback()
	m.tally = newTally()
	var touched []int32
	for pn, p := range m.parts {
		if len(p.dirty) > 0 {
			touched = append(touched, pn)
		}
	}
	slices.Sort(touched)
	if err := m.rebuild(touched); err != nil {
		m.log.Error("rebuild state after an aborted batch", "err", err)
		m.failed = fmt.Errorf("rebuild state after an aborted batch: %w", err)
	}
}

func (m *Processor) rebuild(partitions []int32) error {
	for _, pn := range partitions {
		p := newPartition()
		for _, key := range m.store.Keys(pn) {
			v, _ := m.store.Get(pn, key)
			if err := p.load(key, v); err != nil {
				return fmt.Errorf("partition %d: %w", pn, err)
			}
		}
		m.parts[pn] = p
	}
	return nil
}

// Assigned rebuilds the state of newly owned partitions from the changelog.
func (m *Processor) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owned == nil {
		m.owned = map[string]map[int32]bool{}
		for _, t := range m.Topics() {
			m.owned[t] = map[int32]bool{}
		}
	}
	var ps []int32
	for _, t := range m.Topics() {
		for _, p := range assigned[t] {
			m.owned[t][p] = true
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	preds, acts := m.owned[contracts.TopicPredictions], m.owned[contracts.TopicActuals]
	if !maps.Equal(preds, acts) {
		m.failed = fmt.Errorf("metrics: partitions %v of %s and %v of %s are owned: both inputs' partition p must go to one replica (use metrics.GroupOpts: the range balancer)",
			slices.Sorted(maps.Keys(preds)), contracts.TopicPredictions, slices.Sorted(maps.Keys(acts)), contracts.TopicActuals)
		m.log.Error("inputs are not co-partitioned", "err", m.failed)
		return
	}
	start := time.Now()
	if err := m.store.Restore(ctx, ps); err != nil {
		m.log.Error("restore state", "partitions", ps, "err", err)
		m.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
		return
	}
	if err := m.rebuild(ps); err != nil {
		m.log.Error("restore state", "partitions", ps, "err", err)
		m.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
		return
	}
	trips, windows := 0, 0
	for _, p := range ps {
		trips += len(m.parts[p].trips)
		windows += len(m.parts[p].windows)
	}
	m.log.Info("state restored", "partitions", ps, "trips", trips, "windows", windows, "took", time.Since(start).Round(time.Millisecond))
}

// Revoked drops the state of partitions another replica now owns.
func (m *Processor) Revoked(revoked map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for _, t := range m.Topics() {
		for _, p := range revoked[t] {
			if m.owned != nil {
				delete(m.owned[t], p)
			}
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	for _, p := range ps {
		delete(m.parts, p)
	}
	m.store.Drop(ps)
}

// StateEntries counts trips remembered and open windows.
func (m *Processor) StateEntries() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, p := range m.parts {
		n += len(p.trips) + len(p.windows)
	}
	return n
}

// tally counts what a batch did; it reaches Prometheus when the batch
// commits, so a batch processed again after an abort is counted once.
type tally struct {
	pairs, windows, breaches, abandoned map[string]int
	expired, ignored, undefined         map[string]int
	late                                int
	last                                map[[2]string]float64
}

func newTally() tally {
	return tally{
		pairs: map[string]int{}, windows: map[string]int{}, breaches: map[string]int{}, abandoned: map[string]int{},
		expired: map[string]int{}, ignored: map[string]int{}, undefined: map[string]int{}, last: map[[2]string]float64{},
	}
}

func (t *tally) publish(m *Metrics) {
	add := func(v *prometheus.CounterVec, counts map[string]int) {
		for k, n := range counts {
			v.WithLabelValues(k).Add(float64(n))
		}
		clear(counts)
	}
	add(m.pairs, t.pairs)
	add(m.windows, t.windows)
	add(m.breaches, t.breaches)
	add(m.abandoned, t.abandoned)
	add(m.expired, t.expired)
	add(m.ignored, t.ignored)
	add(m.undefined, t.undefined)
	m.late.Add(float64(t.late))
	t.late = 0
	for k, v := range t.last {
		m.value.WithLabelValues(k[0], k[1]).Set(v)
	}
	clear(t.last)
}

// Metrics of the metrics streamer.
type Metrics struct {
	pairs, windows, breaches, abandoned *prometheus.CounterVec
	expired, ignored, undefined         *prometheus.CounterVec
	late                                prometheus.Counter
	value                               *prometheus.GaugeVec
}

// NewMetrics registers the metrics streamer's metrics with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		pairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_pairs_total", Help: "Prediction–actual pairs counted into a window, by model.",
		}, []string{"model"}),
		windows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_windows_total", Help: "Count windows published, by model.",
		}, []string{"model"}),
		breaches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_breaches_total", Help: "Published metrics past their threshold, by model.",
		}, []string{"model"}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_windows_abandoned_total", Help: "Partial windows dropped after the idle TTL (a replaced model version), by model.",
		}, []string{"model"}),
		expired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_join_expired_total", Help: "Predictions or actuals that found no partner within the join TTL, by side.",
		}, []string{"waiting"}),
		ignored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_repeats_total", Help: "Predictions or actuals of a trip already paired or waiting: ignored, by side.",
		}, []string{"side"}),
		undefined: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_online_metrics_undefined_total", Help: "Metrics undefined on their window (AUC with one class), not published, by model/metric.",
		}, []string{"metric"}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_online_metrics_late_pairs_total", Help: "Pairs completed behind the watermark (more disorder than the grace): dropped.",
		}),
		value: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taxi_online_metric_value", Help: "The last published value of each model metric.",
		}, []string{"model", "metric"}),
	}
	if reg != nil {
		reg.MustRegister(m.pairs, m.windows, m.breaches, m.abandoned, m.expired, m.ignored, m.undefined, m.late, m.value)
	}
	return m
}

// WindowsCounter exposes the windows published of a model, for tests.
func (m *Metrics) WindowsCounter(model string) prometheus.Counter {
	return m.windows.WithLabelValues(model)
}

// LateCounter exposes the late-pair counter, for tests.
func (m *Metrics) LateCounter() prometheus.Counter { return m.late }

// ExpiredCounter exposes the join-expiry counter of one side (prediction or
// actual), for tests.
func (m *Metrics) ExpiredCounter(waiting string) prometheus.Counter {
	return m.expired.WithLabelValues(waiting)
}
