package quality_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
)

var (
	_ stream.Stateful = (*quality.Processor)(nil)
	_ stream.Sized    = (*quality.Processor)(nil)
)

var (
	inf  = math.Inf(1)
	tiny = math.SmallestNonzeroFloat64
)

// psiOnly turns the Wasserstein and Jensen–Shannon tests off.
func psiOnly(c quality.Config) quality.Config {
	c.WassersteinWarning, c.WassersteinCritical, c.JSWarning, c.JSCritical = inf, inf, inf, inf
	return c
}

// only returns the alerts of one type.
func only(as []*contracts.DataQualityAlert, typ string) []*contracts.DataQualityAlert {
	var out []*contracts.DataQualityAlert
	for _, a := range as {
		if a.AlertType == typ {
			out = append(out, a)
		}
	}
	return out
}

// largest returns the feature with the largest value of a statistic, and
// the value.
func largest(a *contracts.DataQualityAlert, stat string) (string, float64) {
	name, top := "", -1.0
	for _, f := range slices.Sorted(func(yield func(string) bool) {
		for k := range a.Statistics {
			if !yield(k) {
				return
			}
		}
	}) {
		if v, ok := a.Statistics[f][stat]; ok && v > top {
			name, top = f, v
		}
	}
	return name, top
}

// TestDriftThresholdBoundaries puts each decisive threshold exactly on the
// window's largest value of its statistic (which must alert: thresholds
// are reached at equality) and just above it (which must not).
func TestDriftThresholdBoundaries(t *testing.T) {
	f, set := setup(t)
	recs := f.drifted[:window]
	probe, _, _ := feed(t, quality.New(quality.Config{WindowSize: window, Warning: tiny}, set), recs)
	if len(probe) != 1 {
		t.Fatalf("%d probe alerts", len(probe))
	}
	off := quality.Config{WindowSize: window, Warning: inf, Critical: inf, WassersteinWarning: inf, WassersteinCritical: inf,
		JSWarning: inf, JSCritical: inf}
	for _, stat := range []string{"psi", "wasserstein_norm", "js"} {
		feature, v := largest(probe[0], stat)
		if feature == "" || v <= 0 {
			t.Fatalf("no %s in %v", stat, probe[0].Statistics)
		}
		set1 := func(c *quality.Config, warning, critical float64) {
			switch stat {
			case "psi":
				c.Warning, c.Critical = warning, critical
			case "wasserstein_norm":
				c.WassersteinWarning, c.WassersteinCritical = warning, critical
			case "js":
				c.JSWarning, c.JSCritical = warning, critical
			}
		}
		above := math.Nextafter(v, inf)
		for _, c := range []struct {
			name              string
			warning, critical float64
			want              string // severity, "" for no alert
		}{
			{"warning at the value", v, inf, contracts.SeverityWarning},
			{"warning just above", above, inf, ""},
			{"critical at the value", tiny, v, contracts.SeverityCritical},
			{"critical just above", tiny, above, contracts.SeverityWarning},
		} {
			t.Run(stat+"/"+c.name, func(t *testing.T) {
				cfg := off
				set1(&cfg, c.warning, c.critical)
				alerts, _, _ := feed(t, quality.New(cfg, set), recs)
				if c.want == "" {
					if len(alerts) != 0 {
						t.Errorf("alert with %s threshold just above %s's %v: %s", stat, feature, v, alerts[0].Message)
					}
					return
				}
				if len(alerts) != 1 {
					t.Fatalf("%d alerts, want 1", len(alerts))
				}
				a := alerts[0]
				if a.Severity != c.want || !slices.Contains(a.AffectedFeatures, feature) {
					t.Errorf("%s alert naming %q, want %s naming %s (%s %v)", a.Severity, a.AffectedFeatures, c.want, feature, stat, v)
				}
			})
		}
	}
}

