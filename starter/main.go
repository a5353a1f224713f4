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

	"github.com/taxi-mlops/taxi-mlops/activities"
	"github.com/taxi-mlops/taxi-mlops/config"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

const usage = `usage: starter <command> [flags]

commands:
  retrain --model NAME [--reason TEXT] [--wait]            start a RetrainWorkflow
  rollback --model NAME --to VERSION [--reason TEXT]       make an earlier version the champion again
  backtest --model NAME --version V --from DATE --to DATE  score a version over a past range
  schedules apply                                           create or update the Temporal Schedules
  schedules list                                            list the Temporal Schedules
  schedules backfill --id ID --from DATE --to DATE          run a schedule for a past range
  monitor --model NAME                                      show a drift monitor's state
  monitor pause|resume --model NAME [--reason TEXT]         stop or restart retraining decisions
  monitor set-policy --model NAME --policy JSON             replace a monitor's policy (validated)

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
	case "rollback":
		return rollback(ctx, args[1:], out)
	case "backtest":
		return backtest(ctx, args[1:], out)
	case "schedules":
		if len(args) < 2 || (args[1] != "apply" && args[1] != "list" && args[1] != "backfill") {
			return errors.New("schedules needs a subcommand: apply, list or backfill")
		}
		return schedules(ctx, args[1], args[2:], out)
	case "monitor":
		if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
			return monitorUpdate(ctx, args[1], args[2:], out)
		}
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
	var id, from, to string
	if verb == "backfill" {
		c.fs.StringVar(&id, "id", "", "schedule to backfill (see schedules list)")
		c.fs.StringVar(&from, "from", "", "start of the range: 2026-11-01 or RFC 3339")
		c.fs.StringVar(&to, "to", "", "end of the range (exclusive)")
	}
	if err := c.b.Parse(args); err != nil {
		return err
	}
	var fromT, toT time.Time
	if verb == "backfill" {
		if id == "" {
			return errors.New("--id is required: the schedule to backfill (starter schedules list)")
		}
		var err error
		if fromT, err = parseTime("--from", from); err != nil {
			return err
		}
		if toT, err = parseTime("--to", to); err != nil {
			return err
		}
		if !toT.After(fromT) {
			return fmt.Errorf("--to (%s) must be after --from (%s)", to, from)
		}
	}
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	if verb == "backfill" {
		if err := system.Backfill(ctx, tc, id, fromT, toT); err != nil {
			return err
		}
		fmt.Fprintf(out, "backfilling %s from %s to %s\n", id, fromT.Format(time.RFC3339), toT.Format(time.RFC3339))
		return nil
	}
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

// parseTime reads a date (2026-11-01, midnight UTC) or an RFC 3339 time.
func parseTime(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, fmt.Errorf("%s is required: a date like 2014-01-01 or a time like 2014-01-01T06:00:00Z", flag)
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%s %q is not a date like 2014-01-01 or a time like 2014-01-01T06:00:00Z", flag, v)
}

func rollback(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("rollback")
	var in workflows.RollbackInput
	var wait bool
	c.fs.StringVar(&in.ModelName, "model", "", "model to roll back: "+strings.Join(training.ModelNames(), ", "))
	c.fs.StringVar(&in.ToVersion, "to", "", "version to make the champion again (the registry lists them under <model>/)")
	c.fs.StringVar(&in.Reason, "reason", "rollback", "why, recorded in the champion's history")
	c.fs.BoolVar(&wait, "wait", false, "wait for the result and print it")
	if err := c.b.Parse(args); err != nil {
		return err
	}
	if err := checkModel(in.ModelName); err != nil {
		return err
	}
	if in.ToVersion == "" {
		return errors.New("--to is required: the version to put back (see the champion's history in the registry)")
	}
	return c.start(ctx, out, "rollback/"+in.ModelName+"/"+in.ToVersion+"-"+time.Now().UTC().Format("20060102T150405Z"),
		workflows.RollbackWorkflowName, in, wait, &workflows.RollbackResult{})
}

func backtest(ctx context.Context, args []string, out io.Writer) error {
	c := newCommand("backtest")
	var in workflows.BacktestInput
	var from, to string
	var wait bool
	c.fs.StringVar(&in.ModelName, "model", "", "model: "+strings.Join(training.ModelNames(), ", "))
	c.fs.StringVar(&in.Version, "version", "", "model version to score")
	c.fs.StringVar(&from, "from", "", "start of the range of pickups: 2014-01-01 or RFC 3339")
	c.fs.StringVar(&to, "to", "", "end of the range (exclusive)")
	c.fs.BoolVar(&wait, "wait", false, "wait for the result and print it")
	if err := c.b.Parse(args); err != nil {
		return err
	}
	if err := checkModel(in.ModelName); err != nil {
		return err
	}
	if in.Version == "" {
		return errors.New("--version is required: the model version to score")
	}
	var err error
	if in.From, err = parseTime("--from", from); err != nil {
		return err
	}
	if in.To, err = parseTime("--to", to); err != nil {
		return err
	}
	if !in.To.After(in.From) {
		return fmt.Errorf("--to (%s) must be after --from (%s)", to, from)
	}
	return c.start(ctx, out, "backtest/"+in.ModelName+"/"+in.Version+"-"+time.Now().UTC().Format("20060102T150405Z"),
		workflows.BacktestWorkflowName, in, wait, &activities.BacktestResult{})
}

// start starts a workflow and, with wait, prints its result into res.
func (c *command) start(ctx context.Context, out io.Writer, id, workflow string, in any, wait bool, res any) error {
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	run, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: c.temporal.TaskQueue}, workflow, in)
	if err != nil {
		return fmt.Errorf("start %s: %w", workflow, err)
	}
	fmt.Fprintf(out, "started %s %s (run %s)\n  %s\n", workflow, run.GetID(), run.GetRunID(), c.link(run.GetID(), run.GetRunID()))
	if !wait {
		return nil
	}
	if err := run.Get(ctx, res); err != nil {
		return fmt.Errorf("%s %s failed: %w", workflow, run.GetID(), err)
	}
	return printJSON(out, res)
}

func monitorUpdate(ctx context.Context, verb string, args []string, out io.Writer) error {
	c := newCommand("monitor " + verb)
	var model, reason, policy string
	c.fs.StringVar(&model, "model", "", "model whose drift monitor to change: "+strings.Join(training.ModelNames(), ", "))
	switch verb {
	case "pause", "resume":
		c.fs.StringVar(&reason, "reason", "", "why, for the monitor's log")
	case "set-policy":
		c.fs.StringVar(&policy, "policy", "", `the new policy as JSON, e.g. {"drift_threshold":0.25,"min_evidence":2,"cooldown":"30m"}`)
	default:
		return fmt.Errorf("monitor %q: use pause, resume or set-policy (or no subcommand to show the state)", verb)
	}
	if err := c.b.Parse(args); err != nil {
		return err
	}
	if err := checkModel(model); err != nil {
		return err
	}
	name, arg := workflows.UpdatePause, any(reason)
	switch verb {
	case "resume":
		name = workflows.UpdateResume
	case "set-policy":
		var p workflows.Policy
		if policy == "" {
			return errors.New(`--policy is required, e.g. --policy '{"drift_threshold":0.25,"cooldown":"30m"}'`)
		}
		dec := json.NewDecoder(strings.NewReader(policy))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			return fmt.Errorf("--policy: %w (fields: drift_threshold, min_evidence, evidence_window, cooldown, retrain)", err)
		}
		if err := p.WithDefaults().Validate(); err != nil {
			return fmt.Errorf("--policy: %w", err)
		}
		name, arg = workflows.UpdateSetPolicy, p
	}
	tc, err := c.dial()
	if err != nil {
		return err
	}
	defer tc.Close()
	h, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.DriftMonitorID(model), UpdateName: name, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("%s %s: %w", name, workflows.DriftMonitorID(model), err)
	}
	var res any
	if err := h.Get(ctx, &res); err != nil {
		return fmt.Errorf("%s %s: %w", name, workflows.DriftMonitorID(model), err)
	}
	return printJSON(out, res)
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
