// Package quality is the data-quality streamer. It watches two things:
//
//   - Drift of the features: a count window of live feature records per
//     model, compared with the reference profile stored with the model's
//     champion, feature by feature.
//   - Health of the raw rides: a count window of taxi-rides-raw records,
//     checked for schema failures, missing required fields, out-of-range
//     values and null rates above a reference's.
//
// Windows count records, not time: the city's sample is sparse in event
// time (about ten trips a day) and replays compress time at will, while the
// precision of a statistic depends on how many records it sees. A window is
// judged once, when full, so there is at most one alert per window, model
// and alert type; a new champion brings a new reference and starts a new
// drift window.
//
// # Drift statistics
//
// Every judged feature gets its PSI (the alert's scores, and drift_score,
// the largest, which the drift monitor's policy reads). Numeric features
// also get Wasserstein-1 and Kolmogorov–Smirnov, categorical ones
// Jensen–Shannon and χ², all in the alert's statistics:
//
//   - psi: population stability index over the reference's bins.
//   - wasserstein, wasserstein_norm: W1 between the window's values (kept,
//     at most MaxRawValues per feature) and the reference over the
//     reference's central range (its outermost cut points: the 10th to
//     90th percentile with 10 bins), in the feature's units and divided by
//     that range — the mean gap between the two CDFs there. The profile
//     keeps bins, not values, so the reference CDF is interpolated
//     linearly within its bins; clipping to the central range keeps the
//     unknown tails out (PSI sees mass moving into them).
//   - ks, ks_pvalue: KS statistic at the reference's cut points, where both
//     CDFs are known exactly (a lower bound of the full statistic), and
//     its asymptotic p-value (conservative). Reported, not decisive: with
//     hundreds of records a real stream's p-values are tiny whatever its
//     health (the city's data drifts by itself over the years).
//   - js: Jensen–Shannon distance (natural log, in [0, 0.83]).
//   - chi2, chi2_pvalue, chi2_dof: χ² test of homogeneity of the counts.
//     Reported, not decisive, for the same reason as KS.
//
// A feature is affected when its PSI reaches Warning, or its
// wasserstein_norm reaches WassersteinWarning (numeric), or its js reaches
// JSWarning (categorical); its severity is critical when one reaches its
// critical threshold. Defaults and their reading are on Config.
//
// # Raw rides
//
// Malformed raw rides are the features streamer's dead letters. The
// quality streamer does not dead-letter them again: it decodes leniently
// and counts each record's problems in its raw window — a schema failure
// (not JSON, wrong types, unsupported schema version), missing required
// fields, out-of-range values, nulls — and alerts on rates. Raw findings
// are about the input, not a model, but an alert must name a model (the
// bridge routes by it), so each is published once per model of the set,
// with drift_score 0: they are evidence for people, not for retraining.
//
// # Rate limiting
//
// After an alert names a feature (or raw field), the same (model, feature,
// alert type) is not named again for the next SuppressDriftWindows drift
// windows, or Raw.SuppressWindows raw windows, unless its severity rises
// (warning → critical). A window whose findings are all suppressed raises
// no alert; otherwise the alert names the features not suppressed (scores
// and statistics keep every feature). A new champion clears its model's
// drift suppression: a new reference is a new question.
//
// # Transactions
//
// Windows and rate limits are state across batches: the processor
// implements stream.Stateful, snapshotting its state when a batch first
// changes it and restoring the snapshot when the batch's transaction
// aborts, so a batch processed again produces the same alerts (their ids
// are hashes of what they judged).
package quality

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math"
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
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
)

