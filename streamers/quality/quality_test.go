package quality_test

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
)

const window = 400

type fixture struct {
	fare *training.Candidate
	// clean and drifted are the same rides as features records, drifted
	// with trip distances in kilometres.
	clean, drifted []*kgo.Record
}

var fixtures = sync.OnceValues(func() (*fixture, error) {
	loc, err := time.LoadLocation("America/Chicago")
	if err != nil {
		return nil, err
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		return nil, err
	}
	rows, err := system.SampleRows(loc)
	if err != nil {
		return nil, err
	}
	rows = rows[:2000]
	m, err := training.Lookup(training.Fare)
	if err != nil {
		return nil, err
	}
	fare, err := training.Fit(context.Background(), m, training.Examples(rows, areas, loc), nil)
	if err != nil {
		return nil, err
	}
	f := &fixture{fare: fare}
	// Every second ride of the training period: a window of the same
	// distribution as the reference, spread over the same months.
	for i := 0; i < len(rows) && len(f.clean) < 2*window; i += 2 {
		ride := rows[i].Ride
		f.clean = append(f.clean, record(&ride, areas, loc))
		km := *ride.TripDistance * 1.609
		ride.TripDistance = &km
		f.drifted = append(f.drifted, record(&ride, areas, loc))
	}
	return f, nil
})

func record(r *contracts.RawRide, areas *geo.Areas, loc *time.Location) *kgo.Record {
	row := features.Transform(rides.FeatureTrip(r, areas), loc)
	msg := rides.FeaturesMessage(r.TripID, r.PickupDatetime, &row)
	b, err := contracts.Encode(&msg)
	if err != nil {
		panic(err)
	}
	return &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Key: []byte(r.TripID), Value: b}
}

func setup(t testing.TB) (*fixture, *champions.Set) {
	t.Helper()
	f, err := fixtures()
	if err != nil {
		t.Fatal(err)
	}
	if len(f.clean) != 2*window {
		t.Fatalf("%d clean records, want %d", len(f.clean), 2*window)
	}
	set := champions.New(nil, training.ModelNames(), "quality", champions.NewMetrics(nil), slog.New(slog.DiscardHandler))
	set.Serve(fareModel(f, "v-fare-1"), "test")
	return f, set
}

func fareModel(f *fixture, version string) *training.Loaded {
	return &training.Loaded{Name: training.Fare, Version: version, Eval: f.fare.Model, Spec: f.fare.Spec,
		Profile: f.fare.Profile, Metrics: f.fare.Metrics}
}

// feed processes records in order and returns the alerts, failing on an
// error; at[i] is the index of the record that produced alert i.
func feed(t *testing.T, p *quality.Processor, recs []*kgo.Record) (alerts []*contracts.DataQualityAlert, raw []*kgo.Record, at []int) {
	t.Helper()
	for i, r := range recs {
		out, err := p.Process(context.Background(), r)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		for _, o := range out {
			if o.Topic != contracts.TopicDataQualityAlerts {
				t.Errorf("record %d: output to %s", i, o.Topic)
			}
			a, err := contracts.Decode[contracts.DataQualityAlert](o.Value)
			if err != nil {
				t.Fatalf("record %d: invalid alert: %v\n%s", i, err, o.Value)
			}
			if string(o.Key) != a.AlertID {
				t.Errorf("alert keyed %q, its id is %q", o.Key, a.AlertID)
			}
			alerts, raw, at = append(alerts, a), append(raw, o), append(at, i)
		}
	}
	return alerts, raw, at
}

func TestCleanWindowsRaiseNoAlert(t *testing.T) {
	f, set := setup(t)
	p := quality.New(quality.Config{WindowSize: window}, set)
	if got, want := p.Topics(), []string{contracts.TopicFeaturesRealtime, contracts.TopicRidesRaw}; !slices.Equal(got, want) {
		t.Errorf("Topics = %q, want %q", got, want)
	}
	if got := quality.New(quality.Config{Raw: quality.RawConfig{Disabled: true}}, set).Topics(); !slices.Equal(got, []string{contracts.TopicFeaturesRealtime}) {
		t.Errorf("Topics without raw checks = %q", got)
	}
	alerts, _, _ := feed(t, p, f.clean)
	for _, a := range alerts {
		t.Errorf("alert on clean data: %s", a.Message)
	}
}