func TestDriftRateLimiting(t *testing.T) {
	f, set := setup(t)
	recs := f.drifted[:window]
	t.Run("repeats are held for the configured windows", func(t *testing.T) {
		p := quality.New(quality.Config{WindowSize: window, SuppressDriftWindows: 1}, set)
		var got []int
		for range 4 {
			alerts, _, _ := feed(t, p, recs) // the same window again and again: the same findings
			got = append(got, len(alerts))
		}
		if !slices.Equal(got, []int{1, 0, 1, 0}) {
			t.Errorf("alerts per window %v, want [1 0 1 0]", got)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		p := quality.New(quality.Config{WindowSize: window}, set)
		for i := range 3 {
			if alerts, _, _ := feed(t, p, recs); len(alerts) != 1 {
				t.Errorf("window %d: %d alerts, want 1", i+1, len(alerts))
			}
		}
	})
	t.Run("a rising severity is alerted", func(t *testing.T) {
		mixed := append(slices.Clone(f.clean[:window/2]), f.drifted[window/2:window]...)
		top := func(rs []*kgo.Record) float64 {
			as, _, _ := feed(t, quality.New(psiOnly(quality.Config{WindowSize: window, Warning: tiny, Critical: inf}), set), rs)
			_, v := largest(as[0], "psi")
			return v
		}
		lo, hi := top(mixed), top(recs)
		if !(lo < hi) {
			t.Fatalf("the mixed window's PSI %v is not under the drifted one's %v", lo, hi)
		}
		cfg := psiOnly(quality.Config{WindowSize: window, Warning: 0.05, Critical: (lo + hi) / 2, SuppressDriftWindows: 10})
		p := quality.New(cfg, set)
		first, _, _ := feed(t, p, mixed)
		if len(first) != 1 || first[0].Severity != contracts.SeverityWarning {
			t.Fatalf("the mixed window: %d alerts %v", len(first), first)
		}
		second, _, _ := feed(t, p, recs)
		if len(second) != 1 || second[0].Severity != contracts.SeverityCritical {
			t.Fatalf("the drifted window after it: %d alerts, want one critical", len(second))
		}
		// Only features that rose to critical, or were not named before,
		// are named again.
		for _, name := range second[0].AffectedFeatures {
			if second[0].Scores[name] < cfg.Critical && slices.Contains(first[0].AffectedFeatures, name) {
				t.Errorf("%s named again at warning (%v)", name, second[0].Scores[name])
			}
		}
		// Features still over the warning but not risen are held, and said so;
		// scores keep every feature.
		for name, score := range second[0].Scores {
			if score >= cfg.Warning && !slices.Contains(second[0].AffectedFeatures, name) {
				if !slices.Contains(first[0].AffectedFeatures, name) || !strings.Contains(second[0].Message, "alerted recently") {
					t.Errorf("%s (PSI %v) held without being named before, or silently: %s", name, score, second[0].Message)
				}
			}
		}
		if len(second[0].Scores) != len(first[0].Scores) {
			t.Errorf("%d scores, then %d", len(first[0].Scores), len(second[0].Scores))
		}
		if third, _, _ := feed(t, p, recs); len(third) != 0 {
			t.Errorf("the same critical findings again: %s", third[0].Message)
		}
		// A new champion is a new reference: nothing is held.
		set.Serve(fareModel(f, "v-fare-2"), "test")
		defer set.Serve(fareModel(f, "v-fare-1"), "test")
		if fourth, _, _ := feed(t, p, recs); len(fourth) != 1 || fourth[0].ModelVersion != "v-fare-2" {
			t.Errorf("after a new champion: %d alerts", len(fourth))
		}
	})
}

func TestRollbackAfterAbort(t *testing.T) {
	f, set := setup(t)
	cfg := quality.Config{WindowSize: window, SuppressDriftWindows: 5}
	p := quality.New(cfg, set)
	half := window / 2
	feed(t, p, f.drifted[:half])
	p.Checkpoint()
	if n := p.StateEntries(); n != half {
		t.Fatalf("%d records held, want %d", n, half)
	}
	first, raw1, _ := feed(t, p, f.drifted[half:window])
	if len(first) != 1 {
		t.Fatalf("%d alerts", len(first))
	}
	p.Rollback() // the batch's transaction aborted
	if n := p.StateEntries(); n != half {
		t.Errorf("%d records held after the rollback, want %d", n, half)
	}
	// Processed again, the batch gives the same alert: the window and the
	// rate limit of the aborted attempt are gone.
	again, raw2, _ := feed(t, p, f.drifted[half:window])
	if len(again) != 1 || !bytes.Equal(raw1[0].Value, raw2[0].Value) {
		t.Fatalf("after the rollback: %d alerts, same bytes %v", len(again), len(again) == 1 && bytes.Equal(raw1[0].Value, raw2[0].Value))
	}
	p.Checkpoint()
	// Committed, the alert holds back the next window's repeat.
	if held, _, _ := feed(t, p, f.drifted[:window]); len(held) != 0 {
		t.Errorf("a repeat after the committed alert: %s", held[0].Message)
	}
	p.Rollback()
	p.Rollback() // nothing changed since: no-op
	if n := p.StateEntries(); n != 0 {
		t.Errorf("%d records held, want 0", n)
	}

	// The raw window follows the transaction too.
	q := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100}}, set)
	rawFeed(t, q, cleanRaw(50))
	q.Checkpoint()
	bad := badRaw(50, func(r *contracts.RawRide) { r.FareAmount = ptr(5000) })
	a1, b1 := rawFeed(t, q, bad)
	q.Rollback()
	a2, b2 := rawFeed(t, q, bad)
	if len(a1) != len(training.ModelNames()) || !slices.EqualFunc(b1, b2, bytes.Equal) {
		t.Errorf("raw alerts %d then %d after the rollback, want the same, one per model", len(a1), len(a2))
	}
}