// Config sets the windows and the thresholds. Zero fields take the
// defaults; a threshold of +Inf turns that test off.
type Config struct {
	// Exclude lists features not judged for drift. By default the calendar
	// features: a window covers a stretch of time, so its hours, weekdays
	// and months differ from a reference covering all of them whatever the
	// health of the data.
	Exclude []string
	// WindowSize records per drift judgement (default 500).
	WindowSize int
	// Warning and Critical PSI thresholds (defaults 0.1 and 0.25, the usual
	// reading of PSI: under 0.1 no shift, over 0.25 a major one).
	Warning, Critical float64
	// WassersteinWarning and WassersteinCritical bound wasserstein_norm,
	// W1 over the reference's central range divided by that range: the
	// mean gap between the window's and the reference's CDFs across the
	// reference's 10th–90th percentile spread (defaults 0.1 and 0.2: ten
	// and twenty percentage points on average; KS is the largest gap).
	// Clean windows of the shipped sample against a reference of the same
	// period score 0.01–0.045 with 200 to 400 records.
	WassersteinWarning, WassersteinCritical float64
	// JSWarning and JSCritical bound the Jensen–Shannon distance of
	// categorical features (defaults 0.15 and 0.25). For small shifts
	// JS ≈ √(PSI/8), so they correspond to PSI ≈ 0.18 and 0.5: less eager
	// than PSI on the 30-odd community areas, where a clean window of a
	// few hundred records scores PSI near 0.1 by sampling noise alone
	// (JS ≤ 0.105 at 400 records), while a category mix that really moved
	// still alerts when PSI's 1e-4 floor for empty bins blunts it.
	JSWarning, JSCritical float64
	// MaxRawValues bounds the values a drift window keeps per numeric
	// feature for Wasserstein (default 1000); a larger window keeps every
	// k-th value, k = ⌈WindowSize/MaxRawValues⌉.
	MaxRawValues int
	// SuppressDriftWindows is how many drift windows after an alert naming
	// a feature the same (model, feature) is not named again unless its
	// severity rises (default 0: every window alerts). The drift monitor
	// counts alerts as evidence (min_evidence) and debounces retraining
	// with its cooldown; suppressing repeats here would starve it, so turn
	// this on only with a monitor policy that needs one alert.
	SuppressDriftWindows int
	// Raw configures the raw-ride checks.
	Raw RawConfig
}

// RawConfig configures the checks of raw rides.
type RawConfig struct {
	// Disabled turns the raw-ride checks off: taxi-rides-raw is not
	// consumed.
	Disabled bool
	// WindowSize raw records per judgement (default: Config.WindowSize).
	WindowSize int
	// Warning and Critical are the shares of a window's records with a
	// schema failure, a missing required field, or an out-of-range value
	// of one field (defaults 0.01 and 0.05: 5 and 25 records of 500).
	Warning, Critical float64
	// NullRates are the reference null rates by field (NullableFields;
	// default DefaultNullRates, the shipped sample's). A field not listed
	// has reference 0.
	NullRates map[string]float64
	// NullRateWarning and NullRateCritical are the rises of a field's null
	// rate over its reference that alert (defaults 0.05 and 0.2), provided
	// the rise is also NullRateSigmas binomial standard errors of the
	// window (default 6). Six, not three: the real data's null rates move
	// with the years (company is missing from 34 % of the sample's rides
	// and from up to 44 % of one of its windows of 500: 4.6 standard
	// errors; windows of coordinates and durations reach 3.5 to 4).
	NullRateWarning, NullRateCritical float64
	NullRateSigmas                    float64
	// Limits are the plausible ranges of values.
	Limits Limits
	// SuppressWindows is how many raw windows after an alert naming a
	// field the same (model, field, alert type) is not named again unless
	// its severity rises (default 10; negative: never suppressed).
	SuppressWindows int
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Exclude == nil {
		c.Exclude = DefaultExclude()
	}
	if c.WindowSize <= 0 {
		c.WindowSize = 500
	}
	def := func(v *float64, d float64) {
		if *v <= 0 || math.IsNaN(*v) {
			*v = d
		}
	}
	def(&c.Warning, 0.1)
	def(&c.Critical, 0.25)
	def(&c.WassersteinWarning, 0.1)
	def(&c.WassersteinCritical, 0.2)
	def(&c.JSWarning, 0.15)
	def(&c.JSCritical, 0.25)
	if c.MaxRawValues <= 0 {
		c.MaxRawValues = 1000
	}
	c.SuppressDriftWindows = max(c.SuppressDriftWindows, 0)
	r := &c.Raw
	if r.WindowSize <= 0 {
		r.WindowSize = c.WindowSize
	}
	def(&r.Warning, 0.01)
	def(&r.Critical, 0.05)
	if r.NullRates == nil {
		r.NullRates = DefaultNullRates()
	}
	def(&r.NullRateWarning, 0.05)
	def(&r.NullRateCritical, 0.2)
	def(&r.NullRateSigmas, 6)
	r.Limits = r.Limits.withDefaults()
	switch {
	case r.SuppressWindows == 0:
		r.SuppressWindows = 10
	case r.SuppressWindows < 0:
		r.SuppressWindows = 0
	}
	return c
}

