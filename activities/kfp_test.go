package activities_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/kfp"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/s3server"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

const (
	kfpToken     = "test-token"
	kfpPipeline  = "pipeline-1"
	kfpPVersion  = "pipeline-version-1"
	kfpExpID     = "experiment-1"
	kfpSA        = "pipeline-runner"
	kfpRoot      = "s3://mlpipeline/taxi-mlops"
	kfpVersion   = "v20260301-120000-abc123"
	kfpTrainKey  = "fare/ds1/train.parquet"
	kfpHoldKey   = "fare/ds1/holdout.parquet"
	kfpAccessKey = "test-access"
	kfpSecretKey = "test-secret-key"
)

// The shipped trips, the first 1200 by pickup: 1000 to train on, 200 held
// out, as a snapshot would split them.
var kfpData struct {
	once        sync.Once
	train, hold []dataset.Row
	areas       *geo.Areas
	loc         *time.Location
	err         error
}

func kfpRows(t *testing.T) ([]dataset.Row, []dataset.Row, *geo.Areas, *time.Location) {
	t.Helper()
	d := &kfpData
	d.once.Do(func() {
		if d.loc, d.err = time.LoadLocation("America/Chicago"); d.err != nil {
			return
		}
		if d.areas, d.err = geo.LoadCommunityAreas(); d.err != nil {
			return
		}
		trips, err := tripdata.Load(d.loc)
		if err != nil {
			d.err = err
			return
		}
		tripdata.SortByStart(trips)
		rows := make([]dataset.Row, 1200)
		for i := range rows {
			rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
		}
		d.train, d.hold = rows[:1000], rows[1000:]
	})
	if d.err != nil {
		t.Fatal(d.err)
	}
	return d.train, d.hold, d.areas, d.loc
}

// fitted is a model trained as the pipeline would train one: on the
// training rows, with the catalogue's features and a few small trees.
func fitted(t *testing.T, m training.Model) *training.Candidate {
	t.Helper()
	train, _, areas, loc := kfpRows(t)
	m.Params.NumRounds, m.Params.MaxDepth = 8, 3
	c, err := training.Fit(context.Background(), m, training.Examples(train, areas, loc), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pushed is what the fake pipeline's Pusher writes.
type pushed struct {
	model, spec, manifest []byte
}

func pushedOf(t *testing.T, c *training.Candidate, m training.Model, version string) pushed {
	t.Helper()
	spec, err := json.Marshal(c.Spec)
	if err != nil {
		t.Fatal(err)
	}
	best := c.BestIteration
	man, err := json.Marshal(activities.KFPManifest{
		ModelName: m.Name, ModelVersion: version, BestIteration: &best, TrainRows: c.Rows,
		ValidationMetrics: c.Metrics, XGBoostVersion: "go-test",
	})
	if err != nil {
		t.Fatal(err)
	}
	return pushed{model: c.JSON, spec: spec, manifest: man}
}

// step is one answer of the fake server to a read of the run.
type step struct {
	status int // 0 = 200
	state  kfp.RuntimeState
	msg    string // the run's error message
}

type seenRequest struct {
	method, path, query, auth string
	body                      []byte
}

// fakeKFP implements the documented v2beta1 run endpoints in memory. Reads
// of a run follow script (the last step repeats); when a run is first
// answered SUCCEEDED, push writes the pipeline's output at the run's
// push_destination.
type fakeKFP struct {
	t      *testing.T
	mu     sync.Mutex
	seen   []seenRequest
	runs   map[string]map[string]any // run id -> runtime parameters
	names  map[string]string         // run id -> display name
	next   int
	script []step
	reads  int
	// createStatus answers the next POSTs with these statuses; createdAnyway
	// makes the server create the run before answering so (a lost answer).
	createStatus  []int
	createdAnyway bool
	push          func(params map[string]any)
	pushedOnce    bool
	polled        chan int
	terminated    chan string
}

func newFakeKFP(t *testing.T, script ...step) (*fakeKFP, *httptest.Server) {
	f := &fakeKFP{t: t, runs: map[string]map[string]any{}, names: map[string]string{}, script: script,
		polled: make(chan int, 1000), terminated: make(chan string, 10)}
	ts := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(ts.Close)
	return f, ts
}

func (f *fakeKFP) requests() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

func (f *fakeKFP) count(method, path string) int {
	n := 0
	for _, r := range f.requests() {
		if r.method == method && r.path == path {
			n++
		}
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"error": msg, "code": code, "message": msg, "details": []any{}})
}

func (f *fakeKFP) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.seen = append(f.seen, seenRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), body})
	f.mu.Unlock()
	const runs = "/apis/v2beta1/runs"
	p := r.URL.EscapedPath()
	switch {
	case r.Method == http.MethodPost && p == runs:
		f.create(w, body)
	case r.Method == http.MethodGet && p == runs:
		f.list(w, r)
	case r.Method == http.MethodPost && strings.HasPrefix(p, runs+"/") && strings.HasSuffix(p, ":terminate"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, runs+"/"), ":terminate")
		f.terminated <- id
		writeJSON(w, http.StatusOK, map[string]any{})
	case r.Method == http.MethodGet && strings.HasPrefix(p, runs+"/"):
		f.get(w, strings.TrimPrefix(p, runs+"/"))
	default:
		apiError(w, http.StatusNotFound, 5, "no route "+r.Method+" "+p)
	}
}

