// Command streamers runs one or more streamer roles of taxi-mlops, each a
// Kafka consumer group doing consume → process → produce:
//
//	go run ./streamers --role features
//	go run ./streamers --role inference,quality,bridge
//	go run ./streamers --role all
//
// Roles: features (raw rides → realtime features), inference (features →
// predictions with the current champions, hot-swapped on model-updates),
// quality (features → drift alerts against the champions' reference
// profiles) and bridge (alerts and metrics → Temporal signals). Every flag
// can also be set from the environment (--foo-bar as TAXI_FOO_BAR).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the city's time zone without a system tz database

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/system"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "streamers:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var roles string
	p, err := system.NewProcess(args, system.ProcessOptions{
		Name: "streamers", OpsAddr: "127.0.0.1:9102", LogFormat: "json", Env: os.LookupEnv, Stderr: os.Stderr,
		Setup: true, SetupUsage: "create missing topics and buckets first",
		Bind: func(b *config.Binder) {
			b.String(&roles, "role", "all", "streamer roles to run, comma-separated: features, inference, quality, bridge, or all")
		},
	})
	if err != nil {
		return err
	}
	rs, err := system.ParseRoles(roles)
	if err != nil {
		return err
	}
	if p.Setup {
		if err := system.Setup(ctx, p.Config, p.Deps, false); err != nil {
			return err
		}
	}
	s, err := system.NewStreamers(p.Config, rs, p.Deps)
	if err != nil {
		return err
	}
	return p.Run(ctx, s.Ready, s.Run)
}
