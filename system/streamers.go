package system

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/schemas"
	"github.com/taxi-mlops/taxi-mlops/streamers/aggregates"
	"github.com/taxi-mlops/taxi-mlops/streamers/anomaly"
	"github.com/taxi-mlops/taxi-mlops/streamers/bridge"
	"github.com/taxi-mlops/taxi-mlops/streamers/champions"
	"github.com/taxi-mlops/taxi-mlops/streamers/demand"
	"github.com/taxi-mlops/taxi-mlops/streamers/features"
	"github.com/taxi-mlops/taxi-mlops/streamers/inference"
	"github.com/taxi-mlops/taxi-mlops/streamers/metrics"
	"github.com/taxi-mlops/taxi-mlops/streamers/quality"
	"github.com/taxi-mlops/taxi-mlops/streamers/state"
	"github.com/taxi-mlops/taxi-mlops/streamers/stream"
	"github.com/taxi-mlops/taxi-mlops/training"
)

// Streamer roles.
const (
	RoleFeatures  = "features"
	RoleInference = "inference"
	RoleQuality   = "quality"
	RoleBridge    = "bridge"
	// RoleAggregates runs two stages: area-repartition and aggregates.
	RoleAggregates = "aggregates"
	// RoleDemand runs two stages: gps-repartition and demand. It reads the
	// trips the aggregates role repartitions by area.
	RoleDemand = "demand"
	// RoleAnomaly flags impossible and unusual trips.
	RoleAnomaly = "anomaly"
	// RoleMetrics joins predictions with actuals into live model metrics.
	RoleMetrics = "metrics"
)

// Roles lists every streamer role.
func Roles() []string {
	return []string{RoleFeatures, RoleInference, RoleQuality, RoleBridge, RoleAggregates, RoleDemand, RoleAnomaly, RoleMetrics}
}

// ParseRoles reads a comma-separated role list; "all" means every role.
func ParseRoles(s string) ([]string, error) {
	if s == "" || s == "all" {
		return Roles(), nil
	}
	var out []string
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if !slices.Contains(Roles(), r) {
			return nil, fmt.Errorf("role %q is not one of %s (or all)", r, strings.Join(Roles(), ", "))
		}
		out = append(out, r)
	}
	return out, nil
}

// Streamers is a set of running streamer roles.
type Streamers struct {
	runners []*stream.Runner
	sets    []*champions.Set
	run     []func(context.Context) error
}

// Ready reports whether every runner has partitions assigned.
func (s *Streamers) Ready() bool {
	for _, r := range s.runners {
		if !r.Ready() {
			return false
		}
	}
	return true
}

// Champions returns the champion sets of the inference and quality roles,
// for status pages and tests.
func (s *Streamers) Champions() []*champions.Set { return s.sets }