func (f *fakeKFP) create(w http.ResponseWriter, body []byte) {
	var run struct {
		DisplayName   string `json:"display_name"`
		RuntimeConfig struct {
			Parameters map[string]any `json:"parameters"`
		} `json:"runtime_config"`
	}
	if err := json.Unmarshal(body, &run); err != nil || run.DisplayName == "" {
		apiError(w, http.StatusBadRequest, 3, "Invalid input error: a run needs a display name")
		return
	}
	f.mu.Lock()
	fail := 0
	if len(f.createStatus) > 0 {
		fail, f.createStatus = f.createStatus[0], f.createStatus[1:]
	}
	var id string
	if fail == 0 || f.createdAnyway {
		f.next++
		id = fmt.Sprintf("run-%d", f.next)
		f.runs[id] = run.RuntimeConfig.Parameters
		f.names[id] = run.DisplayName
	}
	f.mu.Unlock()
	if fail != 0 {
		apiError(w, fail, 14, "upstream connect error or disconnect/reset before headers")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"run_id": id, "display_name": run.DisplayName, "state": "PENDING",
		"created_at": "2026-03-01T12:00:00Z", "storage_state": "AVAILABLE",
	})
}

func (f *fakeKFP) list(w http.ResponseWriter, r *http.Request) {
	var filter struct {
		Predicates []struct {
			Key, Operation string
			StringValue    string `json:"string_value"`
		} `json:"predicates"`
	}
	if err := json.Unmarshal([]byte(r.URL.Query().Get("filter")), &filter); err != nil || len(filter.Predicates) != 1 ||
		filter.Predicates[0].Key != "display_name" || filter.Predicates[0].Operation != "EQUALS" {
		apiError(w, http.StatusBadRequest, 3, "Invalid input error: filter")
		return
	}
	f.mu.Lock()
	var out []map[string]any
	for id, name := range f.names {
		if name == filter.Predicates[0].StringValue {
			out = append(out, map[string]any{"run_id": id, "display_name": name, "state": "RUNNING"})
		}
	}
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"runs": out, "total_size": len(out)})
}

func (f *fakeKFP) get(w http.ResponseWriter, id string) {
	f.mu.Lock()
	params, ok := f.runs[id]
	s := step{state: kfp.StateRunning}
	if len(f.script) > 0 {
		s = f.script[min(f.reads, len(f.script)-1)]
	}
	f.reads++
	n := f.reads
	doPush := ok && s.status == 0 && s.state == kfp.StateSucceeded && !f.pushedOnce
	if doPush {
		f.pushedOnce = true
	}
	f.mu.Unlock()
	f.polled <- n
	if !ok {
		apiError(w, http.StatusNotFound, 5, "Run "+id+" not found")
		return
	}
	if s.status != 0 {
		apiError(w, s.status, 14, "upstream connect error or disconnect/reset before headers")
		return
	}
	if doPush && f.push != nil {
		f.push(params)
	}
	run := map[string]any{
		"run_id": id, "display_name": f.names[id], "state": s.state, "created_at": "2026-03-01T12:00:00Z",
		"state_history": []any{map[string]any{"update_time": "2026-03-01T12:00:00Z", "state": "PENDING"}},
		"run_details":   map[string]any{"pipeline_context_id": "11", "pipeline_run_context_id": "12"},
	}
	if s.msg != "" {
		run["error"] = map[string]any{"code": 2, "message": s.msg}
		run["run_details"] = map[string]any{"task_details": []any{map[string]any{
			"task_id": "t-5", "display_name": "Trainer", "state": s.state,
			"error": map[string]any{"code": 2, "message": "xgboost.core.XGBoostError: label must be in [0,1]"}}}}
	}
	writeJSON(w, http.StatusOK, run)
}

// kfpEnv is an S3-protocol server with the snapshot, the fake KFP server
// and the activities wired to both.
type kfpEnv struct {
	t     *testing.T
	acts  *activities.Activities
	s3    *minio.Client
	reg   *registry.Registry
	fake  *fakeKFP
	kfpUI string
	in    activities.PipelineInput
	hb    *heartbeats
}