// A raw ride of the test: every nullable field set, every value plausible.
func goodRide(i int) contracts.RawRide {
	return contracts.RawRide{
		TripID:         fmt.Sprintf("r%04d", i),
		PickupDatetime: time.Date(2015, 3, 8, 8, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		PickupLatitude: ptr(41.881), PickupLongitude: ptr(-87.63), DropoffLatitude: ptr(41.97), DropoffLongitude: ptr(-87.9),
		TripDistance: ptr(3), TripSeconds: ptr(600), FareAmount: ptr(12.25),
		PaymentType: "Cash", Company: "Flash Cab", PickupCommunityArea: iptr(8), DropoffCommunityArea: iptr(76),
	}
}

func ptr(v float64) *float64 { return &v }
func iptr(v int) *int        { return &v }

func rawRecord(key string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: contracts.TopicRidesRaw, Key: []byte(key), Value: value,
		Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func encodeRide(r *contracts.RawRide) []byte {
	r.SchemaVersion = contracts.SchemaVersion
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	return b
}

func cleanRaw(n int) []*kgo.Record { return badRaw(n, nil) }

// badRaw returns n rides changed by bad (nil: clean).
func badRaw(n int, bad func(*contracts.RawRide)) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range n {
		r := goodRide(i)
		if bad != nil {
			bad(&r)
		}
		out[i] = rawRecord(r.TripID, encodeRide(&r))
	}
	return out
}

func bytesRaw(n int, v []byte) []*kgo.Record {
	out := make([]*kgo.Record, n)
	for i := range n {
		out[i] = rawRecord(fmt.Sprintf("b%04d", i), v)
	}
	return out
}

// rawFeed processes raw records, which never fail, and returns the alerts.
func rawFeed(t *testing.T, p *quality.Processor, recs []*kgo.Record) ([]*contracts.DataQualityAlert, [][]byte) {
	t.Helper()
	var alerts []*contracts.DataQualityAlert
	var raw [][]byte
	for i, r := range recs {
		out, err := p.Process(context.Background(), r)
		if err != nil {
			t.Fatalf("raw record %d: %v (raw rides are counted, never dead-lettered)", i, err)
		}
		for _, o := range out {
			a, err := contracts.Decode[contracts.DataQualityAlert](o.Value)
			if err != nil || o.Topic != contracts.TopicDataQualityAlerts || string(o.Key) != a.AlertID {
				t.Fatalf("bad alert record %s %q: %v", o.Topic, o.Key, err)
			}
			alerts, raw = append(alerts, a), append(raw, o.Value)
		}
	}
	return alerts, raw
}

// window100 is a raw window of 100 records: k bad ones first, then clean.
func window100(k int, bad []*kgo.Record) []*kgo.Record {
	return append(bad[:k:k], cleanRaw(100)[k:]...)
}

func TestRawWindows(t *testing.T) {
	_, set := setup(t)
	models := training.ModelNames()
	halfCoords := func(r *contracts.RawRide) { r.PickupLongitude = nil }
	for _, c := range []struct {
		name     string
		bad      []*kgo.Record // at least k records
		k        int
		typ      string
		fields   []string
		severity string
		stats    map[string]float64 // of the first field
	}{
		{"not JSON", bytesRaw(3, []byte(`trip r1 cost $12`)), 3, contracts.AlertTypeSchema, []string{quality.FieldRecord}, contracts.SeverityWarning,
			map[string]float64{"count": 3, "rate": 0.03}},
		{"a number as a string", bytesRaw(6, []byte(`{"schema_version":1,"trip_id":"x","trip_distance":"3.0"}`)), 6, contracts.AlertTypeSchema,
			[]string{quality.FieldTripDistance}, contracts.SeverityCritical, map[string]float64{"count": 6, "rate": 0.06}},
		{"a future schema version", bytesRaw(1, []byte(`{"schema_version":2,"trip_id":"x"}`)), 1, contracts.AlertTypeSchema,
			[]string{quality.FieldSchemaVersion}, contracts.SeverityWarning, nil},
		{"a truncated wire-format header", bytesRaw(2, []byte{0, 0, 1}), 2, contracts.AlertTypeSchema, []string{quality.FieldRecord}, contracts.SeverityWarning, nil},
		{"missing fare and trip id", badRaw(5, func(r *contracts.RawRide) { r.FareAmount, r.TripID = nil, "" }), 5, contracts.AlertTypeMissingRequired,
			[]string{quality.FieldFareAmount, quality.FieldTripID}, contracts.SeverityCritical, map[string]float64{"count": 5, "rate": 0.05}},
		{"absurd fares", badRaw(2, func(r *contracts.RawRide) { r.FareAmount = ptr(5000) }), 2, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldFareAmount}, contracts.SeverityWarning, map[string]float64{"count": 2, "rate": 0.02, "min": 5000, "max": 5000}},
		{"negative distances", badRaw(2, func(r *contracts.RawRide) { r.TripDistance = ptr(-3) }), 2, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldTripDistance}, contracts.SeverityWarning, map[string]float64{"min": -3, "max": -3}},
		{"absurd distances", badRaw(9, func(r *contracts.RawRide) { r.TripDistance = ptr(800 + float64(len(r.TripID))) }), 9, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldTripDistance}, contracts.SeverityCritical, nil},
		{"pickups in New York", badRaw(4, func(r *contracts.RawRide) { r.PickupLatitude, r.PickupLongitude = ptr(40.7128), ptr(-74.006) }), 4,
			contracts.AlertTypeOutOfRange, []string{quality.FieldPickupCoordinates}, contracts.SeverityWarning, map[string]float64{"min": 40.7128}},
		{"dropoffs in the lake", badRaw(3, func(r *contracts.RawRide) { r.DropoffLongitude = ptr(-86.5) }), 3,
			contracts.AlertTypeOutOfRange, []string{quality.FieldDropoffCoordinates}, contracts.SeverityWarning, nil},
		{"community area 78", badRaw(1, func(r *contracts.RawRide) { r.DropoffCommunityArea = iptr(78) }), 1, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldDropoffArea}, contracts.SeverityWarning, map[string]float64{"min": 78}},
		{"two-day trips", badRaw(1, func(r *contracts.RawRide) { r.TripSeconds = ptr(172800) }), 1, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldTripSeconds}, contracts.SeverityWarning, nil},
		{"a bus load", badRaw(1, func(r *contracts.RawRide) { r.PassengerCount = iptr(40) }), 1, contracts.AlertTypeOutOfRange,
			[]string{quality.FieldPassengerCount}, contracts.SeverityWarning, nil},
		{"coordinates dropped from 20 %", badRaw(20, func(r *contracts.RawRide) { r.PickupLatitude, r.PickupLongitude = nil, nil }), 20,
			contracts.AlertTypeNullRate, []string{quality.FieldPickupCoordinates}, contracts.SeverityWarning,
			map[string]float64{"count": 20, "null_rate": 0.2, "reference_null_rate": 2.0 / 15002}},
		{"coordinates dropped from 30 %", badRaw(30, func(r *contracts.RawRide) { r.PickupLatitude, r.PickupLongitude = nil, nil }), 30,
			contracts.AlertTypeNullRate, []string{quality.FieldPickupCoordinates}, contracts.SeverityCritical, nil},
		{"half coordinates are null pairs", badRaw(10, halfCoords), 10, contracts.AlertTypeNullRate,
			[]string{quality.FieldPickupCoordinates}, contracts.SeverityWarning, nil},
		{"no company at all", badRaw(100, func(r *contracts.RawRide) { r.Company = "" }), 100, contracts.AlertTypeNullRate,
			[]string{quality.FieldCompany}, contracts.SeverityCritical, map[string]float64{"null_rate": 1}},
		{"durations and areas gone", badRaw(12, func(r *contracts.RawRide) { r.TripSeconds, r.PickupCommunityArea = nil, nil }), 12,
			contracts.AlertTypeNullRate, []string{quality.FieldPickupArea, quality.FieldTripSeconds}, contracts.SeverityWarning, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100}}, set)
			recs := window100(c.k, c.bad)
			alerts, _ := rawFeed(t, p, recs[:99])
			if len(alerts) != 0 {
				t.Fatalf("alert before the window is full: %s", alerts[0].Message)
			}
			alerts, _ = rawFeed(t, p, recs[99:])
			if len(alerts) != len(models) {
				t.Fatalf("%d alerts, want one per model: %v", len(alerts), messages(alerts))
			}
			for i, model := range training.ModelNames() {
				a := alerts[i]
				if a.ModelName != model || a.AlertType != c.typ || a.Severity != c.severity || !slices.Equal(a.AffectedFeatures, c.fields) {
					t.Errorf("alert %s/%s %s %s naming %q; want %s %s naming %q\n%s", a.ModelName, a.ModelVersion, a.Severity, a.AlertType,
						a.AffectedFeatures, c.severity, c.typ, c.fields, a.Message)
				}
				if a.DriftScore != 0 || len(a.Scores) != 0 || a.WindowSize != 100 || !strings.HasPrefix(a.Message, c.severity) {
					t.Errorf("drift score %v, scores %v, window %d, message %q", a.DriftScore, a.Scores, a.WindowSize, a.Message)
				}
				for k, want := range c.stats {
					if got := a.Statistics[c.fields[0]][k]; math.Abs(got-want) > 1e-12 {
						t.Errorf("%s %s = %v, want %v", c.fields[0], k, got, want)
					}
				}
			}
			ids := map[string]bool{}
			for _, a := range alerts {
				ids[a.AlertID] = true
				if want := map[bool]string{true: "v-fare-1"}[a.ModelName == training.Fare]; a.ModelVersion != want {
					t.Errorf("%s: version %q, want %q (the champion's, none when not loaded)", a.ModelName, a.ModelVersion, want)
				}
			}
			if len(ids) != len(alerts) {
				t.Errorf("models share alert ids")
			}
		})
	}
	t.Run("a clean window", func(t *testing.T) {
		p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100}}, set)
		if alerts, _ := rawFeed(t, p, cleanRaw(300)); len(alerts) != 0 {
			t.Errorf("alerts on clean rides: %v", messages(alerts))
		}
	})
	t.Run("a window with everything wrong", func(t *testing.T) {
		p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100}}, set)
		recs := slices.Concat(bytesRaw(5, []byte("{")), badRaw(5, func(r *contracts.RawRide) { r.FareAmount = nil }),
			badRaw(5, func(r *contracts.RawRide) { r.FareAmount = ptr(-1) }), badRaw(30, func(r *contracts.RawRide) { r.DropoffLatitude = nil }),
			cleanRaw(55))
		alerts, _ := rawFeed(t, p, recs)
		var types []string
		for _, a := range alerts {
			types = append(types, a.ModelName+":"+a.AlertType)
		}
		var want []string
		for _, m := range models {
			for _, typ := range []string{"schema", "missing_required", "null_rate", "out_of_range"} {
				want = append(want, m+":"+typ)
			}
		}
		sort.Strings(types)
		sort.Strings(want)
		if !slices.Equal(types, want) {
			t.Errorf("alerts %q, want %q", types, want)
		}
		// The window's time is event time: the pickups, not the record
		// times of the junk.
		for _, a := range alerts {
			if a.WindowEnd.Year() != 2015 || a.WindowStart.After(a.WindowEnd) || !a.Timestamp.Equal(a.WindowEnd) {
				t.Errorf("window %v … %v at %v, want the rides' pickups in 2015", a.WindowStart, a.WindowEnd, a.Timestamp)
			}
		}
		// Undecodable records are not in the base of the other rates.
		for _, a := range only(alerts, contracts.AlertTypeMissingRequired) {
			if r := a.Statistics[quality.FieldFareAmount]["rate"]; r != 5.0/95 {
				t.Errorf("missing fare rate %v, want 5/95", r)
			}
		}
	})
	t.Run("a window of junk with record times", func(t *testing.T) {
		p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 10}}, set)
		alerts, _ := rawFeed(t, p, bytesRaw(10, []byte("junk")))
		if len(alerts) == 0 || !alerts[0].WindowEnd.Equal(time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)) {
			t.Errorf("alerts %v", messages(alerts))
		}
	})
	t.Run("a window of nothing but junk", func(t *testing.T) {
		p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 10}}, set)
		recs := bytesRaw(10, []byte("junk"))
		for _, r := range recs {
			r.Timestamp = time.Time{}
		}
		alerts, _ := rawFeed(t, p, recs)
		if len(alerts) != len(models) || alerts[0].AlertType != contracts.AlertTypeSchema || alerts[0].Statistics[quality.FieldRecord]["rate"] != 1 ||
			!alerts[0].Timestamp.Equal(time.Unix(0, 0)) {
			t.Errorf("alerts %v", messages(alerts))
		}
	})
}

