package main

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/xgb"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// sharedCSV is the project's reference copy of the city's file; the tests
// fall back to the embedded sample (the same trips) when it is absent.
const sharedCSV = "/work/shared/data/chicago_taxi/data.csv"

// testRounds keeps training fast; the tool's logic does not depend on it.
const testRounds = "30"

// result is what one run of the tool did.
type result struct {
	stdout, stderr string
	err            error
	code           int
}

// tool runs commands with the time zone and community areas loaded once:
// loading the boundaries is most of a short command's time under the race
// detector.
type tool struct {
	t     *testing.T
	loc   *time.Location
	areas *geo.Areas
}

func newTool(t *testing.T) *tool {
	t.Helper()
	var e env
	if err := e.load(); err != nil {
		t.Fatal(err)
	}
	return &tool{t: t, loc: e.loc, areas: e.areas}
}

func (tl *tool) run(args ...string) result {
	tl.t.Helper()
	var out, errOut bytes.Buffer
	e := &env{stdout: &out, stderr: &errOut, loc: tl.loc, areas: tl.areas}
	err := e.run(tl.t.Context(), args)
	return result{stdout: out.String(), stderr: errOut.String(), err: err, code: exitCode(err)}
}

// with returns the tool for a subtest.
func (tl *tool) with(t *testing.T) *tool {
	c := *tl
	c.t = t
	return &c
}