// DefaultExclude are the calendar features.
func DefaultExclude() []string {
	return []string{mlfeatures.PickupHour, mlfeatures.PickupDayOfWeek, mlfeatures.PickupMonth}
}

// Processor judges windows of features against the champions' references
// and windows of raw rides against the raw checks. It is not safe for
// concurrent use; the runner calls it from one goroutine.
type Processor struct {
	cfg    Config
	models *champions.Set
	st     *state
	// saved is the state before the current batch changed it, nil when
	// unchanged since the last checkpoint.
	saved   *state
	scratch map[string][]float32 // a feature vector per model
}

// state is everything that must follow the transaction.
type state struct {
	windows  map[string]*window // drift, by model
	raw      *rawWindow
	sent     map[sentKey]sent
	driftSeq map[string]int    // drift windows judged, by model
	versions map[string]string // the champion version judged, by model
	rawSeq   int               // raw windows judged
}

type sentKey struct{ model, typ, field string }

// sent is the last alert naming a key: its level and the sequence number
// of the window that raised it.
type sent struct{ level, seq int }

func newState() *state {
	return &state{windows: map[string]*window{}, raw: newRawWindow(), sent: map[sentKey]sent{},
		driftSeq: map[string]int{}, versions: map[string]string{}}
}

func (s *state) clone() *state {
	c := &state{
		windows:  make(map[string]*window, len(s.windows)),
		raw:      s.raw.clone(),
		sent:     maps.Clone(s.sent),
		driftSeq: maps.Clone(s.driftSeq),
		versions: maps.Clone(s.versions),
		rawSeq:   s.rawSeq,
	}
	for k, w := range s.windows {
		c.windows[k] = w.clone()
	}
	return c
}

// window is one model's drift window: bin counts per feature over the
// champion's profile, and the kept values of numeric features.
type window struct {
	profile     *drift.Profile
	counts      [][]float64 // by feature, over its profile's bins
	values      [][]float64 // by feature: kept values of judged numeric features, else nil
	n           int
	first, last string
	start, end  time.Time
}

func (p *Processor) newWindow(m *champions.Model) *window {
	w := &window{profile: m.Profile,
		counts: make([][]float64, len(m.Profile.Features)), values: make([][]float64, len(m.Profile.Features))}
	for i := range m.Profile.Features {
		f := &m.Profile.Features[i]
		w.counts[i] = make([]float64, len(f.Counts))
		if f.Kind == drift.Numeric && !slices.Contains(p.cfg.Exclude, f.Name) {
			w.values[i] = make([]float64, 0, min(p.cfg.WindowSize, p.cfg.MaxRawValues))
		}
	}
	return w
}

func (w *window) clone() *window {
	c := *w
	c.counts = make([][]float64, len(w.counts))
	c.values = make([][]float64, len(w.values))
	for i := range w.counts {
		c.counts[i] = slices.Clone(w.counts[i])
		if w.values[i] != nil {
			c.values[i] = slices.Clone(w.values[i])
		}
	}
	return &c
}

// New returns a processor for the models of set.
func New(cfg Config, set *champions.Set) *Processor {
	return &Processor{cfg: cfg.WithDefaults(), models: set, st: newState(), scratch: map[string][]float32{}}
}

// Topics the processor consumes: the features, and the raw rides unless
// their checks are disabled.
func (p *Processor) Topics() []string {
	if p.cfg.Raw.Disabled {
		return []string{contracts.TopicFeaturesRealtime}
	}
	return []string{contracts.TopicFeaturesRealtime, contracts.TopicRidesRaw}
}

