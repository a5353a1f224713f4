// Package features is the features streamer: it turns each raw ride into its
// realtime feature record with the shared transform — event-time hour, day
// of week and month on Chicago's clock, community areas by point in polygon,
// duration, distance and average speed — and joins two tables to it: the
// weather at the pickup and the demand level of the pickup area.
//
// # Tables
//
// weather-observations (compacted, keyed by station, one partition) and
// taxi-features-aggregated (compacted, keyed "<area>:<window>") are read as
// tables in the same consumer group as the rides. Both joins are as-of
// joins on event time: a trip gets the latest observation of its station
// at or before its pickup, and the demand score of the latest "1h"
// aggregate of its pickup area whose window ended at or before its pickup.
// Each key keeps a short history (WeatherHistory, DemandHistory entries) so
// a trip somewhat behind the newest table record still finds the record in
// force at its pickup; an observation exactly at the pickup counts. Before
// any record (or before the oldest one kept) the field is "unknown".
//
// Weather and demand level are message fields for consumers (dashboards,
// the inference API), not model features: the models' input is what
// ml/features derives, identically for training and serving.
//
// # Ordering and replays
//
// The tables are consumed in the same group as the rides, so a trip is
// joined with the table records the processor applied before it, in the
// order the runner hands records over: interleaved by fetch, not by event
// time. An as-of join makes the result independent of how far ahead the
// tables are (a later record never changes an earlier trip's join while
// the record in force is still in the history); it differs only when a
// record a trip should see has not been read yet (the table lags the
// stream) or was trimmed from the history (the table is more than the
// history ahead). The processor itself is deterministic: the same records
// in the same order give the same output, and the tables roll back with an
// aborted transaction (Stateful), so a batch processed again sees what it
// saw the first time. A replay of old trips after the topics were
// compacted finds only the latest record per key, later than the trips:
// "unknown".
//
// With more than one replica the table partitions are divided like the
// rides: a replica knows only the weather and areas of the table
// partitions it owns. Run one replica, or read the tables with a separate,
// non-group consumer per replica (a global table) — the next step. On
// assignment the processor rebuilds the owned table partitions from the
// start of the compacted topics when Restore is set; otherwise they fill
// from the group's committed offsets on.
package features

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	mlfeatures "github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

// Unknown is the weather condition and demand level of a trip the tables
// know nothing about.
const Unknown = "unknown"

// Demand levels.
const (
	DemandLow    = "low"
	DemandNormal = "normal"
	DemandHigh   = "high"
)

// Config configures the joins.
type Config struct {
	// WeatherStation whose observations trips join (default "chicago").
	WeatherStation string
	// WeatherHistory is how many observations are kept per station
	// (default 48: two days of hourly observations).
	WeatherHistory int
	// DemandWindow is the aggregate window whose demand score sets the
	// demand level (default "1h").
	DemandWindow string
	// DemandHistory is how many aggregates are kept per area (default 36:
	// three hours of 1h windows advancing every 5 minutes).
	DemandHistory int
	// DemandLow and DemandHigh bound the "normal" demand level: a score
	// under DemandLow is "low", over DemandHigh "high" (defaults 0.5 and
	// 1.5: half and one and a half times the seasonal expectation).
	DemandLow, DemandHigh float64
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.WeatherStation == "" {
		c.WeatherStation = "chicago"
	}
	if c.WeatherHistory <= 0 {
		c.WeatherHistory = 48
	}
	if c.DemandWindow == "" {
		c.DemandWindow = "1h"
	}
	if c.DemandHistory <= 0 {
		c.DemandHistory = 36
	}
	if c.DemandLow <= 0 {
		c.DemandLow = 0.5
	}
	if c.DemandHigh <= 0 {
		c.DemandHigh = 1.5
	}
	return c
}

// DemandLevel maps a demand score (trips over the seasonal expectation) to
// its level: low under c.DemandLow, high over c.DemandHigh, normal between,
// bounds included.
func (c Config) DemandLevel(score float64) string {
	switch {
	case score < c.DemandLow:
		return DemandLow
	case score > c.DemandHigh:
		return DemandHigh
	}
	return DemandNormal
}