func TestDriftedWindowRaisesOneAlert(t *testing.T) {
	f, set := setup(t)
	p := quality.New(quality.Config{WindowSize: window}, set)
	recs := f.drifted[:window]
	alerts, raw, at := feed(t, p, recs)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts for one drifted window, want 1", len(alerts))
	}
	if at[0] != window-1 {
		t.Errorf("alert after record %d, want only when the window is full (record %d)", at[0], window-1)
	}
	a := alerts[0]
	if a.Severity != contracts.SeverityCritical || a.AlertType != contracts.AlertTypeDrift {
		t.Errorf("severity %q, type %q; want critical %s", a.Severity, a.AlertType, contracts.AlertTypeDrift)
	}
	if a.ModelName != training.Fare || a.ModelVersion != "v-fare-1" {
		t.Errorf("alert about %s/%s, want fare/v-fare-1", a.ModelName, a.ModelVersion)
	}
	if !slices.Contains(a.AffectedFeatures, features.TripMiles) {
		t.Errorf("affected features %q lack %s", a.AffectedFeatures, features.TripMiles)
	}
	top := 0.0
	for name, s := range a.Scores {
		top = max(top, s)
		if !slices.Contains(f.fare.Spec.Names, name) {
			t.Errorf("score for %q, not a feature of the model", name)
		}
	}
	if a.DriftScore != top || a.DriftScore < 0.25 {
		t.Errorf("drift_score %v, the largest score is %v (want it over the critical 0.25)", a.DriftScore, top)
	}
	t.Logf("scores of the window in kilometres: %v", a.Scores)
	for _, cal := range quality.DefaultExclude() {
		if _, ok := a.Scores[cal]; ok {
			t.Errorf("calendar feature %s is scored", cal)
		}
		if slices.Contains(a.AffectedFeatures, cal) {
			t.Errorf("calendar feature %s is affected", cal)
		}
	}
	if len(a.Scores) != len(f.fare.Spec.Names)-len(quality.DefaultExclude()) {
		t.Errorf("%d scores for %d features less %d calendar ones", len(a.Scores), len(f.fare.Spec.Names), len(quality.DefaultExclude()))
	}
	// Affected: a decisive statistic at or over its warning threshold, the
	// largest PSI first.
	cfg := quality.Config{}.WithDefaults()
	for i, name := range a.AffectedFeatures {
		if !overWarning(cfg, a.Statistics[name]) {
			t.Errorf("%s affected with statistics %v under every threshold", name, a.Statistics[name])
		}
		if i > 0 && a.Scores[name] > a.Scores[a.AffectedFeatures[i-1]] {
			t.Errorf("affected features not by descending score: %q", a.AffectedFeatures)
		}
	}
	for name, st := range a.Statistics {
		if overWarning(cfg, st) && !slices.Contains(a.AffectedFeatures, name) {
			t.Errorf("%s has statistics %v over a threshold but is not affected", name, st)
		}
	}
	// Every judged feature has its statistics, PSI equal to its score.
	for name, score := range a.Scores {
		st := a.Statistics[name]
		want := []string{"psi", "ks", "ks_pvalue", "wasserstein", "wasserstein_norm"}
		if k, _ := features.KindOf(name); k == features.Categorical {
			want = []string{"psi", "js", "chi2", "chi2_pvalue", "chi2_dof"}
		}
		for _, k := range want {
			if _, ok := st[k]; !ok {
				t.Errorf("%s lacks %s: %v", name, k, st)
			}
		}
		if st["psi"] != score {
			t.Errorf("%s: statistics psi %v, score %v", name, st["psi"], score)
		}
	}
	if len(a.Statistics) != len(a.Scores) {
		t.Errorf("statistics for %d features, scores for %d", len(a.Statistics), len(a.Scores))
	}
	t.Logf("statistics of the window in kilometres: %v", a.Statistics)
	if a.Threshold != 0.1 || a.WindowSize != window {
		t.Errorf("threshold %v, window %d; want 0.1, %d", a.Threshold, a.WindowSize, window)
	}
	// The window's event-time span.
	var first, last time.Time
	for _, r := range recs {
		m, err := contracts.Decode[contracts.Features](r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if first.IsZero() || m.Timestamp.Before(first) {
			first = m.Timestamp
		}
		if m.Timestamp.After(last) {
			last = m.Timestamp
		}
	}
	if !a.WindowStart.Equal(first) || !a.WindowEnd.Equal(last) || !a.Timestamp.Equal(last) {
		t.Errorf("window %v … %v at %v, want %v … %v", a.WindowStart, a.WindowEnd, a.Timestamp, first, last)
	}

	// The same input gives the same alert: a redelivered window is
	// recognisably a duplicate.
	again, rawAgain, _ := feed(t, quality.New(quality.Config{WindowSize: window}, set), recs)
	if len(again) != 1 || again[0].AlertID != a.AlertID || !bytes.Equal(rawAgain[0].Value, raw[0].Value) {
		t.Errorf("replaying the window gave %d alerts, first id %q; want the same alert %q", len(again), idOf(again), a.AlertID)
	}
	// A different window (other rides) gets another id.
	other, _, _ := feed(t, quality.New(quality.Config{WindowSize: window}, set), f.drifted[window:])
	if len(other) != 1 || other[0].AlertID == a.AlertID {
		t.Errorf("the next window of drifted rides gave %d alerts with id %q, want one with an id other than %q", len(other), idOf(other), a.AlertID)
	}
}