// Checkpoint makes the state so far permanent: its batch committed
// (stream.Stateful).
func (p *Processor) Checkpoint() { p.saved = nil }

// Rollback restores the state of the last checkpoint: the batch's
// transaction aborted and its records will be processed again
// (stream.Stateful).
func (p *Processor) Rollback() {
	if p.saved != nil {
		p.st, p.saved = p.saved, nil
	}
}

// changing snapshots the state before the first change of a batch.
func (p *Processor) changing() {
	if p.saved == nil {
		p.saved = p.st.clone()
	}
}

// StateEntries counts the records held in windows (stream.Sized).
func (p *Processor) StateEntries() int {
	n := p.st.raw.n
	for _, w := range p.st.windows {
		n += w.n
	}
	return n
}

// Process adds a record to its windows and emits an alert for each full
// window with findings not suppressed.
func (p *Processor) Process(_ context.Context, in *kgo.Record) ([]*kgo.Record, error) {
	switch in.Topic {
	case contracts.TopicFeaturesRealtime:
		return p.features(in)
	case contracts.TopicRidesRaw:
		if !p.cfg.Raw.Disabled {
			return p.rawRide(in)
		}
	}
	return nil, stream.Permanent(fmt.Errorf("topic %s is not an input of the quality streamer", in.Topic))
}

