package e2e

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"

	"github.com/taxi-mlops/taxi-mlops/replay"
	"github.com/taxi-mlops/taxi-mlops/system"
	"github.com/taxi-mlops/taxi-mlops/training"
	"github.com/taxi-mlops/taxi-mlops/workflows"
)

// readmeCommands returns the `temporal ...` commands of the README's code
// blocks (continuation lines joined), skipping templates with <placeholders>.
func readmeCommands(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	var cur string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur == "" && !strings.HasPrefix(line, "temporal workflow ") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		cur += line
		if !strings.Contains(cur, "<") {
			cmds = append(cmds, cur)
		}
		cur = ""
	}
	return cmds
}

// shellWords splits a command line the way sh does for what the README
// uses: words, and single-quoted strings.
func shellWords(s string) []string {
	var out []string
	var w strings.Builder
	inQuote, inWord := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote = !inQuote
			inWord = true
		case r == ' ' && !inQuote:
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

// TestReadmeTemporalCommands runs the README's `temporal` commands as
// written against a stack with a worker, then the rollback and backtest
// templates with real versions, and checks what they should do. With
// TAXI_WRITE_HISTORIES=1 it writes the histories of the workflows it ran to
// workflows/testdata/histories for the replay tests.
func TestReadmeTemporalCommands(t *testing.T) {
	cli := temporalCLI(t)
	s := startStack(t, workflows.Policy{})
	ctx := context.Background()
	rows, err := system.SampleRows(s.deps.Location)
	if err != nil {
		t.Fatal(err)
	}
	if err := system.Bootstrap(ctx, s.reg, rows[:3000], s.deps); err != nil {
		t.Fatal(err)
	}
	first, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	s.run()
	s.replay(replay.Options{Limit: 4000})
	// The monitor exists once the bridge has signalled it; the README
	// queries and updates it.
	if _, err := s.temporal.SignalWithStartWorkflow(ctx, workflows.DriftMonitorID(training.Fare), workflows.SignalDriftAlert,
		workflows.DriftSignal{AlertID: "readme", ModelVersion: first.Version, DriftScore: 0.05, Severity: "warning"},
		client.StartWorkflowOptions{ID: workflows.DriftMonitorID(training.Fare), TaskQueue: s.cfg.Temporal.TaskQueue},
		workflows.DriftMonitorWorkflow, workflows.DriftMonitorInput{ModelName: training.Fare}); err != nil {
		t.Fatal(err)
	}

	temporal := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(cli, append(args, "--address", s.cfg.Temporal.HostPort)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cmds := readmeCommands(t)
	if len(cmds) < 5 {
		t.Fatalf("found %d temporal commands in the README", len(cmds))
	}
	outputs := map[string]string{}
	for _, c := range cmds {
		w := shellWords(c)
		outputs[c] = temporal(w[1:]...)
	}
	wait := func(id string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := s.temporal.GetWorkflow(wctx, id, "").Get(wctx, nil); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	for _, id := range []string{"retrain/fare/by-hand", "evaluation/by-hand", "feast/by-hand"} {
		wait(id)
	}
	// `temporal workflow list --query 'ModelName = "fare"'` finds them.
	list := temporal("workflow", "list", "--query", `ModelName = "fare"`)
	for _, id := range []string{"retrain/fare/by-hand", workflows.DriftMonitorID(training.Fare)} {
		if !strings.Contains(list, id) {
			t.Errorf("workflow list does not show %s:\n%s", id, list)
		}
	}

	// The templates, with versions of this registry.
	c, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	for _, tmpl := range []string{
		`temporal workflow start --type RollbackWorkflow --task-queue taxi-mlops --workflow-id rollback/fare/by-hand --input '{"model_name": "fare", "to_version": "<version>", "reason": "by hand"}'`,
		`temporal workflow start --type BacktestWorkflow --task-queue taxi-mlops --workflow-id backtest/fare/by-hand --input '{"model_name": "fare", "version": "<version>", "from": "2013-01-01T00:00:00Z", "to": "2014-01-01T00:00:00Z"}'`,
	} {
		readme, _ := os.ReadFile("../README.md")
		if !strings.Contains(strings.ReplaceAll(string(readme), "\\\n  ", ""), tmpl) {
			t.Errorf("the README no longer shows:\n%s", tmpl)
		}
		temporal(shellWords(strings.ReplaceAll(tmpl, "<version>", first.Version))[1:]...)
	}
	wait("rollback/fare/by-hand")
	wait("backtest/fare/by-hand")
	after, err := s.reg.Champion(ctx, training.Fare)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != first.Version && after.Version != first.Version {
		t.Fatalf("rollback to %s left %s as champion", first.Version, after.Version)
	}
	var bt struct {
		Rows    int                `json:"rows"`
		Metrics map[string]float64 `json:"metrics"`
	}
	if err := s.temporal.GetWorkflow(ctx, "backtest/fare/by-hand", "").Get(ctx, &bt); err != nil || bt.Rows == 0 || bt.Metrics["rmse"] <= 0 {
		t.Fatalf("backtest result %+v %v", bt, err)
	}

	if os.Getenv("TAXI_WRITE_HISTORIES") == "1" {
		for name, id := range map[string]string{
			"retrain":       "retrain/fare/by-hand",
			"evaluation":    "evaluation/by-hand",
			"materialize":   "feast/by-hand",
			"rollback":      "rollback/fare/by-hand",
			"backtest":      "backtest/fare/by-hand",
			"drift_monitor": workflows.DriftMonitorID(training.Fare),
		} {
			s.writeHistory(name, id)
		}
	}
}

// writeHistory saves a workflow's history as the JSON `temporal workflow
// show --output json` writes, for replay tests.
func (s *stack) writeHistory(name, id string) {
	t := s.t
	it := s.temporal.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	h := &historypb.History{}
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, ev)
	}
	b, err := temporalproto.CustomJSONMarshalOptions{Indent: "  "}.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "workflows", "testdata", "histories")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s history (%d events)", name, len(h.Events))
}