func messages(as []*contracts.DataQualityAlert) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.ModelName+" "+a.AlertType+": "+a.Message)
	}
	return out
}

// TestRawThresholdBoundaries puts each raw threshold exactly on the
// window's value and just above it.
func TestRawThresholdBoundaries(t *testing.T) {
	_, set := setup(t)
	fares := window100(3, badRaw(3, func(r *contracts.RawRide) { r.FareAmount = ptr(2000) })) // out of range in 3 %
	nulls := window100(20, badRaw(20, func(r *contracts.RawRide) { r.Company = "" }))         // 20 % null
	refs := quality.DefaultNullRates()
	refs[quality.FieldCompany] = 0.05
	// The null-rate statistics of the window, from a probe.
	probe, _ := rawFeed(t, quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100, NullRates: refs,
		NullRateWarning: tiny, NullRateSigmas: tiny}}, set), nulls)
	st := only(probe, contracts.AlertTypeNullRate)[0].Statistics[quality.FieldCompany]
	excess, z := st["excess"], st["z"]
	t.Logf("company null in 20 %% against 5 %%: excess %v, z %v", excess, z)
	up := func(v float64) float64 { return math.Nextafter(v, inf) }
	for _, c := range []struct {
		name string
		cfg  quality.RawConfig
		recs []*kgo.Record
		typ  string
		want string // severity, "" for none
	}{
		{"rate at warning", quality.RawConfig{Warning: 0.03, Critical: 1}, fares, contracts.AlertTypeOutOfRange, contracts.SeverityWarning},
		{"rate just under warning", quality.RawConfig{Warning: up(0.03), Critical: 1}, fares, contracts.AlertTypeOutOfRange, ""},
		{"rate at critical", quality.RawConfig{Warning: 0.01, Critical: 0.03}, fares, contracts.AlertTypeOutOfRange, contracts.SeverityCritical},
		{"rate just under critical", quality.RawConfig{Warning: 0.01, Critical: up(0.03)}, fares, contracts.AlertTypeOutOfRange, contracts.SeverityWarning},
		{"excess at warning", quality.RawConfig{NullRates: refs, NullRateWarning: excess, NullRateCritical: 1, NullRateSigmas: tiny}, nulls, contracts.AlertTypeNullRate, contracts.SeverityWarning},
		{"excess just under warning", quality.RawConfig{NullRates: refs, NullRateWarning: up(excess), NullRateCritical: 1, NullRateSigmas: tiny}, nulls, contracts.AlertTypeNullRate, ""},
		{"excess at critical", quality.RawConfig{NullRates: refs, NullRateWarning: tiny, NullRateCritical: excess, NullRateSigmas: tiny}, nulls, contracts.AlertTypeNullRate, contracts.SeverityCritical},
		{"excess just under critical", quality.RawConfig{NullRates: refs, NullRateWarning: tiny, NullRateCritical: up(excess), NullRateSigmas: tiny}, nulls, contracts.AlertTypeNullRate, contracts.SeverityWarning},
		{"z at the sigmas", quality.RawConfig{NullRates: refs, NullRateWarning: tiny, NullRateCritical: 1, NullRateSigmas: z}, nulls, contracts.AlertTypeNullRate, contracts.SeverityWarning},
		{"z just under the sigmas", quality.RawConfig{NullRates: refs, NullRateWarning: tiny, NullRateCritical: 1, NullRateSigmas: up(z)}, nulls, contracts.AlertTypeNullRate, ""},
		{"defaults: 15 points over 5 % in 100 is 6.9 σ", quality.RawConfig{NullRates: refs}, nulls, contracts.AlertTypeNullRate, contracts.SeverityWarning},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			cfg.WindowSize = 100
			alerts := only(must(rawFeed(t, quality.New(quality.Config{Raw: cfg}, set), c.recs)), c.typ)
			switch {
			case c.want == "" && len(alerts) != 0:
				t.Errorf("alert: %s", alerts[0].Message)
			case c.want != "" && len(alerts) != len(training.ModelNames()):
				t.Errorf("%d alerts, want one per model", len(alerts))
			case c.want != "" && alerts[0].Severity != c.want:
				t.Errorf("severity %s, want %s", alerts[0].Severity, c.want)
			}
		})
	}
	// The null-rate threshold field is the warning rise.
	if a := only(probe, contracts.AlertTypeNullRate)[0]; a.Threshold != tiny {
		t.Errorf("threshold %v", a.Threshold)
	}
}

