// Package aggregates is the aggregates streamer: hopping event-time windows
// of trips per community area (1 hour and 24 hours by default), published to
// taxi-features-aggregated when they close.
//
// It runs in two stages, as Kafka Streams would. The Repartitioner re-keys
// realtime features by pickup area onto taxi-features-by-area, so one replica
// owns every record of an area. The Aggregator keeps per-partition state —
// the stream time (largest event time seen) and the open windows — in memory
// and in a compacted changelog written in the same transaction as its
// output; a replica that gains a partition rebuilds that partition's state
// from the changelog before it reads a record. A window closes when the
// stream time passes its end plus the grace period; it is then emitted once,
// its final value, and forgotten. A record whose windows have all closed is
// late: counted and dropped.
package aggregates

import (
	"container/heap"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

// Window is one hopping window definition.
type Window struct {
	Size    time.Duration
	Advance time.Duration
}

// Name is how a window size is written in messages: "1h", "24h", "15m".
func (w Window) Name() string { return SizeName(w.Size) }

// SizeName writes a duration the way window names are written.
func SizeName(d time.Duration) string {
	if d%time.Hour == 0 {
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	}
	return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
}

// Config defines the windows.
type Config struct {
	// Windows default to 1h advancing every 5m and 24h advancing hourly.
	Windows []Window
	// Grace is how long after a window's end records may still arrive
	// (default 10m). A replay compresses time, so it needs event-time days.
	Grace time.Duration
	// EmitEveryWindow emits each window as it closes. By default the output
	// is a table, as the compacted topic keyed by area and window size is:
	// each batch emits only the latest window that closed per area and size.
	EmitEveryWindow bool
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if len(c.Windows) == 0 {
		c.Windows = []Window{{Size: time.Hour, Advance: 5 * time.Minute}, {Size: 24 * time.Hour, Advance: time.Hour}}
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Minute
	}
	return c
}

// Validate says what is wrong with the windows.
func (c Config) Validate() error {
	for _, w := range c.Windows {
		if w.Size <= 0 || w.Advance <= 0 || w.Advance > w.Size || w.Size%w.Advance != 0 {
			return fmt.Errorf("window %v advancing %v: the advance must be positive and divide the size", w.Size, w.Advance)
		}
		if w.Size%time.Minute != 0 {
			return fmt.Errorf("window %v: sizes are whole minutes", w.Size)
		}
	}
	if c.Grace < 0 {
		return fmt.Errorf("grace %v must not be negative", c.Grace)
	}
	return nil
}

// ParseWindows reads window definitions written "size/advance", comma
// separated: "1h/5m,24h/1h".
func ParseWindows(s string) ([]Window, error) {
	var ws []Window
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		size, adv, ok := strings.Cut(part, "/")
		if !ok {
			return nil, fmt.Errorf("window %q: write it size/advance, like 1h/5m", part)
		}
		sd, err1 := time.ParseDuration(size)
		ad, err2 := time.ParseDuration(adv)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("window %q: size and advance are durations like 1h and 5m", part)
		}
		ws = append(ws, Window{Size: sd, Advance: ad})
	}
	c := Config{Windows: ws}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return ws, nil
}

// Repartitioner re-keys realtime features by pickup community area. Trips
// of unknown area, and ride requests, are not aggregated.
type Repartitioner struct{}

// Topics the repartitioner consumes.
func (Repartitioner) Topics() []string { return []string{contracts.TopicFeaturesRealtime} }

// routing is what the repartitioner reads of a features record; the
// aggregator, which reads it whole, validates the rest.
type routing struct {
	PickupCommunityArea int    `json:"pickup_community_area"`
	RequestID           string `json:"request_id"`
}

// Process forwards the record's bytes to taxi-features-by-area keyed by area.
func (Repartitioner) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	var f routing
	if err := contracts.DecodeInto(in.Value, &f); err != nil {
		return nil, err
	}
	if f.PickupCommunityArea < 0 || f.PickupCommunityArea > 77 {
		return nil, contracts.Invalid("pickup_community_area", "%d is not in 0..77", f.PickupCommunityArea)
	}
	if f.PickupCommunityArea == 0 || f.RequestID != "" {
		return nil, nil
	}
	return []*kgo.Record{{
		Topic: contracts.TopicFeaturesByArea,
		Key:   []byte(strconv.Itoa(f.PickupCommunityArea)),
		Value: in.Value,
	}}, nil
}

// agg is one window's running aggregate.
type agg struct {
	Count       int     `json:"count"`
	SumDuration float64 `json:"sum_duration"`
	NDuration   int     `json:"n_duration"`
	SumFare     float64 `json:"sum_fare"`
	NFare       int     `json:"n_fare"`
}

