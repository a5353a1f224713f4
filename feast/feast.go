// Package feast is a client of the Feast Python feature server's HTTP API
// (`feast serve`, sdk/python/feast/feature_server.py): materialize the
// offline store into the online store, push streaming features, read online
// features, check health.
//
// The requests, exactly as sent (JSON keys in this order; map keys sorted):
//
//	GET  /health                    no body; 200 when the server has loaded its registry, 503 before
//	POST /materialize               {"start_ts":"<t>","end_ts":"<t>","feature_views":["v",…]}
//	POST /materialize-incremental   {"end_ts":"<t>","feature_views":["v",…]}
//	POST /push                      {"push_source_name":"s","df":{"col":[v,…],…},"to":"online"}
//	POST /get-online-features       {"features":["view:feature",…],"entities":{"key":[v,…]}}
//	                                {"feature_service":"svc","entities":{"key":[v,…]}}
//
// Times <t> are RFC 3339 in UTC with at most microseconds
// ("2016-03-01T08:15:00.5Z"), what the server's dateutil parser and pandas
// read without loss. "feature_views" is left out when no view is named: the
// server then materializes every view. In a push's "df" (a DataFrame as
// columns of equal-length lists) time.Time values are written the same way,
// and NaN or infinite floats as null.
//
// The server answers a request it cannot do with a status and a body: its
// own errors (FeastError) as a JSON string holding
// {"module","class","message"}, FastAPI's validation errors (422) as
// {"detail":[…]}, anything else as a JSON string of the exception's text.
// *Error carries the status and that message; 4xx (but 408 and 429) are
// permanent, 5xx and transport failures transient (Error.Permanent,
// IsPermanent).
package feast

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// TimeFormat is how times are written in requests: RFC 3339, microseconds
// at most (Python's datetime precision), trailing zeros dropped.
const TimeFormat = "2006-01-02T15:04:05.999999Z07:00"

// PushMode says where pushed rows go.
type PushMode string

// Push modes of the feature server.
const (
	PushOnline           PushMode = "online"
	PushOffline          PushMode = "offline"
	PushOnlineAndOffline PushMode = "online_and_offline"
)

// Config configures a Client.
type Config struct {
	// URL of the feature server, like http://feast:6566.
	URL string
	// Timeout bounds Health, Push and GetOnlineFeatures (default 30s).
	Timeout time.Duration
	// MaterializeTimeout bounds Materialize and MaterializeIncremental,
	// which answer only when the online store is written (default 10m).
	MaterializeTimeout time.Duration
	// HTTPClient, when set, replaces the default client (connect and TLS
	// handshake timeouts; the request timeouts above come from contexts).
	HTTPClient *http.Client
}

// Client talks to one Feast feature server. It is safe for concurrent use.
type Client struct {
	base       string
	http       *http.Client
	timeout    time.Duration
	matTimeout time.Duration
}

// New returns a client of the server at cfg.URL.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(cfg.URL))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("feast: server url %q is not http(s)://host[:port]", cfg.URL)
	}
	c := &Client{
		base:       strings.TrimRight(u.String(), "/"),
		http:       cfg.HTTPClient,
		timeout:    cfg.Timeout,
		matTimeout: cfg.MaterializeTimeout,
	}
	if c.timeout <= 0 {
		c.timeout = 30 * time.Second
	}
	if c.matTimeout <= 0 {
		c.matTimeout = 10 * time.Minute
	}
	if c.http == nil {
		c.http = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   4,
			ExpectContinueTimeout: time.Second,
		}}
	}
	return c, nil
}

// URL is the server's base URL.
func (c *Client) URL() string { return c.base }

// ErrInvalidRequest is wrapped by errors about a request this client refuses
// to send (empty names, ragged columns); they are permanent.
var ErrInvalidRequest = errors.New("invalid feast request")

