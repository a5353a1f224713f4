// Command replayer publishes the shipped Chicago taxi trips to Kafka as a live
// stream: rides to taxi-rides-raw at pickup, actual fares and tips to
// taxi-actuals at dropoff, in event-time order.
//
//	go run ./replayer --speed 604800 --loop                 # one data week per second, forever
//	go run ./replayer --rate 200 --limit 5000               # 200 rides/s, 5000 rides
//	go run ./replayer --drift-kind miles-to-km --drift-after 3000
//
// Drift kinds: miles-to-km (distances in km from then on), fare-inflation
// (fares and tips × factor), payment-shift (a share of cash trips paid by
// card). Every flag can also be set from the environment (--foo-bar as
// TAXI_FOO_BAR).
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
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/system"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "replayer:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	var opts replay.Options
	p, err := system.NewProcess(args, system.ProcessOptions{
		Name: "replayer", LogFormat: "json", Env: os.LookupEnv, Stderr: os.Stderr,
		Setup: true, SetupUsage: "create missing topics and buckets first",
		Bind: func(b *config.Binder) {
			system.BindReplay(b, &opts, replay.Options{Rate: 100, GPSInterval: replay.DefaultGPSInterval, GPSFleet: replay.DefaultGPSFleet})
		},
	})
	if err != nil {
		return err
	}
	if p.Setup {
		if err := system.Setup(ctx, p.Config, p.Deps, false); err != nil {
			return err
		}
	}
	return p.Run(ctx, nil, func(ctx context.Context) error {
		_, err := system.RunReplayer(ctx, p.Config, opts, p.Deps)
		return err
	})
}
