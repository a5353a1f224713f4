// Package kfp is a client of the Kubeflow Pipelines v2beta1 REST API: start
// a run of a pipeline version with runtime parameters, follow it, find it
// again by name, terminate it.
//
// It speaks the JSON that the KFP API server's gRPC gateway serves
// (backend/api/v2beta1/run.proto, field names in snake_case):
//
//	POST /apis/v2beta1/runs                     CreateRun (body: a Run)
//	GET  /apis/v2beta1/runs/{run_id}            GetRun
//	GET  /apis/v2beta1/runs?filter=…            FindRuns (ListRuns by display name)
//	POST /apis/v2beta1/runs/{run_id}:terminate  CancelRun
//
// v2beta1 has no ":cancel"; terminating is how a run is cancelled (the run
// goes CANCELING, then CANCELED). Errors are typed: an *APIError carries the
// HTTP status and the server's message; IsPermanent tells the 4xx answers
// that repeating cannot fix from 5xx answers and transport failures, which
// are worth retrying.
package kfp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultPollInterval  = 10 * time.Second
	DefaultMaxPollErrors = 10
)

// maxBody bounds the response bodies read: a run carries its whole
// pipeline spec and task details, tens to hundreds of kilobytes.
const maxBody = 32 << 20

// Config configures a Client. Endpoint is required; the pipeline fields
// describe the one pipeline the control plane runs and how it follows it.
type Config struct {
	// Endpoint is the base URL of the API server, e.g.
	// http://ml-pipeline.kubeflow.svc.cluster.local:8888, or of the UI,
	// which proxies /apis/ to it.
	Endpoint string
	// Token, when set, is sent as "Authorization: Bearer <Token>" (a
	// Kubernetes service-account token for multi-user deployments).
	Token string
	// TokenFile, when set, is read before every request and its content
	// (trimmed) used as the token: projected service-account tokens
	// rotate while the worker runs.
	TokenFile string
	// UIEndpoint is the base URL of the KFP UI, for run links; "" uses
	// Endpoint.
	UIEndpoint string
	// HTTPClient sends the requests; nil means a client with an overall
	// DefaultTimeout per request.
	HTTPClient *http.Client

	// PipelineID and PipelineVersionID name the uploaded pipeline version
	// that runs are made of (deploy/tfx).
	PipelineID        string
	PipelineVersionID string
	// ExperimentID puts runs in an experiment; "" is the server's default
	// experiment. Multi-user deployments need one (it fixes the namespace).
	ExperimentID string
	// ServiceAccount is the Kubernetes service account the run's pods use;
	// "" is the server's default.
	ServiceAccount string
	// PipelineRoot is where the run's artifacts go (e.g.
	// minio://mlpipeline/v2/artifacts); "" keeps the pipeline's default.
	PipelineRoot string
	// PollInterval is how often a followed run is read (DefaultPollInterval
	// when zero).
	PollInterval time.Duration
	// MaxPollErrors is how many reads of a run in a row may fail
	// transiently before the follower gives up (DefaultMaxPollErrors when
	// zero).
	MaxPollErrors int
}

// Client talks to one Kubeflow Pipelines API server. It is safe for
// concurrent use.
type Client struct {
	cfg  Config
	base *url.URL
	ui   string
	http *http.Client
}

// New checks the configuration and returns a client.
func New(cfg Config) (*Client, error) {
	base, err := parseBase("endpoint", cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	ui := base
	if cfg.UIEndpoint != "" {
		if ui, err = parseBase("UI endpoint", cfg.UIEndpoint); err != nil {
			return nil, err
		}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultPollInterval
	}
	if cfg.MaxPollErrors <= 0 {
		cfg.MaxPollErrors = DefaultMaxPollErrors
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: DefaultTimeout}
	}
	return &Client{cfg: cfg, base: base, ui: strings.TrimSuffix(ui.String(), "/"), http: hc}, nil
}