func newKFPEnv(t *testing.T, cfg kfp.Config, script ...step) *kfpEnv {
	t.Helper()
	train, hold, areas, loc := kfpRows(t)
	srv, err := s3server.New(s3server.Config{
		Dir: t.TempDir(), AccessKey: kfpAccessKey, SecretKey: kfpSecretKey,
		Buckets: []string{"models", "datasets"}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	mc, err := minio.New(strings.TrimPrefix(ts.URL, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(kfpAccessKey, kfpSecretKey, ""), Region: "us-east-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, rows := range map[string][]dataset.Row{kfpTrainKey: train, kfpHoldKey: hold} {
		b, err := dataset.Encode(rows)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := mc.PutObject(context.Background(), "datasets", key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	fake, kts := newFakeKFP(t, script...)
	cfg.Endpoint = kts.URL
	cfg.Token = kfpToken
	if cfg.PipelineID == "" {
		cfg.PipelineID, cfg.PipelineVersionID = kfpPipeline, kfpPVersion
	}
	cfg.ExperimentID, cfg.ServiceAccount, cfg.PipelineRoot = kfpExpID, kfpSA, kfpRoot
	cfg.UIEndpoint = "https://kubeflow.example.com/pipeline"
	if cfg.PollInterval == 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	client, err := kfp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.New(mc, "models")
	e := &kfpEnv{
		t: t, s3: mc, reg: reg, fake: fake, kfpUI: cfg.UIEndpoint, hb: &heartbeats{},
		acts: &activities.Activities{
			S3: mc, Registry: reg, DatasetBucket: "datasets", Areas: areas, Location: loc,
			Logger: slog.New(slog.DiscardHandler), KFP: client,
		},
		in: activities.PipelineInput{
			ModelName: training.Fare, Version: kfpVersion, Pipeline: activities.PipelineKFP,
			TrainURI: "s3://datasets/" + kfpTrainKey, HoldoutURI: "s3://datasets/" + kfpHoldKey,
			DatasetURI: "s3://datasets/fare/ds1/",
			Lineage: activities.Lineage{WorkflowID: "retrain/fare/test", RunID: "wf-run-1",
				TriggerType: "manual", Reason: "test", ParentVersion: "v0"},
		},
	}
	return e
}

// pushes makes the fake pipeline push p when its run succeeds.
func (e *kfpEnv) pushes(p pushed) {
	e.fake.push = func(params map[string]any) {
		dest, _ := params[activities.KFPParamPushDestination].(string)
		u := strings.TrimPrefix(dest, "s3://")
		bucket, prefix, _ := strings.Cut(u, "/")
		for _, f := range []struct {
			name string
			data []byte
		}{{activities.KFPModelFile, p.model}, {activities.KFPSpecFile, p.spec}, {activities.KFPManifestFile, p.manifest}} {
			if f.data == nil {
				continue
			}
			if _, err := e.s3.PutObject(context.Background(), bucket, prefix+f.name, bytes.NewReader(f.data), int64(len(f.data)), minio.PutObjectOptions{}); err != nil {
				e.t.Errorf("push %s: %v", f.name, err)
			}
		}
	}
}

// heartbeats records every heartbeat of the activity (an interceptor sees
// each call; the test service only the throttled ones).
type heartbeats struct {
	interceptor.WorkerInterceptorBase
	mu      sync.Mutex
	details []any
}

func (h *heartbeats) InterceptActivity(ctx context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	i := &hbInbound{h: h}
	i.Next = next
	return i
}

func (h *heartbeats) all() []any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.details)
}

type hbInbound struct {
	interceptor.ActivityInboundInterceptorBase
	h *heartbeats
}

func (i *hbInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	o := &hbOutbound{h: i.h}
	o.Next = outbound
	return i.Next.Init(o)
}

type hbOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	h *heartbeats
}

func (o *hbOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	o.h.mu.Lock()
	if len(details) == 1 {
		o.h.details = append(o.h.details, details[0])
	} else {
		o.h.details = append(o.h.details, details)
	}
	o.h.mu.Unlock()
	o.Next.RecordHeartbeat(ctx, details...)
}

// run executes RunPipeline once, as one attempt, with heartbeat details
// from an earlier attempt when details is not nil.
func (e *kfpEnv) run(details any) (activities.TrainResult, error) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{e.hb}})
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterActivity(e.acts)
	if details != nil {
		env.SetHeartbeatDetails(details)
	}
	val, err := env.ExecuteActivity(e.acts.RunPipeline, e.in)
	if err != nil {
		return activities.TrainResult{}, err
	}
	var res activities.TrainResult
	if err := val.Get(&res); err != nil {
		e.t.Fatal(err)
	}
	return res, nil
}

func applicationError(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an application error", err, err)
	}
	return ae
}