// NewStreamers builds the runners of roles. The bridge needs a Temporal
// client; it is dialled here and closed when Run returns.
func NewStreamers(cfg Config, roles []string, deps Deps) (*Streamers, error) {
	kdeps := kafka.Deps{Logger: deps.Logger, Metrics: deps.Metrics}
	guarantee := stream.ExactlyOnce
	if cfg.Guarantee != "" {
		g, err := stream.ParseGuarantee(cfg.Guarantee)
		if err != nil {
			return nil, fmt.Errorf("--guarantee: %w", err)
		}
		guarantee = g
	}
	framer, err := schemas.Connect(context.Background(), cfg.SchemaRegistryURL)
	if err != nil {
		return nil, err
	}
	runMetrics := stream.NewMetrics(deps.Metrics)
	champMetrics := champions.NewMetrics(deps.Metrics)
	var anm *anomaly.Metrics
	anomalyMetrics := func() *anomaly.Metrics {
		if anm == nil {
			anm = anomaly.NewMetrics(deps.Metrics)
		}
		return anm
	}
	var lm *metrics.Metrics
	liveMetrics := func() *metrics.Metrics {
		if lm == nil {
			lm = metrics.NewMetrics(deps.Metrics)
		}
		return lm
	}
	var dm *demand.Metrics
	demandMetrics := func() *demand.Metrics {
		if dm == nil {
			dm = demand.NewMetrics(deps.Metrics)
		}
		return dm
	}
	var am *aggregates.Metrics
	aggMetrics := func() *aggregates.Metrics {
		if am == nil {
			am = aggregates.NewMetrics(deps.Metrics)
		}
		return am
	}
	s := &Streamers{}
	var reg *registry.Registry
	needRegistry := slices.Contains(roles, RoleInference) || slices.Contains(roles, RoleQuality) || slices.Contains(roles, RoleMetrics)
	if needRegistry {
		mc, err := cfg.S3.NewClient()
		if err != nil {
			return nil, err
		}
		reg = registry.New(mc, cfg.S3.ModelBucket)
	}
	for _, role := range roles {
		var stages []stage
		switch role {
		case RoleFeatures:
			stages = one(role, &features.Processor{Areas: deps.Areas, Location: deps.Location, Config: cfg.Features,
				Restore: features.KafkaRestore(cfg.Kafka, kafka.Deps{Logger: deps.Logger})})
		case RoleInference:
			set := champions.New(reg, training.ModelNames(), role, champMetrics, deps.Logger)
			s.sets = append(s.sets, set)
			s.run = append(s.run, func(ctx context.Context) error { return set.Run(ctx, cfg.Kafka, kdeps) })
			stages = one(role, &inference.Processor{Models: set})
		case RoleQuality:
			set := champions.New(reg, training.ModelNames(), role, champMetrics, deps.Logger)
			s.sets = append(s.sets, set)
			s.run = append(s.run, func(ctx context.Context) error { return set.Run(ctx, cfg.Kafka, kdeps) })
			stages = one(role, quality.New(cfg.Quality, set))
		case RoleBridge:
			tc, err := cfg.Temporal.Dial(deps.Logger)
			if err != nil {
				return nil, err
			}
			s.run = append(s.run, func(ctx context.Context) error {
				<-ctx.Done()
				tc.Close()
				return nil
			})
			stages = one(role, &bridge.Processor{Temporal: tc, TaskQueue: cfg.Temporal.TaskQueue, Models: training.ModelNames(), Policy: cfg.Policy})
		case RoleAggregates:
			store := state.New(contracts.ChangelogTopic("aggregates"), cfg.Kafka, kafka.Deps{Logger: deps.Logger})
			agg, err := aggregates.NewAggregator(cfg.Aggregates, deps.Baseline, store, aggMetrics(), deps.Logger.With("role", "aggregates"))
			if err != nil {
				return nil, fmt.Errorf("aggregates: %w", err)
			}
			stages = []stage{
				{name: "area-repartition", proc: aggregates.Repartitioner{}},
				{name: "aggregates", proc: agg, manual: agg.ManualPartitions()},
			}
		case RoleAnomaly:
			store := state.New(contracts.ChangelogTopic(anomaly.Name), cfg.Kafka, kafka.Deps{Logger: deps.Logger})
			c := cfg.Anomaly
			c.Location = deps.Location
			p, err := anomaly.New(c, deps.Areas, store, anomalyMetrics(), deps.Logger.With("role", anomaly.Name))
			if err != nil {
				return nil, fmt.Errorf("anomaly: %w", err)
			}
			// Range assignment: partition p of rides and predictions on one replica.
			stages = []stage{{name: anomaly.Name, proc: p, manual: p.ManualPartitions(), extra: anomaly.GroupOpts()}}
		case RoleMetrics:
			set := champions.New(reg, training.ModelNames(), role, champMetrics, deps.Logger)
			s.sets = append(s.sets, set)
			s.run = append(s.run, func(ctx context.Context) error { return set.Run(ctx, cfg.Kafka, kdeps) })
			store := state.New(contracts.ChangelogTopic(metrics.Name), cfg.Kafka, kafka.Deps{Logger: deps.Logger})
			p, err := metrics.New(cfg.Metrics, metrics.Champions(set), store, liveMetrics(), deps.Logger.With("role", metrics.Name))
			if err != nil {
				return nil, fmt.Errorf("metrics: %w", err)
			}
			stages = []stage{{name: metrics.Name, proc: p, manual: p.ManualPartitions(), extra: metrics.GroupOpts()}}
		case RoleDemand:
			store := state.New(contracts.ChangelogTopic("demand"), cfg.Kafka, kafka.Deps{Logger: deps.Logger})
			fc, err := demand.NewForecaster(cfg.Demand, deps.Baseline, store, demandMetrics(), deps.Logger.With("role", "demand"))
			if err != nil {
				return nil, fmt.Errorf("demand: %w", err)
			}
			stages = []stage{
				{name: demand.RepartitionStage, proc: demand.NewGPSRepartitioner(deps.Areas, demandMetrics())},
				// Range assignment: partition p of both inputs on one replica.
				{name: demand.ForecastStage, proc: fc, manual: fc.ManualPartitions(), extra: fc.GroupOpts()},
			}
		default:
			return nil, fmt.Errorf("unknown streamer role %q", role)
		}
		for _, st := range stages {
			r, err := stream.New(stream.Config{Name: st.name, Topics: st.proc.Topics(), Guarantee: guarantee,
				ManualPartitions: st.manual, Framer: framer, ExtraOpts: st.extra},
				cfg.Kafka, st.proc, runMetrics, kdeps)
			if err != nil {
				return nil, err
			}
			s.runners = append(s.runners, r)
			s.run = append(s.run, r.Run)
		}
	}
	return s, nil
}

// stage is one consumer group of a role.
type stage struct {
	name   string
	proc   topicProcessor
	manual []string  // output topics partitioned by the processor
	extra  []kgo.Opt // group options the processor needs
}

type topicProcessor interface {
	stream.Processor
	Topics() []string
}

func one(name string, p topicProcessor) []stage { return []stage{{name: name, proc: p}} }

// Run runs every role until ctx ends or one fails.
func (s *Streamers) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, f := range s.run {
		g.Go(func() error { return f(ctx) })
	}
	return g.Wait()
}