func idOf(as []*contracts.DataQualityAlert) string {
	if len(as) == 0 {
		return ""
	}
	return as[0].AlertID
}

func TestEachFullWindowIsJudgedOnce(t *testing.T) {
	f, set := setup(t)
	p := quality.New(quality.Config{WindowSize: window}, set)
	alerts, _, at := feed(t, p, f.drifted)
	if len(alerts) != 2 || at[0] != window-1 || at[1] != 2*window-1 {
		t.Fatalf("alerts after records %v, want after %d and %d", at, window-1, 2*window-1)
	}
	if alerts[0].AlertID == alerts[1].AlertID {
		t.Errorf("two windows share alert id %s", alerts[0].AlertID)
	}
}

func TestNewChampionResetsTheWindow(t *testing.T) {
	f, set := setup(t)
	p := quality.New(quality.Config{WindowSize: window}, set)
	half := window / 2
	if alerts, _, _ := feed(t, p, f.drifted[:half]); len(alerts) != 0 {
		t.Fatalf("%d alerts before the window is full", len(alerts))
	}
	set.Serve(fareModel(f, "v-fare-2"), "model-updates from test")
	// Counting on from the old window would alert half a window from now;
	// the new champion's window is full only after a whole one.
	alerts, _, at := feed(t, p, f.drifted[half:half+window])
	if len(alerts) != 1 || at[0] != window-1 {
		t.Fatalf("after the swap: alerts after records %v of the new window, want one after %d", at, window-1)
	}
	if alerts[0].ModelVersion != "v-fare-2" || alerts[0].WindowSize != window {
		t.Errorf("alert against %s over %d records, want v-fare-2 over %d", alerts[0].ModelVersion, alerts[0].WindowSize, window)
	}
}

func TestModelsWithoutProfileAreSkipped(t *testing.T) {
	f, set := setup(t)
	m := fareModel(f, "v-no-profile")
	m.Profile = nil
	set.Serve(m, "test")
	p := quality.New(quality.Config{WindowSize: window}, set)
	if alerts, _, _ := feed(t, p, f.drifted); len(alerts) != 0 {
		t.Errorf("%d alerts without a reference profile", len(alerts))
	}
}

