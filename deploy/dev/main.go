// Command dev runs the whole taxi-mlops system on one machine without Docker:
// the Temporal dev server with its Web UI (the Temporal CLI is installed on
// first use), an embedded Kafka-protocol broker, an embedded S3-protocol
// store, the control plane's worker, every streamer and the replayer.
//
//	go run ./deploy/dev            # or: make dev
//
// State (Temporal's database, the broker's log, the S3 objects) is kept under
// --data-dir, so models and workflow history survive a restart. Ctrl-C stops
// everything. The replay injects drift part-way by default so a
// drift-triggered retrain shows up in the Web UI within minutes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"text/tabwriter"
	"time"
	_ "time/tzdata" // the city's time zone without a system tz database

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/contracts"
	"github.com/taxi-mlops/taxi-mlops/deploy/devstack"
	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/tripdata"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "dev:", err)
		}
		os.Exit(1)
	}
}

type options struct {
	dataDir      string
	temporalPort int
	uiPort       int
	noReplay     bool
}

func run(ctx context.Context, args []string, out io.Writer) error {
	var (
		o  options
		ro replay.Options
	)
	p, err := system.NewProcess(args, system.ProcessOptions{
		Name: "dev", OpsAddr: "127.0.0.1:9100", LogFormat: "text", Env: os.LookupEnv, Stderr: os.Stderr,
		Bind: func(b *config.Binder) {
			// The tour: a steady stream, then distances in km.
			system.BindReplay(b, &ro, replay.Options{Rate: 50, Loop: true, Drift: replay.Drift{Kind: replay.DriftMilesToKm, After: 4000},
				GPSInterval: 5 * time.Minute, GPSFleet: replay.DefaultGPSFleet})
			b.String(&o.dataDir, "data-dir", ".data", "directory of the stack's state (Temporal database, broker log, S3 objects)")
			b.Int(&o.temporalPort, "temporal-port", 7233, "port of the Temporal dev server's gRPC frontend")
			b.Int(&o.uiPort, "temporal-ui-port", 8233, "port of the Temporal Web UI")
			b.Bool(&o.noReplay, "no-replay", false, "do not start the replayer")
		},
		// The tour's policy: three drifted windows make a retrain, which
		// learns from the latest 2000 rides; the first champions know the
		// trips the replay starts with.
		Defaults: map[string]string{"policy-min-evidence": "3", "policy-max-rows": "2000", "policy-cooldown": "10m", "bootstrap-trips": "4000",
			// The replay runs about 400,000 times faster than the clock.
			"aggregates-grace": "168h", "demand-grace": "24h",
			// Demand works per tick of event time, which the replay races
			// through: forecast hourly, publish errors daily.
			"demand-tick": "1h", "demand-metric-every": "24h",
			// The sample has about ten trips a day: smaller windows fill.
			"anomaly-window": "50", "anomaly-min-count": "10", "metrics-window": "100"},
	})
	if err != nil {
		return err
	}
	cfg, common, deps, log := p.Config, p.Common, p.Deps, p.Deps.Logger
	if err := os.MkdirAll(o.dataDir, 0o755); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}

	cli, err := devstack.EnsureTemporal(ctx, os.LookupEnv, log, os.Stderr)
	if err != nil {
		return err
	}
	tlog, err := os.OpenFile(filepath.Join(o.dataDir, "temporal.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("temporal log: %w", err)
	}
	defer tlog.Close()
	cfg.Temporal.HostPort = net.JoinHostPort("127.0.0.1", strconv.Itoa(o.temporalPort))
	temporal, err := devstack.StartTemporal(ctx, devstack.TemporalOptions{
		CLIPath:   cli,
		HostPort:  cfg.Temporal.HostPort,
		UIPort:    strconv.Itoa(o.uiPort),
		DBFile:    filepath.Join(o.dataDir, "temporal.db"),
		Namespace: cfg.Temporal.Namespace,
		Log:       log,
		Output:    tlog,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := temporal.Stop(); err != nil {
			log.Debug("temporal dev server stop", "err", err)
		}
	}()

	kport, err := port(cfg.Kafka.Brokers)
	if err != nil {
		return err
	}
	broker, kcfg, err := devstack.StartKafka(ctx, kport, filepath.Join(o.dataDir, "kafka"), log)
	if err != nil {
		return err
	}
	defer broker.Close()
	cfg.Kafka = kcfg

	s3, err := devstack.StartS3(cfg.S3.Endpoint, filepath.Join(o.dataDir, "s3"), cfg.S3.AccessKey, cfg.S3.SecretKey, cfg.S3.Buckets(), log)
	if err != nil {
		return err
	}
	defer s3.Close()

	if err := system.Setup(ctx, cfg, deps, true); err != nil {
		return err
	}
	worker, err := system.NewWorker(cfg, deps)
	if err != nil {
		return err
	}
	streamers, err := system.NewStreamers(cfg, system.Roles(), deps)
	if err != nil {
		return err
	}
	applied, err := system.ApplySchedules(ctx, temporal.Client(), cfg.Temporal.TaskQueue)
	if err != nil {
		return err
	}
	log.Info("schedules applied", "schedules", applied)

	fns := []func(context.Context) error{worker.Run, streamers.Run}
	if !o.noReplay {
		fns = append(fns, func(ctx context.Context) error {
			_, err := system.RunReplayer(ctx, cfg, ro, deps)
			return err
		})
	}
	banner(out, cfg, common, o, ro, s3.Addr)
	err = p.Run(ctx, streamers.Ready, fns...)
	log.Info("stopping the embedded stack")
	return err
}

func banner(out io.Writer, cfg system.Config, common system.Common, o options, ro replay.Options, s3Addr string) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "\ntaxi-mlops is running. Ctrl-C stops everything.")
	fmt.Fprintf(w, "  Temporal Web UI\thttp://127.0.0.1:%d/namespaces/%s/workflows\n", o.uiPort, cfg.Temporal.Namespace)
	fmt.Fprintf(w, "  Temporal gRPC\t%s (namespace %s, task queue %s)\n", cfg.Temporal.HostPort, cfg.Temporal.Namespace, cfg.Temporal.TaskQueue)
	fmt.Fprintf(w, "  Kafka broker\t%v (embedded, %d topics)\n", cfg.Kafka.Brokers, len(contracts.Catalog()))
	fmt.Fprintf(w, "  S3 endpoint\thttp://%s (access key %s, buckets %v)\n", s3Addr, cfg.S3.AccessKey, cfg.S3.Buckets())
	if common.OpsAddr != "" {
		fmt.Fprintf(w, "  Metrics\thttp://%s/metrics (readiness /readyz)\n", common.OpsAddr)
	}
	fmt.Fprintf(w, "  State\t%s\n", o.dataDir)
	switch {
	case o.noReplay:
		fmt.Fprintf(w, "  Replay\toff\n")
	case ro.Drift.Kind != "":
		fmt.Fprintf(w, "  Replay\t%g rides/s, drift %s after %d rides: watch RetrainWorkflow appear in the Web UI\n", ro.Rate, ro.Drift.Kind, ro.Drift.After)
	default:
		fmt.Fprintf(w, "  Replay\t%g rides/s, no drift\n", ro.Rate)
	}
	w.Flush()
	fmt.Fprintf(out, "\nData: City of Chicago taxi trips. %s\n\n", tripdata.Notice)
}

func port(brokers []string) (int, error) {
	if len(brokers) != 1 {
		return 0, fmt.Errorf("the embedded broker takes one address in --kafka-brokers, got %v", brokers)
	}
	_, p, err := net.SplitHostPort(brokers[0])
	if err != nil {
		return 0, fmt.Errorf("--kafka-brokers %q: %w", brokers[0], err)
	}
	return strconv.Atoi(p)
}
