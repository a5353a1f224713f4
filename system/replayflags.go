package system

import (
	"strings"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/replay"
)

// BindReplay registers the replayer's flags with defaults def; the dev stack
// has the same flags with its own defaults.
func BindReplay(b *config.Binder, o *replay.Options, def replay.Options) {
	b.Float(&o.Speed, "speed", def.Speed, "event-time seconds per wall second (3600 = one data hour per second; 0 = as fast as the rate allows)")
	b.Float(&o.Rate, "rate", def.Rate, "maximum rides per wall second (0 = no cap)")
	b.Int(&o.Skip, "skip", def.Skip, "skip the first N trips of the sample")
	b.Int(&o.Limit, "limit", def.Limit, "stop after N rides (0 = the whole sample, or forever with --loop)")
	b.Bool(&o.Loop, "loop", def.Loop, "replay the sample again, whole weeks later with new trip ids, after its end")
	b.String(&o.Drift.Kind, "drift-kind", def.Drift.Kind, "inject drift: "+strings.Join(replay.DriftKinds(), ", ")+" (empty: none)")
	b.Int(&o.Drift.After, "drift-after", def.Drift.After, "rides published before the drift starts")
	b.Float(&o.Drift.Factor, "drift-factor", def.Drift.Factor, "strength of the drift (0 = the kind's default)")
	b.Duration(&o.GPSInterval, "gps-interval", def.GPSInterval, "event time between the GPS pings of a trip (0 = no GPS stream)")
	b.Int(&o.GPSFleet, "gps-fleet", def.GPSFleet, "vehicles per company; vehicle ids repeat after this many trips of a company")
}
