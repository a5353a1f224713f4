// Command worker runs the control plane's Temporal worker: the drift
// monitors, retraining and evaluation workflows and their activities.
//
//	go run ./worker --temporal-address 127.0.0.1:7233 --kafka-brokers 127.0.0.1:9092 --s3-endpoint 127.0.0.1:9000
//
// Every flag can also be set from the environment (--foo-bar as TAXI_FOO_BAR).
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
		fmt.Fprintln(os.Stderr, "worker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	b := config.NewBinder(fs, os.LookupEnv)
	var cfg system.Config
	var common system.Common
	var setup bool
	cfg.Bind(b)
	b.Bool(&setup, "setup", true, "create missing topics and buckets and train a first champion for models without one")
	common.Bind(b, "127.0.0.1:9101", "json")
	if err := b.Parse(args); err != nil {
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
		if err := system.Setup(ctx, cfg, deps, true); err != nil {
			return err
		}
	}
	w, err := system.NewWorker(cfg, deps)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	if common.OpsAddr != "" {
		g.Go(func() error { return system.ServeOps(ctx, common.OpsAddr, reg, nil, log) })
	}
	return g.Wait()
}
