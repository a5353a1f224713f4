package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
)

// The mistakes a person makes at the command line are answered before any
// connection to Temporal, with what to do instead. None of these cases
// reaches a server.
func TestRunErrors(t *testing.T) {
	// Connection settings must not matter for these cases; point them at
	// nothing to be sure no case gets as far as dialling.
	t.Setenv("TAXI_TEMPORAL_ADDRESS", "127.0.0.1:1")
	models := []string{"fare", "big_tipper"}
	for _, c := range []struct {
		name string
		args []string
		want []string // every one in the error
	}{
		{"no command", nil, []string{"usage: starter <command>", "retrain --model NAME", "schedules apply", "schedules list", "monitor --model NAME"}},
		{"unknown command", []string{"train", "--model", "fare"}, []string{`unknown command "train"`, "usage: starter <command>", "retrain --model NAME"}},
		{"retrain without --model", []string{"retrain"}, append([]string{"--model is required"}, models...)},
		{"retrain with an empty --model", []string{"retrain", "--model", ""}, append([]string{"--model is required"}, models...)},
		{"retrain with an unknown model", []string{"retrain", "--model", "tips"}, append([]string{`--model "tips" is not a model of this system`}, models...)},
		{"retrain with a model's display name", []string{"retrain", "--model", "Fare"}, append([]string{`"Fare"`}, models...)},
		{"retrain with --holdout 2", []string{"retrain", "--model", "fare", "--holdout", "2"}, []string{"--holdout", "[0, 1)", "2"}},
		{"retrain with --holdout 1", []string{"retrain", "--model", "fare", "--holdout", "1"}, []string{"--holdout", "[0, 1)"}},
		{"retrain with a negative --max-rows", []string{"retrain", "--model", "big_tipper", "--max-rows", "-5"}, []string{"--max-rows", "negative", "-5"}},
		{"retrain with --min-improvement 1.5", []string{"retrain", "--model", "fare", "--min-improvement", "1.5"}, []string{"--min-improvement", "[0, 1)", "1.5"}},
		{"schedules without a subcommand", []string{"schedules"}, []string{"apply", "list"}},
		{"schedules with an unknown subcommand", []string{"schedules", "delete"}, []string{"apply", "list"}},
		{"monitor without --model", []string{"monitor"}, append([]string{"--model is required"}, models...)},
		{"monitor with an unknown model", []string{"monitor", "--model", "demand"}, append([]string{`--model "demand"`}, models...)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), c.args, &out)
			if err == nil {
				t.Fatalf("run(%q) succeeded; printed %q", c.args, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("run(%q): error %q\ndoes not say %q", c.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "dial") || strings.Contains(err.Error(), "127.0.0.1:1") {
				t.Errorf("run(%q) tried to reach Temporal: %v", c.args, err)
			}
			if out.Len() != 0 {
				t.Errorf("run(%q) printed %q with an error", c.args, out.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out); err != nil {
			t.Errorf("run(%q): %v", arg, err)
		}
		if !strings.Contains(out.String(), "usage: starter <command>") {
			t.Errorf("run(%q) printed %q, want the usage", arg, out.String())
		}
	}
}

func TestCheckModel(t *testing.T) {
	for _, m := range []string{"fare", "big_tipper"} {
		if err := checkModel(m); err != nil {
			t.Errorf("checkModel(%q): %v", m, err)
		}
	}
	for _, m := range []string{"", "FARE", " fare", "big-tipper"} {
		if err := checkModel(m); err == nil {
			t.Errorf("checkModel(%q) accepted it", m)
		}
	}
}

func TestRunErrorsOfNewCommands(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"rollback", "--model", "fare"}, []string{"--to is required"}},
		{[]string{"rollback", "--to", "v1"}, []string{"--model is required", "fare"}},
		{[]string{"backtest", "--model", "fare", "--version", "v1", "--from", "2014-01-01"}, []string{"--to is required", "2014-01-01"}},
		{[]string{"backtest", "--model", "fare", "--version", "v1", "--from", "yesterday", "--to", "2015-01-01"}, []string{"--from", "yesterday", "2014-01-01"}},
		{[]string{"backtest", "--model", "fare", "--version", "v1", "--from", "2015-01-01", "--to", "2014-01-01"}, []string{"must be after"}},
		{[]string{"schedules", "backfill", "--from", "2014-01-01", "--to", "2014-02-01"}, []string{"--id is required"}},
		{[]string{"monitor", "stop", "--model", "fare"}, []string{"pause, resume or set-policy"}},
		{[]string{"monitor", "set-policy", "--model", "fare"}, []string{"--policy is required"}},
		{[]string{"monitor", "set-policy", "--model", "fare", "--policy", `{"drift_treshold":0.2}`}, []string{"drift_treshold", "drift_threshold"}},
		{[]string{"monitor", "set-policy", "--model", "fare", "--policy", `{"drift_threshold":-1}`}, []string{"drift_threshold must be > 0"}},
		{[]string{"monitor", "pause", "--model", "taxi"}, []string{`"taxi"`, "fare"}},
	} {
		err := run(context.Background(), c.args, io.Discard)
		if err == nil {
			t.Errorf("%v: no error", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not say %q", c.args, err, w)
			}
		}
	}
}