func parseBase(what, s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("kfp: %s %q is not an http(s) URL", what, s)
	}
	return u, nil
}

// Config returns the client's configuration with defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// UIURL is the KFP UI page of a run.
func (c *Client) UIURL(runID string) string {
	return c.ui + "/#/runs/details/" + url.PathEscape(runID)
}

// RuntimeState is the state of a run (RuntimeState in run.proto).
type RuntimeState string

// Run states. A run starts PENDING, goes RUNNING and ends SUCCEEDED,
// FAILED, CANCELED or SKIPPED; CANCELING and PAUSED are passing states.
const (
	StateUnspecified RuntimeState = "RUNTIME_STATE_UNSPECIFIED"
	StatePending     RuntimeState = "PENDING"
	StateRunning     RuntimeState = "RUNNING"
	StateSucceeded   RuntimeState = "SUCCEEDED"
	StateSkipped     RuntimeState = "SKIPPED"
	StateFailed      RuntimeState = "FAILED"
	StateCanceling   RuntimeState = "CANCELING"
	StateCanceled    RuntimeState = "CANCELED"
	StatePaused      RuntimeState = "PAUSED"
)

// Final says whether a run in this state will not change any more.
func (s RuntimeState) Final() bool {
	switch s {
	case StateSucceeded, StateSkipped, StateFailed, StateCanceled:
		return true
	}
	return false
}

// Run is a run as the API describes it (V2beta1Run). Fields marked input
// are what CreateRun sends when set; the others are filled by the server.
type Run struct {
	// Input: the experiment the run belongs to; "" = the default one.
	ExperimentID string `json:"experiment_id,omitempty"`
	// Output: the run's id, generated by the server.
	RunID string `json:"run_id,omitempty"`
	// Input, required: the run's name. The control plane makes it
	// deterministic so that it can find its run again (FindRuns).
	DisplayName string `json:"display_name"`
	// Input: a short description.
	Description string `json:"description,omitempty"`
	// Input, required: the pipeline version to run.
	PipelineVersionReference *PipelineVersionReference `json:"pipeline_version_reference,omitempty"`
	// Input, required: runtime parameters and pipeline root.
	RuntimeConfig *RuntimeConfig `json:"runtime_config,omitempty"`
	// Input: the Kubernetes service account of the run's pods.
	ServiceAccount string `json:"service_account,omitempty"`

	// Output fields.
	StorageState string          `json:"storage_state,omitempty"`
	CreatedAt    time.Time       `json:"created_at,omitzero"`
	ScheduledAt  time.Time       `json:"scheduled_at,omitzero"`
	FinishedAt   time.Time       `json:"finished_at,omitzero"`
	State        RuntimeState    `json:"state,omitempty"`
	Error        *Status         `json:"error,omitempty"`
	RunDetails   *RunDetails     `json:"run_details,omitempty"`
	StateHistory []RuntimeStatus `json:"state_history,omitempty"`
}

// PipelineVersionReference names an uploaded pipeline version.
type PipelineVersionReference struct {
	PipelineID        string `json:"pipeline_id"`
	PipelineVersionID string `json:"pipeline_version_id"`
}

// RuntimeConfig holds the values of the pipeline's runtime parameters
// (JSON strings and numbers, matching the types the pipeline declares) and
// optionally the root of its output artifacts.
type RuntimeConfig struct {
	Parameters   map[string]any `json:"parameters"`
	PipelineRoot string         `json:"pipeline_root,omitempty"`
}

// Status is a google.rpc.Status: an error with a gRPC code.
type Status struct {
	Code    int               `json:"code,omitempty"`
	Message string            `json:"message,omitempty"`
	Details []json.RawMessage `json:"details,omitempty"`
}

// RuntimeStatus is one state a run or task went through.
type RuntimeStatus struct {
	UpdateTime time.Time    `json:"update_time,omitzero"`
	State      RuntimeState `json:"state,omitempty"`
	Error      *Status      `json:"error,omitempty"`
}