func must(as []*contracts.DataQualityAlert, _ [][]byte) []*contracts.DataQualityAlert { return as }

func TestRawRateLimiting(t *testing.T) {
	_, set := setup(t)
	warn := window100(2, badRaw(2, func(r *contracts.RawRide) { r.FareAmount = ptr(2000) })) // 2 %: warning
	crit := window100(9, badRaw(9, func(r *contracts.RawRide) { r.FareAmount = ptr(2000) })) // 9 %: critical
	both := window100(9, badRaw(9, func(r *contracts.RawRide) { r.FareAmount, r.TripDistance = ptr(2000), ptr(900) }))
	p := quality.New(quality.Config{Raw: quality.RawConfig{WindowSize: 100, SuppressWindows: 3}}, set)
	var got []string
	for _, w := range [][]*kgo.Record{warn, warn, crit, crit, warn, both, warn, warn, crit} {
		alerts := only(must(rawFeed(t, p, w)), contracts.AlertTypeOutOfRange)
		s := "-"
		if len(alerts) > 0 {
			if len(alerts) != len(training.ModelNames()) {
				t.Fatalf("%d alerts", len(alerts))
			}
			s = alerts[0].Severity[:1] + strings.Join(alerts[0].AffectedFeatures, "+")
		}
		got = append(got, s)
	}
	// Window 1 warns; 2 is held; 3 rises to critical; 4, 5 and 6 are held
	// for fare (same or lower level, within 3 windows of 3), so 6 names only
	// the new field; 7 is 4 windows after fare's last alert; 8 is held;
	// 9 rises again.
	want := []string{"wfare_amount", "-", "cfare_amount", "-", "-", "ctrip_distance", "wfare_amount", "-", "cfare_amount"}
	if !slices.Equal(got, want) {
		t.Errorf("per window %q\nwant          %q", got, want)
	}
}

