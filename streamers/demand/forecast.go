package demand

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

// Inputs, as indices of per-input state and labels of the late counter.
const (
	inTrips = 0
	inGPS   = 1
)

var inputNames = [2]string{"trips", "gps"}

// forecast is an open forecast, waiting for its period to pass.
type forecast struct {
	Start     int64   `json:"s"` // unix seconds
	Horizon   int64   `json:"h"` // seconds
	Predicted float64 `json:"p"`
	Baseline  float64 `json:"b"`
}

// area is the state of one community area.
type area struct {
	trips    map[int64]int32               // slot start → trip starts
	vehicles map[int64]map[string]struct{} // slot start → vehicle ids
	last     int64                         // latest slot with activity before the last tick; 0 = none
	open     []forecast                    // by tick, then horizon
}

func newArea() *area {
	return &area{trips: map[int64]int32{}, vehicles: map[int64]map[string]struct{}{}}
}

// partition is the state of one input partition.
type partition struct {
	st    [2]int64 // stream time per input, unix seconds; 0 = none read
	first [2]int64 // event time of each input's first record
	next  int64    // next tick; 0 = not started
	// errors of the forecasts closed since metrics were last published, by
	// horizon name
	errs  map[string]*closedErrors
	areas map[int]*area
	order []int // area numbers, ascending

	dirtyMeta bool
	dirty     map[int]bool // areas changed since the last checkpoint
}

// closedErrors are the errors of the forecaster and of the seasonal
// baseline on the same closed forecasts.
type closedErrors struct {
	Model    ErrorStats `json:"model"`
	Seasonal ErrorStats `json:"seasonal"`
}

func newPartition() *partition {
	return &partition{areas: map[int]*area{}, dirty: map[int]bool{}, errs: map[string]*closedErrors{}}
}

func (p *partition) area(n int) *area {
	a := p.areas[n]
	if a == nil {
		a = newArea()
		p.areas[n] = a
		i, _ := slices.BinarySearch(p.order, n)
		p.order = slices.Insert(p.order, i, n)
	}
	return a
}

func (p *partition) forget(n int) {
	delete(p.areas, n)
	if i, ok := slices.BinarySearch(p.order, n); ok {
		p.order = slices.Delete(p.order, i, i+1)
	}
}

func (p *partition) touched() bool { return p.dirtyMeta || len(p.dirty) > 0 }

// Forecaster makes the demand forecasts and measures their error.
type Forecaster struct {
	cfg     Config
	base    *seasonal.Baseline
	store   *state.Store
	parts   map[int32]*partition
	metrics *Metrics
	log     *slog.Logger
	// failed is set when state could not be restored; the replica stops.
	failed error

	// The configuration in seconds.
	tick, grace, ttl, active, retain int64
	metricEvery                      int64
	horizons                         []int64
	names                            []string
	weights                          []float64
	// Scratch space of a tick.
	counts   []int
	expected []float64
	union    map[string]struct{}
	model    []ErrorStats
	seasonal []ErrorStats
}