// RunDetails lists the run's tasks.
type RunDetails struct {
	TaskDetails []TaskDetail `json:"task_details,omitempty"`
}

// TaskDetail is one task (a pipeline component) of a run; only the fields
// the control plane reports are decoded.
type TaskDetail struct {
	TaskID      string       `json:"task_id,omitempty"`
	DisplayName string       `json:"display_name,omitempty"`
	State       RuntimeState `json:"state,omitempty"`
	Error       *Status      `json:"error,omitempty"`
}

// FailureMessage says why a run failed, from what the server reports: the
// run's error, the last error of its state history, and the errors of its
// failed tasks.
func (r *Run) FailureMessage() string {
	var parts []string
	seen := map[string]bool{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s != "" && !seen[s] {
			seen[s] = true
			parts = append(parts, s)
		}
	}
	if r.Error != nil {
		add(r.Error.Message)
	}
	for i := len(r.StateHistory) - 1; i >= 0; i-- {
		if e := r.StateHistory[i].Error; e != nil && e.Message != "" {
			add(e.Message)
			break
		}
	}
	if r.RunDetails != nil {
		for _, t := range r.RunDetails.TaskDetails {
			if t.Error != nil && t.Error.Message != "" && (t.State == StateFailed || t.State == StateCanceled) {
				add(t.DisplayName + ": " + t.Error.Message)
			}
		}
	}
	if len(parts) == 0 {
		return "no error message from the server"
	}
	return strings.Join(parts, "; ")
}

// ErrNotFound matches (errors.Is) an APIError with status 404.
var ErrNotFound = errors.New("kfp: not found")

// APIError is an answer of the server other than 2xx.
type APIError struct {
	// Op is what was asked, e.g. "get run 4f2c…".
	Op         string
	StatusCode int
	// Code is the gRPC code the server gave, 0 when none.
	Code int
	// Message is the server's explanation (or the start of the body).
	Message string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("kfp: %s: HTTP %d: %s", e.Op, e.StatusCode, msg)
}

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *APIError) Is(target error) bool {
	return target == ErrNotFound && e.StatusCode == http.StatusNotFound
}

// Temporary says whether repeating the request may succeed: 5xx, 408 and
// 429 answers.
func (e *APIError) Temporary() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// IsPermanent says whether err is an answer that repeating the same
// request cannot change (a 4xx other than 408 and 429). Transport errors,
// 5xx answers and undecodable responses are not permanent.
func IsPermanent(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && !ae.Temporary()
}

// CreateRun starts a run; the returned run has its RunID. The request body
// is run as JSON: display_name, description, pipeline_version_reference,
// runtime_config, and experiment_id and service_account when set.
func (c *Client) CreateRun(ctx context.Context, run *Run) (*Run, error) {
	if run.DisplayName == "" {
		return nil, errors.New("kfp: create run: display_name is required")
	}
	body, err := json.Marshal(createRequest{
		ExperimentID:             run.ExperimentID,
		DisplayName:              run.DisplayName,
		Description:              run.Description,
		PipelineVersionReference: run.PipelineVersionReference,
		RuntimeConfig:            run.RuntimeConfig,
		ServiceAccount:           run.ServiceAccount,
	})
	if err != nil {
		return nil, fmt.Errorf("kfp: create run %q: encode: %w", run.DisplayName, err)
	}
	var out Run
	if err := c.do(ctx, "create run "+run.DisplayName, http.MethodPost, "/apis/v2beta1/runs", nil, body, &out); err != nil {
		return nil, err
	}
	if out.RunID == "" {
		return nil, fmt.Errorf("kfp: create run %q: the answer has no run_id", run.DisplayName)
	}
	return &out, nil
}