// TestCleanSampleRaisesNoRawAlert replays the shipped sample's rides as raw
// records: against the sample's own null rates (the default) and against
// the rates of the same period, no window of 500 alerts.
func TestCleanSampleRaisesNoRawAlert(t *testing.T) {
	_, set := setup(t)
	loc, _ := time.LoadLocation("America/Chicago")
	rows, err := system.SampleRows(loc)
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, len(rows))
	rides := make([]contracts.RawRide, len(rows))
	for i := range rows {
		rides[i] = rows[i].Ride
		b, err := contracts.Encode(&rows[i].Ride)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = rawRecord(rows[i].Ride.TripID, b)
	}
	early := quality.NullRates(rides[:4000])
	for _, c := range []struct {
		name string
		refs map[string]float64
		recs []*kgo.Record
	}{
		{"the whole sample against its rates", nil, recs},
		{"the first 4000 against their rates", early, recs[:4000]},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := quality.New(quality.Config{Raw: quality.RawConfig{NullRates: c.refs}}, set)
			alerts, _ := rawFeed(t, p, c.recs)
			for _, a := range alerts {
				t.Errorf("alert on the sample: %s %v", a.Message, a.Statistics)
			}
			// How close the windows come: every finding at a zero threshold.
			probe := quality.New(quality.Config{Raw: quality.RawConfig{NullRates: c.refs, NullRateWarning: tiny, NullRateSigmas: tiny,
				Warning: tiny, SuppressWindows: -1}}, set)
			worst := map[string]float64{}
			for _, a := range must(rawFeed(t, probe, c.recs)) {
				for f, st := range a.Statistics {
					k := a.AlertType + " " + f
					worst[k+" rate"] = max(worst[k+" rate"], st["rate"], st["excess"])
					worst[k+" z"] = max(worst[k+" z"], st["z"])
				}
			}
			t.Logf("largest per window of 500: %v", worst)
		})
	}
}

