package demand

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Stage names: the consumer groups (and dead-letter topics) of the role.
const (
	RepartitionStage = "gps-repartition"
	ForecastStage    = "demand"
)

// ModelName is the model name of the forecaster's metrics on model-metrics.
const ModelName = "demand"

// MetricSource is the source of the forecaster's metrics.
const MetricSource = "demand-streamer"

// Config defines the forecast. Zero fields take their defaults
// (WithDefaults); durations are event time.
type Config struct {
	// Tick is how often forecasts are made and the length of the slots
	// trips and pings are counted in (default 15m). It divides a day, so
	// ticks fall on the same clock times every day.
	Tick time.Duration
	// Horizons are the forecast lengths, whole multiples of Tick (default
	// Tick and 4 × Tick: 15m and 60m).
	Horizons []time.Duration
	// Grace is how far behind its own input's stream time a record may be
	// and still count (default 10m); a tick at T is made once both inputs'
	// stream times reached T + Grace. A replay that compresses time makes
	// repartitioned topics run out of order by much more: give it hours of
	// event time.
	Grace time.Duration
	// LevelWindow is how far back the level looks (default 4 × Tick: 1h),
	// a whole multiple of Tick; LevelHalfLife is the age at which a slot's
	// weight halves (default 2 × Tick: 30m).
	LevelWindow   time.Duration
	LevelHalfLife time.Duration
	// LevelPrior is the weight, in expected trips, of the prior belief that
	// demand is at its seasonal level (default 1).
	LevelPrior float64
	// MinLevel and MaxLevel clamp the level (defaults 0.25 and 4).
	MinLevel, MaxLevel float64
	// ActiveWindow is how recently a vehicle must have pinged in an area to
	// count as active there (default Tick: 15m), a whole multiple of Tick.
	ActiveWindow time.Duration
	// AreaTTL: an area is forecast while it had a trip start or a ping
	// within AreaTTL before the tick (default 12 × Tick: 3h), a whole
	// multiple of Tick.
	AreaTTL time.Duration
	// MetricEvery is how often error metrics are published (default Tick):
	// at the ticks that are whole multiples of it, over the forecasts that
	// closed since the last publication. A whole multiple of Tick dividing
	// a day; a replay that compresses time may want hours.
	MetricEvery time.Duration
	// ThresholdFactor sets the threshold of each error metric to this
	// multiple of the seasonal baseline's own error on the same periods
	// (default 1.2: a breach is being 20 % worse than the plain baseline).
	ThresholdFactor float64
	// ModelVersion names the forecaster in predictions and metrics
	// (default "seasonal-level-1").
	ModelVersion string
	// WithoutGPS runs on trip starts alone, for systems without a GPS
	// stream: active_vehicles is then 0. With GPS (the default) the
	// forecaster waits for both inputs, so it makes no forecast until GPS
	// pings arrive.
	WithoutGPS bool
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Tick == 0 {
		c.Tick = 15 * time.Minute
	}
	if len(c.Horizons) == 0 {
		c.Horizons = []time.Duration{c.Tick, 4 * c.Tick}
	}
	if c.Grace == 0 {
		c.Grace = 10 * time.Minute
	}
	if c.LevelWindow == 0 {
		c.LevelWindow = 4 * c.Tick
	}
	if c.LevelHalfLife == 0 {
		c.LevelHalfLife = 2 * c.Tick
	}
	if c.LevelPrior == 0 {
		c.LevelPrior = 1
	}
	if c.MinLevel == 0 {
		c.MinLevel = 0.25
	}
	if c.MaxLevel == 0 {
		c.MaxLevel = 4
	}
	if c.ActiveWindow == 0 {
		c.ActiveWindow = c.Tick
	}
	if c.AreaTTL == 0 {
		c.AreaTTL = 12 * c.Tick
	}
	if c.MetricEvery == 0 {
		c.MetricEvery = c.Tick
	}
	if c.ThresholdFactor == 0 {
		c.ThresholdFactor = 1.2
	}
	if c.ModelVersion == "" {
		c.ModelVersion = "seasonal-level-1"
	}
	return c
}