// createRequest is exactly what CreateRun sends: the input fields of a Run.
type createRequest struct {
	ExperimentID             string                    `json:"experiment_id,omitempty"`
	DisplayName              string                    `json:"display_name"`
	Description              string                    `json:"description,omitempty"`
	PipelineVersionReference *PipelineVersionReference `json:"pipeline_version_reference,omitempty"`
	RuntimeConfig            *RuntimeConfig            `json:"runtime_config,omitempty"`
	ServiceAccount           string                    `json:"service_account,omitempty"`
}

// GetRun reads a run.
func (c *Client) GetRun(ctx context.Context, runID string) (*Run, error) {
	if runID == "" {
		return nil, errors.New("kfp: get run: run id is required")
	}
	var out Run
	if err := c.do(ctx, "get run "+runID, http.MethodGet, "/apis/v2beta1/runs/"+url.PathEscape(runID), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CancelRun terminates an active run (POST …/runs/{id}:terminate; v2beta1
// has no :cancel). The run goes CANCELING, then CANCELED.
func (c *Client) CancelRun(ctx context.Context, runID string) error {
	if runID == "" {
		return errors.New("kfp: cancel run: run id is required")
	}
	return c.do(ctx, "terminate run "+runID, http.MethodPost, "/apis/v2beta1/runs/"+url.PathEscape(runID)+":terminate", nil, []byte("{}"), nil)
}

// FindRuns lists the runs named displayName, newest first (at most 20),
// in experimentID when it is not "". It is ListRuns with a filter
// {"predicates": [{"key": "display_name", "operation": "EQUALS",
// "string_value": displayName}]}.
func (c *Client) FindRuns(ctx context.Context, displayName, experimentID string) ([]Run, error) {
	filter, err := json.Marshal(map[string]any{"predicates": []map[string]string{{
		"key": "display_name", "operation": "EQUALS", "string_value": displayName,
	}}})
	if err != nil {
		return nil, fmt.Errorf("kfp: find runs %q: %w", displayName, err)
	}
	q := url.Values{}
	q.Set("filter", string(filter))
	q.Set("sort_by", "created_at desc")
	q.Set("page_size", "20")
	if experimentID != "" {
		q.Set("experiment_id", experimentID)
	}
	var out struct {
		Runs []Run `json:"runs"`
	}
	if err := c.do(ctx, "find runs "+displayName, http.MethodGet, "/apis/v2beta1/runs", q, nil, &out); err != nil {
		return nil, err
	}
	// A server that ignores the filter must not make us adopt a stranger.
	runs := out.Runs[:0]
	for _, r := range out.Runs {
		if r.DisplayName == displayName {
			runs = append(runs, r)
		}
	}
	return runs, nil
}

// do sends one request and decodes a 2xx answer into out (when not nil).
func (c *Client) do(ctx context.Context, op, method, path string, query url.Values, body []byte, out any) error {
	target := strings.TrimSuffix(c.base.String(), "/") + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("kfp: %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	token := c.cfg.Token
	if c.cfg.TokenFile != "" {
		b, err := os.ReadFile(c.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("kfp: %s: read token: %w", op, err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kfp: %s: %w", op, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("kfp: %s: read answer: %w", op, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return apiError(op, resp.StatusCode, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("kfp: %s: decode answer: %w", op, err)
	}
	return nil
}

// apiError reads the server's error body: the gateway's runtime error
// ({"error", "code", "message", "details"}) or a google.rpc.Status; other
// bodies (a proxy's HTML page) are quoted briefly.
func apiError(op string, status int, body []byte) *APIError {
	e := &APIError{Op: op, StatusCode: status}
	var v struct {
		Error   string `json:"error"`
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &v) == nil && (v.Message != "" || v.Error != "") {
		e.Code, e.Message = v.Code, v.Message
		if e.Message == "" {
			e.Message = v.Error
		}
		return e
	}
	msg := strings.TrimSpace(string(body))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	e.Message = msg
	return e
}
