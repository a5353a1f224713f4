package workflows

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecide(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	p := Policy{DriftThreshold: 0.2, MinEvidence: 2, EvidenceWindow: Duration(time.Hour), Cooldown: Duration(30 * time.Minute)}
	ev := func(id string, at time.Time, breach bool, version string) Evidence {
		score := 0.3
		if !breach {
			score = 0.1
		}
		return Evidence{ID: id, Kind: TriggerDrift, At: at, Score: score, Breach: breach, ModelVersion: version}
	}
	tests := []struct {
		name     string
		state    PolicyState
		evidence []Evidence
		now      time.Time
		retrain  bool
		reason   string
		wait     bool
	}{
		{name: "no evidence", now: t0, reason: "0 of 2"},
		{name: "one breach is not enough", evidence: []Evidence{ev("a", t0, true, "")}, now: t0, reason: "1 of 2"},
		{name: "two breaches retrain", evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0.Add(time.Minute), true, "")}, now: t0.Add(time.Minute), retrain: true, reason: "2 signals"},
		{name: "non-breaching evidence ignored", evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0, false, "")}, now: t0, reason: "1 of 2"},
		{name: "old evidence expires", evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0.Add(2*time.Hour), true, "")}, now: t0.Add(2 * time.Hour), reason: "1 of 2"},
		{name: "paused", state: PolicyState{Paused: true}, evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0, true, "")}, now: t0, reason: "paused"},
		{name: "one in flight", state: PolicyState{InFlight: "retrain/fare/x"}, evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0, true, "")}, now: t0, reason: "in flight"},
		{
			name:     "cooldown after a retrain waits",
			state:    PolicyState{LastRetrainEnd: t0},
			evidence: []Evidence{ev("a", t0.Add(time.Minute), true, ""), ev("b", t0.Add(2*time.Minute), true, "")},
			now:      t0.Add(2 * time.Minute), reason: "cooldown until", wait: true,
		},
		{
			name:     "after cooldown retrain",
			state:    PolicyState{LastRetrainEnd: t0},
			evidence: []Evidence{ev("a", t0.Add(time.Minute), true, ""), ev("b", t0.Add(2*time.Minute), true, "")},
			now:      t0.Add(31 * time.Minute), retrain: true,
		},
		{
			name:     "evidence from before the last retrain is answered",
			state:    PolicyState{LastRetrainEnd: t0.Add(5 * time.Minute)},
			evidence: []Evidence{ev("a", t0, true, ""), ev("b", t0.Add(time.Minute), true, "")},
			now:      t0.Add(time.Hour), reason: "0 of 2",
		},
		{
			name:     "evidence about a replaced champion is stale",
			state:    PolicyState{Champion: "v2"},
			evidence: []Evidence{ev("a", t0, true, "v1"), ev("b", t0, true, "v2")},
			now:      t0, reason: "1 of 2",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(p, tc.state, tc.evidence, tc.now)
			if d.Retrain != tc.retrain {
				t.Fatalf("retrain = %v, want %v (reason %q)", d.Retrain, tc.retrain, d.Reason)
			}
			if !strings.Contains(d.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", d.Reason, tc.reason)
			}
			if (!d.WaitUntil.IsZero()) != tc.wait {
				t.Errorf("wait until %v, want wait %v", d.WaitUntil, tc.wait)
			}
			if d.Retrain && d.Trigger == nil {
				t.Error("a retrain decision names no trigger")
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	good := DefaultPolicy()
	if err := good.Validate(); err != nil {
		t.Fatalf("default policy invalid: %v", err)
	}
	for name, mutate := range map[string]func(*Policy){
		"drift_threshold":  func(p *Policy) { p.DriftThreshold = 0 },
		"min_evidence":     func(p *Policy) { p.MinEvidence = 0 },
		"evidence_window":  func(p *Policy) { p.EvidenceWindow = 0 },
		"cooldown":         func(p *Policy) { p.Cooldown = -1 },
		"holdout_fraction": func(p *Policy) { p.Retrain.HoldoutFraction = 1 },
		"pipeline":         func(p *Policy) { p.Retrain.Pipeline = "spark" },
	} {
		p := DefaultPolicy()
		mutate(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the field", name, err)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	var p Policy
	if err := json.Unmarshal([]byte(`{"cooldown":"30m","evidence_window":90}`), &p); err != nil {
		t.Fatal(err)
	}
	if p.Cooldown.Std() != 30*time.Minute || p.EvidenceWindow.Std() != 90*time.Second {
		t.Fatalf("got cooldown %v window %v", p.Cooldown.Std(), p.EvidenceWindow.Std())
	}
	b, _ := json.Marshal(p.Cooldown)
	if string(b) != `"30m0s"` {
		t.Fatalf("marshal = %s", b)
	}
	if err := json.Unmarshal([]byte(`{"cooldown":"soon"}`), &p); err == nil || !strings.Contains(err.Error(), "90s") {
		t.Fatalf("bad duration error %v does not show the syntax", err)
	}
}

func TestCandidateVersion(t *testing.T) {
	t0 := time.Date(2026, 11, 28, 16, 13, 0, 0, time.UTC)
	a := CandidateVersion(t0, "retrain/fare/x", "run1")
	if a != CandidateVersion(t0, "retrain/fare/x", "run1") {
		t.Fatal("not deterministic")
	}
	if a == CandidateVersion(t0, "retrain/fare/x", "run2") {
		t.Fatal("two runs share a version")
	}
	if !strings.HasPrefix(a, "v20261128-161300-") {
		t.Fatalf("version %q does not start with its time", a)
	}
	later := CandidateVersion(t0.Add(time.Second), "retrain/fare/a", "run1")
	if !(a < later) {
		t.Fatalf("versions do not sort by time: %s !< %s", a, later)
	}
}