// mustRun runs the tool and fails the test unless it succeeds.
func (tl *tool) mustRun(args ...string) result {
	tl.t.Helper()
	r := tl.run(args...)
	if r.err != nil {
		tl.t.Fatalf("mltool %s: %v\nstderr:\n%s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

// runMain is run as main calls it, loading everything itself.
func runMain(t *testing.T, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(t.Context(), args, &out, &errOut)
	return result{stdout: out.String(), stderr: errOut.String(), err: err, code: exitCode(err)}
}

// sampleLines returns the CSV header and the first n data lines of the
// city's file.
func sampleLines(t *testing.T, n int) (header string, lines []string) {
	t.Helper()
	b, err := os.ReadFile(sharedCSV)
	if err != nil {
		t.Logf("%s not readable (%v); using the embedded sample", sharedCSV, err)
		return embeddedLines(t, n)
	}
	all := strings.Split(strings.TrimRight(string(b), "\r\n"), "\n")
	if len(all) < n+1 {
		t.Fatalf("%s has %d lines, want at least %d", sharedCSV, len(all), n+1)
	}
	for i := range all[:n+1] {
		all[i] = strings.TrimRight(all[i], "\r")
	}
	return all[0], all[1 : n+1]
}

// embeddedLines writes the first n trips of the embedded sample as CSV in
// the city's format.
func embeddedLines(t *testing.T, n int) (string, []string) {
	t.Helper()
	trips, err := tripdata.Load(chicago(t))
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, n)
	for i := range lines {
		lines[i] = csvLine(t, tripRecord(&trips[i]))
	}
	return strings.Join(tripdata.Columns(), ","), lines
}

// tripRecord is a trip as a record of the city's file, in Columns order.
func tripRecord(tr *tripdata.Trip) []string {
	f := func(v float64) string {
		if math.IsNaN(v) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	i := func(v int64) string {
		if v == 0 {
			return ""
		}
		return strconv.FormatInt(v, 10)
	}
	s := tr.StartLocal
	return []string{
		i(int64(tr.PickupArea)), f(tr.Fare), strconv.Itoa(s.Month), strconv.Itoa(s.Hour), strconv.Itoa(s.Day),
		strconv.FormatInt(s.Timestamp, 10), f(tr.PickupLat), f(tr.PickupLon), f(tr.DropoffLat), f(tr.DropoffLon),
		f(tr.Miles), i(tr.PickupCensusTract), i(tr.DropoffCensusTract), tr.PaymentType, tr.Company,
		f(tr.Seconds), i(int64(tr.DropoffArea)), f(tr.Tips),
	}
}

func csvLine(t *testing.T, rec []string) string {
	t.Helper()
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.Write(rec)
	w.Flush()
	if err := w.Error(); err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(b.String(), "\n")
}

func writeCSV(t *testing.T, path, header string, lines []string) string {
	t.Helper()
	data := header + "\n" + strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scaleMiles multiplies trip_miles of every line by factor, as an upstream
// switch to kilometres would.
func scaleMiles(t *testing.T, header string, lines []string, factor float64) []string {
	t.Helper()
	col := slices.Index(strings.Split(header, ","), tripdata.ColMiles)
	if col < 0 {
		t.Fatalf("header has no %s", tripdata.ColMiles)
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		rec, err := csv.NewReader(strings.NewReader(l)).Read()
		if err != nil {
			t.Fatal(err)
		}
		if rec[col] != "" {
			v, err := strconv.ParseFloat(rec[col], 64)
			if err != nil {
				t.Fatal(err)
			}
			rec[col] = strconv.FormatFloat(v*factor, 'g', -1, 64)
		}
		out[i] = csvLine(t, rec)
	}
	return out
}

func chicago(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(system.City)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// examplesOf reads a CSV file the system's way, independently of the tool.
func (tl *tool) examplesOf(path string) ([]dataset.Row, []training.Example) {
	t := tl.t
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	trips, err := tripdata.Parse(f, tl.loc)
	if err != nil {
		t.Fatal(err)
	}
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	return rows, training.Examples(rows, tl.areas, tl.loc)
}

func decode[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return v
}

// readModel reads a written model and its meta file as a user of the files
// would, without the tool.
func readModel(t *testing.T, modelPath, metaPath string) (*xgb.Model, *features.Spec, registry.Metadata) {
	t.Helper()
	b, err := os.ReadFile(modelPath)
	if err != nil {
		t.Fatal(err)
	}
	m, err := xgb.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	meta := decode[registry.Metadata](t, mustRead(t, metaPath))
	spec := meta.Features
	if err := spec.Init(); err != nil {
		t.Fatal(err)
	}
	return m, &spec, meta
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type prediction struct {
	tripID     string
	pred       float64
	actual     float64
	haveActual bool
}

func parsePredictions(t *testing.T, s string) (header []string, preds []prediction) {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("predictions are not CSV: %v", err)
	}
	for _, r := range recs[1:] {
		p := prediction{tripID: r[0]}
		if p.pred, err = strconv.ParseFloat(r[1], 64); err != nil {
			t.Fatal(err)
		}
		if len(r) > 2 && r[2] != "" {
			p.haveActual = true
			if p.actual, err = strconv.ParseFloat(r[2], 64); err != nil {
				t.Fatal(err)
			}
		}
		preds = append(preds, p)
	}
	return recs[0], preds
}

// checkPredictions compares the tool's predictions with xgb.Model.Predict
// of the vectors the spec builds, bit for bit.
func checkPredictions(t *testing.T, out string, model *xgb.Model, spec *features.Spec, m training.Model, ex []training.Example) {
	t.Helper()
	header, preds := parsePredictions(t, out)
	if want := []string{"trip_id", "prediction", "actual"}; !slices.Equal(header, want) {
		t.Fatalf("header %v, want %v", header, want)
	}
	if len(preds) != len(ex) {
		t.Fatalf("%d predictions for %d trips", len(preds), len(ex))
	}
	x := make([]float32, spec.Len())
	for i, p := range preds {
		spec.Vector(&ex[i].Row, x)
		if want := model.Predict(x); p.tripID != ex[i].TripID || p.pred != want {
			t.Fatalf("row %d: %s %v, want %s %v", i, p.tripID, p.pred, ex[i].TripID, want)
		}
		if want := float64(m.Label(&ex[i])); !p.haveActual || float32(p.actual) != float32(want) {
			t.Fatalf("row %d: actual %v (present %v), want %v", i, p.actual, p.haveActual, want)
		}
	}
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// TestCommands runs the commands end to end on real trips. The subtests
// share one loaded time zone and set of boundaries.
func TestCommands(t *testing.T) {
	tl := newTool(t)
	t.Run("fare: train predict evaluate", func(t *testing.T) { testFare(t, tl.with(t)) })
	t.Run("big_tipper: quiet, flags, calibration", func(t *testing.T) { testBigTipper(t, tl.with(t)) })
	t.Run("parquet and gzip match csv", func(t *testing.T) { testFormats(t, tl.with(t)) })
	t.Run("drift", func(t *testing.T) { testDrift(t, tl.with(t)) })
	t.Run("errors", func(t *testing.T) { testErrors(t, tl.with(t)) })
}

func testFare(t *testing.T, tl *tool) {
	dir := t.TempDir()
	header, lines := sampleLines(t, 3000)
	data := writeCSV(t, filepath.Join(dir, "trips.csv"), header, lines)
	modelPath := filepath.Join(dir, "fare.json")

	// As main runs it, loading the time zone and boundaries itself.
	r := runMain(t, "train", "--model", "fare", "--data", data, "--out", modelPath, "--rounds", testRounds)
	if r.err != nil {
		t.Fatalf("train: %v\n%s", r.err, r.stderr)
	}
	rep := decode[map[string]any](t, r.stdout)
	if rep["model"] != "fare" || rep["rows"] != 3000.0 || rep["holdout_rows"] != 600.0 ||
		rep["train_rows"] != 2160.0 || rep["validation_rows"] != 240.0 || rep["meta_file"] != filepath.Join(dir, "fare.meta.json") {
		t.Errorf("train report: %s", r.stdout)
	}
	for _, part := range []string{"validation", "holdout"} {
		ms, _ := rep[part].(map[string]any)
		if v, ok := ms["rmse"].(float64); !ok || !finite(v) || v <= 0 {
			t.Errorf("%s rmse = %v", part, ms["rmse"])
		}
	}
	// Progress: rounds 10, 20 and 30, with both losses.
	if n := strings.Count(r.stderr, "msg=round "); n != 3 {
		t.Errorf("%d progress lines, want 3:\n%s", n, r.stderr)
	}
	for _, want := range []string{"iteration=10 of=30 train_rmse=", "iteration=30 of=30", "valid_rmse="} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}

	model, spec, meta := readModel(t, modelPath, filepath.Join(dir, "fare.meta.json"))
	if meta.Name != "fare" || meta.Objective != "reg:squarederror" || len(meta.Features.CompanyVocab) == 0 ||
		len(meta.Features.PaymentVocab) == 0 || len(meta.ReferenceProfile) == 0 || len(meta.Params) == 0 ||
		meta.Metrics[training.MetricRMSE] <= 0 || meta.SHA256 == "" {
		t.Errorf("meta file lacks something: %+v", meta)
	}
	if !slices.Equal(spec.Names, features.FareFeatures) {
		t.Errorf("spec names %v", spec.Names)
	}
	var params map[string]any
	if err := json.Unmarshal(meta.Params, &params); err != nil || params["NumRounds"] != 30.0 {
		t.Errorf("params %s: the --rounds override is not recorded", meta.Params)
	}

	_, ex := tl.examplesOf(data)
	m, _ := training.Lookup("fare")
	r = tl.mustRun("predict", "--model", modelPath, "--data", data)
	checkPredictions(t, r.stdout, model, spec, m, ex)

	// --out writes the same CSV to a file.
	predsPath := filepath.Join(dir, "preds.csv")
	r2 := tl.mustRun("predict", "--model", modelPath, "--data", data, "--out", predsPath)
	if r2.stdout != "" || mustRead(t, predsPath) != r.stdout {
		t.Errorf("predict --out: stdout %q; file differs from stdout output", r2.stdout)
	}

	r = tl.mustRun("evaluate", "--model", modelPath, "--data", data)
	ev := decode[struct {
		Model         string             `json:"model"`
		Rows          int                `json:"rows"`
		PrimaryMetric string             `json:"primary_metric"`
		Metrics       map[string]float64 `json:"metrics"`
		Calibration   *json.RawMessage   `json:"calibration"`
	}](t, r.stdout)
	want := training.Score(m, model, spec, ex)
	if ev.Model != "fare" || ev.Rows != 3000 || ev.PrimaryMetric != "rmse" || ev.Calibration != nil {
		t.Errorf("evaluate report: %s", r.stdout)
	}
	for _, k := range []string{"rmse", "mae", "mape", "rows"} {
		if got := ev.Metrics[k]; got != want[k] || !finite(got) {
			t.Errorf("evaluate %s = %v, training.Score says %v", k, got, want[k])
		}
	}
}

func testBigTipper(t *testing.T, tl *tool) {
	dir := t.TempDir()
	header, lines := sampleLines(t, 3000)
	data := writeCSV(t, filepath.Join(dir, "trips.csv"), header, lines)
	modelPath, metaPath := filepath.Join(dir, "tip.json"), filepath.Join(dir, "elsewhere", "tipper-meta.json")
	if err := os.Mkdir(filepath.Dir(metaPath), 0o755); err != nil {
		t.Fatal(err)
	}
	r := tl.mustRun("train", "--model", "big_tipper", "--data", data, "--out", modelPath, "--meta", metaPath,
		"--rounds", testRounds, "--max-depth", "4", "--eta", "0.3", "--seed", "7", "--holdout", "0.25", "--quiet")
	if r.stderr != "" {
		t.Errorf("--quiet wrote to stderr: %s", r.stderr)
	}
	rep := decode[map[string]any](t, r.stdout)
	if rep["holdout_rows"] != 750.0 {
		t.Errorf("holdout_rows %v, want 750", rep["holdout_rows"])
	}
	hold, _ := rep["holdout"].(map[string]any)
	if auc, _ := hold["auc"].(float64); !(auc > 0.5 && auc <= 1) {
		t.Errorf("holdout auc %v", hold["auc"])
	}

	model, spec, meta := readModel(t, modelPath, metaPath)
	var params map[string]any
	if err := json.Unmarshal(meta.Params, &params); err != nil || params["MaxDepth"] != 4.0 || params["Eta"] != 0.3 || params["Seed"] != 7.0 {
		t.Errorf("params %s do not record the flags", meta.Params)
	}
	_, ex := tl.examplesOf(data)
	m, _ := training.Lookup("big_tipper")
	r = tl.mustRun("predict", "--model", modelPath, "--meta", metaPath, "--data", data)
	checkPredictions(t, r.stdout, model, spec, m, ex)

	r = tl.mustRun("evaluate", "--model", modelPath, "--meta", metaPath, "--data", data)
	ev := decode[struct {
		Metrics     map[string]float64 `json:"metrics"`
		Calibration struct {
			Bins  int     `json:"bins"`
			ECE   float64 `json:"ece"`
			Table []struct {
				Lo, Hi float64
				Count  int
			} `json:"table"`
		} `json:"calibration"`
	}](t, r.stdout)
	if auc := ev.Metrics["auc"]; !(auc > 0.5 && auc <= 1) {
		t.Errorf("auc %v not in (0.5, 1]", auc)
	}
	if ll, acc := ev.Metrics["logloss"], ev.Metrics["accuracy"]; !finite(ll) || ll <= 0 || !(acc > 0.5 && acc <= 1) {
		t.Errorf("logloss %v, accuracy %v", ll, acc)
	}
	c := ev.Calibration
	total := 0
	for _, b := range c.Table {
		total += b.Count
	}
	if c.Bins != 10 || len(c.Table) != 10 || total != 3000 || !(c.ECE >= 0 && c.ECE < 0.5) ||
		c.Table[0].Lo != 0 || c.Table[9].Hi != 1 {
		t.Errorf("calibration %+v", c)
	}
}

func testFormats(t *testing.T, tl *tool) {
	dir := t.TempDir()
	header, lines := sampleLines(t, 1000)
	csvPath := writeCSV(t, filepath.Join(dir, "trips.csv"), header, lines)
	rows, _ := tl.examplesOf(csvPath)
	pq, err := dataset.Encode(rows)
	if err != nil {
		t.Fatal(err)
	}
	pqPath := filepath.Join(dir, "trips.parquet")
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(mustRead(t, csvPath)))
	zw.Close()
	gzPath := filepath.Join(dir, "trips.csv.gz")
	for p, b := range map[string][]byte{pqPath: pq, gzPath: gz.Bytes()} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same trips by any route train the same model, byte for byte, and
	// get the same predictions and metrics.
	var models, preds, evals []string
	for _, in := range []string{csvPath, pqPath, gzPath} {
		out := filepath.Join(dir, filepath.Base(in)+".model.json")
		tl.mustRun("train", "--model", "fare", "--data", in, "--out", out, "--rounds", "10", "--quiet")
		models = append(models, mustRead(t, out))
		preds = append(preds, tl.mustRun("predict", "--model", out, "--data", in).stdout)
		ev := decode[map[string]any](t, tl.mustRun("evaluate", "--model", out, "--data", in).stdout)
		b, _ := json.Marshal(ev["metrics"])
		evals = append(evals, string(b))
	}
	for i := 1; i < 3; i++ {
		if models[i] != models[0] || preds[i] != preds[0] || evals[i] != evals[0] {
			t.Errorf("input %d differs from CSV: same model %v, predictions %v, metrics %v",
				i, models[i] == models[0], preds[i] == preds[0], evals[i] == evals[0])
		}
	}
}

// driftOut is the part of the drift report the tests read.
type driftOut struct {
	Model    string `json:"model"`
	Bins     int    `json:"bins"`
	Features []struct {
		Name          string   `json:"name"`
		Kind          string   `json:"kind"`
		PSI           float64  `json:"psi"`
		JensenShannon float64  `json:"jensen_shannon"`
		ChiSquare     chiOut   `json:"chi_square"`
		KS            *chiOut  `json:"ks"`
		Wasserstein1  *float64 `json:"wasserstein1"`
	} `json:"features"`
	MaxPSI        float64  `json:"max_psi"`
	MaxPSIFeature string   `json:"max_psi_feature"`
	OverWarning   []string `json:"features_over_warning"`
	OverCritical  []string `json:"features_over_critical"`
	Failed        bool     `json:"failed"`
}

type chiOut struct {
	Statistic float64 `json:"statistic"`
	PValue    float64 `json:"p_value"`
	DoF       int     `json:"dof"`
}

func (d *driftOut) psi(t *testing.T, name string) float64 {
	t.Helper()
	for _, f := range d.Features {
		if f.Name == name {
			return f.PSI
		}
	}
	t.Fatalf("no feature %s in the report", name)
	return 0
}

func testDrift(t *testing.T, tl *tool) {
	dir := t.TempDir()
	header, lines := sampleLines(t, 4000)
	ref := writeCSV(t, filepath.Join(dir, "first.csv"), header, lines[:2000])
	next := writeCSV(t, filepath.Join(dir, "next.csv"), header, lines[2000:])
	km := writeCSV(t, filepath.Join(dir, "km.csv"), header, scaleMiles(t, header, lines[:2000], 1.609))

	t.Run("identical inputs", func(t *testing.T) {
		tl := tl.with(t)
		r := tl.mustRun("drift", "--reference", ref, "--current", ref, "--fail-over", "0.25")
		d := decode[driftOut](t, r.stdout)
		if len(d.Features) != len(features.TipperFeatures) || d.MaxPSI != 0 || d.Failed ||
			len(d.OverWarning) != 0 || len(d.OverCritical) != 0 {
			t.Errorf("identical inputs: %s", r.stdout)
		}
		for _, f := range d.Features {
			if f.PSI != 0 || f.JensenShannon != 0 || f.ChiSquare.Statistic != 0 || f.ChiSquare.PValue != 1 {
				t.Errorf("%s: psi %v js %v chi2 %+v", f.Name, f.PSI, f.JensenShannon, f.ChiSquare)
			}
			if numeric := f.Kind == "numeric"; numeric != (f.KS != nil) || numeric != (f.Wasserstein1 != nil) {
				t.Errorf("%s (%s): ks %v, wasserstein1 %v", f.Name, f.Kind, f.KS, f.Wasserstein1)
			} else if numeric && (f.KS.Statistic != 0 || f.KS.PValue != 1 || *f.Wasserstein1 != 0) {
				t.Errorf("%s: ks %+v, wasserstein1 %v", f.Name, *f.KS, *f.Wasserstein1)
			}
		}
	})

	// The city's file is grouped by pickup area, so the next 2000 trips
	// differ in area (and, less, in everything else); distance barely.
	t.Run("next trips", func(t *testing.T) {
		tl := tl.with(t)
		r := tl.mustRun("drift", "--reference", ref, "--current", next)
		d := decode[driftOut](t, r.stdout)
		if d.Failed || r.code != 0 || d.Model != "big_tipper" || d.Bins != 10 {
			t.Errorf("report: %s", r.stdout)
		}
		if psi := d.psi(t, "trip_miles"); !(psi > 0 && psi < 0.25) {
			t.Errorf("trip_miles PSI %v, want in (0, 0.25)", psi)
		}
		for _, f := range d.Features {
			if !(f.ChiSquare.DoF > 0 && f.ChiSquare.PValue >= 0 && f.ChiSquare.PValue <= 1) ||
				f.KS != nil && !(f.KS.Statistic > 0 && f.KS.PValue >= 0 && f.KS.PValue <= 1) {
				t.Errorf("%s: chi2 %+v ks %+v", f.Name, f.ChiSquare, f.KS)
			}
		}
	})

	// Kilometres: only distance and speed move. A quarter of the trips
	// have 0 miles and stay put, so on ten reference deciles trip_miles
	// reaches the warning level and speed the critical one.
	t.Run("miles to km", func(t *testing.T) {
		tl := tl.with(t)
		r := tl.mustRun("drift", "--reference", ref, "--current", km, "--model", "fare")
		d := decode[driftOut](t, r.stdout)
		if len(d.Features) != len(features.FareFeatures) {
			t.Fatalf("fare has %d features, report %d", len(features.FareFeatures), len(d.Features))
		}
		for _, f := range d.Features {
			moved := f.Name == "trip_miles" || f.Name == "avg_speed_mph"
			if moved != (f.PSI > 0) {
				t.Errorf("%s: PSI %v", f.Name, f.PSI)
			}
		}
		if psi := d.psi(t, "trip_miles"); psi < psiWarning || !slices.Contains(d.OverWarning, "trip_miles") {
			t.Errorf("trip_miles PSI %v, want ≥ %v; over warning %v", psi, psiWarning, d.OverWarning)
		}
		if !slices.Equal(d.OverCritical, []string{"avg_speed_mph"}) || d.MaxPSIFeature != "avg_speed_mph" || d.MaxPSI < psiCritical {
			t.Errorf("over critical %v, max %v of %s", d.OverCritical, d.MaxPSI, d.MaxPSIFeature)
		}
		// For non-negative X, W1(X, cX) = (c−1)·mean(X).
		_, refEx := tl.examplesOf(ref)
		var sum float64
		for i := range refEx {
			sum += float64(float32(refEx[i].Row.TripMiles))
		}
		want := 0.609 * sum / float64(len(refEx))
		for _, f := range d.Features {
			if f.Name == "trip_miles" && math.Abs(*f.Wasserstein1-want) > 1e-3*want {
				t.Errorf("trip_miles wasserstein1 %v, want %v", *f.Wasserstein1, want)
			}
		}

		r = tl.run("drift", "--reference", ref, "--current", km, "--fail-over", "0.25")
		if d := decode[driftOut](t, r.stdout); r.code != exitDrifted || !d.Failed ||
			!strings.Contains(r.err.Error(), "avg_speed_mph reaches --fail-over 0.25") {
			t.Errorf("--fail-over 0.25: exit %d, err %v, failed %v", r.code, r.err, d.Failed)
		}
		r = tl.run("drift", "--reference", ref, "--current", km, "--fail-over", "0.9")
		if r.code != 0 || decode[driftOut](t, r.stdout).Failed {
			t.Errorf("--fail-over 0.9: exit %d, err %v", r.code, r.err)
		}
	})

	t.Run("bins", func(t *testing.T) {
		tl := tl.with(t)
		r := tl.mustRun("drift", "--reference", ref, "--current", km, "--bins", "5")
		if d := decode[driftOut](t, r.stdout); d.Bins != 5 || d.psi(t, "trip_miles") <= 0 {
			t.Errorf("--bins 5: %s", r.stdout)
		}
	})
}

func testErrors(t *testing.T, tl *tool) {
	dir := t.TempDir()
	header, lines := sampleLines(t, 300)
	data := writeCSV(t, filepath.Join(dir, "trips.csv"), header, lines)
	fare, tip := filepath.Join(dir, "fare.json"), filepath.Join(dir, "tip.json")
	tl.mustRun("train", "--model", "fare", "--data", data, "--out", fare, "--rounds", "3", "--quiet")
	tl.mustRun("train", "--model", "big_tipper", "--data", data, "--out", tip, "--rounds", "3", "--quiet")
	lonely := filepath.Join(dir, "lonely", "model.json")
	os.Mkdir(filepath.Dir(lonely), 0o755)
	os.WriteFile(lonely, []byte(mustRead(t, fare)), 0o644)
	bad := writeCSV(t, filepath.Join(dir, "bad.csv"), header, []string{strings.Replace(lines[5], ",", ",x", 1)})
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, []byte(header+"\n"), 0o644)
	otherFare := filepath.Join(dir, "other.json")
	tl.mustRun("train", "--model", "fare", "--data", data, "--out", otherFare, "--rounds", "4", "--quiet")
	missing := filepath.Join(dir, "nope", "trips.csv")

	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		want   []string // in the error
		stderr string   // in stderr
	}{
		{"no command", nil, exitUsage, []string{"no command"}, "usage: mltool <command>"},
		{"unknown command", []string{"fit", "--model", "fare"}, exitUsage, []string{`unknown command "fit"`}, "commands:"},
		{"train without flags", []string{"train"}, exitUsage, []string{"missing required flags --model, --data"}, ""},
		{"train without data", []string{"train", "--model", "fare"}, exitUsage, []string{"missing required flag --data"}, ""},
		{"predict without model", []string{"predict", "--data", data}, exitUsage, []string{"missing required flag --model"}, ""},
		{"evaluate without flags", []string{"evaluate"}, exitUsage, []string{"--model, --data"}, ""},
		{"drift without current", []string{"drift", "--reference", data}, exitUsage, []string{"missing required flag --current"}, ""},
		{"unknown flag", []string{"train", "--model", "fare", "--data", data, "--trees", "5"}, exitUsage, []string{"-trees"}, "flag provided but not defined"},
		{"stray argument", []string{"drift", "--reference", data, data}, exitUsage, []string{"unexpected arguments"}, ""},
		{"unknown model", []string{"train", "--model", "tips", "--data", data}, exitUsage, []string{`"tips"`, "fare", "big_tipper"}, ""},
		{"bad holdout", []string{"train", "--model", "fare", "--data", data, "--holdout", "1"}, exitUsage, []string{"--holdout 1"}, ""},
		{"bad rounds", []string{"train", "--model", "fare", "--data", data, "--rounds", "0"}, exitUsage, []string{"NumRounds 0"}, ""},
		{"bad eta", []string{"train", "--model", "fare", "--data", data, "--eta", "2"}, exitUsage, []string{"Eta 2"}, ""},
		{"bad bins", []string{"drift", "--reference", data, "--current", data, "--bins", "1"}, exitUsage, []string{"--bins 1"}, ""},
		{"unknown format", []string{"train", "--model", "fare", "--data", "trips.txt"}, exitUsage, []string{"trips.txt", ".csv", ".parquet"}, ""},
		{"unreadable data", []string{"train", "--model", "fare", "--data", missing, "--out", filepath.Join(dir, "x.json")}, exitError, []string{missing, "no such file or directory"}, ""},
		{"unreadable reference", []string{"drift", "--reference", missing, "--current", data}, exitError, []string{missing, "no such file or directory"}, ""},
		{"malformed csv", []string{"evaluate", "--model", fare, "--data", bad}, exitError, []string{bad, "line 2", tripdata.ColFare}, ""},
		{"no trips", []string{"predict", "--model", fare, "--data", empty}, exitError, []string{empty, "no trips"}, ""},
		{"corrupt parquet", []string{"evaluate", "--model", fare, "--data", writeCSV(t, filepath.Join(dir, "x.parquet"), "not", nil)}, exitError, []string{"x.parquet", "parquet"}, ""},
		{"missing output directory", []string{"train", "--model", "fare", "--data", data, "--out", filepath.Join(dir, "models", "fare.json")}, exitError,
			[]string{"--out", filepath.Join(dir, "models"), "no such file or directory"}, ""},
		{"missing predictions directory", []string{"predict", "--model", fare, "--data", data, "--out", filepath.Join(dir, "preds", "p.csv")}, exitError,
			[]string{"--out", filepath.Join(dir, "preds"), "no such file or directory"}, ""},
		{"unreadable model", []string{"predict", "--model", filepath.Join(dir, "none.json"), "--data", data}, exitError, []string{"none.json", "no such file or directory"}, ""},
		{"model is not a model", []string{"predict", "--model", data, "--meta", fare, "--data", data}, exitError, []string{data}, ""},
		{"meta missing", []string{"predict", "--model", lonely, "--data", data}, exitError,
			[]string{"no meta file", filepath.Join(dir, "lonely", "model.meta.json"), "--meta", "mltool train --out " + lonely}, ""},
		{"meta given but missing", []string{"evaluate", "--model", fare, "--meta", filepath.Join(dir, "m.json"), "--data", data}, exitError,
			[]string{"looked for " + filepath.Join(dir, "m.json"), "given with --meta"}, ""},
		{"model and meta of different models", []string{"predict", "--model", fare, "--meta", filepath.Join(dir, "tip.meta.json"), "--data", data}, exitError,
			[]string{"does not match", "reads 10 features", "big_tipper spec has 11"}, ""},
		{"model and meta of different runs", []string{"evaluate", "--model", otherFare, "--meta", filepath.Join(dir, "fare.meta.json"), "--data", data}, exitError,
			[]string{"does not match", "SHA-256"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Usage errors come before anything is loaded: through run,
			// as main calls it.
			var r result
			if tc.code == exitUsage {
				r = runMain(t, tc.args...)
			} else {
				r = tl.with(t).run(tc.args...)
			}
			if r.err == nil || r.code != tc.code {
				t.Fatalf("exit %d, err %v; want exit %d", r.code, r.err, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q lacks %q", r.err, w)
				}
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout on error: %s", r.stdout)
			}
		})
	}
}

func TestHelpAndExitCodes(t *testing.T) {
	r := runMain(t, "train", "-h")
	if r.code != 0 || !strings.Contains(r.stderr, "-holdout") {
		t.Errorf("train -h: exit %d, stderr %s", r.code, r.stderr)
	}
	r = runMain(t, "help")
	if r.code != 0 || !strings.Contains(r.stdout, "drift") {
		t.Errorf("help: exit %d, stdout %s", r.code, r.stdout)
	}
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{os.ErrNotExist, exitError},
		{usageErr("x"), exitUsage},
		{&codeError{code: exitDrifted, err: os.ErrInvalid}, exitDrifted},
	} {
		if got := exitCode(tc.err); got != tc.code {
			t.Errorf("exitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestMetaPathFor(t *testing.T) {
	for in, want := range map[string]string{
		"model.json":         "model.meta.json",
		"out/fare.json":      "out/fare.meta.json",
		"fare":               "fare.meta.json",
		"a.json.bak":         "a.json.bak.meta.json",
		"/tmp/x/tipper.json": "/tmp/x/tipper.meta.json",
	} {
		if got := metaPathFor(in); got != want {
			t.Errorf("metaPathFor(%q) = %q, want %q", in, got, want)
		}
	}
}

// The fallback used without the shared file writes CSV that parses to the
// same trips.
func TestEmbeddedLinesRoundTrip(t *testing.T) {
	loc := chicago(t)
	header, lines := embeddedLines(t, 500)
	got, err := tripdata.Parse(strings.NewReader(header+"\n"+strings.Join(lines, "\n")), loc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := tripdata.Load(loc)
	if err != nil {
		t.Fatal(err)
	}
	same := func(a, b float64) bool { return a == b || math.IsNaN(a) && math.IsNaN(b) }
	for i := range got {
		g, w := got[i], want[i]
		g.TripID, w.TripID = "", ""
		if !same(g.Fare, w.Fare) || !same(g.Tips, w.Tips) || !same(g.Miles, w.Miles) || !same(g.Seconds, w.Seconds) ||
			!same(g.PickupLat, w.PickupLat) || !same(g.PickupLon, w.PickupLon) ||
			!same(g.DropoffLat, w.DropoffLat) || !same(g.DropoffLon, w.DropoffLon) {
			t.Fatalf("trip %d numbers differ:\n%+v\n%+v", i, g, w)
		}
		g.Fare, g.Tips, g.Miles, g.Seconds, g.PickupLat, g.PickupLon, g.DropoffLat, g.DropoffLon = 0, 0, 0, 0, 0, 0, 0, 0
		w.Fare, w.Tips, w.Miles, w.Seconds, w.PickupLat, w.PickupLon, w.DropoffLat, w.DropoffLon = 0, 0, 0, 0, 0, 0, 0, 0
		if !g.Start.Equal(w.Start) {
			t.Fatalf("trip %d start %v, want %v", i, g.Start, w.Start)
		}
		g.Start, w.Start = time.Time{}, time.Time{}
		if g != w {
			t.Fatalf("trip %d differs:\n%+v\n%+v", i, g, w)
		}
	}
}
