package system

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/geo"
	"github.com/taxi-mlops/taxi-mlops/ml/seasonal"
	"github.com/taxi-mlops/taxi-mlops/rides"
)

// NewLogger returns the process's structured logger: JSON or text on w at
// level (debug, info, warn, error).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use json or text", format)
}

// City is the time zone of the city's clock.
const City = "America/Chicago"

// NewDeps loads what every process shares: the city's time zone, the
// community-area boundaries and a Prometheus registry with Go and process
// collectors.
func NewDeps(log *slog.Logger) (Deps, *prometheus.Registry, error) {
	loc, err := time.LoadLocation(City)
	if err != nil {
		return Deps{}, nil, fmt.Errorf("load time zone %s: %w", City, err)
	}
	areas, err := geo.LoadCommunityAreas()
	if err != nil {
		return Deps{}, nil, err
	}
	base, err := SampleBaseline(loc, areas)
	if err != nil {
		return Deps{}, nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return Deps{Logger: log, Metrics: reg, Location: loc, Areas: areas, Baseline: base}, reg, nil
}

// SampleBaseline fits the seasonal demand baseline on the shipped trips,
// with pickup areas found the way the streamers find them.
func SampleBaseline(loc *time.Location, areas *geo.Areas) (*seasonal.Baseline, error) {
	rows, err := SampleRows(loc)
	if err != nil {
		return nil, err
	}
	events := make([]seasonal.Event, len(rows))
	for i := range rows {
		t := rides.FeatureTrip(&rows[i].Ride, areas)
		events[i] = seasonal.Event{Time: t.Pickup, Area: t.PickupArea}
	}
	b, err := seasonal.Fit(events, loc)
	if err != nil {
		return nil, fmt.Errorf("seasonal baseline of the sample: %w", err)
	}
	return b, nil
}

// Common are the flags every process has.
type Common struct {
	LogLevel  string
	LogFormat string
	OpsAddr   string
}

// Bind registers the flags; opsAddr is the process's default address for
// /metrics, /healthz and /readyz, logFormat its default log format.
func (c *Common) Bind(b *config.Binder, opsAddr, logFormat string) {
	b.String(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	b.String(&c.LogFormat, "log-format", logFormat, "log format: json or text")
	b.String(&c.OpsAddr, "ops-addr", opsAddr, "address of /metrics, /healthz and /readyz (empty: off)")
}