// Validate says what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Tick < time.Minute || c.Tick%time.Minute != 0 || (24*time.Hour)%c.Tick != 0 {
		errs = append(errs, fmt.Errorf("tick %v must be whole minutes dividing a day", c.Tick))
	}
	multiple := func(name string, d time.Duration) {
		if d <= 0 || c.Tick <= 0 || d%c.Tick != 0 {
			errs = append(errs, fmt.Errorf("%s %v must be a positive multiple of the tick %v", name, d, c.Tick))
		}
	}
	if len(c.Horizons) == 0 {
		errs = append(errs, errors.New("at least one horizon is required"))
	}
	for i, h := range c.Horizons {
		multiple("horizon", h)
		if slices.Contains(c.Horizons[:i], h) {
			errs = append(errs, fmt.Errorf("horizon %v is given twice", h))
		}
	}
	multiple("level window", c.LevelWindow)
	multiple("active window", c.ActiveWindow)
	multiple("area ttl", c.AreaTTL)
	multiple("metric interval", c.MetricEvery)
	if c.MetricEvery > 0 && (24*time.Hour)%c.MetricEvery != 0 {
		errs = append(errs, fmt.Errorf("metric interval %v must divide a day", c.MetricEvery))
	}
	if c.Grace < 0 {
		errs = append(errs, fmt.Errorf("grace %v must not be negative", c.Grace))
	}
	if c.LevelHalfLife <= 0 {
		errs = append(errs, fmt.Errorf("level half-life %v must be positive", c.LevelHalfLife))
	}
	if !(c.LevelPrior > 0) || math.IsInf(c.LevelPrior, 0) {
		errs = append(errs, fmt.Errorf("level prior %g must be positive and finite", c.LevelPrior))
	}
	if !(c.MinLevel > 0 && c.MinLevel <= 1 && c.MaxLevel >= 1) || math.IsInf(c.MaxLevel, 0) {
		errs = append(errs, fmt.Errorf("levels must satisfy 0 < min (%g) <= 1 <= max (%g) < inf", c.MinLevel, c.MaxLevel))
	}
	if !(c.ThresholdFactor > 0) || math.IsInf(c.ThresholdFactor, 0) {
		errs = append(errs, fmt.Errorf("threshold factor %g must be positive and finite", c.ThresholdFactor))
	}
	if c.ModelVersion == "" {
		errs = append(errs, errors.New("a model version is required"))
	}
	return errors.Join(errs...)
}

// HorizonName is how a horizon is written in messages: minutes, "15m", "60m".
func HorizonName(h time.Duration) string { return strconv.FormatInt(int64(h/time.Minute), 10) + "m" }

// Inputs are the topics the forecaster reads: trip starts, and GPS pings
// unless WithoutGPS.
func (c Config) inputs() int {
	if c.WithoutGPS {
		return 1
	}
	return 2
}

// weights are the level's slot weights, newest slot first: 2^(−j·Tick/HalfLife).
func (c Config) weights() []float64 {
	k := int(c.LevelWindow / c.Tick)
	w := make([]float64, k)
	for j := range w {
		w[j] = math.Exp2(-float64(j) * float64(c.Tick) / float64(c.LevelHalfLife))
	}
	return w
}

// Level is the level estimator on the slots before a tick, newest first:
// counts[j] trip starts and expected[j] the seasonal expectation of the
// slot ending j ticks before the tick (len(counts) = len(expected) =
// LevelWindow/Tick). See the package documentation.
func (c Config) Level(counts []int, expected []float64) float64 {
	return level(c.weights(), counts, expected, c.LevelPrior, c.MinLevel, c.MaxLevel)
}

func level(w []float64, counts []int, expected []float64, prior, lo, hi float64) float64 {
	obs, exp := prior, prior
	for j := range w {
		obs += w[j] * float64(counts[j])
		exp += w[j] * expected[j]
	}
	return min(max(obs/exp, lo), hi)
}

// FirstTick is the first tick of a partition whose inputs started at first
// (the earlier of their first records): the end of first's slot.
func FirstTick(first time.Time, tick time.Duration) time.Time {
	t := int64(tick / time.Second)
	return time.Unix(floorDiv(first.Unix(), t)*t+t, 0).UTC()
}

// due counts the ticks from next on that watermark w makes: T + grace <= w.
func due(next, w, tick, grace int64) int64 {
	if next+grace > w {
		return 0
	}
	return (w-grace-next)/tick + 1
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// ErrorStats accumulates forecast errors.
type ErrorStats struct {
	N      int     `json:"n"`
	SumAbs float64 `json:"sum_abs"`
	SumSq  float64 `json:"sum_sq"`
}

// Merge adds the forecasts counted in o.
func (e *ErrorStats) Merge(o ErrorStats) {
	e.N += o.N
	e.SumAbs += o.SumAbs
	e.SumSq += o.SumSq
}

// Add counts one forecast against what happened.
func (e *ErrorStats) Add(predicted, actual float64) {
	d := predicted - actual
	e.N++
	e.SumAbs += math.Abs(d)
	e.SumSq += d * d
}

// MAE is the mean absolute error (0 without forecasts).
func (e ErrorStats) MAE() float64 {
	if e.N == 0 {
		return 0
	}
	return e.SumAbs / float64(e.N)
}

// RMSE is the root mean squared error (0 without forecasts).
func (e ErrorStats) RMSE() float64 {
	if e.N == 0 {
		return 0
	}
	return math.Sqrt(e.SumSq / float64(e.N))
}
