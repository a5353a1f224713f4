// Package champions keeps the current champion of each model loaded in a
// streamer and swaps it, without a restart, when model-updates announces a
// new one.
//
// A swap is an atomic pointer store: a record being scored keeps the model
// it started with, the next record gets the new one, and none waits or is
// dropped. An announced model is loaded from the registry and its SHA-256
// checked against both the registry's metadata and the announcement; a
// model that fails either check is refused and the old champion keeps
// serving.
package champions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Model is a loaded champion.
type Model = training.Loaded

// ErrNotLoaded is returned while a model has no champion loaded yet; it is
// transient: the runner retries the record.
var ErrNotLoaded = errors.New("no champion loaded")

// Set holds the champions of some models.
type Set struct {
	reg     *registry.Registry
	names   []string
	cur     map[string]*atomic.Pointer[Model] // keys fixed at construction
	log     *slog.Logger
	metrics *Metrics
	role    string
}

// New returns a set for the named models; role labels its metrics.
func New(reg *registry.Registry, names []string, role string, m *Metrics, log *slog.Logger) *Set {
	s := &Set{reg: reg, names: names, cur: map[string]*atomic.Pointer[Model]{}, log: log, metrics: m, role: role}
	for _, n := range names {
		s.cur[n] = new(atomic.Pointer[Model])
	}
	return s
}

// Names lists the models of the set.
func (s *Set) Names() []string { return s.names }

// Get returns the loaded champion of name, or nil.
func (s *Set) Get(name string) *Model {
	p, ok := s.cur[name]
	if !ok {
		return nil
	}
	return p.Load()
}

// Require returns the loaded champion of name or ErrNotLoaded.
func (s *Set) Require(name string) (*Model, error) {
	if m := s.Get(name); m != nil {
		return m, nil
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNotLoaded)
}

// Serve makes m the model served for its name, replacing any other; reason
// is logged. Apply and the start-up load go through it.
func (s *Set) Serve(m *Model, reason string) {
	if _, ok := s.cur[m.Name]; !ok {
		return
	}
	s.swap(m, reason)
}

func (s *Set) swap(m *Model, reason string) {
	old := s.cur[m.Name].Swap(m)
	prev := ""
	if old != nil {
		prev = old.Version
		s.metrics.info.DeleteLabelValues(s.role, m.Name, old.Version)
	}
	s.metrics.info.WithLabelValues(s.role, m.Name, m.Version).Set(1)
	s.metrics.swaps.WithLabelValues(s.role, m.Name).Inc()
	s.log.Info("champion loaded", "model", m.Name, "version", m.Version, "previous", prev, "reason", reason)
}

// loadChampions loads the registry's champion of every model that has none
// loaded; it reports the first failure.
func (s *Set) loadChampions(ctx context.Context) error {
	var errs []error
	for _, n := range s.names {
		if s.Get(n) != nil {
			continue
		}
		c, err := s.reg.Champion(ctx, n)
		if err != nil {
			errs = append(errs, fmt.Errorf("read champion of %s: %w", n, err))
			continue
		}
		m, err := training.LoadModel(ctx, s.reg, n, c.Version)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.swap(m, "start-up")
	}
	return errors.Join(errs...)
}

// Apply loads the announced version and swaps it in when it checks out.
func (s *Set) Apply(ctx context.Context, u *contracts.ModelUpdate) error {
	if _, ok := s.cur[u.ModelName]; !ok {
		return nil // not a model of this set
	}
	if cur := s.Get(u.ModelName); cur != nil && cur.Version == u.Version {
		return nil
	}
	m, err := training.LoadModel(ctx, s.reg, u.ModelName, u.Version)
	if err == nil && m.SHA256 != u.SHA256 {
		err = fmt.Errorf("load %s/%s: announced sha256 %s, registry has %s", u.ModelName, u.Version, u.SHA256, m.SHA256)
	}
	if err != nil {
		s.metrics.refused.WithLabelValues(s.role, u.ModelName).Inc()
		s.log.Error("announced model refused, keeping the current champion", "model", u.ModelName, "version", u.Version, "err", err)
		return err
	}
	s.swap(m, "model-updates from "+u.WorkflowID)
	return nil
}

// Run loads the champions and then follows model-updates until ctx ends.
// It notes the end of model-updates before loading, so an announcement made
// while loading is applied, not missed. Models without a champion yet are
// retried until one appears.
func (s *Set) Run(ctx context.Context, kcfg kafka.Config, deps kafka.Deps) error {
	clientID := "taxi-mlops-" + s.role + "-model-updates"
	admCl, err := kafka.NewClient(kcfg, clientID+"-admin", kafka.Deps{Logger: deps.Logger})
	if err != nil {
		return err
	}
	var ends kadm.ListedOffsets
	for {
		ends, err = kadm.NewClient(admCl).ListEndOffsets(ctx, contracts.TopicModelUpdates)
		if err == nil {
			err = ends.Error()
		}
		if err == nil || ctx.Err() != nil {
			break
		}
		s.log.Warn("list model-updates offsets", "err", err)
		if !sleep(ctx, time.Second) {
			break
		}
	}
	admCl.Close()
	if ctx.Err() != nil {
		return nil
	}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { offsets[o.Partition] = kgo.NewOffset().At(o.Offset) })

	for backoff := 200 * time.Millisecond; ; backoff = min(2*backoff, 5*time.Second) {
		err := s.loadChampions(ctx)
		if err == nil {
			break
		}
		s.log.Warn("champions not loaded yet, retrying", "err", err, "backoff", backoff)
		if !sleep(ctx, backoff) {
			return nil
		}
	}

	cl, err := kafka.NewClient(kcfg, clientID, deps,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{contracts.TopicModelUpdates: offsets}))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			s.log.Warn("fetch model-updates", "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			u, err := contracts.Decode[contracts.ModelUpdate](r.Value)
			if err != nil {
				s.log.Error("malformed model update ignored", "offset", r.Offset, "err", err)
				return
			}
			// Apply's errors are logged and counted; a refused model
			// leaves the old one serving.
			_ = s.Apply(ctx, u)
		})
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Metrics of champion loading, shared by every set of a process.
type Metrics struct {
	info           *prometheus.GaugeVec
	swaps, refused *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		info: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "taxi_champion_info", Help: "1 for the model version a streamer serves, by role, model and version.",
		}, []string{"role", "model", "version"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_champion_swaps_total", Help: "Champions loaded, at start-up or hot-swapped, by role and model.",
		}, []string{"role", "model"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taxi_champion_refused_total", Help: "Announced models refused (checksum or format), by role and model.",
		}, []string{"role", "model"}),
	}
	if reg != nil {
		reg.MustRegister(m.info, m.swaps, m.refused)
	}
	return m
}