func TestDefaultNullRatesAreTheSample(t *testing.T) {
	loc, _ := time.LoadLocation("America/Chicago")
	rows, err := system.SampleRows(loc)
	if err != nil {
		t.Fatal(err)
	}
	rides := make([]contracts.RawRide, len(rows))
	for i := range rows {
		rides[i] = rows[i].Ride
	}
	got, want := quality.DefaultNullRates(), quality.NullRates(rides)
	if len(got) != len(quality.NullableFields()) {
		t.Errorf("default rates for %d fields, want %d", len(got), len(quality.NullableFields()))
	}
	for _, f := range quality.NullableFields() {
		if got[f] != want[f] {
			t.Errorf("%s: default null rate %v, the sample's is %v", f, got[f], want[f])
		}
	}
	if r := quality.NullRates(nil); r[quality.FieldCompany] != 0 || len(r) != len(quality.NullableFields()) {
		t.Errorf("rates of no rides: %v", r)
	}
}

func TestRawValuesAreBounded(t *testing.T) {
	f, set := setup(t)
	// Keeping every 4th value of a window of 400, at most 100.
	p := quality.New(quality.Config{WindowSize: window, MaxRawValues: 100, Warning: tiny}, set)
	alerts, _, _ := feed(t, p, f.drifted[:window])
	full, _, _ := feed(t, quality.New(quality.Config{WindowSize: window, Warning: tiny}, set), f.drifted[:window])
	if len(alerts) != 1 || len(full) != 1 {
		t.Fatalf("%d and %d alerts", len(alerts), len(full))
	}
	for name, st := range full[0].Statistics {
		w, ok := st["wasserstein_norm"]
		if !ok {
			continue
		}
		sampled := alerts[0].Statistics[name]["wasserstein_norm"]
		if math.Abs(sampled-w) > 0.05 {
			t.Errorf("%s: W1/range %v from a quarter of the values, %v from all", name, sampled, w)
		}
		if alerts[0].Statistics[name]["psi"] != st["psi"] {
			t.Errorf("%s: PSI depends on the kept values", name)
		}
	}
}

