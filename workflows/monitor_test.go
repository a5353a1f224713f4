package workflows

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

type monitorHarness struct {
	t   *testing.T
	env *testsuite.TestWorkflowEnvironment
	// started lists the retrains the monitor started, by trigger id.
	started []string
}

func newMonitorHarness(t *testing.T, retrainTakes time.Duration, result func(in RetrainInput) (RetrainResult, error)) *monitorHarness {
	h := &monitorHarness{t: t, env: newEnv()}
	h.env.RegisterWorkflow(RetrainWorkflow)
	h.env.OnWorkflow(RetrainWorkflow, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, in RetrainInput) (RetrainResult, error) {
			h.started = append(h.started, in.TriggerID)
			if err := workflow.Sleep(ctx, retrainTakes); err != nil {
				return RetrainResult{}, err
			}
			return result(in)
		})
	return h
}

func (h *monitorHarness) at(d time.Duration, f func()) { h.env.RegisterDelayedCallback(f, d) }

func (h *monitorHarness) alert(d time.Duration, id, version string, score float64) {
	h.at(d, func() {
		h.env.SignalWorkflow(SignalDriftAlert, DriftSignal{AlertID: id, ModelVersion: version, DriftScore: score, Severity: "critical"})
	})
}

func (h *monitorHarness) state() MonitorStatus {
	v, err := h.env.QueryWorkflow(QueryState)
	if err != nil {
		h.t.Fatalf("query state: %v", err)
	}
	var st MonitorStatus
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

func promoted(version string) func(RetrainInput) (RetrainResult, error) {
	return func(in RetrainInput) (RetrainResult, error) {
		return RetrainResult{ModelName: in.ModelName, CandidateVersion: version, ChampionAfter: version, Promoted: true}, nil
	}
}

func TestMonitorDedupesAndKeepsOneRetrainInFlight(t *testing.T) {
	h := newMonitorHarness(t, 10*time.Minute, promoted("v2"))
	h.alert(time.Minute, "a1", "v1", 0.3)
	h.alert(2*time.Minute, "a1", "v1", 0.3) // redelivered
	h.alert(3*time.Minute, "a2", "v1", 0.4) // arrives while a1's retrain runs
	h.at(4*time.Minute, func() {
		st := h.state()
		if st.State.InFlight == "" {
			t.Error("no retrain in flight after the first alert")
		}
		if st.State.Duplicates != 1 {
			t.Errorf("duplicates = %d, want 1", st.State.Duplicates)
		}
	})
	h.at(30*time.Minute, func() {
		st := h.state()
		if st.State.InFlight != "" || st.State.Champion != "v2" {
			t.Errorf("after the retrain: in flight %q, champion %q", st.State.InFlight, st.State.Champion)
		}
		h.env.CancelWorkflow()
	})
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare"})
	if len(h.started) != 1 || h.started[0] != "a1" {
		t.Fatalf("retrains started for %v, want exactly [a1]", h.started)
	}
}

func TestMonitorCooldownThenRetrain(t *testing.T) {
	h := newMonitorHarness(t, 5*time.Minute, promoted("v2"))
	policy := Policy{Cooldown: Duration(20 * time.Minute)}
	h.alert(time.Minute, "a1", "v1", 0.5)    // retrain 1: minutes 1..6
	h.alert(8*time.Minute, "a2", "v1", 0.5)  // about the replaced champion: stale
	h.alert(10*time.Minute, "a3", "v2", 0.5) // fresh, but cooling down until 26
	h.at(12*time.Minute, func() {
		st := h.state()
		if len(h.started) != 1 {
			t.Errorf("retrain during cooldown: %v", h.started)
		}
		if st.State.LastDecision.WaitUntil.IsZero() {
			t.Errorf("decision %q does not wait for the cooldown", st.State.LastDecision.Reason)
		}
	})
	h.at(40*time.Minute, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare", Policy: policy})
	if len(h.started) != 2 || h.started[1] != "a3" {
		t.Fatalf("retrains started for %v, want [a1 a3] (a3 when the cooldown ended)", h.started)
	}
}

func TestMonitorIgnoresSmallDrift(t *testing.T) {
	h := newMonitorHarness(t, time.Minute, promoted("v2"))
	h.alert(time.Minute, "a1", "v1", 0.15) // a warning below the policy's 0.2
	h.at(10*time.Minute, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare"})
	if len(h.started) != 0 {
		t.Fatalf("retrain started for a small drift: %v", h.started)
	}
}

func TestMonitorFailedRetrainCoolsDown(t *testing.T) {
	h := newMonitorHarness(t, time.Minute, func(RetrainInput) (RetrainResult, error) {
		return RetrainResult{}, errors.New("snapshot failed")
	})
	h.alert(time.Minute, "a1", "v1", 0.5)
	h.alert(5*time.Minute, "a2", "v1", 0.5) // within the default 15m cooldown
	h.at(10*time.Minute, func() {
		if r := h.state().State.LastResult; r == "" || r[:6] != "failed" {
			t.Errorf("last result %q does not report the failure", r)
		}
		h.env.CancelWorkflow()
	})
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare"})
	if len(h.started) != 1 {
		t.Fatalf("retrains %v: a failed retrain must cool down like any other", h.started)
	}
}

func TestMonitorContinuesAsNewWithState(t *testing.T) {
	h := newMonitorHarness(t, time.Minute, promoted("v2"))
	for i := range 10 {
		h.alert(time.Duration(i+1)*time.Second, fmt.Sprintf("w%d", i), "v1", 0.05)
	}
	h.at(20*time.Second, func() {
		h.env.SetContinueAsNewSuggested(true)
		h.env.SignalWorkflow(SignalDriftAlert, DriftSignal{AlertID: "last", ModelVersion: "v1", DriftScore: 0.05})
	})
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare", Policy: Policy{Cooldown: Duration(time.Hour)}})
	err := h.env.GetWorkflowError()
	var can *workflow.ContinueAsNewError
	if !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want continue-as-new", err)
	}
	var next DriftMonitorInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.State == nil || len(next.State.Seen) != 11 || len(next.State.Evidence) != 11 {
		t.Fatalf("state not carried whole: %+v", next.State)
	}
	if next.ModelName != "fare" || next.Policy.Cooldown.Std() != time.Hour {
		t.Fatalf("input not carried: %+v", next)
	}
}

func TestMonitorRejectsBadInput(t *testing.T) {
	env := newEnv()
	env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare", Policy: Policy{DriftThreshold: -1}})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("a negative drift threshold was accepted")
	}
}

func TestMonitorUpdates(t *testing.T) {
	h := newMonitorHarness(t, time.Minute, promoted("v2"))
	update := func(name string, arg any, wantErr string) {
		h.env.UpdateWorkflow(name, "", &testsuite.TestUpdateCallback{
			OnAccept: func() {
				if wantErr != "" {
					t.Errorf("%s accepted, want rejected with %q", name, wantErr)
				}
			},
			OnReject: func(err error) {
				if wantErr == "" || !strings.Contains(err.Error(), wantErr) {
					t.Errorf("%s rejected: %v (want %q)", name, err, wantErr)
				}
			},
			OnComplete: func(any, error) {},
		}, arg)
	}
	h.at(time.Minute, func() { update(UpdateSetPolicy, Policy{DriftThreshold: -1}, "drift_threshold") })
	h.at(2*time.Minute, func() { update(UpdatePause, "maintenance", "") })
	h.alert(3*time.Minute, "a1", "v1", 0.5) // paused: no retrain
	h.at(4*time.Minute, func() {
		if len(h.started) != 0 {
			t.Errorf("retrain while paused: %v", h.started)
		}
		if d := h.state().State.LastDecision; d.Reason != "paused" {
			t.Errorf("decision while paused: %q", d.Reason)
		}
		update(UpdateSetPolicy, Policy{DriftThreshold: 0.6}, "")
		update(UpdateResume, "done", "")
	})
	h.at(6*time.Minute, func() {
		// Resumed, but a1 (0.5) is under the new threshold of 0.6.
		if len(h.started) != 0 {
			t.Errorf("retrain on evidence under the new threshold: %v", h.started)
		}
		if p := h.state().Policy; p.DriftThreshold != 0.6 {
			t.Errorf("policy %+v", p)
		}
	})
	h.alert(7*time.Minute, "a2", "v1", 0.7)
	h.at(20*time.Minute, func() { h.env.CancelWorkflow() })
	h.env.ExecuteWorkflow(DriftMonitorWorkflow, DriftMonitorInput{ModelName: "fare"})
	if len(h.started) != 1 || h.started[0] != "a2" {
		t.Fatalf("retrains %v, want [a2]", h.started)
	}
}