// NewForecaster returns a forecaster scaling base and persisting to store's
// changelog.
func NewForecaster(cfg Config, base *seasonal.Baseline, store *state.Store, m *Metrics, log *slog.Logger) (*Forecaster, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("demand forecaster: %w", err)
	}
	if base == nil {
		return nil, fmt.Errorf("demand forecaster: a seasonal baseline is required")
	}
	if _, err := base.Expected(1, time.Unix(0, 0), time.Unix(3600, 0)); err != nil {
		return nil, fmt.Errorf("demand forecaster: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sec := func(d time.Duration) int64 { return int64(d / time.Second) }
	f := &Forecaster{
		cfg: cfg, base: base, store: store, parts: map[int32]*partition{}, metrics: m, log: log,
		tick: sec(cfg.Tick), grace: sec(cfg.Grace), ttl: sec(cfg.AreaTTL), active: sec(cfg.ActiveWindow), metricEvery: sec(cfg.MetricEvery),
		retain:  sec(max(cfg.LevelWindow, cfg.ActiveWindow, slices.Max(cfg.Horizons))),
		weights: cfg.weights(),
		union:   map[string]struct{}{},
	}
	for _, h := range cfg.Horizons {
		f.horizons = append(f.horizons, sec(h))
		f.names = append(f.names, HorizonName(h))
	}
	f.counts = make([]int, len(f.weights))
	f.expected = make([]float64, len(f.weights))
	f.model = make([]ErrorStats, len(f.horizons))
	f.seasonal = make([]ErrorStats, len(f.horizons))
	return f, nil
}

// Topics the forecaster consumes.
func (f *Forecaster) Topics() []string {
	if f.cfg.WithoutGPS {
		return []string{contracts.TopicFeaturesByArea}
	}
	return []string{contracts.TopicFeaturesByArea, contracts.TopicGPSByArea}
}

// ManualPartitions are the topics whose records name their partition.
func (f *Forecaster) ManualPartitions() []string { return []string{f.store.Changelog()} }

// GroupOpts are the consumer-group options the forecaster needs: range
// assignment, so partition p of both inputs (the same areas) goes to the
// same replica. Pass them as stream.Config.ExtraOpts.
func (f *Forecaster) GroupOpts() []kgo.Opt { return []kgo.Opt{kgo.Balancers(kgo.RangeBalancer())} }

func (f *Forecaster) part(p int32) *partition {
	ps := f.parts[p]
	if ps == nil {
		ps = newPartition()
		f.parts[p] = ps
	}
	return ps
}

// Process counts a trip start or a ping and makes the ticks its event time
// made due.
func (f *Forecaster) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	if f.failed != nil {
		return nil, stream.Fatal(f.failed)
	}
	var input, n int
	var t time.Time
	var vehicle string
	switch in.Topic {
	case contracts.TopicFeaturesByArea:
		ft, err := contracts.Decode[contracts.Features](in.Value)
		if err != nil {
			return nil, err
		}
		if ft.RequestID != "" {
			return nil, nil // a ride request is not a trip start
		}
		input, n, t = inTrips, ft.PickupCommunityArea, ft.Timestamp
		if n < 1 || n > seasonal.Areas {
			return nil, contracts.Invalid("pickup_community_area", "%d is not a community area", n)
		}
	case contracts.TopicGPSByArea:
		if f.cfg.WithoutGPS {
			return nil, nil
		}
		p, err := contracts.Decode[contracts.GPSPing](in.Value)
		if err != nil {
			return nil, err
		}
		input, t, vehicle = inGPS, p.Timestamp, p.VehicleID
		n, err = strconv.Atoi(string(in.Key))
		if err != nil || n < 1 || n > seasonal.Areas {
			return nil, contracts.Invalid("key", "%q is not a community area", in.Key)
		}
	default:
		return nil, stream.Permanent(fmt.Errorf("topic %s is not an input of the demand forecaster", in.Topic))
	}
	ts := t.Unix()
	if ts <= 0 {
		return nil, contracts.Invalid("timestamp", "%v is not after 1970", t)
	}
	p := f.part(in.Partition)
	if p.st[input] != 0 && ts < p.st[input]-f.grace {
		f.metrics.late.WithLabelValues(inputNames[input]).Inc()
		return nil, nil
	}
	if p.st[input] == 0 {
		p.first[input] = ts
	}
	p.st[input] = max(p.st[input], ts)
	p.dirtyMeta = true
	a := p.area(n)
	slot := floorDiv(ts, f.tick) * f.tick
	if input == inTrips {
		a.trips[slot]++
	} else {
		vs := a.vehicles[slot]
		if vs == nil {
			vs = map[string]struct{}{}
			a.vehicles[slot] = vs
		}
		vs[vehicle] = struct{}{}
	}
	p.dirty[n] = true
	return f.advance(in.Partition, p)
}

// watermark is the smaller of the inputs' stream times, false until every
// input has been read.
func (f *Forecaster) watermark(p *partition) (w, first int64, ok bool) {
	w, first = p.st[0], p.first[0]
	for i := 1; i < f.cfg.inputs(); i++ {
		w, first = min(w, p.st[i]), min(first, p.first[i])
	}
	return w, first, w != 0
}