// RestoreFunc reads the given partitions of a table topic from their start
// to their current end (read committed) and calls apply for each record in
// offset order.
type RestoreFunc func(ctx context.Context, topic string, partitions []int32, apply func(*kgo.Record) error) error

// Processor computes features and keeps the weather and demand tables. It
// is safe for the runner's use: records from its goroutine, rebalance hooks
// from the client's (the exactly-once runner lets a rebalance run during a
// batch, then aborts it). The zero Config means the defaults.
type Processor struct {
	Areas    *geo.Areas
	Location *time.Location // America/Chicago
	// Config is read when the processor first runs.
	Config Config
	// Restore, when set, rebuilds table partitions when they are
	// assigned (KafkaRestore). A failed restore stops the runner (Fatal)
	// so the process restarts with its tables whole.
	Restore RestoreFunc

	mu      sync.Mutex
	cfg     Config
	weather *table // key: station
	demand  *table // key: area
	failed  error
}

// KafkaRestore returns a RestoreFunc reading with its own client.
func KafkaRestore(kcfg kafka.Config, deps kafka.Deps) RestoreFunc {
	return func(ctx context.Context, topic string, partitions []int32, apply func(*kgo.Record) error) error {
		id := "taxi-mlops-features-restore-" + topic
		cl, err := kafka.NewClient(kcfg, id, kafka.Deps{Logger: deps.Logger})
		if err != nil {
			return err
		}
		all, err := kafka.TailRanges(ctx, cl, topic, 1<<62)
		cl.Close()
		if err != nil {
			return fmt.Errorf("restore %s: %w", topic, err)
		}
		var ranges []kafka.Range
		for _, r := range all {
			for _, p := range partitions {
				if r.Partition == p {
					ranges = append(ranges, r)
				}
			}
		}
		if err := kafka.ReadRanges(ctx, kcfg, id, deps, topic, ranges, apply); err != nil {
			return fmt.Errorf("restore %s: %w", topic, err)
		}
		return nil
	}
}

// init makes the tables on first use, so a Processor literal works; the
// caller holds mu.
func (p *Processor) init() {
	if p.weather != nil {
		return
	}
	p.cfg = p.Config.WithDefaults()
	p.weather = newTable(p.cfg.WeatherHistory)
	p.demand = newTable(p.cfg.DemandHistory)
}

// Topics the processor consumes: the rides and the two tables.
func (p *Processor) Topics() []string {
	return []string{contracts.TopicRidesRaw, contracts.TopicWeather, contracts.TopicFeaturesAggregated}
}

// Process emits the features of a raw ride, keyed by trip id, or applies a
// table record (and emits nothing).
func (p *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	if p.failed != nil {
		return nil, stream.Fatal(p.failed)
	}
	switch in.Topic {
	case contracts.TopicWeather:
		return nil, p.applyWeather(in)
	case contracts.TopicFeaturesAggregated:
		return nil, p.applyAggregate(in)
	case contracts.TopicRidesRaw:
		return p.ride(in)
	}
	return nil, stream.Permanent(fmt.Errorf("topic %s is not an input of the features streamer", in.Topic))
}

func (p *Processor) ride(in *kgo.Record) ([]*kgo.Record, error) {
	raw, err := contracts.Decode[contracts.RawRide](in.Value)
	if err != nil {
		return nil, err
	}
	row := mlfeatures.Transform(rides.FeatureTrip(raw, p.Areas), p.Location)
	msg := rides.FeaturesMessage(raw.TripID, raw.PickupDatetime, &row)
	msg.WeatherCondition = p.weatherAt(raw.PickupDatetime)
	msg.DemandLevel = p.demandLevelAt(row.PickupArea, raw.PickupDatetime)
	b, err := contracts.Encode(&msg)
	if err != nil {
		return nil, err
	}
	return []*kgo.Record{{Topic: contracts.TopicFeaturesRealtime, Key: []byte(raw.TripID), Value: b}}, nil
}

// WeatherAt is the condition of the configured station's latest
// observation at or before t, Unknown without one.
func (p *Processor) WeatherAt(t time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	return p.weatherAt(t)
}