func wantNonRetryable(t *testing.T, err error, typ string, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want a non-retryable %s", typ)
	}
	ae := applicationError(t, err)
	if !ae.NonRetryable() || ae.Type() != typ {
		t.Errorf("error type %q non-retryable %v, want non-retryable %q: %v", ae.Type(), ae.NonRetryable(), typ, err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

func wantRetryable(t *testing.T, err error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error; want a retryable one")
	}
	if ae := applicationError(t, err); ae.NonRetryable() {
		t.Errorf("error is non-retryable (type %q): %v", ae.Type(), err)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// expectedParameters are the runtime parameters a fare run gets, as JSON
// decodes them.
func (e *kfpEnv) expectedParameters(t *testing.T) map[string]any {
	raw := e.acts.Areas.GeoJSON()
	sum := sha256.Sum256(raw)
	return map[string]any{
		"train_uri":             "s3://datasets/" + kfpTrainKey,
		"holdout_uri":           "s3://datasets/" + kfpHoldKey,
		"model_name":            "fare",
		"model_version":         kfpVersion,
		"objective":             "reg:squarederror",
		"label":                 "fare",
		"feature_names":         `["trip_miles","trip_seconds","avg_speed_mph","pickup_hour","pickup_day_of_week","pickup_month","pickup_community_area","dropoff_community_area","payment_type","company"]`,
		"timezone":              "America/Chicago",
		"community_areas_uri":   "s3://datasets/reference/community_areas-" + hex.EncodeToString(sum[:8]) + ".geojson",
		"validation_fraction":   0.1,
		"max_companies":         20.0,
		"xgb_params":            `{"alpha":0,"colsample_bytree":1,"eta":0.1,"eval_metric":"rmse","gamma":0,"lambda":1,"max_bin":256,"max_depth":6,"min_child_weight":1,"seed":0,"subsample":1,"tree_method":"hist"}`,
		"num_boost_round":       100.0,
		"early_stopping_rounds": 0.0,
		"push_destination":      "s3://models/fare/" + kfpVersion + "/kfp/",
	}
}

func TestKFPRunSucceeds(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StatePending}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
	c := fitted(t, fare)
	p := pushedOf(t, c, fare, kfpVersion)
	e.pushes(p)
	res, err := e.run(nil)
	if err != nil {
		t.Fatal(err)
	}

	// The requests: one POST with the documented body, then reads of the run.
	reqs := e.fake.requests()
	var paths []string
	for _, r := range reqs {
		paths = append(paths, r.method+" "+r.path)
		if r.auth != "Bearer "+kfpToken {
			t.Errorf("%s %s: Authorization %q", r.method, r.path, r.auth)
		}
	}
	want := []string{"POST /apis/v2beta1/runs", "GET /apis/v2beta1/runs/run-1", "GET /apis/v2beta1/runs/run-1", "GET /apis/v2beta1/runs/run-1"}
	if !slices.Equal(paths, want) {
		t.Fatalf("requests %v, want %v", paths, want)
	}
	var body map[string]any
	if err := json.Unmarshal(reqs[0].body, &body); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range body {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if want := []string{"description", "display_name", "experiment_id", "pipeline_version_reference", "runtime_config", "service_account"}; !slices.Equal(keys, want) {
		t.Errorf("body fields %v, want %v", keys, want)
	}
	if body["display_name"] != "taxi-mlops/fare/"+kfpVersion || body["experiment_id"] != kfpExpID || body["service_account"] != kfpSA {
		t.Errorf("display_name %v, experiment_id %v, service_account %v", body["display_name"], body["experiment_id"], body["service_account"])
	}
	if d, _ := body["description"].(string); !strings.Contains(d, "retrain/fare/test") || !strings.Contains(d, "s3://datasets/fare/ds1/") {
		t.Errorf("description %q", d)
	}
	if ref := body["pipeline_version_reference"]; !jsonEqual(ref, map[string]any{"pipeline_id": kfpPipeline, "pipeline_version_id": kfpPVersion}) {
		t.Errorf("pipeline_version_reference %v", ref)
	}
	rc, _ := body["runtime_config"].(map[string]any)
	if rc["pipeline_root"] != kfpRoot || len(rc) != 2 {
		t.Errorf("runtime_config %v", rc)
	}
	params, _ := rc["parameters"].(map[string]any)
	if wantP := e.expectedParameters(t); !jsonEqual(params, wantP) {
		t.Errorf("parameters\n%v\nwant\n%v", params, wantP)
	}
	var names []string
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	all := activities.KFPParameterNames()
	sort.Strings(all)
	if !slices.Equal(names, all) {
		t.Errorf("parameters %v, KFPParameterNames %v", names, all)
	}
	// The boundaries the pipeline reads are the worker's, byte for byte.
	areasURI, _ := params["community_areas_uri"].(string)
	obj, err := e.s3.GetObject(context.Background(), "datasets", strings.TrimPrefix(areasURI, "s3://datasets/"), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, e.acts.Areas.GeoJSON()) {
		t.Errorf("%s: %d bytes (%v), want the worker's %d", areasURI, len(got), err, len(e.acts.Areas.GeoJSON()))
	}

	// Every heartbeat carries the run id.
	hbs := e.hb.all()
	if len(hbs) < 4 {
		t.Errorf("%d heartbeats, want one on creation and one per read", len(hbs))
	}
	for _, d := range hbs {
		if d != "run-1" {
			t.Errorf("heartbeat details %v, want the run id", d)
		}
	}

	// The result and the stored version.
	sum := sha256.Sum256(p.model)
	if res.ModelName != "fare" || res.Version != kfpVersion || res.PipelineRunID != "run-1" ||
		res.PipelineRunURL != "https://kubeflow.example.com/pipeline/#/runs/details/run-1" ||
		res.SHA256 != hex.EncodeToString(sum[:]) || res.URI != "s3://models/fare/"+kfpVersion+"/" ||
		res.Rows != 900 || res.BestIteration != c.BestIteration {
		t.Errorf("result %+v", res)
	}
	if !jsonEqual(res.Metrics, c.Metrics) {
		t.Errorf("metrics %v, want the validation metrics %v", res.Metrics, c.Metrics)
	}
	loaded, err := training.LoadModel(context.Background(), e.reg, "fare", kfpVersion)
	if err != nil {
		t.Fatal(err)
	}
	meta := loaded.Meta
	if !slices.Equal(meta.Features.Names, features.FareFeatures) || !slices.Equal(meta.Features.CompanyVocab, c.Spec.CompanyVocab) ||
		!slices.Equal(meta.Features.PaymentVocab, c.Spec.PaymentVocab) {
		t.Errorf("stored spec %+v, want the pushed %+v", meta.Features, c.Spec)
	}
	if !jsonEqual(loaded.Profile, c.Profile) {
		t.Error("the reference profile differs from the one training.Fit builds on the same rows")
	}
	if meta.Objective != "reg:squarederror" || meta.TrainingDataURI != e.in.TrainURI ||
		meta.Lineage.WorkflowID != "retrain/fare/test" || meta.Lineage.DatasetURI != e.in.DatasetURI || meta.Lineage.ParentVersion != "v0" {
		t.Errorf("metadata %+v", meta)
	}
	var tp activities.KFPTrainParams
	if err := json.Unmarshal(meta.Params, &tp); err != nil {
		t.Fatal(err)
	}
	if tp.KFPRunID != "run-1" || tp.Pipeline != "kfp" || tp.KFPPipelineVersionID != kfpPVersion || tp.NumRounds != fare.Params.NumRounds ||
		tp.KFPPushDestination != "s3://models/fare/"+kfpVersion+"/kfp/" || tp.XGBoostVersion != "go-test" {
		t.Errorf("params %s", meta.Params)
	}
}

// A slow run: many polls, each heartbeating the run id, and the activity
// waits it out.
func TestKFPRunSlow(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	script := []step{{state: kfp.StatePending}, {state: kfp.StatePending}}
	for range 8 {
		script = append(script, step{state: kfp.StateRunning})
	}
	script = append(script, step{state: kfp.StatePaused}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
	e := newKFPEnv(t, kfp.Config{}, script...)
	e.pushes(pushedOf(t, fitted(t, fare), fare, kfpVersion))
	res, err := e.run(nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.fake.count("GET", "/apis/v2beta1/runs/run-1"); n != len(script) {
		t.Errorf("%d reads, want %d", n, len(script))
	}
	hbs := e.hb.all()
	if len(hbs) < len(script) {
		t.Errorf("%d heartbeats for %d polls", len(hbs), len(script))
	}
	for _, d := range hbs {
		if d != "run-1" {
			t.Fatalf("heartbeat details %v", d)
		}
	}
	if res.PipelineRunID != "run-1" {
		t.Errorf("result %+v", res)
	}
}

func TestKFPRunFails(t *testing.T) {
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateRunning},
		step{state: kfp.StateFailed, msg: "task Trainer failed: exit status 1"})
	_, err := e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypePipelineFailed, "run-1", "task Trainer failed: exit status 1",
		"Trainer: xgboost.core.XGBoostError: label must be in [0,1]", "https://kubeflow.example.com/pipeline/#/runs/details/run-1")
	if vs, _ := e.reg.Versions(context.Background(), "fare"); len(vs) != 0 {
		t.Errorf("versions %v after a failed run", vs)
	}
}

func TestKFPRunCanceledOrSkipped(t *testing.T) {
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateCanceling}, step{state: kfp.StateCanceled, msg: "terminated by admin"})
	_, err := e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypePipelineCanceled, "terminated by admin")

	e = newKFPEnv(t, kfp.Config{}, step{state: kfp.StateSkipped})
	_, err = e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypePipelineFailed, "skipped")
}