// advance makes every tick the watermark made due, in order.
func (f *Forecaster) advance(pn int32, p *partition) ([]*kgo.Record, error) {
	w, first, ok := f.watermark(p)
	if !ok {
		return nil, nil
	}
	start := floorDiv(first, f.tick)*f.tick + f.tick
	if p.next == 0 {
		p.next = start
	}
	var out []*kgo.Record
	for k := due(p.next, w, f.tick, f.grace); k > 0; k-- {
		var err error
		if out, err = f.fire(pn, p, p.next, p.next == start, out); err != nil {
			return nil, err
		}
		p.next += f.tick
		p.dirtyMeta = true
	}
	return out, nil
}

// fire makes tick T of partition pn: closes the forecasts whose period
// ended, publishes their error (every MetricEvery), forecasts every active
// area and forgets the slots no later tick needs. first is true for the
// partition's first tick, when slots from before it may exist.
func (f *Forecaster) fire(pn int32, p *partition, T int64, first bool, out []*kgo.Record) ([]*kgo.Record, error) {
	f.metrics.ticks.Inc()
	for i := range f.model {
		f.model[i], f.seasonal[i] = ErrorStats{}, ErrorStats{}
	}
	// Activity of the slots the tick completed; records never land before
	// the last tick (they would be late), so only the newest slot is new.
	for _, n := range p.order {
		a := p.areas[n]
		if first {
			for s, c := range a.trips {
				if c > 0 && s < T {
					a.last = max(a.last, s)
				}
			}
			for s, vs := range a.vehicles {
				if len(vs) > 0 && s < T {
					a.last = max(a.last, s)
				}
			}
		} else if s := T - f.tick; a.trips[s] > 0 || len(a.vehicles[s]) > 0 {
			a.last = max(a.last, s)
		}
	}
	// Close the forecasts whose period ended.
	for _, n := range p.order {
		a := p.areas[n]
		keep := a.open[:0]
		for _, fc := range a.open {
			if fc.Start+fc.Horizon > T {
				keep = append(keep, fc)
				continue
			}
			actual := 0.0
			for s := fc.Start; s < fc.Start+fc.Horizon; s += f.tick {
				actual += float64(a.trips[s])
			}
			i := slices.Index(f.horizons, fc.Horizon)
			if i < 0 {
				continue // a horizon no longer configured
			}
			f.model[i].Add(fc.Predicted, actual)
			f.seasonal[i].Add(fc.Baseline, actual)
		}
		if len(keep) != len(a.open) {
			clear(a.open[len(keep):])
			a.open = keep
			p.dirty[n] = true
		}
	}
	publish := floorDiv(T, f.metricEvery)*f.metricEvery == T
	for i, h := range f.horizons {
		acc := p.errs[f.names[i]]
		if acc == nil {
			acc = &closedErrors{}
			p.errs[f.names[i]] = acc
		}
		if m := f.model[i]; m.N > 0 {
			f.metrics.closed.WithLabelValues(f.names[i]).Add(float64(m.N))
			f.metrics.absErr.WithLabelValues(f.names[i], ModelName).Add(m.SumAbs)
			f.metrics.sqErr.WithLabelValues(f.names[i], ModelName).Add(m.SumSq)
			f.metrics.absErr.WithLabelValues(f.names[i], "seasonal").Add(f.seasonal[i].SumAbs)
			f.metrics.sqErr.WithLabelValues(f.names[i], "seasonal").Add(f.seasonal[i].SumSq)
		}
		acc.Model.Merge(f.model[i])
		acc.Seasonal.Merge(f.seasonal[i])
		if !publish || acc.Model.N == 0 {
			continue
		}
		recs, err := f.errorMetrics(pn, T, h, f.names[i], acc.Model, acc.Seasonal)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		*acc = closedErrors{}
	}
	// Forecast the active areas.
	at := time.Unix(T, 0).UTC()
	for _, n := range p.order {
		a := p.areas[n]
		if a.last == 0 || a.last < T-f.ttl {
			continue
		}
		lv, err := f.level(a, n, T)
		if err != nil {
			return nil, err
		}
		vehicles := f.activeVehicles(a, T)
		for i, h := range f.horizons {
			end := at.Add(time.Duration(h) * time.Second)
			base, err := f.base.Expected(n, at, end)
			if err != nil {
				return nil, fmt.Errorf("baseline of area %d: %w", n, err)
			}
			m := contracts.DemandPrediction{
				SchemaVersion:  contracts.SchemaVersion,
				AreaID:         n,
				Timestamp:      at,
				Horizon:        f.names[i],
				PeriodStart:    at,
				PeriodEnd:      end,
				PredictedTrips: base * lv,
				Baseline:       base,
				Level:          lv,
				ActiveVehicles: vehicles,
				ModelVersion:   f.cfg.ModelVersion,
			}
			b, err := contracts.Encode(&m)
			if err != nil {
				return nil, err
			}
			out = append(out, &kgo.Record{Topic: contracts.TopicDemandPredictions, Key: []byte(strconv.Itoa(n)), Value: b})
			a.open = append(a.open, forecast{Start: T, Horizon: h, Predicted: m.PredictedTrips, Baseline: base})
			f.metrics.forecasts.WithLabelValues(f.names[i]).Inc()
		}
		p.dirty[n] = true
	}
	f.evict(p, T, first)
	return out, nil
}