func (p *Processor) features(in *kgo.Record) ([]*kgo.Record, error) {
	f, err := contracts.Decode[contracts.Features](in.Value)
	if err != nil {
		return nil, err
	}
	p.changing()
	row := rides.Row(f)
	var out []*kgo.Record
	for _, name := range p.models.Names() {
		m := p.models.Get(name)
		if m == nil || m.Profile == nil || len(m.Profile.Features) != m.Spec.Len() {
			continue // no reference to compare with (yet)
		}
		if p.st.versions[name] != m.Version {
			// A new champion: a new reference, a new window, and what was
			// alerted about the old one is no reason to hold back.
			p.st.versions[name] = m.Version
			delete(p.st.windows, name)
			p.forget(name, contracts.AlertTypeDrift)
		}
		w := p.st.windows[name]
		if w == nil {
			w = p.newWindow(m)
			p.st.windows[name] = w
		}
		x := p.scratch[name]
		if len(x) != m.Spec.Len() {
			x = make([]float32, m.Spec.Len())
			p.scratch[name] = x
		}
		m.Spec.Vector(&row, x)
		stride := (p.cfg.WindowSize + p.cfg.MaxRawValues - 1) / p.cfg.MaxRawValues
		for i := range m.Profile.Features {
			v := float64(x[i])
			fp := &m.Profile.Features[i]
			w.counts[i][fp.Bin(v)]++
			if w.values[i] != nil && !math.IsNaN(v) && w.n%stride == 0 && len(w.values[i]) < p.cfg.MaxRawValues {
				w.values[i] = append(w.values[i], v)
			}
		}
		w.n++
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
		if w.n < p.cfg.WindowSize {
			continue
		}
		delete(p.st.windows, name)
		p.st.driftSeq[name]++
		alert := p.judge(m, w, p.st.driftSeq[name])
		if alert == nil {
			continue
		}
		rec, err := alertRecord(alert)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// forget drops the rate limits of a model's alert type.
func (p *Processor) forget(model, typ string) {
	for k := range p.st.sent {
		if k.model == model && k.typ == typ {
			delete(p.st.sent, k)
		}
	}
}

// allowed reports whether a finding may be alerted: not suppressed by an
// alert of the same key within the last `windows` windows at the same or a
// higher level.
func (p *Processor) allowed(k sentKey, lvl, seq, windows int) bool {
	prev, ok := p.st.sent[k]
	return !ok || seq-prev.seq > windows || lvl > prev.level
}

func alertRecord(a *contracts.DataQualityAlert) (*kgo.Record, error) {
	b, err := contracts.Encode(a)
	if err != nil {
		return nil, fmt.Errorf("encode alert %s: %w", a.AlertID, err)
	}
	return &kgo.Record{Topic: contracts.TopicDataQualityAlerts, Key: []byte(a.AlertID), Value: b}, nil
}

// featureDrift is one feature's statistics and verdict.
type featureDrift struct {
	name  string
	psi   float64
	stats map[string]float64
	level int
	why   []string
}

// judge computes every statistic of a full window and returns an alert
// when a feature not suppressed is affected.
func (p *Processor) judge(m *champions.Model, w *window, seq int) *contracts.DataQualityAlert {
	c := p.cfg
	var all []featureDrift
	scores := map[string]float64{}
	statistics := map[string]map[string]float64{}
	for i := range w.profile.Features {
		f := &w.profile.Features[i]
		if slices.Contains(c.Exclude, f.Name) {
			continue
		}
		counts := w.counts[i]
		d := featureDrift{name: f.Name, psi: f.PSI(counts), stats: map[string]float64{}}
		put := func(k string, v float64) {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				d.stats[k] = v
			}
		}
		put("psi", d.psi)
		if l := level(d.psi, c.Warning, c.Critical); l > 0 {
			d.level = l
			d.why = append(d.why, fmt.Sprintf("PSI %.3f", d.psi))
		}
		switch f.Kind {
		case drift.Numeric:
			if ks, pv, ok := ksAtEdges(f, counts); ok {
				put("ks", ks)
				put("ks_pvalue", pv)
			}
			vals := slices.Clone(w.values[i])
			slices.Sort(vals)
			if wd, spread, ok := wasserstein(f, vals); ok {
				put("wasserstein", wd)
				if spread > 0 {
					norm := wd / spread
					put("wasserstein_norm", norm)
					if l := level(norm, c.WassersteinWarning, c.WassersteinCritical); l > 0 {
						d.level = max(d.level, l)
						d.why = append(d.why, fmt.Sprintf("W1/range %.3f", norm))
					}
				}
			}
		case drift.Categorical:
			js := f.JensenShannon(counts)
			put("js", js)
			if l := level(js, c.JSWarning, c.JSCritical); l > 0 {
				d.level = max(d.level, l)
				d.why = append(d.why, fmt.Sprintf("JS %.3f", js))
			}
			chi2, pv, dof := f.ChiSquare(counts)
			put("chi2", chi2)
			put("chi2_pvalue", pv)
			put("chi2_dof", float64(dof))
		}
		if _, ok := d.stats["psi"]; ok {
			scores[f.Name] = d.psi
		}
		statistics[f.Name] = d.stats
		all = append(all, d)
	}
	top := 0.0
	for _, s := range scores {
		top = max(top, s)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].psi > all[j].psi })
	var affected, held []string
	var parts []string
	severity := 0
	for _, d := range all {
		if d.level == 0 {
			continue
		}
		k := sentKey{m.Name, contracts.AlertTypeDrift, d.name}
		if !p.allowed(k, d.level, seq, c.SuppressDriftWindows) {
			held = append(held, d.name)
			continue
		}
		p.st.sent[k] = sent{level: d.level, seq: seq}
		affected = append(affected, d.name)
		parts = append(parts, d.name+" "+strings.Join(d.why, ", "))
		severity = max(severity, d.level)
	}
	if len(affected) == 0 {
		return nil
	}
	sev := severityName(severity)
	msg := fmt.Sprintf("%s drift against %s/%s over %d records: %s", sev, m.Name, m.Version, w.n, strings.Join(parts, "; "))
	if len(held) > 0 {
		msg += fmt.Sprintf(" (still drifting, alerted recently: %s)", strings.Join(held, ", "))
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%s|%s|%s|%s|%d", m.Name, m.Version, w.first, w.last, w.n))
	return &contracts.DataQualityAlert{
		AlertID:          "dq-" + hex.EncodeToString(h[:8]),
		Timestamp:        w.end,
		AlertType:        contracts.AlertTypeDrift,
		Severity:         sev,
		Message:          msg,
		ModelName:        m.Name,
		ModelVersion:     m.Version,
		AffectedFeatures: affected,
		Scores:           scores,
		Statistics:       statistics,
		DriftScore:       top,
		Threshold:        finiteOr0(c.Warning),
		WindowSize:       w.n,
		WindowStart:      w.start,
		WindowEnd:        w.end,
	}
}