// A 5xx on create is retryable: nothing was started that the next attempt
// could resume. A 4xx is not, and says what the server said.
func TestKFPCreateErrors(t *testing.T) {
	e := newKFPEnv(t, kfp.Config{})
	e.fake.createStatus = []int{http.StatusServiceUnavailable}
	_, err := e.run(nil)
	wantRetryable(t, err, "HTTP 503", "upstream connect error")
	if n := len(e.fake.requests()); n != 1 {
		t.Errorf("%d requests, want the one POST", n)
	}

	e = newKFPEnv(t, kfp.Config{PipelineID: kfpPipeline, PipelineVersionID: "gone"})
	e.fake.createStatus = []int{http.StatusNotFound}
	_, err = e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeInvalidInput, "HTTP 404")
}

// Reads that fail transiently are repeated within the attempt (the run id is
// safe in the heartbeat details); too many in a row end the attempt with a
// retryable error, and the next attempt resumes.
func TestKFPReadErrors(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	e := newKFPEnv(t, kfp.Config{}, step{status: 503}, step{status: 502}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
	e.pushes(pushedOf(t, fitted(t, fare), fare, kfpVersion))
	if _, err := e.run(nil); err != nil {
		t.Fatal(err)
	}
	if n := e.fake.count("GET", "/apis/v2beta1/runs/run-1"); n != 4 {
		t.Errorf("%d reads, want 4", n)
	}

	e = newKFPEnv(t, kfp.Config{MaxPollErrors: 3}, step{status: 503})
	_, err := e.run(nil)
	wantRetryable(t, err, "3 reads in a row failed", "HTTP 503")
	if n := e.fake.count("GET", "/apis/v2beta1/runs/run-1"); n != 3 {
		t.Errorf("%d reads, want 3", n)
	}
	for _, d := range e.hb.all() {
		if d != "run-1" {
			t.Fatalf("heartbeat details %v", d)
		}
	}
}

// A retried attempt resumes the run of its heartbeat details: no second run.
func TestKFPResumesFromHeartbeat(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
	e.fake.runs["run-7"] = map[string]any{activities.KFPParamPushDestination: "s3://models/fare/" + kfpVersion + "/kfp/"}
	e.fake.names["run-7"] = activities.KFPDisplayName("fare", kfpVersion)
	e.pushes(pushedOf(t, fitted(t, fare), fare, kfpVersion))
	res, err := e.run("run-7")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range e.fake.requests() {
		if r.method != "GET" || r.path != "/apis/v2beta1/runs/run-7" {
			t.Errorf("request %s %s; a resumed attempt only reads its run", r.method, r.path)
		}
	}
	if res.PipelineRunID != "run-7" {
		t.Errorf("result %+v", res)
	}
	// A run that no longer exists cannot be resumed.
	e = newKFPEnv(t, kfp.Config{})
	_, err = e.run("run-404")
	wantNonRetryable(t, err, activities.ErrTypeInvalidInput, "HTTP 404", "Run run-404 not found")
}

// kfpRetrain runs RunPipeline as RetrainWorkflow does, with retries.
func kfpRetrain(ctx workflow.Context, in activities.PipelineInput) (activities.TrainResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    2 * time.Second,
		WaitForCancellation: true,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Millisecond, MaximumAttempts: 3, NonRetryableErrorTypes: activities.NonRetryable,
		},
	})
	var a *activities.Activities
	var res activities.TrainResult
	err := workflow.ExecuteActivity(ctx, a.RunPipeline, in).Get(ctx, &res)
	return res, err
}

// When the first attempt's answer to the POST is lost (the run was created,
// the proxy answered 503), the retry finds the run by its display name and
// follows it instead of starting a second one.
func TestKFPRetryFindsRunByName(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
	e.fake.createStatus, e.fake.createdAnyway = []int{http.StatusServiceUnavailable}, true
	e.pushes(pushedOf(t, fitted(t, fare), fare, kfpVersion))
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterWorkflow(kfpRetrain)
	env.RegisterActivity(e.acts)
	env.ExecuteWorkflow(kfpRetrain, e.in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res activities.TrainResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.PipelineRunID != "run-1" {
		t.Errorf("result %+v", res)
	}
	if n := e.fake.count("POST", "/apis/v2beta1/runs"); n != 1 {
		t.Errorf("%d POSTs, want 1", n)
	}
	if n := e.fake.count("GET", "/apis/v2beta1/runs"); n != 1 {
		t.Errorf("%d lookups by name, want 1", n)
	}
}

// Cancelling the workflow terminates the run: the heartbeat tells the
// activity, which asks the server to terminate and returns.
func TestKFPCancelTerminatesRun(t *testing.T) {
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateRunning})
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(2 * time.Minute)
	env.RegisterWorkflow(kfpRetrain)
	env.RegisterActivity(e.acts)
	go func() {
		for n := range e.fake.polled {
			if n == 3 {
				env.CancelWorkflow()
				return
			}
		}
	}()
	env.ExecuteWorkflow(kfpRetrain, e.in)
	if err := env.GetWorkflowError(); err == nil || !temporal.IsCanceledError(err) {
		t.Errorf("workflow error %v, want cancelled", err)
	}
	select {
	case id := <-e.fake.terminated:
		if id != "run-1" {
			t.Errorf("terminated %q, want run-1", id)
		}
	case <-time.After(time.Minute):
		t.Fatal("the run was not terminated")
	}
	if n := e.fake.count("POST", "/apis/v2beta1/runs/run-1:terminate"); n != 1 {
		t.Errorf("%d terminate requests", n)
	}
}

