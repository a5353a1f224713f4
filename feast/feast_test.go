package feast_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taxi-mlops/taxi-mlops/feast"
)

// request is what the test server saw.
type request struct {
	Method, Path, ContentType, Body string
}

// server is a stand-in feature server: it records every request and answers
// with the status and body set for its path (200 and no body by default).
type server struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	reqs    []request
	answers map[string]answer
}

type answer struct {
	status int
	body   string
}

func newServer(t *testing.T) *server {
	s := &server{t: t, answers: map[string]answer{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.reqs = append(s.reqs, request{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)})
		a, ok := s.answers[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			a = answer{status: 200, body: "null"}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *server) answer(path string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[path] = answer{status, body}
}

func (s *server) requests() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]request(nil), s.reqs...)
}

func (s *server) client(t *testing.T) *feast.Client {
	t.Helper()
	c, err := feast.New(feast.Config{URL: s.srv.URL + "/"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestsAreTheFeatureServerShapes(t *testing.T) {
	s := newServer(t)
	c := s.client(t)
	ctx := context.Background()
	start := time.Date(2016, 3, 1, 8, 15, 0, 500_000_000, time.FixedZone("CST", -6*3600))
	end := time.Date(2016, 3, 2, 0, 0, 0, 0, time.UTC)

	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := c.Materialize(ctx, start, end, []string{"trip_features", "area_stats"}); err != nil {
		t.Fatalf("materialize: %v", err)
	}
	if err := c.MaterializeIncremental(ctx, end, nil); err != nil {
		t.Fatalf("materialize-incremental: %v", err)
	}
	err := c.Push(ctx, "area_stats_push", map[string][]any{
		"pickup_community_area": {int64(8), int64(32)},
		"event_timestamp":       {end, end.Add(time.Hour)},
		"avg_fare":              {12.5, math.NaN()},
		"trip_count":            {3, 1},
	}, feast.PushOnline)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	s.answer("/get-online-features", 200, `{"metadata":{"feature_names":["pickup_community_area","trip_count","avg_fare"]},`+
		`"results":[{"values":[8,77],"statuses":["PRESENT","PRESENT"],"event_timestamps":["1970-01-01T00:00:00Z","1970-01-01T00:00:00Z"]},`+
		`{"values":[9007199254740993,null],"statuses":["PRESENT","NOT_FOUND"],"event_timestamps":["2016-03-02T00:00:00Z","1970-01-01T00:00:00Z"]},`+
		`{"values":[12.5,null],"statuses":["PRESENT","NOT_FOUND"],"event_timestamps":["2016-03-02T00:00:00Z","1970-01-01T00:00:00Z"]}]}`)
	got, err := c.GetOnlineFeatures(ctx, []string{"area_stats:trip_count", "area_stats:avg_fare"},
		map[string][]any{"pickup_community_area": {8, 77}})
	if err != nil {
		t.Fatalf("get-online-features: %v", err)
	}
	if _, err := c.GetOnlineFeatureService(ctx, "fare_model", map[string][]any{"trip_id": {"a", "b"}}); err != nil {
		t.Fatalf("get-online-features (service): %v", err)
	}

	want := []request{
		{"GET", "/health", "", ""},
		{"POST", "/materialize", "application/json",
			`{"start_ts":"2016-03-01T14:15:00.5Z","end_ts":"2016-03-02T00:00:00Z","feature_views":["trip_features","area_stats"]}`},
		{"POST", "/materialize-incremental", "application/json", `{"end_ts":"2016-03-02T00:00:00Z"}`},
		{"POST", "/push", "application/json",
			`{"push_source_name":"area_stats_push","df":{"avg_fare":[12.5,null],"event_timestamp":["2016-03-02T00:00:00Z","2016-03-02T01:00:00Z"],` +
				`"pickup_community_area":[8,32],"trip_count":[3,1]},"to":"online"}`},
		{"POST", "/get-online-features", "application/json",
			`{"features":["area_stats:trip_count","area_stats:avg_fare"],"entities":{"pickup_community_area":[8,77]}}`},
		{"POST", "/get-online-features", "application/json", `{"feature_service":"fare_model","entities":{"trip_id":["a","b"]}}`},
	}
	reqs := s.requests()
	if len(reqs) != len(want) {
		t.Fatalf("got %d requests, want %d: %+v", len(reqs), len(want), reqs)
	}
	for i := range want {
		if reqs[i] != want[i] {
			t.Errorf("request %d:\n got %+v\nwant %+v", i, reqs[i], want[i])
		}
	}

	col, ok := got.Column("trip_count")
	if !ok || len(col.Values) != 2 || col.Statuses[1] != "NOT_FOUND" || col.Values[1] != nil {
		t.Fatalf("trip_count column: %+v %v", col, ok)
	}
	if n, ok := col.Values[0].(json.Number); !ok || n.String() != "9007199254740993" {
		t.Errorf("int64 value lost precision: %#v", col.Values[0])
	}
	if _, ok := got.Column("nope"); ok {
		t.Error("found a column that is not there")
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	end := time.Date(2016, 3, 2, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name      string
		status    int
		body      string
		permanent bool
		message   string
	}{
		{"feast error (not found)", 404,
			`"{\"module\": \"feast.errors\", \"class\": \"FeatureViewNotFoundException\", \"message\": \"Feature view nope does not exist in project taxi_mlops\"}"`,
			true, "FeatureViewNotFoundException: Feature view nope does not exist in project taxi_mlops"},
		{"fastapi validation", 422,
			`{"detail":[{"type":"missing","loc":["body","end_ts"],"msg":"Field required","input":{}}]}`,
			true, "body.end_ts: Field required"},
		{"plain exception", 500, `"Unable to find table at 's3://features/area_stats/'"`,
			false, "Unable to find table at 's3://features/area_stats/'"},
		{"html from a proxy", 502, "<html>Bad Gateway</html>", false, "<html>Bad Gateway</html>"},
		{"rate limited", 429, `{"detail":"slow down"}`, false, "slow down"},
		{"forbidden", 403, `"{\"module\": \"feast.errors\", \"class\": \"FeastPermissionError\", \"message\": \"Permission error\"}"`,
			true, "FeastPermissionError: Permission error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newServer(t)
			s.answer("/materialize-incremental", tc.status, tc.body)
			err := s.client(t).MaterializeIncremental(ctx, end, []string{"nope"})
			var fe *feast.Error
			if !errors.As(err, &fe) {
				t.Fatalf("want *feast.Error, got %T %v", err, err)
			}
			if fe.StatusCode != tc.status || fe.Message != tc.message || fe.Body != tc.body {
				t.Errorf("got status %d message %q body %q", fe.StatusCode, fe.Message, fe.Body)
			}
			if feast.IsPermanent(err) != tc.permanent || fe.Permanent() != tc.permanent {
				t.Errorf("permanent = %v, want %v", feast.IsPermanent(err), tc.permanent)
			}
			if !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "/materialize-incremental") {
				t.Errorf("error text %q lacks the message or path", err)
			}
		})
	}

	t.Run("health 503", func(t *testing.T) {
		s := newServer(t)
		s.answer("/health", 503, "")
		err := s.client(t).Health(ctx)
		var fe *feast.Error
		if !errors.As(err, &fe) || fe.StatusCode != 503 || feast.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("transport", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close() // nothing listens there now
		c, err := feast.New(feast.Config{URL: "http://" + addr})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Health(ctx)
		var fe *feast.Error
		if !errors.As(err, &fe) || fe.StatusCode != 0 || fe.Err == nil || feast.IsPermanent(err) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("refused before sending", func(t *testing.T) {
		s := newServer(t)
		c := s.client(t)
		for name, err := range map[string]error{
			"empty range": c.Materialize(ctx, end, end, nil),
			"empty view":  c.Materialize(ctx, end.Add(-time.Hour), end, []string{""}),
			"no end":      c.MaterializeIncremental(ctx, time.Time{}, nil),
			"bad mode":    c.Push(ctx, "s", map[string][]any{"a": {1}}, "sideways"),
			"ragged":      c.Push(ctx, "s", map[string][]any{"a": {1}, "b": {1, 2}}, feast.PushOnline),
			"no source":   c.Push(ctx, "", map[string][]any{"a": {1}}, feast.PushOnline),
			"no features": func() error { _, err := c.GetOnlineFeatures(ctx, nil, map[string][]any{"k": {1}}); return err }(),
			"no entities": func() error { _, err := c.GetOnlineFeatures(ctx, []string{"v:f"}, nil); return err }(),
			"no service":  func() error { _, err := c.GetOnlineFeatureService(ctx, "", map[string][]any{"k": {1}}); return err }(),
			"ragged rows": func() error {
				_, err := c.GetOnlineFeatureService(ctx, "s", map[string][]any{"k": {1}, "j": {}})
				return err
			}(),
			"no push cols": c.Push(ctx, "s", nil, feast.PushOnline),
		} {
			if !errors.Is(err, feast.ErrInvalidRequest) || !feast.IsPermanent(err) {
				t.Errorf("%s: got %v", name, err)
			}
		}
		if n := len(s.requests()); n != 0 {
			t.Errorf("%d requests sent", n)
		}
	})
}

func TestNewRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"", "feast:6566", "ftp://feast", "http://"} {
		if _, err := feast.New(feast.Config{URL: u}); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
	c, err := feast.New(feast.Config{URL: " http://feast:6566/ "})
	if err != nil || c.URL() != "http://feast:6566" {
		t.Fatalf("got %v %v", c, err)
	}
}

func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(block) })
	c, err := feast.New(feast.Config{URL: srv.URL, Timeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Health(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) || feast.IsPermanent(err) {
		t.Fatalf("got %v", err)
	}
}