func (a *agg) add(f *contracts.Features) {
	a.Count++
	if f.TripDurationSeconds != nil {
		a.SumDuration += *f.TripDurationSeconds
		a.NDuration++
	}
	if f.FareAmount != nil {
		a.SumFare += *f.FareAmount
		a.NFare++
	}
}

type winKey struct {
	size  time.Duration
	area  int
	start int64 // unix seconds
}

func (k winKey) end() int64 { return k.start + int64(k.size/time.Second) }

func (k winKey) String() string {
	return fmt.Sprintf("w|%d|%d|%d", int64(k.size/time.Second), k.area, k.start)
}

func parseWinKey(s string) (winKey, bool) {
	f := strings.Split(s, "|")
	if len(f) != 4 || f[0] != "w" {
		return winKey{}, false
	}
	size, e1 := strconv.ParseInt(f[1], 10, 64)
	area, e2 := strconv.Atoi(f[2])
	start, e3 := strconv.ParseInt(f[3], 10, 64)
	if e1 != nil || e2 != nil || e3 != nil {
		return winKey{}, false
	}
	return winKey{size: time.Duration(size) * time.Second, area: area, start: start}, true
}

// less orders windows by end, then size, area and start: the emission order.
func less(a, b winKey) bool {
	if a.end() != b.end() {
		return a.end() < b.end()
	}
	if a.size != b.size {
		return a.size < b.size
	}
	if a.area != b.area {
		return a.area < b.area
	}
	return a.start < b.start
}

type endHeap []winKey

func (h endHeap) Len() int           { return len(h) }
func (h endHeap) Less(i, j int) bool { return less(h[i], h[j]) }
func (h endHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *endHeap) Push(x any)        { *h = append(*h, x.(winKey)) }
func (h *endHeap) Pop() any {
	old := *h
	k := old[len(old)-1]
	*h = old[:len(old)-1]
	return k
}

// partition is the state of one input partition.
type partition struct {
	streamTime int64 // unix seconds; 0 = nothing seen
	timeDirty  bool
	windows    map[winKey]*agg
	ends       endHeap
	// dirty windows changed since the last flush; persisted ones are in
	// the changelog as of the last flush, so a window opened and closed
	// within one batch costs the changelog nothing.
	dirty     map[winKey]struct{}
	persisted map[winKey]struct{}
	// closed holds, per area and size, the latest window closed since the
	// last flush (table output).
	closed map[outKey]closedWindow
}

type outKey struct {
	size time.Duration
	area int
}

type closedWindow struct {
	key winKey
	agg agg
}

func newPartition() *partition {
	return &partition{
		windows:   map[winKey]*agg{},
		dirty:     map[winKey]struct{}{},
		persisted: map[winKey]struct{}{},
		closed:    map[outKey]closedWindow{},
	}
}

const streamTimeKey = "t"

// Aggregator computes and emits windowed aggregates.
type Aggregator struct {
	cfg     Config
	base    *seasonal.Baseline
	store   *state.Store
	parts   map[int32]*partition
	metrics *Metrics
	log     *slog.Logger
	// failed is set when state could not be restored; the replica stops.
	failed error
	// mu guards the state: under the exactly-once runner, rebalance
	// callbacks run beside the batch loop.
	mu sync.Mutex
	// owned are the partitions assigned; state of others is not kept.
	owned map[int32]bool
}

// NewAggregator returns an aggregator persisting to store's changelog.
// base scores demand: the trips a window would usually see.
func NewAggregator(cfg Config, base *seasonal.Baseline, store *state.Store, m *Metrics, log *slog.Logger) (*Aggregator, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Aggregator{cfg: cfg, base: base, store: store, parts: map[int32]*partition{}, metrics: m, log: log, owned: map[int32]bool{}}, nil
}

// Topics the aggregator consumes.
func (a *Aggregator) Topics() []string { return []string{contracts.TopicFeaturesByArea} }

// ManualPartitions are the topics whose records name their partition.
func (a *Aggregator) ManualPartitions() []string { return []string{a.store.Changelog()} }

func (a *Aggregator) part(p int32) *partition {
	ps := a.parts[p]
	if ps == nil {
		ps = newPartition()
		a.parts[p] = ps
	}
	return ps
}