// A pushed model that does not fit its spec is refused, non-retryably,
// and nothing is stored.
func TestKFPRefusesModelNotMatchingSpec(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	wide := fare
	wide.Features = features.TipperFeatures // 11 features, the spec has 10
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateSucceeded})
	p := pushedOf(t, fitted(t, fare), fare, kfpVersion)
	p.model = fitted(t, wide).JSON
	e.pushes(p)
	_, err := e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeCorruptModel, "the model has 11 features, its feature spec 10")
	if vs, _ := e.reg.Versions(context.Background(), "fare"); len(vs) != 0 {
		t.Errorf("versions %v", vs)
	}

	// A run that succeeded without pushing is refused too.
	e = newKFPEnv(t, kfp.Config{}, step{state: kfp.StateSucceeded})
	_, err = e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeCorruptModel, "no model.json although the run succeeded")

	// A big-tipper model pushed as fare: the objective gives it away.
	tipper, _ := training.Lookup(training.BigTipper)
	tipper.Features = features.FareFeatures
	e = newKFPEnv(t, kfp.Config{}, step{state: kfp.StateSucceeded})
	p.model = fitted(t, tipper).JSON
	e.pushes(p)
	_, err = e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeCorruptModel, "objective is binary:logistic")
}

// The pipeline's validation metric must be the Go evaluator's on the same
// rows: a different one means the two encoded the trips differently.
func TestKFPRefusesSkew(t *testing.T) {
	fare, _ := training.Lookup(training.Fare)
	c := fitted(t, fare)
	e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateSucceeded})
	p := pushedOf(t, c, fare, kfpVersion)
	var man activities.KFPManifest
	json.Unmarshal(p.manifest, &man)
	man.ValidationMetrics = map[string]float64{"rmse": c.Metrics["rmse"] * 1.01}
	p.manifest, _ = json.Marshal(man)
	e.pushes(p)
	_, err := e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeCorruptModel, "training/serving skew")
}

func TestKFPNeedsPipelineVersion(t *testing.T) {
	e := newKFPEnv(t, kfp.Config{PipelineID: kfpPipeline})
	_, err := e.run(nil)
	wantNonRetryable(t, err, activities.ErrTypeInvalidInput, "--kfp-pipeline-version-id")
	if n := len(e.fake.requests()); n != 0 {
		t.Errorf("%d requests", n)
	}
}

// Every catalogue model has a label the pipeline knows, and the pipeline's
// rule for it (taxi_features.labels) is the model's Label.
func TestKFPLabels(t *testing.T) {
	train, _, areas, loc := kfpRows(t)
	ex := training.Examples(train, areas, loc)
	for _, m := range training.Models() {
		label, ok := activities.KFPLabel(m.Name)
		if !ok {
			t.Errorf("model %s has no kfp label", m.Name)
			continue
		}
		for i := range ex {
			var want float32
			switch label {
			case "fare":
				want = float32(ex[i].Fare)
			case "tips":
				want = float32(ex[i].Tips)
			case "big_tipper":
				if ex[i].Tips > 0.2*ex[i].Fare {
					want = 1
				}
			default:
				t.Fatalf("label %q", label)
			}
			if got := m.Label(&ex[i]); got != want {
				t.Fatalf("%s: trip %s: label %v, the pipeline's rule %q gives %v", m.Name, ex[i].TripID, got, label, want)
			}
		}
	}
}

const tfxDir = "../deploy/tfx"

var tfxFiles = []string{"pipeline.py", "compile.py", "taxi_features.py", "taxi_trainer.py"}

// The pipeline's Python compiles (TFX need not be installed for that).
func TestTFXPipelineCompiles(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	args := []string{"-m", "py_compile"}
	for _, f := range tfxFiles {
		args = append(args, filepath.Join(tfxDir, f))
	}
	cmd := exec.Command(py, args...)
	cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+t.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("py_compile: %v\n%s", err, out)
	}
}

