// Command starter is the control plane's command line: it starts workflows,
// applies schedules and reads monitors.
//
//	go run ./starter retrain --model fare --reason manual [--wait]
//	go run ./starter schedules apply
//	go run ./starter schedules list
//	go run ./starter monitor --model fare
//
// Connection flags (--temporal-address, --temporal-namespace,
// --temporal-task-queue) may also come from TAXI_* environment variables.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

const usage = `usage: starter <command> [flags]

commands:
  retrain --model NAME [--reason TEXT] [--wait]   start a RetrainWorkflow
  schedules apply                                  create or update the Temporal Schedules
  schedules list                                   list the Temporal Schedules
  monitor --model NAME                             show a drift monitor's state

run "starter <command> -h" for the flags of a command`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "starter:", err)
		}
		os.Exit(2)
	}
}

// command is the shared part of every subcommand.
type command struct {
	fs       *flag.FlagSet
	b        *config.Binder
	temporal system.TemporalConfig
	uiURL    string
}

func newCommand(name string) *command {
	fs := flag.NewFlagSet("starter "+name, flag.ContinueOnError)
	c := &command{fs: fs, b: config.NewBinder(fs, os.LookupEnv)}
	c.temporal.Bind(c.b)
	c.b.String(&c.uiURL, "temporal-ui", "http://127.0.0.1:8233", "Temporal Web UI base URL, for links")
	return c
}

func (c *command) dial() (client.Client, error) {
	log, _ := system.NewLogger(io.Discard, "error", "text")
	return c.temporal.Dial(log)
}

func (c *command) link(id, runID string) string {
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", strings.TrimRight(c.uiURL, "/"), url.PathEscape(c.temporal.Namespace), url.PathEscape(id), url.PathEscape(runID))
}

func run(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	switch args[0] {
	case "retrain":
		return retrain(ctx, args[1:], out)
	case "schedules":
		if len(args) < 2 || (args[1] != "apply" && args[1] != "list") {
			return errors.New("schedules needs a subcommand: apply or list")
		}
		return schedules(ctx, args[1], args[2:], out)
	case "monitor":
		return monitor(ctx, args[1:], out)
	case "-h", "--help", "help":
		fmt.Fprintln(out, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

func checkModel(name string) error {
	if name == "" {
		return fmt.Errorf("--model is required (one of %s)", strings.Join(training.ModelNames(), ", "))
	}
	if !slices.Contains(training.ModelNames(), name) {
		return fmt.Errorf("--model %q is not a model of this system (one of %s)", name, strings.Join(training.ModelNames(), ", "))
	}
	return nil
}

func retrain(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("retrain")
	var in workflows.RetrainInput
	var wait bool
	var id string
	c.fs.StringVar(&in.ModelName, "model", "", "model to retrain: "+strings.Join(training.ModelNames(), ", "))
	c.fs.StringVar(&in.Reason, "reason", "manual", "why, recorded in the model's lineage")
	c.fs.StringVar(&in.TriggerType, "trigger", workflows.TriggerManual, "trigger type recorded in the TriggerType search attribute")
	c.fs.IntVar(&in.MaxRows, "max-rows", 0, "recent rides to snapshot (0 = workflow default)")
	c.fs.Float64Var(&in.HoldoutFraction, "holdout", 0, "most recent share of the snapshot kept for evaluation (0 = workflow default)")
	c.fs.Float64Var(&in.MinImprovement, "min-improvement", 0, "relative improvement the challenger needs (0 = workflow default)")
	c.fs.StringVar(&id, "id", "", "workflow id (default retrain/<model>/manual-<time>)")
	c.fs.BoolVar(&wait, "wait", false, "wait for the result and print it")
	if err := c.b.Parse(args); err != nil {
		return err
	}
	if err := checkModel(in.ModelName); err != nil {
		return err
	}
	if err := in.RetrainOptions.Validate(); err != nil {
		return flagNames(err)
	}
	if id == "" {
		id = workflows.RetrainID(in.ModelName, "manual-"+time.Now().UTC().Format("20060102T150405Z"))
	}
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: c.temporal.TaskQueue},
		workflows.RetrainWorkflowName, in)
	if err != nil {
		return fmt.Errorf("start RetrainWorkflow: %w", err)
	}
	fmt.Fprintf(out, "started RetrainWorkflow %s (run %s)\n  %s\n", run.GetID(), run.GetRunID(), c.link(run.GetID(), run.GetRunID()))
	if !wait {
		return nil
	}
	var res workflows.RetrainResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("RetrainWorkflow %s failed: %w", run.GetID(), err)
	}
	return printJSON(out, res)
}

func schedules(ctx context.Context, verb string, args []string, out io.Writer) error {
	c := newCommand("schedules " + verb)
	if err := c.b.Parse(args); err != nil {
		return err
	}
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	if verb == "apply" {
		done, err := system.ApplySchedules(ctx, tc, c.temporal.TaskQueue)
		for _, d := range done {
			fmt.Fprintln(out, d)
		}
		return err
	}
	it, err := tc.ScheduleClient().List(ctx, client.ScheduleListOptions{})
	if err != nil {
		return fmt.Errorf("list schedules: %w", err)
	}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return fmt.Errorf("list schedules: %w", err)
		}
		next := "-"
		if len(e.NextActionTimes) > 0 {
			next = e.NextActionTimes[0].UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(out, "%-24s %-22s paused=%-5v next=%s\n", e.ID, e.WorkflowType.Name, e.Paused, next)
	}
	return nil
}

func monitor(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("monitor")
	var model string
	c.fs.StringVar(&model, "model", "", "model whose drift monitor to show: "+strings.Join(training.ModelNames(), ", "))
	if err := c.b.Parse(args); err != nil {
		return err
	}
	if err := checkModel(model); err != nil {
		return err
	}
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	v, err := tc.QueryWorkflow(ctx, workflows.DriftMonitorID(model), "", workflows.QueryState)
	if err != nil {
		return fmt.Errorf("query %s: %w (a monitor starts with the first alert or metric of its model)", workflows.DriftMonitorID(model), err)
	}
	var st workflows.MonitorStatus
	if err := v.Get(&st); err != nil {
		return fmt.Errorf("decode monitor state: %w", err)
	}
	st.State.Seen = nil // ids are noise here
	return printJSON(out, st)
}

// flagNames says the flags' names where a validation error names JSON fields.
func flagNames(err error) error {
	r := strings.NewReplacer("holdout_fraction", "--holdout", "max_rows", "--max-rows",
		"min_improvement", "--min-improvement", "min_rows", "--min-rows")
	return errors.New(r.Replace(err.Error()))
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