func TestUnknownTopicIsPermanent(t *testing.T) {
	_, set := setup(t)
	for _, p := range []*quality.Processor{
		quality.New(quality.Config{}, set),
		quality.New(quality.Config{Raw: quality.RawConfig{Disabled: true}}, set),
	} {
		topic := contracts.TopicPredictions
		if len(p.Topics()) == 1 {
			topic = contracts.TopicRidesRaw
		}
		if _, err := p.Process(context.Background(), &kgo.Record{Topic: topic, Value: []byte(`{}`)}); !stream.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent error", topic, err)
		}
	}
}

// BenchmarkProcess measures a features record through the drift windows of
// the loaded champion, with a checkpoint every 500 records (a batch), and
// a raw ride through the raw window.
func BenchmarkProcess(b *testing.B) {
	f, set := setup(b)
	raw := cleanRaw(500)
	for _, c := range []struct {
		name string
		recs []*kgo.Record
	}{{"features", f.clean}, {"raw", raw}} {
		b.Run(c.name, func(b *testing.B) {
			p := quality.New(quality.Config{}, set)
			ctx := context.Background()
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := p.Process(ctx, c.recs[i%len(c.recs)]); err != nil {
					b.Fatal(err)
				}
				if i++; i%500 == 0 {
					p.Checkpoint()
				}
			}
		})
	}
}
