// Package quality is the data-quality streamer: it compares a sliding count
// window of live feature records with the reference profile stored with each
// champion and publishes a data-quality alert when a feature's distribution
// has shifted.
//
// The window counts records, not time: the city's sample is sparse in event
// time (about ten trips a day) and replays compress time at will, while the
// precision of a PSI depends only on how many records it sees. A window is
// judged once, when full, so there is at most one alert per window; a new
// champion brings a new reference and starts a new window.
package quality

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/ml/drift"
	mlfeatures "github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
)

// Config sets the window and the thresholds.
type Config struct {
	// Exclude lists features not judged for drift. By default the calendar
	// features: a window covers a stretch of time, so its hours, weekdays
	// and months differ from a reference covering all of them whatever the
	// health of the data.
	Exclude []string
	// WindowSize records per judgement (default 500).
	WindowSize int
	// Warning and Critical PSI thresholds (defaults 0.1 and 0.25, the usual
	// reading of PSI: under 0.1 no shift, over 0.25 a major one). A window
	// is alerted on when its largest PSI reaches Warning.
	Warning, Critical float64
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Exclude == nil {
		c.Exclude = DefaultExclude()
	}
	if c.WindowSize <= 0 {
		c.WindowSize = 500
	}
	if c.Warning <= 0 {
		c.Warning = 0.1
	}
	if c.Critical <= 0 {
		c.Critical = 0.25
	}
	return c
}

// DefaultExclude are the calendar features.
func DefaultExclude() []string {
	return []string{mlfeatures.PickupHour, mlfeatures.PickupDayOfWeek, mlfeatures.PickupMonth}
}

// Processor judges windows of features against the champions' references.
// It keeps state between records and is not safe for concurrent use; the
// runner calls it from one goroutine.
type Processor struct {
	cfg     Config
	models  *champions.Set
	windows map[string]*window
}

type window struct {
	version     string
	w           *drift.Window
	x           []float32
	first, last string
	start, end  time.Time
}

// New returns a processor for the models of set.
func New(cfg Config, set *champions.Set) *Processor {
	return &Processor{cfg: cfg.WithDefaults(), models: set, windows: map[string]*window{}}
}

// Topics the processor consumes.
func (p *Processor) Topics() []string { return []string{contracts.TopicFeaturesRealtime} }

// Process adds a record to every model's window and emits an alert for each
// full window that drifted.
func (p *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	f, err := contracts.Decode[contracts.Features](in.Value)
	if err != nil {
		return nil, err
	}
	row := rides.Row(f)
	var out []*kgo.Record
	for _, name := range p.models.Names() {
		m := p.models.Get(name)
		if m == nil || m.Profile == nil {
			continue // no reference to compare with yet
		}
		w := p.windows[name]
		if w == nil || w.version != m.Version {
			w = &window{version: m.Version, w: m.Profile.NewWindow(), x: make([]float32, m.Spec.Len())}
			p.windows[name] = w
		}
		m.Spec.Vector(&row, w.x)
		w.w.Add(w.x)
		if w.first == "" {
			w.first, w.start = f.TripID, f.Timestamp
		}
		w.last = f.TripID
		if f.Timestamp.After(w.end) {
			w.end = f.Timestamp
		}
		if f.Timestamp.Before(w.start) {
			w.start = f.Timestamp
		}
		if w.w.N() < p.cfg.WindowSize {
			continue
		}
		alert := p.judge(m, w)
		p.windows[name] = nil
		if alert == nil {
			continue
		}
		b, err := contracts.Encode(alert)
		if err != nil {
			return nil, err
		}
		out = append(out, &kgo.Record{Topic: contracts.TopicDataQualityAlerts, Key: []byte(alert.AlertID), Value: b})
	}
	return out, nil
}

// judge computes the window's PSI per feature and returns an alert when the
// largest reaches the warning threshold.
func (p *Processor) judge(m *champions.Model, w *window) *contracts.DataQualityAlert {
	psi := w.w.PSI()
	scores := make(map[string]float64, len(psi))
	var affected []string
	top := 0.0
	for i, v := range psi {
		name := m.Profile.Features[i].Name
		if slices.Contains(p.cfg.Exclude, name) {
			continue
		}
		scores[name] = v
		if v >= p.cfg.Warning {
			affected = append(affected, name)
		}
		top = max(top, v)
	}
	if top < p.cfg.Warning {
		return nil
	}
	sort.Slice(affected, func(i, j int) bool { return scores[affected[i]] > scores[affected[j]] })
	severity := contracts.SeverityWarning
	if top >= p.cfg.Critical {
		severity = contracts.SeverityCritical
	}
	n := w.w.N()
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%s|%d", m.Name, m.Version, w.first, w.last, n))
	parts := make([]string, len(affected))
	for i, a := range affected {
		parts[i] = fmt.Sprintf("%s %.3f", a, scores[a])
	}
	return &contracts.DataQualityAlert{
		AlertID:          "dq-" + hex.EncodeToString(h[:8]),
		Timestamp:        w.end,
		AlertType:        contracts.AlertTypeDrift,
		Severity:         severity,
		Message:          fmt.Sprintf("%s drift against %s/%s over %d records: PSI %s", severity, m.Name, m.Version, n, strings.Join(parts, ", ")),
		ModelName:        m.Name,
		ModelVersion:     m.Version,
		AffectedFeatures: affected,
		Scores:           scores,
		DriftScore:       top,
		Threshold:        p.cfg.Warning,
		WindowSize:       n,
		WindowStart:      w.start,
		WindowEnd:        w.end,
	}
}