// Process adds a trip to its open windows and emits the windows its event
// time closed.
func (a *Aggregator) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.failed != nil {
		return nil, stream.Fatal(a.failed)
	}
	f, err := contracts.Decode[contracts.Features](in.Value)
	if err != nil {
		return nil, err
	}
	if f.PickupCommunityArea < 1 || f.PickupCommunityArea > seasonal.Areas {
		return nil, contracts.Invalid("pickup_community_area", "%d is not a community area", f.PickupCommunityArea)
	}
	p := a.part(in.Partition)
	t := f.Timestamp.Unix()
	if t > p.streamTime {
		p.streamTime = t
		p.timeDirty = true
	}
	grace := int64(a.cfg.Grace / time.Second)
	added := false
	for _, w := range a.cfg.Windows {
		size, adv := int64(w.Size/time.Second), int64(w.Advance/time.Second)
		last := floorDiv(t, adv) * adv
		for start := last; start > t-size; start -= adv {
			k := winKey{size: w.Size, area: f.PickupCommunityArea, start: start}
			if k.end()+grace <= p.streamTime {
				continue // closed and emitted already
			}
			g := p.windows[k]
			if g == nil {
				g = &agg{}
				p.windows[k] = g
				heap.Push(&p.ends, k)
			}
			g.add(f)
			p.dirty[k] = struct{}{}
			added = true
		}
	}
	if !added {
		a.metrics.late.Inc()
	}
	return a.close(p)
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// close forgets the windows of p whose end plus grace the stream time has
// passed, emitting them now (EmitEveryWindow) or keeping the latest per
// area and size for Flush.
func (a *Aggregator) close(p *partition) ([]*kgo.Record, error) {
	grace := int64(a.cfg.Grace / time.Second)
	var out []*kgo.Record
	for len(p.ends) > 0 && p.ends[0].end()+grace <= p.streamTime {
		k := heap.Pop(&p.ends).(winKey)
		g := p.windows[k]
		delete(p.windows, k)
		p.dirty[k] = struct{}{}
		if !a.cfg.EmitEveryWindow {
			// Windows close in end order, so the last one wins.
			p.closed[outKey{k.size, k.area}] = closedWindow{key: k, agg: *g}
			continue
		}
		rec, err := a.emit(k, g)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// Result is the aggregate of a closed window; exported for tests and the
// batch recomputation.
func Result(k Key, count int, sumDuration float64, nDuration int, sumFare float64, nFare int, base *seasonal.Baseline) contracts.AreaAggregate {
	start := time.Unix(k.Start, 0).UTC()
	end := start.Add(k.Size)
	m := contracts.AreaAggregate{
		SchemaVersion: contracts.SchemaVersion,
		AreaID:        k.Area,
		TimeWindow:    SizeName(k.Size),
		WindowStart:   start,
		WindowEnd:     end,
		TripCount:     count,
	}
	if nDuration > 0 {
		m.AvgTripDuration = sumDuration / float64(nDuration)
	}
	if nFare > 0 {
		m.AvgFare = sumFare / float64(nFare)
	}
	if base != nil {
		if want, err := base.Expected(k.Area, start, end); err == nil && want > 0 {
			m.DemandScore = float64(count) / want
		}
	}
	return m
}

// Key names one window of one area.
type Key struct {
	Size  time.Duration
	Area  int
	Start int64 // unix seconds
}

func (a *Aggregator) emit(k winKey, g *agg) (*kgo.Record, error) {
	m := Result(Key{Size: k.size, Area: k.area, Start: k.start}, g.Count, g.SumDuration, g.NDuration, g.SumFare, g.NFare, a.base)
	b, err := contracts.Encode(&m)
	if err != nil {
		return nil, err
	}
	a.metrics.emitted.WithLabelValues(m.TimeWindow).Inc()
	return &kgo.Record{
		Topic: contracts.TopicFeaturesAggregated,
		Key:   []byte(strconv.Itoa(k.area) + ":" + m.TimeWindow),
		Value: b,
	}, nil
}

// Flush emits the batch's latest closed windows (table output) and writes
// each state entry the batch changed to the changelog once.
func (a *Aggregator) Flush(context.Context) ([]*kgo.Record, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*kgo.Record
	for _, pn := range sortedKeys(a.parts) {
		p := a.parts[pn]
		closed := make([]outKey, 0, len(p.closed))
		for k := range p.closed {
			closed = append(closed, k)
		}
		slices.SortFunc(closed, func(x, y outKey) int {
			if x.size != y.size {
				return int(x.size - y.size)
			}
			return x.area - y.area
		})
		for _, k := range closed {
			c := p.closed[k]
			rec, err := a.emit(c.key, &c.agg)
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
		if p.timeDirty {
			out = append(out, a.store.Put(pn, streamTimeKey, []byte(strconv.FormatInt(p.streamTime, 10))))
		}
		keys := make([]winKey, 0, len(p.dirty))
		for k := range p.dirty {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(x, y winKey) int {
			if less(x, y) {
				return -1
			}
			if less(y, x) {
				return 1
			}
			return 0
		})
		for _, k := range keys {
			g, open := p.windows[k]
			_, persisted := p.persisted[k]
			switch {
			case open:
				b, err := json.Marshal(g)
				if err != nil {
					return nil, err
				}
				out = append(out, a.store.Put(pn, k.String(), b))
			case persisted:
				out = append(out, a.store.Delete(pn, k.String()))
			}
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

// Checkpoint records what the committed batch wrote to the changelog.
func (a *Aggregator) Checkpoint() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range a.parts {
		for k := range p.dirty {
			if _, open := p.windows[k]; open {
				p.persisted[k] = struct{}{}
			} else {
				delete(p.persisted, k)
			}
		}
		clear(p.dirty)
		clear(p.closed)
		p.timeDirty = false
	}
	a.store.Checkpoint()
}

// Rollback returns every owned partition to its committed state by reading
// its changelog again: an aborted batch is rare (a rebalance or a stop), and
// the changelog is the one authority on what committed.
func (a *Aggregator) Rollback() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.store.Rollback()
	var owned []int32
	for p, ps := range a.parts {
		switch {
		case !a.owned[p]:
			// Revoked while the batch ran: its state is another's now.
			delete(a.parts, p)
		case len(ps.dirty) > 0 || ps.timeDirty || len(ps.closed) > 0:
			owned = append(owned, p)
		}
	}
	if err := a.restore(context.Background(), owned); err != nil {
		// Without its committed state the replica must not go on.
		a.log.Error("restore after an aborted batch failed", "err", err)
		a.failed = fmt.Errorf("restore state after an aborted batch: %w", err)
	}
}

// Assigned rebuilds the state of newly owned partitions from the changelog.
func (a *Aggregator) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ps := assigned[contracts.TopicFeaturesByArea]
	for _, p := range ps {
		a.owned[p] = true
	}
	if err := a.restore(ctx, ps); err != nil {
		a.log.Error("restore state", "partitions", ps, "err", err)
		a.failed = fmt.Errorf("restore state of partitions %v: %w", ps, err)
	}
}

// Revoked drops the state of partitions another replica now owns.
func (a *Aggregator) Revoked(revoked map[string][]int32) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range revoked[contracts.TopicFeaturesByArea] {
		delete(a.parts, p)
		delete(a.owned, p)
	}
	a.store.Drop(revoked[contracts.TopicFeaturesByArea])
}

// StateEntries counts open windows.
func (a *Aggregator) StateEntries() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, p := range a.parts {
		n += len(p.windows)
	}
	return n
}

func (a *Aggregator) restore(ctx context.Context, partitions []int32) error {
	if len(partitions) == 0 {
		return nil
	}
	start := time.Now()
	if err := a.store.Restore(ctx, partitions); err != nil {
		return err
	}
	entries := 0
	for _, pn := range partitions {
		p := newPartition()
		for _, key := range a.store.Keys(pn) {
			v, _ := a.store.Get(pn, key)
			if key == streamTimeKey {
				t, err := strconv.ParseInt(string(v), 10, 64)
				if err != nil {
					return fmt.Errorf("restore partition %d: stream time %q: %w", pn, v, err)
				}
				p.streamTime = t
				continue
			}
			k, ok := parseWinKey(key)
			if !ok {
				return fmt.Errorf("restore partition %d: key %q is not a window", pn, key)
			}
			var g agg
			if err := json.Unmarshal(v, &g); err != nil {
				return fmt.Errorf("restore partition %d: window %s: %w", pn, key, err)
			}
			p.windows[k] = &g
			p.persisted[k] = struct{}{}
			p.ends = append(p.ends, k)
			entries++
		}
		heap.Init(&p.ends)
		a.parts[pn] = p
	}
	a.log.Info("state restored", "partitions", partitions, "windows", entries, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// Metrics of the aggregator.
type Metrics struct {
	late    prometheus.Counter
	emitted *prometheus.CounterVec
}

// NewMetrics registers the aggregator's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_aggregates_late_records_total", Help: "Trips that arrived after every window they belong to had closed; dropped.",
		}),
		emitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_aggregates_windows_emitted_total", Help: "Closed windows emitted, by window size.",
		}, []string{"window"}),
	}
	if reg != nil {
		reg.MustRegister(m.late, m.emitted)
	}
	return m
}

// LateCounter exposes the late-record counter, for tests.
func (m *Metrics) LateCounter() prometheus.Counter { return m.late }