// The runtime parameters the activity sends are the ones pipeline.py
// declares, and each is wired into a component.
func TestKFPParameterNamesMatchPipeline(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(tfxDir, "pipeline.py"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(src)
	start := strings.Index(text, "\nRUNTIME_PARAMETERS = {\n")
	if start < 0 {
		t.Fatal("pipeline.py has no RUNTIME_PARAMETERS = { … } block")
	}
	block := text[start:]
	block = block[:strings.Index(block, "\n}\n")]
	var declared []string
	for _, m := range regexp.MustCompile(`(?m)^\s+"(\w+)":\s*\(`).FindAllStringSubmatch(block, -1) {
		declared = append(declared, m[1])
	}
	sort.Strings(declared)
	sent := activities.KFPParameterNames()
	sort.Strings(sent)
	if !slices.Equal(declared, sent) {
		t.Errorf("pipeline.py declares %v\nthe activity sends %v", declared, sent)
	}
	wired := map[string]bool{}
	for _, m := range regexp.MustCompile(`(\w+)=p\["(\w+)"\]`).FindAllStringSubmatch(text, -1) {
		if m[1] != m[2] {
			t.Errorf("component argument %s is given parameter %s", m[1], m[2])
		}
		wired[m[2]] = true
	}
	for _, n := range sent {
		if !wired[n] {
			t.Errorf("runtime parameter %s is not given to any component in create_pipeline", n)
		}
	}
}

// columnsOf is the snapshot's columns as pipeline.snapshot_columns reads
// them from Parquet (JSON null for null).
func columnsOf(rows []dataset.Row) map[string]any {
	n := len(rows)
	cols := map[string][]any{}
	opt := func(p *float64) any {
		if p == nil {
			return nil
		}
		return *p
	}
	optInt := func(p *int) any {
		if p == nil {
			return nil
		}
		return *p
	}
	for _, r := range rows {
		add := func(k string, v any) { cols[k] = append(cols[k], v) }
		add("trip_id", r.Ride.TripID)
		add("event_timestamp", r.Ride.PickupDatetime.UnixMicro())
		add("pickup_latitude", opt(r.Ride.PickupLatitude))
		add("pickup_longitude", opt(r.Ride.PickupLongitude))
		add("dropoff_latitude", opt(r.Ride.DropoffLatitude))
		add("dropoff_longitude", opt(r.Ride.DropoffLongitude))
		add("pickup_community_area", optInt(r.Ride.PickupCommunityArea))
		add("dropoff_community_area", optInt(r.Ride.DropoffCommunityArea))
		add("trip_miles", opt(r.Ride.TripDistance))
		add("trip_seconds", opt(r.Ride.TripSeconds))
		add("fare_amount", opt(r.Ride.FareAmount))
		add("payment_type", r.Ride.PaymentType)
		add("company", r.Ride.Company)
		add("fare", r.Actual.Fare)
		add("tips", r.Actual.Tips)
	}
	out := map[string]any{"n": n}
	for k, v := range cols {
		out[k] = v
	}
	return out
}

// pythonDriver loads columns written by columnsOf and runs the pipeline's
// encoding or training; it is what run_fn does after reading the Parquet.
const pythonDriver = `
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import taxi_features, taxi_trainer
job = json.load(open(sys.argv[2]))
raw = job["columns"]
cols = {}
for k, v in raw.items():
    if k == "n":
        continue
    if k in ("trip_id", "payment_type", "company"):
        cols[k] = ["" if x is None else x for x in v]
    elif k == "event_timestamp":
        cols[k] = np.array(v, dtype=np.int64)
    else:
        cols[k] = np.array([np.nan if x is None else x for x in v], dtype=np.float64)
areas = taxi_features.CommunityAreas(json.load(open(job["geojson"]))) if job["geojson"] else None
p = job["params"]
if job["mode"] == "encode":
    rows = taxi_features.feature_rows(cols, p["timezone"], areas)
    order = taxi_features.sort_order(cols["event_timestamp"], cols["trip_id"])
    k = taxi_features.split_index(len(order), p["validation_fraction"])
    spec = taxi_features.new_spec(p["feature_names"], taxi_features.take(rows, order[:k]), p["max_companies"])
    x = taxi_features.vectors(spec, rows)
    y = taxi_features.labels(cols, p["label"])
    json.dump({"spec": spec, "order": order, "k": k, "x": x.view(np.uint32).tolist(),
               "y": y.view(np.uint32).tolist()}, open(job["out"], "w"))
else:
    model, spec, manifest = taxi_trainer.train(cols, p["model_name"], p["model_version"], p["objective"], p["label"],
        p["feature_names"], p["timezone"], areas, p["validation_fraction"], p["max_companies"], p["xgb_params"],
        p["num_boost_round"], p["early_stopping_rounds"], log=lambda s: None)
    for name, data in taxi_trainer.files(model, spec, manifest):
        open(job["out"] + "/" + name, "wb").write(data)
`

// python finds a python3 that imports modules, or skips the test.
func python(t *testing.T, modules ...string) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		path, err := exec.LookPath(p)
		if err != nil {
			continue
		}
		if exec.Command(path, "-c", "import "+strings.Join(modules, ", ")).Run() == nil {
			return path
		}
	}
	t.Skipf("no python3 with %s", strings.Join(modules, ", "))
	return ""
}

