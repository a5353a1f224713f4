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
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	_ "time/tzdata" // the city's time zone without a system tz database

	"golang.org/x/sync/errgroup"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/system"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "streamers:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("streamers", flag.ContinueOnError)
	b := config.NewBinder(fs, os.LookupEnv)
	var cfg system.Config
	var common system.Common
	var setup bool
	var roles string
	cfg.Bind(b)
	b.Bool(&setup, "setup", true, "create missing topics and buckets first")
	common.Bind(b, "127.0.0.1:9102", "json")
	b.String(&roles, "role", "all", "streamer roles to run, comma-separated: features, inference, quality, bridge, or all")
	if err := b.Parse(args); err != nil {
		return err
	}
	rs, err := system.ParseRoles(roles)
	if err != nil {
		return err
	}
	log, err := system.NewLogger(os.Stderr, common.LogLevel, common.LogFormat)
	if err != nil {
		return err
	}
	deps, reg, err := system.NewDeps(log)
	if err != nil {
		return err
	}
	if setup {
		if err := system.Setup(ctx, cfg, deps, false); err != nil {
			return err
		}
	}
	s, err := system.NewStreamers(cfg, rs, deps)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(ctx) })
	if common.OpsAddr != "" {
		g.Go(func() error { return system.ServeOps(ctx, common.OpsAddr, reg, s.Ready, log) })
	}
	return g.Wait()
}