// level is level(a, T) of the package documentation.
func (f *Forecaster) level(a *area, n int, T int64) (float64, error) {
	for j := range f.weights {
		s := T - int64(j+1)*f.tick
		f.counts[j] = int(a.trips[s])
		e, err := f.base.Expected(n, time.Unix(s, 0), time.Unix(s+f.tick, 0))
		if err != nil {
			return 0, fmt.Errorf("baseline of area %d: %w", n, err)
		}
		f.expected[j] = e
	}
	return level(f.weights, f.counts, f.expected, f.cfg.LevelPrior, f.cfg.MinLevel, f.cfg.MaxLevel), nil
}

// activeVehicles counts the distinct vehicles that pinged in the area in
// [T − ActiveWindow, T).
func (f *Forecaster) activeVehicles(a *area, T int64) int {
	if f.active == f.tick {
		return len(a.vehicles[T-f.tick])
	}
	clear(f.union)
	for s := T - f.active; s < T; s += f.tick {
		for v := range a.vehicles[s] {
			f.union[v] = struct{}{}
		}
	}
	return len(f.union)
}

// evict forgets the slots the next tick does not need and the areas that
// will not be forecast again unless new records come.
func (f *Forecaster) evict(p *partition, T int64, first bool) {
	keep := T + f.tick - f.retain // oldest slot the next tick reads
	for i := 0; i < len(p.order); {
		n := p.order[i]
		a := p.areas[n]
		changed := false
		if first {
			for s := range a.trips {
				if s < keep {
					delete(a.trips, s)
					changed = true
				}
			}
			for s := range a.vehicles {
				if s < keep {
					delete(a.vehicles, s)
					changed = true
				}
			}
		} else {
			s := keep - f.tick // the slot that just fell out
			if _, ok := a.trips[s]; ok {
				delete(a.trips, s)
				changed = true
			}
			if _, ok := a.vehicles[s]; ok {
				delete(a.vehicles, s)
				changed = true
			}
		}
		if changed {
			p.dirty[n] = true
		}
		if len(a.trips) == 0 && len(a.vehicles) == 0 && len(a.open) == 0 && a.last < T+f.tick-f.ttl {
			p.forget(n)
			p.dirty[n] = true
			continue
		}
		i++
	}
}

