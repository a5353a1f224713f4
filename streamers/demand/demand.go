// Package demand is the demand streamer: it forecasts trip starts per
// community area for the next 15 and 60 minutes (Config.Horizons) from the
// seasonal baseline scaled by the area's recent demand, and tracks the
// forecasts' error against what then happened.
//
// It runs in two stages. The GPSRepartitioner re-keys taxi-gps-stream
// (keyed by vehicle) by the community area each ping is in
// (geo.Areas.Lookup) onto taxi-gps-by-area; pings outside every area are
// counted and dropped. The Forecaster reads taxi-features-by-area (trip
// starts keyed by pickup area, written by the aggregates role's
// area-repartition stage) and taxi-gps-by-area. Both are keyed by area
// number with the same partition count, so partition p of each holds the
// same areas; the Forecaster's GroupOpts assign them to the same replica.
//
// # Definitions
//
// All times are event times, per input partition. A slot is [s, s+Tick),
// aligned on the Unix epoch (so on quarter hours of the city's clock).
//
//   - Stream time of an input: the largest event time read from it. A
//     record more than Grace behind its own input's stream time is late:
//     counted (taxi_demand_late_records_total) and dropped.
//   - Watermark: the smaller of the two inputs' stream times, once both have
//     been read (the trip starts' alone with Config.WithoutGPS).
//   - Ticks: the first is the end of the slot of the earlier of the inputs'
//     first records (FirstTick), then one every Tick. Tick T is made when
//     the watermark reaches T + Grace. Every record before T that is not
//     late has then been read, however the two topics were interleaved, so
//     the output is a function of each topic partition's record order alone:
//     deterministic, and the same after a restart from the changelog.
//   - n(a, s): trip starts of area a in slot s. V(a, s): the vehicle ids that
//     pinged in a during s.
//   - Areas forecast at T: those with a trip start or a ping in
//     [T − AreaTTL, T). Earlier areas are forgotten, which bounds both state
//     and output when demand is as sparse as the shipped sample's.
//   - Level: level(a, T) = clamp((α + Σⱼ wⱼ·n(a, sⱼ)) / (α + Σⱼ wⱼ·e(a, sⱼ)),
//     MinLevel, MaxLevel), with sⱼ = [T − (j+1)·Tick, T − j·Tick) for
//     j = 0 … LevelWindow/Tick − 1, wⱼ = 2^(−j·Tick/LevelHalfLife), e(a, s)
//     the seasonal baseline's expected trip starts of a in s, α = LevelPrior:
//     exponentially weighted observed over expected trips of the last
//     LevelWindow. It is the posterior mean of a multiplicative demand level
//     with a Gamma(α, α) prior (mean 1) and Poisson counts discounted with
//     age, so an area with little evidence stays near its seasonal level
//     instead of swinging by orders of magnitude: in the shipped sample an
//     area expects about 0.005 trips an hour, and one trip lifts its level
//     to about 2, not to hundreds. (The sample is a random draw of about ten
//     trips a day, so its trip starts do not cluster and the level cannot
//     beat the baseline there: over its first 4000 trips the 15-minute MAE
//     is 3.5 % above the baseline's. It is meant for a full feed, where
//     demand does cluster.)
//   - Forecast at T for horizon h: baseline = e(a, [T, T+h)), predicted =
//     baseline × level(a, T); active_vehicles = |⋃ V(a, s)| over the slots of
//     [T − ActiveWindow, T). The DemandPrediction has timestamp T, period
//     [T, T+h), horizon "15m"/"60m", key area_id.
//   - Error: the forecast of [T, T+h) closes at tick T + h, when every trip
//     start of the period has been read; actual = Σ n(a, s) over the period.
//     At each tick T' that is a whole multiple of MetricEvery (by default
//     every tick), for each horizon, over the forecasts that closed since
//     the last such tick (with the default, those the partition made at
//     T' − h): MAE = Σ|pred − actual| / n and RMSE = √(Σ(pred − actual)² / n),
//     and the same for the seasonal baseline alone (predicting baseline).
//     Each is published to model-metrics as "mae_<h>" / "rmse_<h>" with
//     threshold = ThresholdFactor × the baseline's value, higher_is_better
//     false, sample_size n, window [T' − MetricEvery + Tick − h, T') (the
//     closed periods), timestamp T', model_version Config.ModelVersion,
//     source "demand-streamer" and metric_id "demand/p<partition>/<T' in
//     Unix seconds>/<metric name>", keyed "demand"; nothing when no forecast
//     closed. A breach therefore means the forecaster did worse than
//     ThresholdFactor times the plain seasonal baseline on the same periods.
//     Each partition has its own ticks, so a metric covers the areas of one
//     input partition.
//
// # State
//
// The Forecaster keeps its state in a state.Store on the demand changelog:
// per partition the inputs' stream times and first event times, the next
// tick and the errors not yet published; per area the counts and vehicle sets of the slots still needed
// (LevelWindow, ActiveWindow or the longest horizon before the next tick, and
// any after it), when it was last active and its open forecasts. Changed
// entries are written once per batch, in the batch's transaction; a replica
// that gains a partition restores it from the changelog before reading, and
// an aborted batch is undone by restoring the partitions it touched.
package demand

