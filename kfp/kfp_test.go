package kfp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/kfp"
)

// request is what the fake API server saw.
type request struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   []byte
}

// server answers every request with the next canned (status, body) and
// records the request.
func server(t *testing.T, answers ...[2]string) (*httptest.Server, func() []request) {
	t.Helper()
	var mu sync.Mutex
	var seen []request
	n := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, request{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), b})
		a := answers[min(n, len(answers)-1)]
		n++
		mu.Unlock()
		status, err := strconv.Atoi(a[0])
		if err != nil {
			t.Errorf("bad canned status %q", a[0])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, a[1])
	}))
	t.Cleanup(ts.Close)
	return ts, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

func client(t *testing.T, endpoint string, cfg kfp.Config) *kfp.Client {
	t.Helper()
	cfg.Endpoint = endpoint
	c, err := kfp.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The body of CreateRun is exactly the documented input fields of a
// V2beta1Run, in the API's snake_case names.
func TestCreateRunRequest(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{"run_id": "r-1", "display_name": "taxi", "state": "PENDING",
		"created_at": "2026-03-01T12:00:00Z", "pipeline_spec": {"huge": true}}`})
	c := client(t, ts.URL+"/", kfp.Config{Token: "tok"})
	run, err := c.CreateRun(context.Background(), &kfp.Run{
		DisplayName:  "taxi",
		Description:  "why",
		ExperimentID: "exp",
		PipelineVersionReference: &kfp.PipelineVersionReference{
			PipelineID: "p", PipelineVersionID: "v",
		},
		RuntimeConfig:  &kfp.RuntimeConfig{Parameters: map[string]any{"a": "x", "n": 3, "f": 0.5}, PipelineRoot: "s3://root"},
		ServiceAccount: "sa",
		// Output fields are never sent.
		RunID: "ignored", State: kfp.StateRunning, CreatedAt: time.Now(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if run.RunID != "r-1" || run.State != kfp.StatePending || !run.CreatedAt.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("run %+v", run)
	}
	reqs := seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	r := reqs[0]
	if r.Method != "POST" || r.Path != "/apis/v2beta1/runs" || r.Auth != "Bearer tok" || r.ContentType != "application/json" {
		t.Errorf("request %s %s auth %q type %q", r.Method, r.Path, r.Auth, r.ContentType)
	}
	var body map[string]any
	if err := json.Unmarshal(r.Body, &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"display_name":               "taxi",
		"description":                "why",
		"experiment_id":              "exp",
		"service_account":            "sa",
		"pipeline_version_reference": map[string]any{"pipeline_id": "p", "pipeline_version_id": "v"},
		"runtime_config": map[string]any{
			"parameters":    map[string]any{"a": "x", "n": 3.0, "f": 0.5},
			"pipeline_root": "s3://root",
		},
	}
	if !jsonEqual(body, want) {
		t.Errorf("body %s\nwant %v", r.Body, want)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestGetRunAndFailureMessage(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{"run_id": "r 1", "state": "FAILED",
		"error": {"code": 2, "message": "pipeline failed"},
		"state_history": [{"update_time": "2026-03-01T12:00:00Z", "state": "RUNNING"},
			{"update_time": "2026-03-01T12:01:00Z", "state": "FAILED", "error": {"message": "pipeline failed"}}],
		"run_details": {"pipeline_context_id": "7", "task_details": [
			{"task_id": "1", "display_name": "ExampleGen", "state": "SUCCEEDED"},
			{"task_id": "2", "display_name": "Trainer", "state": "FAILED", "error": {"message": "label is NaN"}}]}}`})
	c := client(t, ts.URL, kfp.Config{})
	run, err := c.GetRun(context.Background(), "r 1")
	if err != nil {
		t.Fatal(err)
	}
	if run.State != kfp.StateFailed || !run.State.Final() {
		t.Errorf("state %s", run.State)
	}
	if got, want := run.FailureMessage(), "pipeline failed; Trainer: label is NaN"; got != want {
		t.Errorf("failure message %q, want %q", got, want)
	}
	r := seen()[0]
	if r.Method != "GET" || r.Path != "/apis/v2beta1/runs/r%201" || r.Auth != "" || len(r.Body) != 0 {
		t.Errorf("request %+v", r)
	}
	if (&kfp.Run{}).FailureMessage() == "" {
		t.Error("empty failure message")
	}
}