// finiteOr0 keeps an alert encodable when a test is turned off (+Inf).
func finiteOr0(v float64) float64 {
	if math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}

func severityName(level int) string {
	if level >= 2 {
		return contracts.SeverityCritical
	}
	return contracts.SeverityWarning
}

// rawRide counts a raw record in the raw window and, when the window is
// full, alerts on its findings. It never fails: what is wrong with the
// record is what it counts.
func (p *Processor) rawRide(in *kgo.Record) ([]*kgo.Record, error) {
	p.changing()
	v := inspect(in.Value, p.cfg.Raw.Limits)
	w := p.st.raw
	w.add(v, string(in.Key), in.Timestamp)
	if w.n < p.cfg.Raw.WindowSize {
		return nil, nil
	}
	p.st.raw = newRawWindow()
	p.st.rawSeq++
	findings := p.judgeRaw(w)
	var out []*kgo.Record
	for _, name := range p.models.Names() {
		version := ""
		if m := p.models.Get(name); m != nil {
			version = m.Version
		}
		for _, typ := range contracts.AlertTypes() {
			a := p.rawAlert(name, version, typ, findings[typ], w)
			if a == nil {
				continue
			}
			rec, err := alertRecord(a)
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// rawAlert is the alert of one model and type over a raw window's
// findings, nil when there are none (or all are suppressed).
func (p *Processor) rawAlert(model, version, typ string, fs []finding, w *rawWindow) *contracts.DataQualityAlert {
	rc := p.cfg.Raw
	var affected, parts []string
	statistics := map[string]map[string]float64{}
	severity := 0
	for _, f := range fs {
		statistics[f.field] = f.stats
		k := sentKey{model, typ, f.field}
		if !p.allowed(k, f.level, p.st.rawSeq, rc.SuppressWindows) {
			continue
		}
		p.st.sent[k] = sent{level: f.level, seq: p.st.rawSeq}
		affected = append(affected, f.field)
		severity = max(severity, f.level)
		switch typ {
		case contracts.AlertTypeNullRate:
			parts = append(parts, fmt.Sprintf("%s null in %.1f%% (reference %.1f%%)", f.field, 100*f.stats["null_rate"], 100*f.stats["reference_null_rate"]))
		case contracts.AlertTypeOutOfRange:
			parts = append(parts, fmt.Sprintf("%s out of range in %.1f%% (%g … %g)", f.field, 100*f.stats["rate"], f.stats["min"], f.stats["max"]))
		default:
			parts = append(parts, fmt.Sprintf("%s in %.1f%%", f.field, 100*f.stats["rate"]))
		}
	}
	if len(affected) == 0 {
		return nil
	}
	threshold := rc.Warning
	what := map[string]string{
		contracts.AlertTypeSchema:          "records that do not decode",
		contracts.AlertTypeMissingRequired: "rides missing required fields",
		contracts.AlertTypeOutOfRange:      "values out of range",
		contracts.AlertTypeNullRate:        "null rates over the reference",
	}[typ]
	if typ == contracts.AlertTypeNullRate {
		threshold = rc.NullRateWarning
	}
	sev := severityName(severity)
	h := sha256.Sum256(fmt.Appendf(nil, "raw|%s|%s|%s|%s|%s|%d", typ, model, version, w.first, w.last, w.n))
	start, end := w.times()
	return &contracts.DataQualityAlert{
		AlertID:          "dq-" + hex.EncodeToString(h[:8]),
		Timestamp:        end,
		AlertType:        typ,
		Severity:         sev,
		Message:          fmt.Sprintf("%s: %s in %d raw rides: %s", sev, what, w.n, strings.Join(parts, "; ")),
		ModelName:        model,
		ModelVersion:     version,
		AffectedFeatures: affected,
		Statistics:       statistics,
		Threshold:        finiteOr0(threshold),
		WindowSize:       w.n,
		WindowStart:      start,
		WindowEnd:        end,
	}
}
