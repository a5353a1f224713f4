package system

import (
	"context"
	"fmt"

	"github.com/taxi-mlops/taxi-mlops/kafka"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// RunReplayer publishes the shipped sample with opts until it is over or ctx
// ends.
func RunReplayer(ctx context.Context, cfg Config, opts replay.Options, deps Deps) (replay.Stats, error) {
	opts.Location = deps.Location
	trips, err := tripdata.Load(deps.Location)
	if err != nil {
		return replay.Stats{}, err
	}
	tripdata.SortByStart(trips)
	src, err := replay.NewSource(trips, opts)
	if err != nil {
		return replay.Stats{}, err
	}
	cl, err := kafka.NewClient(cfg.Kafka, "taxi-mlops-replayer", kafka.Deps{Logger: deps.Logger, Metrics: deps.Metrics})
	if err != nil {
		return replay.Stats{}, err
	}
	defer cl.Close()
	deps.Logger.Info("replay started", "speed", opts.Speed, "rate", opts.Rate, "limit", opts.Limit, "loop", opts.Loop,
		"drift", opts.Drift.Kind, "drift_after", opts.Drift.After)
	st, err := replay.Publish(ctx, cl, src, func(s replay.Stats) {
		if s.Rides%1000 == 0 {
			deps.Logger.Info("replay progress", "rides", s.Rides, "drifted", s.Drifted, "event_time", s.Last)
		}
	})
	if err != nil {
		return st, fmt.Errorf("replay: %w", err)
	}
	deps.Logger.Info("replay finished", "rides", st.Rides, "actuals", st.Actuals, "drifted", st.Drifted,
		"gps_pings", st.Pings, "trips_without_gps", st.NoGPS)
	return st, nil
}
