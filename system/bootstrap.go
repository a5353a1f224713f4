package system

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/dataset"
	"github.com/taxi-mlops/taxi-mlops/registry"
	"github.com/taxi-mlops/taxi-mlops/rides"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

// SampleRows returns the shipped trips, sorted by pickup, as labelled rows:
// the same messages the replayer publishes.
func SampleRows(loc *time.Location) ([]dataset.Row, error) {
	trips, err := tripdata.Load(loc)
	if err != nil {
		return nil, err
	}
	tripdata.SortByStart(trips)
	rows := make([]dataset.Row, len(trips))
	for i := range trips {
		rows[i] = dataset.Row{Ride: rides.RawRide(&trips[i]), Actual: rides.Actual(&trips[i])}
	}
	return rows, nil
}

// Bootstrap trains and promotes a first champion for every model that has
// none, from rows (the shipped sample when nil). It does nothing for models
// that already have one, so every start of the stack may call it.
func Bootstrap(ctx context.Context, reg *registry.Registry, rows []dataset.Row, deps Deps) error {
	if err := reg.EnsureBucket(ctx); err != nil {
		return err
	}
	for _, m := range training.Models() {
		_, err := reg.Champion(ctx, m.Name)
		if err == nil {
			continue
		}
		if !errors.Is(err, registry.ErrNoChampion) {
			return fmt.Errorf("bootstrap %s: %w", m.Name, err)
		}
		if rows == nil {
			if rows, err = SampleRows(deps.Location); err != nil {
				return fmt.Errorf("bootstrap %s: %w", m.Name, err)
			}
		}
		start := time.Now()
		cand, err := training.Fit(ctx, m, training.Examples(rows, deps.Areas, deps.Location), nil)
		if err != nil {
			return fmt.Errorf("bootstrap %s: %w", m.Name, err)
		}
		version := "v" + start.UTC().Format("20060102-150405") + "-bootstrap"
		meta, err := activities.Metadata(m, version, cand, "embedded:tripdata/chicago_taxi.csv.gz", registry.Lineage{
			TriggerType: "bootstrap", Reason: "first champion, trained on the shipped sample",
		})
		if err != nil {
			return fmt.Errorf("bootstrap %s: %w", m.Name, err)
		}
		if _, err := reg.Put(ctx, meta, cand.JSON); err != nil {
			return fmt.Errorf("bootstrap %s: %w", m.Name, err)
		}
		_, _, err = reg.Promote(ctx, m.Name, version, "", registry.ChampionChange{
			Version: version, Reason: "bootstrap",
		})
		if errors.Is(err, registry.ErrConflict) {
			continue // another process bootstrapped first
		}
		if err != nil {
			return fmt.Errorf("bootstrap %s: %w", m.Name, err)
		}
		deps.Logger.Info("bootstrapped champion", "model", m.Name, "version", version, "rows", cand.Rows,
			"metrics", cand.Metrics, "took", time.Since(start).Round(time.Millisecond))
	}
	return nil
}