// errorMetrics are the MAE and RMSE records of the forecasts of horizon h
// closed since the last publication.
func (f *Forecaster) errorMetrics(pn int32, T, h int64, name string, model, base ErrorStats) ([]*kgo.Record, error) {
	end := time.Unix(T, 0).UTC()
	var out []*kgo.Record
	for _, mv := range []struct {
		name         string
		value, basev float64
	}{
		{"mae_" + name, model.MAE(), base.MAE()},
		{"rmse_" + name, model.RMSE(), base.RMSE()},
	} {
		m := contracts.ModelMetric{
			SchemaVersion:  contracts.SchemaVersion,
			MetricID:       MetricID(pn, end, mv.name),
			ModelName:      ModelName,
			ModelVersion:   f.cfg.ModelVersion,
			Timestamp:      end,
			MetricName:     mv.name,
			MetricValue:    mv.value,
			Threshold:      f.cfg.ThresholdFactor * mv.basev,
			HigherIsBetter: false,
			SampleSize:     model.N,
			WindowStart:    end.Add(time.Duration(f.tick-f.metricEvery-h) * time.Second),
			WindowEnd:      end,
			Source:         MetricSource,
		}
		b, err := contracts.Encode(&m)
		if err != nil {
			return nil, err
		}
		out = append(out, &kgo.Record{Topic: contracts.TopicModelMetrics, Key: []byte(ModelName), Value: b})
	}
	return out, nil
}

// MetricID is the id of a metric of partition p's tick at.
func MetricID(p int32, at time.Time, name string) string {
	return fmt.Sprintf("%s/p%d/%d/%s", ModelName, p, at.Unix(), name)
}

// Changelog keys.
const (
	metaKey    = "meta"
	areaPrefix = "area/"
)

type metaJSON struct {
	// Tick the state was written with: slots of another length are
	// meaningless, and are dropped on restore.
	Tick       int64                    `json:"tick"`
	StreamTime [2]int64                 `json:"stream_time"`
	First      [2]int64                 `json:"first"`
	Next       int64                    `json:"next"`
	Errors     map[string]*closedErrors `json:"errors,omitempty"`
}

type areaJSON struct {
	Trips    map[int64]int32    `json:"trips,omitempty"`
	Vehicles map[int64][]string `json:"vehicles,omitempty"`
	Last     int64              `json:"last,omitempty"`
	Open     []forecast         `json:"open,omitempty"`
}

func encodeArea(a *area) ([]byte, error) {
	j := areaJSON{Trips: a.trips, Last: a.last, Open: a.open}
	if len(a.vehicles) > 0 {
		j.Vehicles = make(map[int64][]string, len(a.vehicles))
		for s, vs := range a.vehicles {
			ids := make([]string, 0, len(vs))
			for v := range vs {
				ids = append(ids, v)
			}
			slices.Sort(ids)
			j.Vehicles[s] = ids
		}
	}
	return json.Marshal(j)
}

func decodeArea(b []byte) (*area, error) {
	var j areaJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	a := newArea()
	for s, c := range j.Trips {
		a.trips[s] = c
	}
	for s, ids := range j.Vehicles {
		vs := make(map[string]struct{}, len(ids))
		for _, v := range ids {
			vs[v] = struct{}{}
		}
		a.vehicles[s] = vs
	}
	a.last, a.open = j.Last, j.Open
	return a, nil
}

// Flush writes each state entry changed in the batch to the changelog once.
func (f *Forecaster) Flush(context.Context) ([]*kgo.Record, error) {
	var out []*kgo.Record
	for _, pn := range sortedKeys(f.parts) {
		p := f.parts[pn]
		if p.dirtyMeta {
			b, err := json.Marshal(metaJSON{Tick: f.tick, StreamTime: p.st, First: p.first, Next: p.next, Errors: p.errs})
			if err != nil {
				return nil, err
			}
			out = append(out, f.store.Put(pn, metaKey, b))
		}
		ns := make([]int, 0, len(p.dirty))
		for n := range p.dirty {
			ns = append(ns, n)
		}
		slices.Sort(ns)
		for _, n := range ns {
			key := areaPrefix + strconv.Itoa(n)
			a, ok := p.areas[n]
			if !ok {
				out = append(out, f.store.Delete(pn, key))
				continue
			}
			b, err := encodeArea(a)
			if err != nil {
				return nil, err
			}
			out = append(out, f.store.Put(pn, key, b))
		}
	}
	return out, nil
}