func TestInvalidFeaturesAreInvalid(t *testing.T) {
	_, set := setup(t)
	p := quality.New(quality.Config{}, set)
	for _, v := range []string{`not json`, `{"schema_version":1,"trip_id":"t1"}`} {
		_, err := p.Process(context.Background(), &kgo.Record{Topic: contracts.TopicFeaturesRealtime, Value: []byte(v)})
		if !contracts.IsInvalid(err) {
			t.Errorf("%s: error %v, want an invalid-record error", v, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := quality.Config{}.WithDefaults()
	if c.WindowSize != 500 || c.Warning != 0.1 || c.Critical != 0.25 || !slices.Equal(c.Exclude, quality.DefaultExclude()) {
		t.Errorf("defaults %+v", c)
	}
	if c.WassersteinWarning != 0.1 || c.WassersteinCritical != 0.2 || c.JSWarning != 0.15 || c.JSCritical != 0.25 ||
		c.MaxRawValues != 1000 || c.SuppressDriftWindows != 0 {
		t.Errorf("drift defaults %+v", c)
	}
	r := c.Raw
	if r.Disabled || r.WindowSize != 500 || r.Warning != 0.01 || r.Critical != 0.05 || r.NullRateWarning != 0.05 ||
		r.NullRateCritical != 0.2 || r.NullRateSigmas != 6 || r.SuppressWindows != 10 || len(r.NullRates) != len(quality.NullableFields()) {
		t.Errorf("raw defaults %+v", r)
	}
	l := r.Limits
	if l.MaxFare != 1000 || l.MaxMiles != 500 || l.MaxSeconds != 86400 || l.MaxPassengers != 10 ||
		l.MinLat != 41.3 || l.MaxLat != 42.4 || l.MinLon != -88.4 || l.MaxLon != -87.3 {
		t.Errorf("limits %+v", l)
	}
	if c := (quality.Config{WindowSize: 300, Raw: quality.RawConfig{SuppressWindows: -1}}).WithDefaults(); c.Raw.WindowSize != 300 || c.Raw.SuppressWindows != 0 {
		t.Errorf("raw window %d, suppress %d; want the drift window and 0", c.Raw.WindowSize, c.Raw.SuppressWindows)
	}
	want := []string{features.PickupHour, features.PickupDayOfWeek, features.PickupMonth}
	if !slices.Equal(quality.DefaultExclude(), want) {
		t.Errorf("DefaultExclude = %q, want %q", quality.DefaultExclude(), want)
	}
	// An explicit empty list judges every feature.
	if c := (quality.Config{Exclude: []string{}}).WithDefaults(); len(c.Exclude) != 0 {
		t.Errorf("an empty Exclude became %q", c.Exclude)
	}
}

func TestExcludeNothingScoresCalendarFeatures(t *testing.T) {
	f, set := setup(t)
	p := quality.New(quality.Config{WindowSize: window, Exclude: []string{}}, set)
	alerts, _, _ := feed(t, p, f.drifted[:window])
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want 1", len(alerts))
	}
	for _, n := range f.fare.Spec.Names {
		if _, ok := alerts[0].Scores[n]; !ok {
			t.Errorf("no score for %s with nothing excluded", n)
		}
	}
}

func TestThresholds(t *testing.T) {
	f, set := setup(t)
	for _, c := range []struct {
		name              string
		warning, critical float64
		want              string // severity, "" for no alert
	}{
		{"defaults", 0, 0, contracts.SeverityCritical},
		{"under critical", 0.1, 5, contracts.SeverityWarning},
		{"under warning", 5, 10, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// PSI only: the other tests are off.
			inf := math.Inf(1)
			p := quality.New(quality.Config{WindowSize: window, Warning: c.warning, Critical: c.critical,
				WassersteinWarning: inf, WassersteinCritical: inf, JSWarning: inf, JSCritical: inf}, set)
			alerts, _, _ := feed(t, p, f.drifted[:window])
			switch {
			case c.want == "" && len(alerts) != 0:
				t.Errorf("%d alerts, want none: %s", len(alerts), alerts[0].Message)
			case c.want != "" && len(alerts) != 1:
				t.Errorf("%d alerts, want 1", len(alerts))
			case c.want != "" && alerts[0].Severity != c.want:
				t.Errorf("severity %s, want %s", alerts[0].Severity, c.want)
			}
		})
	}
}

// overWarning reports whether a feature's statistics reach a warning
// threshold of a decisive test.
func overWarning(c quality.Config, st map[string]float64) bool {
	return st["psi"] >= c.Warning || st["wasserstein_norm"] >= c.WassersteinWarning || st["js"] >= c.JSWarning
}