// Error is a failed request: a status other than 2xx (StatusCode, Message)
// or no answer at all (StatusCode 0, Err).
type Error struct {
	// Op is the client method: health, materialize, push, ….
	Op     string
	Method string
	Path   string
	// StatusCode is the HTTP status; 0 when the request failed in transport.
	StatusCode int
	// Message is the server's error message, taken from its JSON body when
	// it has one, else the body's text (at most 2 KiB).
	Message string
	// Body is the raw response body (at most 64 KiB).
	Body string
	// Err is the transport error when StatusCode is 0.
	Err error
}

func (e *Error) Error() string {
	if e.StatusCode == 0 {
		return fmt.Sprintf("feast %s: %s %s: %v", e.Op, e.Method, e.Path, e.Err)
	}
	msg := e.Message
	if msg == "" {
		msg = "(no message)"
	}
	return fmt.Sprintf("feast %s: %s %s: %d %s: %s", e.Op, e.Method, e.Path, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

func (e *Error) Unwrap() error { return e.Err }

// Permanent says whether repeating the request cannot help: a 4xx answer
// other than 408 Request Timeout and 429 Too Many Requests.
func (e *Error) Permanent() bool {
	return e.StatusCode >= 400 && e.StatusCode < 500 &&
		e.StatusCode != http.StatusRequestTimeout && e.StatusCode != http.StatusTooManyRequests
}

// IsPermanent says whether err, from this package, is not worth retrying: a
// permanent *Error or a request refused before sending (ErrInvalidRequest).
// Transport failures, timeouts and 5xx answers are transient.
func IsPermanent(err error) bool {
	if errors.Is(err, ErrInvalidRequest) {
		return true
	}
	var e *Error
	return errors.As(err, &e) && e.Permanent()
}

// Health asks GET /health; nil when the server answers 200.
func (c *Client) Health(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.do(ctx, "health", http.MethodGet, "/health", nil, nil)
}

type materializeRequest struct {
	StartTS      string   `json:"start_ts"`
	EndTS        string   `json:"end_ts"`
	FeatureViews []string `json:"feature_views,omitempty"`
}

type materializeIncrementalRequest struct {
	EndTS        string   `json:"end_ts"`
	FeatureViews []string `json:"feature_views,omitempty"`
}

// Materialize loads the feature values with event times in [start, end)
// from the offline store into the online store (POST /materialize), for the
// named feature views or, with none named, all of them. It returns when the
// server has written them.
func (c *Client) Materialize(ctx context.Context, start, end time.Time, views []string) error {
	if start.IsZero() || end.IsZero() || !start.Before(end) {
		return fmt.Errorf("feast materialize: start %v must be before end %v: %w", start, end, ErrInvalidRequest)
	}
	if err := checkNames("feature view", views); err != nil {
		return fmt.Errorf("feast materialize: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.matTimeout)
	defer cancel()
	return c.do(ctx, "materialize", http.MethodPost, "/materialize",
		materializeRequest{StartTS: FormatTime(start), EndTS: FormatTime(end), FeatureViews: views}, nil)
}

// MaterializeIncremental loads feature values from where the previous
// materialization of each view ended (or, the first time, from now minus
// the view's TTL) up to end (POST /materialize-incremental).
func (c *Client) MaterializeIncremental(ctx context.Context, end time.Time, views []string) error {
	if end.IsZero() {
		return fmt.Errorf("feast materialize-incremental: end is required: %w", ErrInvalidRequest)
	}
	if err := checkNames("feature view", views); err != nil {
		return fmt.Errorf("feast materialize-incremental: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.matTimeout)
	defer cancel()
	return c.do(ctx, "materialize-incremental", http.MethodPost, "/materialize-incremental",
		materializeIncrementalRequest{EndTS: FormatTime(end), FeatureViews: views}, nil)
}

type pushRequest struct {
	PushSourceName string           `json:"push_source_name"`
	DF             map[string][]any `json:"df"`
	To             PushMode         `json:"to"`
}

// Push writes rows through a push source (POST /push) to the stores to
// says. columns is the DataFrame, column name to values, every column as
// long as the others; it must hold the entity keys, the source's timestamp
// field and the features of the views fed by the source.
func (c *Client) Push(ctx context.Context, source string, columns map[string][]any, to PushMode) error {
	if source == "" {
		return fmt.Errorf("feast push: push source name is required: %w", ErrInvalidRequest)
	}
	switch to {
	case PushOnline, PushOffline, PushOnlineAndOffline:
	default:
		return fmt.Errorf("feast push to %q: not one of online, offline, online_and_offline: %w", to, ErrInvalidRequest)
	}
	if len(columns) == 0 {
		return fmt.Errorf("feast push %s: no columns: %w", source, ErrInvalidRequest)
	}
	df := make(map[string][]any, len(columns))
	n := -1
	for name, vs := range columns {
		if name == "" {
			return fmt.Errorf("feast push %s: a column has no name: %w", source, ErrInvalidRequest)
		}
		if n >= 0 && len(vs) != n {
			return fmt.Errorf("feast push %s: columns differ in length (%q has %d values, another %d): %w", source, name, len(vs), n, ErrInvalidRequest)
		}
		n = len(vs)
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = jsonValue(v)
		}
		df[name] = out
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return c.do(ctx, "push", http.MethodPost, "/push", pushRequest{PushSourceName: source, DF: df, To: to}, nil)
}

// jsonValue makes a DataFrame cell encodable the way the server reads it.
func jsonValue(v any) any {
	switch x := v.(type) {
	case time.Time:
		return FormatTime(x)
	case *time.Time:
		if x == nil {
			return nil
		}
		return FormatTime(*x)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return nil
		}
	case *float64:
		if x == nil || math.IsNaN(*x) || math.IsInf(*x, 0) {
			return nil
		}
		return *x
	}
	return v
}

type onlineRequest struct {
	Features       []string         `json:"features,omitempty"`
	FeatureService string           `json:"feature_service,omitempty"`
	Entities       map[string][]any `json:"entities"`
}

// OnlineFeatures is the answer of /get-online-features: one result per
// requested name (entity keys first, then features, in the order of
// Metadata.FeatureNames), each with one value per entity row.
type OnlineFeatures struct {
	Metadata struct {
		FeatureNames []string `json:"feature_names"`
	} `json:"metadata"`
	Results []FeatureVector `json:"results"`
}

// FeatureVector is one feature's values for the requested entity rows.
// Values are JSON values as decoded with json.Number for numbers (so int64
// keeps its precision); a missing value is nil with a status other than
// "PRESENT" (NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE).
type FeatureVector struct {
	Values          []any    `json:"values"`
	Statuses        []string `json:"statuses"`
	EventTimestamps []string `json:"event_timestamps"`
}

// Column returns the results of the named feature (or entity key).
func (o *OnlineFeatures) Column(name string) (FeatureVector, bool) {
	for i, n := range o.Metadata.FeatureNames {
		if n == name && i < len(o.Results) {
			return o.Results[i], true
		}
	}
	return FeatureVector{}, false
}

// GetOnlineFeatures reads features ("view:feature") for entity rows given as
// columns, join key to values (POST /get-online-features).
func (c *Client) GetOnlineFeatures(ctx context.Context, features []string, entities map[string][]any) (*OnlineFeatures, error) {
	if len(features) == 0 {
		return nil, fmt.Errorf("feast get-online-features: no features named: %w", ErrInvalidRequest)
	}
	if err := checkNames("feature", features); err != nil {
		return nil, fmt.Errorf("feast get-online-features: %w", err)
	}
	return c.online(ctx, onlineRequest{Features: features, Entities: entities})
}

// GetOnlineFeatureService reads the features of a feature service for entity
// rows (POST /get-online-features with "feature_service").
func (c *Client) GetOnlineFeatureService(ctx context.Context, service string, entities map[string][]any) (*OnlineFeatures, error) {
	if service == "" {
		return nil, fmt.Errorf("feast get-online-features: feature service name is required: %w", ErrInvalidRequest)
	}
	return c.online(ctx, onlineRequest{FeatureService: service, Entities: entities})
}

func (c *Client) online(ctx context.Context, req onlineRequest) (*OnlineFeatures, error) {
	if len(req.Entities) == 0 {
		return nil, fmt.Errorf("feast get-online-features: no entities: %w", ErrInvalidRequest)
	}
	ents := make(map[string][]any, len(req.Entities))
	n := -1
	for k, vs := range req.Entities {
		if n >= 0 && len(vs) != n {
			return nil, fmt.Errorf("feast get-online-features: entity columns differ in length: %w", ErrInvalidRequest)
		}
		n = len(vs)
		out := make([]any, len(vs))
		for i, v := range vs {
			out[i] = jsonValue(v)
		}
		ents[k] = out
	}
	req.Entities = ents
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var out OnlineFeatures
	if err := c.do(ctx, "get-online-features", http.MethodPost, "/get-online-features", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func checkNames(what string, names []string) error {
	for _, n := range names {
		if strings.TrimSpace(n) == "" {
			return fmt.Errorf("an empty %s name: %w", what, ErrInvalidRequest)
		}
	}
	return nil
}

// FormatTime writes t as requests carry it (TimeFormat, in UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

const (
	maxBody    = 64 << 10
	maxMessage = 2 << 10
)

// do sends a request with a JSON body (when in is not nil) and decodes a
// JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("feast %s: encode request: %v: %w", op, err, ErrInvalidRequest)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("feast %s: %v: %w", op, err, ErrInvalidRequest)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return &Error{Op: op, Method: method, Path: path, Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		_, _ = io.Copy(io.Discard, resp.Body)
		return &Error{Op: op, Method: method, Path: path, StatusCode: resp.StatusCode,
			Message: serverMessage(raw), Body: string(raw)}
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	dec := json.NewDecoder(resp.Body)
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		// A 2xx with a body we cannot read: the server is not well; retry.
		return &Error{Op: op, Method: method, Path: path, Err: fmt.Errorf("decode answer: %w", err)}
	}
	return nil
}

// serverMessage reads the error message out of a feature server's error
// body, whichever of its shapes it has.
func serverMessage(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return clip(string(raw))
	}
	// The exception handler answers JSONResponse(content=str(...)): a JSON
	// string, which for a FeastError holds a JSON object itself.
	if s, ok := v.(string); ok {
		var inner any
		if json.Unmarshal([]byte(s), &inner) == nil {
			if m := objectMessage(inner); m != "" {
				return clip(m)
			}
		}
		return clip(s)
	}
	if m := objectMessage(v); m != "" {
		return clip(m)
	}
	return clip(string(raw))
}

func objectMessage(v any) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	if m, ok := obj["message"].(string); ok && m != "" {
		if cls, ok := obj["class"].(string); ok && cls != "" {
			return cls + ": " + m
		}
		return m
	}
	switch d := obj["detail"].(type) {
	case string:
		return d
	case []any:
		// FastAPI validation errors: [{"loc":["body","end_ts"],"msg":"…","type":"…"}].
		var parts []string
		for _, item := range d {
			e, ok := item.(map[string]any)
			if !ok {
				continue
			}
			msg, _ := e["msg"].(string)
			var loc []string
			if l, ok := e["loc"].([]any); ok {
				for _, p := range l {
					loc = append(loc, fmt.Sprint(p))
				}
			}
			if len(loc) > 0 {
				msg = strings.Join(loc, ".") + ": " + msg
			}
			parts = append(parts, msg)
		}
		return strings.Join(parts, "; ")
	}
	return ""
}

func clip(s string) string {
	s = strings.TrimSpace(s)
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