func TestCancelRunTerminates(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{}`})
	c := client(t, ts.URL, kfp.Config{})
	if err := c.CancelRun(context.Background(), "r-1"); err != nil {
		t.Fatal(err)
	}
	r := seen()[0]
	if r.Method != "POST" || r.Path != "/apis/v2beta1/runs/r-1:terminate" {
		t.Errorf("request %s %s", r.Method, r.Path)
	}
}

func TestFindRunsFilter(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{"runs": [
		{"run_id": "r-2", "display_name": "taxi-mlops/fare/v2"},
		{"run_id": "x", "display_name": "someone else"}], "total_size": 2}`})
	c := client(t, ts.URL, kfp.Config{})
	runs, err := c.FindRuns(context.Background(), "taxi-mlops/fare/v2", "exp")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].RunID != "r-2" {
		t.Errorf("runs %+v (a server that ignores the filter must not hand us others' runs)", runs)
	}
	r := seen()[0]
	q, _ := url.ParseQuery(r.Query)
	if r.Method != "GET" || r.Path != "/apis/v2beta1/runs" || q.Get("experiment_id") != "exp" ||
		q.Get("sort_by") != "created_at desc" || q.Get("page_size") != "20" {
		t.Errorf("request %s %s?%s", r.Method, r.Path, r.Query)
	}
	var filter map[string]any
	if err := json.Unmarshal([]byte(q.Get("filter")), &filter); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"predicates": []any{map[string]any{
		"key": "display_name", "operation": "EQUALS", "string_value": "taxi-mlops/fare/v2"}}}
	if !jsonEqual(filter, want) {
		t.Errorf("filter %v", filter)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		status, body string
		permanent    bool
		notFound     bool
		message      string
	}{
		{"400", `{"error": "bad", "code": 3, "message": "Invalid input error: pipeline version id is required"}`, true, false,
			"HTTP 400: Invalid input error: pipeline version id is required"},
		{"404", `{"code": 5, "message": "Run r-9 not found"}`, true, true, "HTTP 404: Run r-9 not found"},
		{"401", `{"error": "Unauthenticated"}`, true, false, "HTTP 401: Unauthenticated"},
		{"429", `{"message": "slow down"}`, false, false, "HTTP 429: slow down"},
		{"503", `<html>upstream connect error</html>`, false, false, "HTTP 503: <html>upstream connect error</html>"},
		{"500", ``, false, false, "HTTP 500: Internal Server Error"},
	} {
		ts, _ := server(t, [2]string{tc.status, tc.body})
		c := client(t, ts.URL, kfp.Config{})
		_, err := c.GetRun(context.Background(), "r-9")
		var ae *kfp.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("%s: %v is not an APIError", tc.status, err)
		}
		if kfp.IsPermanent(err) != tc.permanent || errors.Is(err, kfp.ErrNotFound) != tc.notFound {
			t.Errorf("%s: permanent %v, not found %v", tc.status, kfp.IsPermanent(err), errors.Is(err, kfp.ErrNotFound))
		}
		if !strings.HasSuffix(err.Error(), tc.message) || !strings.Contains(err.Error(), "get run r-9") {
			t.Errorf("%s: message %q, want …%q", tc.status, err, tc.message)
		}
	}

	// Transport failures and undecodable answers are transient.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := client(t, "http://"+addr, kfp.Config{})
	if _, err := c.GetRun(context.Background(), "r"); err == nil || kfp.IsPermanent(err) {
		t.Errorf("connection refused: %v, permanent %v", err, kfp.IsPermanent(err))
	}
	ts, _ := server(t, [2]string{"200", `<html>login</html>`})
	c = client(t, ts.URL, kfp.Config{})
	if _, err := c.GetRun(context.Background(), "r"); err == nil || kfp.IsPermanent(err) {
		t.Errorf("HTML answer: %v, permanent %v", err, kfp.IsPermanent(err))
	}
	ts, _ = server(t, [2]string{"200", `{"display_name": "x"}`})
	c = client(t, ts.URL, kfp.Config{})
	if _, err := c.CreateRun(context.Background(), &kfp.Run{DisplayName: "x"}); err == nil {
		t.Error("a created run without run_id was accepted")
	}
}

func TestConfig(t *testing.T) {
	for _, bad := range []string{"", "ml-pipeline:8888", "ftp://x", "http://"} {
		if _, err := kfp.New(kfp.Config{Endpoint: bad}); err == nil {
			t.Errorf("endpoint %q accepted", bad)
		}
	}
	c, err := kfp.New(kfp.Config{Endpoint: "http://ml-pipeline.kubeflow:8888/"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Config(); got.PollInterval != kfp.DefaultPollInterval || got.MaxPollErrors != kfp.DefaultMaxPollErrors {
		t.Errorf("defaults %+v", got)
	}
	if got, want := c.UIURL("r-1"), "http://ml-pipeline.kubeflow:8888/#/runs/details/r-1"; got != want {
		t.Errorf("UI URL %q, want %q", got, want)
	}
	c, _ = kfp.New(kfp.Config{Endpoint: "http://api:8888", UIEndpoint: "https://kubeflow.example.com/pipeline/"})
	if got, want := c.UIURL("r-1"), "https://kubeflow.example.com/pipeline/#/runs/details/r-1"; got != want {
		t.Errorf("UI URL %q, want %q", got, want)
	}
}

// A prefix in the endpoint is kept (KFP behind the Kubeflow gateway).
func TestEndpointPrefix(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{"run_id": "r"}`})
	c := client(t, ts.URL+"/pipeline", kfp.Config{})
	if _, err := c.GetRun(context.Background(), "r"); err != nil {
		t.Fatal(err)
	}
	if p := seen()[0].Path; p != "/pipeline/apis/v2beta1/runs/r" {
		t.Errorf("path %q", p)
	}
}

// A token file is read for every request: a rotated token is used at once.
func TestTokenFile(t *testing.T) {
	ts, seen := server(t, [2]string{"200", `{"run_id": "r"}`})
	file := filepath.Join(t.TempDir(), "token")
	c := client(t, ts.URL, kfp.Config{Token: "ignored", TokenFile: file})
	for _, tok := range []string{"first", "second"} {
		if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.GetRun(context.Background(), "r"); err != nil {
			t.Fatal(err)
		}
	}
	reqs := seen()
	if reqs[0].Auth != "Bearer first" || reqs[1].Auth != "Bearer second" {
		t.Errorf("authorization %q, %q", reqs[0].Auth, reqs[1].Auth)
	}
	os.Remove(file)
	if _, err := c.GetRun(context.Background(), "r"); err == nil || len(seen()) != 2 {
		t.Errorf("a missing token file: %v, %d requests", err, len(seen()))
	}
}
