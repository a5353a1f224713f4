// Command worker runs the control plane's Temporal worker: the drift
// monitors, retraining and evaluation workflows and their activities.
//
//	go run ./worker --temporal-address 127.0.0.1:7233 --kafka-brokers 127.0.0.1:9092 --s3-endpoint 127.0.0.1:9000
//
// Every flag can also be set from the environment (--foo-bar as TAXI_FOO_BAR).
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

	"github.com/taxi-mlops/taxi-mlops/system"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "worker:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	p, err := system.NewProcess(args, system.ProcessOptions{
		Name: "worker", OpsAddr: "127.0.0.1:9101", LogFormat: "json", Env: os.LookupEnv, Stderr: os.Stderr,
		Setup: true, SetupUsage: "create missing topics and buckets and train a first champion for models without one",
	})
	if err != nil {
		return err
	}
	if p.Setup {
		if err := system.Setup(ctx, p.Config, p.Deps, true); err != nil {
			return err
		}
	}
	w, err := system.NewWorker(p.Config, p.Deps)
	if err != nil {
		return err
	}
	return p.Run(ctx, nil, w.Run)
}