func sortedKeys(m map[int32]*partition) []int32 {
	ks := make([]int32, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// Checkpoint forgets what the committed batch changed.
func (f *Forecaster) Checkpoint() {
	for _, p := range f.parts {
		p.dirtyMeta = false
		clear(p.dirty)
	}
	f.store.Checkpoint()
}

// Rollback returns the partitions the aborted batch touched to their
// committed state by reading their changelog again.
func (f *Forecaster) Rollback() {
	f.store.Rollback()
	var touched []int32
	for pn, p := range f.parts {
		if p.touched() {
			touched = append(touched, pn)
		}
	}
	slices.Sort(touched)
	if err := f.restore(context.Background(), touched); err != nil {
		// Without its committed state the replica must not go on.
		f.log.Error("restore after an aborted batch failed", "err", err)
		f.failed = fmt.Errorf("restore state after an aborted batch: %w", err)
	}
}

// inputPartitions lists the partitions of any input in a rebalance.
func (f *Forecaster) inputPartitions(m map[string][]int32) []int32 {
	var ps []int32
	for _, t := range f.Topics() {
		for _, p := range m[t] {
			if !slices.Contains(ps, p) {
				ps = append(ps, p)
			}
		}
	}
	slices.Sort(ps)
	return ps
}

// Assigned rebuilds the state of newly owned partitions from the changelog.
func (f *Forecaster) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	ps := f.inputPartitions(assigned)
	if err := f.restore(ctx, ps); err != nil {
		f.log.Error("restore state", "partitions", ps, "err", err)
		f.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
	}
}

// Revoked drops the state of partitions another replica now owns.
func (f *Forecaster) Revoked(revoked map[string][]int32) {
	ps := f.inputPartitions(revoked)
	for _, p := range ps {
		delete(f.parts, p)
	}
	f.store.Drop(ps)
}

// StateEntries counts slots and open forecasts.
func (f *Forecaster) StateEntries() int {
	n := 0
	for _, p := range f.parts {
		for _, a := range p.areas {
			n += len(a.trips) + len(a.vehicles) + len(a.open)
		}
	}
	return n
}

func (f *Forecaster) restore(ctx context.Context, partitions []int32) error {
	if len(partitions) == 0 {
		return nil
	}
	start := time.Now()
	if err := f.store.Restore(ctx, partitions); err != nil {
		return err
	}
	areas := 0
	for _, pn := range partitions {
		p := newPartition()
		f.parts[pn] = p
		if v, ok := f.store.Get(pn, metaKey); ok {
			var m metaJSON
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("restore partition %d: %s: %w", pn, metaKey, err)
			}
			if m.Tick != f.tick {
				// Start the partition afresh; the next flush deletes the
				// old entries.
				f.log.Warn("state was written with another tick; starting afresh", "partition", pn,
					"state_tick", time.Duration(m.Tick)*time.Second, "tick", f.cfg.Tick)
				for _, key := range f.store.Keys(pn) {
					if n, err := strconv.Atoi(strings.TrimPrefix(key, areaPrefix)); err == nil && strings.HasPrefix(key, areaPrefix) {
						p.dirty[n] = true
					}
				}
				p.dirtyMeta = true
				continue
			}
			p.st, p.first, p.next = m.StreamTime, m.First, m.Next
			if m.Errors != nil {
				p.errs = m.Errors
			}
		}
		for _, key := range f.store.Keys(pn) {
			if key == metaKey {
				continue
			}
			n, err := strconv.Atoi(strings.TrimPrefix(key, areaPrefix))
			if !strings.HasPrefix(key, areaPrefix) || err != nil {
				return fmt.Errorf("restore partition %d: key %q is not a state entry", pn, key)
			}
			v, _ := f.store.Get(pn, key)
			a, err := decodeArea(v)
			if err != nil {
				return fmt.Errorf("restore partition %d: %s: %w", pn, key, err)
			}
			*p.area(n) = *a
			areas++
		}
	}
	f.log.Info("state restored", "partitions", partitions, "areas", areas, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