func (p *Processor) weatherAt(t time.Time) string {
	if e, ok := p.weather.asOf(p.cfg.WeatherStation, t); ok {
		return e.value
	}
	return Unknown
}

// DemandLevelAt is the demand level of area from its latest aggregate
// whose window ended at or before t, Unknown without one (or for area 0).
func (p *Processor) DemandLevelAt(area int, t time.Time) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	return p.demandLevelAt(area, t)
}

func (p *Processor) demandLevelAt(area int, t time.Time) string {
	if area <= 0 {
		return Unknown
	}
	if e, ok := p.demand.asOf(strconv.Itoa(area), t); ok {
		return p.cfg.DemandLevel(e.score)
	}
	return Unknown
}

func (p *Processor) applyWeather(in *kgo.Record) error {
	if in.Value == nil { // tombstone: the station is gone
		p.weather.delete(string(in.Key))
		return nil
	}
	o, err := contracts.Decode[contracts.WeatherObservation](in.Value)
	if err != nil {
		return err
	}
	p.weather.put(o.Station, in.Partition, entry{at: o.Timestamp, value: o.Condition})
	return nil
}

func (p *Processor) applyAggregate(in *kgo.Record) error {
	if in.Value == nil { // tombstone of "<area>:<window>"
		area, window, ok := strings.Cut(string(in.Key), ":")
		if ok && window == p.cfg.DemandWindow {
			p.demand.delete(area)
		}
		return nil
	}
	a, err := contracts.Decode[contracts.AreaAggregate](in.Value)
	if err != nil {
		return err
	}
	if a.TimeWindow != p.cfg.DemandWindow {
		return nil
	}
	// Trips but no score: the aggregator had no seasonal baseline for the
	// window, so the score says nothing.
	if a.DemandScore <= 0 && a.TripCount > 0 {
		return nil
	}
	if a.WindowEnd.IsZero() {
		return contracts.Invalid("window_end", "required")
	}
	p.demand.put(strconv.Itoa(a.AreaID), in.Partition, entry{at: a.WindowEnd, score: a.DemandScore})
	return nil
}

// Checkpoint makes the table changes so far permanent (stream.Stateful).
func (p *Processor) Checkpoint() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.weather.checkpoint()
	p.demand.checkpoint()
}

// Rollback undoes the table changes of an aborted batch (stream.Stateful).
func (p *Processor) Rollback() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.weather.rollback()
	p.demand.rollback()
}

// Assigned rebuilds the table partitions assigned, when Restore is set
// (stream.Rebalancing).
func (p *Processor) Assigned(ctx context.Context, _ *kgo.Client, assigned map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	if p.Restore == nil {
		return
	}
	for _, t := range []struct {
		topic string
		tab   *table
		apply func(*kgo.Record) error
	}{
		{contracts.TopicWeather, p.weather, p.applyWeather},
		{contracts.TopicFeaturesAggregated, p.demand, p.applyAggregate},
	} {
		ps := assigned[t.topic]
		if len(ps) == 0 {
			continue
		}
		t.tab.drop(ps)
		err := p.Restore(ctx, t.topic, ps, func(r *kgo.Record) error {
			// A malformed table record is skipped here as the runner
			// dead-letters it when consumed.
			if err := t.apply(r); err != nil && !stream.IsPermanent(err) {
				return err
			}
			return nil
		})
		// What was read is committed: no batch may roll it back.
		t.tab.settled(ps)
		if err != nil {
			p.failed = fmt.Errorf("restore %s partitions %v: %w", t.topic, ps, err)
			return
		}
	}
}

// Revoked forgets the table partitions revoked: another replica keeps
// them up to date now (stream.Rebalancing).
func (p *Processor) Revoked(revoked map[string][]int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	p.weather.drop(revoked[contracts.TopicWeather])
	p.demand.drop(revoked[contracts.TopicFeaturesAggregated])
}

// StateEntries counts the table entries held (stream.Sized).
func (p *Processor) StateEntries() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.init()
	return p.weather.len() + p.demand.len()
}