func runDriver(t *testing.T, py, mode string, rows []dataset.Row, areas *geo.Areas, params map[string]any, out string) {
	t.Helper()
	dir := t.TempDir()
	geoPath := ""
	if areas != nil {
		geoPath = filepath.Join(dir, "areas.geojson")
		if err := os.WriteFile(geoPath, areas.GeoJSON(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	job, err := json.Marshal(map[string]any{"mode": mode, "columns": columnsOf(rows), "geojson": geoPath, "params": params, "out": out})
	if err != nil {
		t.Fatal(err)
	}
	jobPath := filepath.Join(dir, "job.json")
	if err := os.WriteFile(jobPath, job, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(tfxDir)
	cmd := exec.Command(py, "-c", pythonDriver, abs, jobPath)
	cmd.Env = append(os.Environ(), "PYTHONPYCACHEPREFIX="+filepath.Join(dir, "pycache"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("python %s: %v\n%s", mode, err, b)
	}
}

// The pipeline's encoding (deploy/tfx/taxi_features.py) is ml/features':
// the same split, vocabularies, and every vector value and label bit for
// bit, on the shipped trips. Runs where a python3 with numpy exists.
func TestKFPPipelineEncodingMatchesGo(t *testing.T) {
	py := python(t, "numpy")
	train, hold, areas, loc := kfpRows(t)
	rows := append(slices.Clone(train), hold...)
	// Rows the replay and the city's data do not have: no coordinates but
	// a label, neither, an unknown company, an empty payment type, zero
	// seconds, a point outside every area, and a pickup in the DST change.
	extra := slices.Clone(rows[:8])
	for i := range extra {
		extra[i].Ride.TripID = fmt.Sprintf("zz-extra-%d", i)
	}
	extra[0].Ride.PickupLatitude, extra[0].Ride.PickupLongitude = nil, nil
	extra[1].Ride.PickupLatitude, extra[1].Ride.PickupLongitude, extra[1].Ride.PickupCommunityArea = nil, nil, nil
	extra[2].Ride.Company = "Nobody's Cab Co"
	extra[3].Ride.PaymentType = ""
	zero := 0.0
	extra[4].Ride.TripSeconds = &zero
	far, farLon := 40.0, -80.0
	extra[5].Ride.DropoffLatitude, extra[5].Ride.DropoffLongitude = &far, &farLon
	extra[6].Ride.TripSeconds = nil
	extra[7].Ride.PickupDatetime = time.Date(2015, 11, 1, 6, 30, 0, 0, time.UTC) // 01:30 CDT or CST
	rows = append(rows, extra...)

	names := features.TipperFeatures
	for _, withAreas := range []bool{true, false} {
		a := areas
		if !withAreas {
			a = nil
		}
		out := filepath.Join(t.TempDir(), "out.json")
		runDriver(t, py, "encode", rows, a, map[string]any{
			"timezone": "America/Chicago", "validation_fraction": training.ValidationFraction,
			"feature_names": names, "max_companies": features.MaxCompanies, "label": "big_tipper",
		}, out)
		var got struct {
			Spec  features.Spec
			Order []int
			K     int
			X     [][]uint32
			Y     []uint32
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		ex := training.Examples(rows, a, loc)
		sorted := slices.Clone(ex)
		training.SortByTime(sorted)
		trainPart, _, _ := training.SplitByTime(sorted, training.ValidationFraction)
		if got.K != len(trainPart) {
			t.Fatalf("areas %v: python splits at %d, Go at %d", withAreas, got.K, len(trainPart))
		}
		for i, j := range got.Order {
			if ex[j].TripID != sorted[i].TripID {
				t.Fatalf("areas %v: python's order differs from training.SortByTime at %d", withAreas, i)
			}
		}
		rowsOf := make([]features.Row, len(trainPart))
		for i := range trainPart {
			rowsOf[i] = trainPart[i].Row
		}
		spec, err := features.NewSpec(names, rowsOf)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Spec.Names, spec.Names) || !slices.Equal(got.Spec.PaymentVocab, spec.PaymentVocab) ||
			!slices.Equal(got.Spec.CompanyVocab, spec.CompanyVocab) || got.Spec.Version != spec.Version {
			t.Fatalf("areas %v: python spec %+v\nGo spec %+v", withAreas, got.Spec, spec)
		}
		big, _ := training.Lookup(training.BigTipper)
		x := make([]float32, spec.Len())
		for i := range ex {
			spec.Vector(&ex[i].Row, x)
			for k := range x {
				g := math.Float32frombits(got.X[i][k])
				if g != x[k] && !(g != g && x[k] != x[k]) {
					t.Fatalf("areas %v: trip %s %s: python %v, Go %v", withAreas, ex[i].TripID, spec.Names[k], g, x[k])
				}
			}
			if y := math.Float32frombits(got.Y[i]); y != big.Label(&ex[i]) {
				t.Fatalf("trip %s: python label %v, Go %v", ex[i].TripID, y, big.Label(&ex[i]))
			}
		}
	}
}

// The pipeline's trainer (deploy/tfx/taxi_trainer.py, real xgboost) as the
// run's Pusher: the activity accepts its model, its metrics agree with the
// Go evaluator's, and the model is the catalogue's. Runs where a python3
// with numpy and xgboost exists.
func TestKFPWithPythonTrainer(t *testing.T) {
	py := python(t, "numpy", "xgboost")
	train, _, areas, _ := kfpRows(t)
	for _, name := range []string{training.Fare, training.BigTipper} {
		m, _ := training.Lookup(name)
		e := newKFPEnv(t, kfp.Config{}, step{state: kfp.StateRunning}, step{state: kfp.StateSucceeded})
		e.in.ModelName = name
		e.fake.push = func(params map[string]any) {
			p := map[string]any{}
			for k, v := range params {
				p[k] = v
			}
			var fn []string
			json.Unmarshal([]byte(params["feature_names"].(string)), &fn)
			var xp map[string]any
			json.Unmarshal([]byte(params["xgb_params"].(string)), &xp)
			p["feature_names"], p["xgb_params"], p["num_boost_round"] = fn, xp, 10
			out := t.TempDir()
			runDriver(t, py, "train", train, areas, p, out)
			dest := strings.TrimPrefix(params["push_destination"].(string), "s3://models/")
			for _, f := range []string{activities.KFPModelFile, activities.KFPSpecFile, activities.KFPManifestFile} {
				if _, err := e.s3.FPutObject(context.Background(), "models", dest+f, filepath.Join(out, f), minio.PutObjectOptions{}); err != nil {
					t.Error(err)
				}
			}
		}
		res, err := e.run(nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		loaded, err := training.LoadModel(context.Background(), e.reg, name, kfpVersion)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.Eval.NumTrees() != 10 || loaded.Eval.Objective() != m.Objective {
			t.Errorf("%s: %d trees, objective %s", name, loaded.Eval.NumTrees(), loaded.Eval.Objective())
		}
		t.Logf("%s trained by xgboost in the pipeline's trainer: validation %v", name, res.Metrics)
	}
}

func jsonEqual(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && string(x) == string(y)
}