import (
	"context"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
)

// GPSRepartitioner re-keys GPS pings by the community area they are in.
type GPSRepartitioner struct {
	areas   *geo.Areas
	metrics *Metrics
}

// NewGPSRepartitioner returns a repartitioner finding areas in areas.
func NewGPSRepartitioner(areas *geo.Areas, m *Metrics) *GPSRepartitioner {
	return &GPSRepartitioner{areas: areas, metrics: m}
}

// Topics the repartitioner consumes.
func (*GPSRepartitioner) Topics() []string { return []string{contracts.TopicGPSStream} }

// Process forwards the ping's bytes to taxi-gps-by-area keyed by its area,
// or drops it (counted) when it is in none.
func (r *GPSRepartitioner) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	p, err := contracts.Decode[contracts.GPSPing](in.Value)
	if err != nil {
		return nil, err
	}
	a := r.areas.Lookup(p.Latitude, p.Longitude)
	if a == 0 {
		r.metrics.outside.Inc()
		return nil, nil
	}
	return []*kgo.Record{{
		Topic: contracts.TopicGPSByArea,
		Key:   []byte(strconv.Itoa(a)),
		Value: in.Value,
	}}, nil
}

// Metrics of the demand role.
type Metrics struct {
	outside   prometheus.Counter
	late      *prometheus.CounterVec
	ticks     prometheus.Counter
	forecasts *prometheus.CounterVec
	closed    *prometheus.CounterVec
	absErr    *prometheus.CounterVec
	sqErr     *prometheus.CounterVec
}

// NewMetrics registers the demand role's metrics with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outside: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_demand_gps_outside_areas_total", Help: "GPS pings in no community area; dropped by the repartitioner.",
		}),
		late: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_demand_late_records_total", Help: "Records more than the grace period behind their input's stream time; dropped, by input (trips, gps).",
		}, []string{"input"}),
		ticks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taxi_demand_ticks_total", Help: "Forecast ticks made, over all partitions.",
		}),
		forecasts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_demand_forecasts_total", Help: "Demand forecasts published, by horizon.",
		}, []string{"horizon"}),
		closed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_demand_forecasts_closed_total", Help: "Forecasts whose period passed and were compared with the actual trip starts, by horizon.",
		}, []string{"horizon"}),
		absErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_demand_absolute_error_total", Help: "Sum of absolute errors of closed forecasts, by horizon and model (demand, or the seasonal baseline); divide by closed forecasts for the MAE.",
		}, []string{"horizon", "model"}),
		sqErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_demand_squared_error_total", Help: "Sum of squared errors of closed forecasts, by horizon and model (demand, or the seasonal baseline).",
		}, []string{"horizon", "model"}),
	}
	if reg != nil {
		reg.MustRegister(m.outside, m.late, m.ticks, m.forecasts, m.closed, m.absErr, m.sqErr)
	}
	return m
}

// OutsideCounter counts pings in no area, for tests.
func (m *Metrics) OutsideCounter() prometheus.Counter { return m.outside }

// LateCounter counts late records of an input ("trips" or "gps"), for tests.
func (m *Metrics) LateCounter(input string) prometheus.Counter { return m.late.WithLabelValues(input) }

// TickCounter counts ticks, for tests.
func (m *Metrics) TickCounter() prometheus.Counter { return m.ticks }
