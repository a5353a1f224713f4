package workflows

import (
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/taxi-mlops/taxi-mlops/activities"
)

// DriftSignal is what the bridge sends a monitor for a data-quality alert.
type DriftSignal struct {
	AlertID          string    `json:"alert_id"`
	ModelVersion     string    `json:"model_version"`
	DriftScore       float64   `json:"drift_score"`
	Severity         string    `json:"severity"`
	AffectedFeatures []string  `json:"affected_features"`
	Timestamp        time.Time `json:"timestamp"`
}

// MetricSignal is what the bridge sends a monitor for a model metric.
type MetricSignal struct {
	MetricID     string    `json:"metric_id"`
	ModelVersion string    `json:"model_version"`
	MetricName   string    `json:"metric_name"`
	MetricValue  float64   `json:"metric_value"`
	Threshold    float64   `json:"threshold"`
	Breached     bool      `json:"breached"`
	Timestamp    time.Time `json:"timestamp"`
}

// DriftMonitorInput starts (or continues) a model's monitor. Example:
//
//	{"model_name": "fare", "policy": {"drift_threshold": 0.25, "cooldown": "30m"}}
type DriftMonitorInput struct {
	ModelName string `json:"model_name"`
	Policy    Policy `json:"policy"`
	// MaxHistoryEvents after which the monitor continues as new even if the
	// server has not suggested it yet (default 3000).
	MaxHistoryEvents int `json:"max_history_events,omitempty"`
	// State is carried across continue-as-new; leave it out when starting.
	State *MonitorState `json:"state,omitempty"`
}

// MonitorState is everything a monitor remembers.
type MonitorState struct {
	PolicyState
	// Seen holds the ids of recent signals, oldest first, to drop
	// redeliveries: Temporal does not deduplicate signals.
	Seen         []string   `json:"seen"`
	Evidence     []Evidence `json:"evidence"`
	LastDecision Decision   `json:"last_decision"`
	Retrains     int        `json:"retrains"`
	LastRetrain  string     `json:"last_retrain"`
	LastResult   string     `json:"last_result"`
	Duplicates   int        `json:"duplicates"`
}

// MonitorStatus is the answer to the "state" query.
type MonitorStatus struct {
	ModelName string       `json:"model_name"`
	Policy    Policy       `json:"policy"`
	State     MonitorState `json:"state"`
}

// Bounds of the monitor's memory, kept across continue-as-new.
const (
	maxSeen     = 2000
	maxEvidence = 100
	// defaultMaxHistoryEvents bounds history even if the server does not
	// suggest continue-as-new first.
	defaultMaxHistoryEvents = 3000
)

type monitor struct {
	model  string
	policy Policy
	st     MonitorState
	seen   map[string]bool
}

func (m *monitor) remember(id string) bool {
	if m.seen[id] {
		m.st.Duplicates++
		return false
	}
	m.seen[id] = true
	m.st.Seen = append(m.st.Seen, id)
	if len(m.st.Seen) > maxSeen {
		delete(m.seen, m.st.Seen[0])
		m.st.Seen = m.st.Seen[1:]
	}
	return true
}

func (m *monitor) addEvidence(e Evidence) {
	m.st.Evidence = append(m.st.Evidence, e)
	if len(m.st.Evidence) > maxEvidence {
		m.st.Evidence = m.st.Evidence[len(m.st.Evidence)-maxEvidence:]
	}
}

func (m *monitor) onAlert(s DriftSignal, now time.Time) {
	if s.AlertID == "" || !m.remember("alert:"+s.AlertID) {
		return
	}
	m.addEvidence(Evidence{
		ID: s.AlertID, Kind: TriggerDrift, At: now, Score: s.DriftScore,
		Breach:       s.DriftScore >= m.policy.DriftThreshold,
		ModelVersion: s.ModelVersion,
		Detail:       fmt.Sprintf("%s drift in %v", s.Severity, s.AffectedFeatures),
	})
}

func (m *monitor) onMetric(s MetricSignal, now time.Time) {
	if s.MetricID == "" || !m.remember("metric:"+s.MetricID) {
		return
	}
	m.addEvidence(Evidence{
		ID: s.MetricID, Kind: TriggerMetric, At: now, Score: s.MetricValue,
		Breach:       s.Breached,
		ModelVersion: s.ModelVersion,
		Detail:       fmt.Sprintf("%s = %.4g (threshold %.4g)", s.MetricName, s.MetricValue, s.Threshold),
	})
}

// DriftMonitorWorkflow watches one model: the bridge signals it with alerts
// and metrics, it keeps the recent evidence, and starts a RetrainWorkflow
// child when the policy says so, never two at a time.
func DriftMonitorWorkflow(ctx workflow.Context, in DriftMonitorInput) error {
	if in.ModelName == "" {
		return temporal.NewNonRetryableApplicationError("model_name is required", activities.ErrTypeInvalidInput, nil)
	}
	policy := in.Policy.WithDefaults()
	if err := policy.Validate(); err != nil {
		return temporal.NewNonRetryableApplicationError("invalid policy: "+err.Error(), activities.ErrTypeInvalidInput, nil)
	}
	if in.MaxHistoryEvents <= 0 {
		in.MaxHistoryEvents = defaultMaxHistoryEvents
	}
	m := &monitor{model: in.ModelName, policy: policy, seen: map[string]bool{}}
	if in.State != nil {
		m.st = *in.State
		for _, id := range m.st.Seen {
			m.seen[id] = true
		}
	}
	logger := workflow.GetLogger(ctx)

	if err := workflow.SetQueryHandler(ctx, QueryState, func() (MonitorStatus, error) {
		return MonitorStatus{ModelName: m.model, Policy: m.policy, State: m.st}, nil
	}); err != nil {
		return fmt.Errorf("register query: %w", err)
	}
	// Updates change the policy or pause the monitor; wake tells the main
	// loop to decide again.
	wake := workflow.NewBufferedChannel(ctx, 1)
	nudge := func() { wake.SendAsync(true) }
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateSetPolicy,
		func(ctx workflow.Context, p Policy) (Policy, error) {
			m.policy = p.WithDefaults()
			logger.Info("policy updated", "model", m.model)
			nudge()
			return m.policy, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, p Policy) error {
			return p.WithDefaults().Validate()
		}},
	); err != nil {
		return fmt.Errorf("register update %s: %w", UpdateSetPolicy, err)
	}
	for _, u := range []struct {
		name   string
		paused bool
	}{{UpdatePause, true}, {UpdateResume, false}} {
		name, paused := u.name, u.paused
		if err := workflow.SetUpdateHandler(ctx, name, func(ctx workflow.Context, reason string) (MonitorStatus, error) {
			m.st.Paused = paused
			logger.Info("monitor paused or resumed", "model", m.model, "paused", paused, "reason", reason)
			nudge()
			return MonitorStatus{ModelName: m.model, Policy: m.policy, State: m.st}, nil
		}); err != nil {
			return fmt.Errorf("register update %s: %w", name, err)
		}
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx,
		AttrModelName.ValueSet(m.model),
		AttrTriggerType.ValueSet(TriggerMonitor),
	); err != nil {
		return fmt.Errorf("set search attributes: %w", err)
	}

	alerts := workflow.GetSignalChannel(ctx, SignalDriftAlert)
	metrics := workflow.GetSignalChannel(ctx, SignalModelMetric)
	var (
		child     workflow.ChildWorkflowFuture
		timer     workflow.Future
		timerAt   time.Time
		lastScore float64
	)

	decide := func() {
		now := workflow.Now(ctx)
		d := Decide(m.policy, m.st.PolicyState, m.st.Evidence, now)
		if d.Trigger != nil && d.Trigger.Score != lastScore && d.Trigger.Kind == TriggerDrift {
			lastScore = d.Trigger.Score
			_ = workflow.UpsertTypedSearchAttributes(ctx, AttrDriftScore.ValueSet(lastScore))
		}
		if d.Reason != m.st.LastDecision.Reason || d.Retrain {
			m.st.LastDecision = d
			logger.Info("drift policy decision", "model", m.model, "retrain", d.Retrain, "reason", d.Reason)
		}
		if !d.WaitUntil.IsZero() && !d.WaitUntil.Equal(timerAt) {
			timerAt = d.WaitUntil
			timer = workflow.NewTimerWithOptions(ctx, d.WaitUntil.Sub(now), workflow.TimerOptions{Summary: "cooldown"})
		}
		if !d.Retrain {
			return
		}
		t := d.Trigger
		id := RetrainID(m.model, t.Kind+"-"+t.ID)
		cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
			WorkflowID:        id,
			TaskQueue:         workflow.GetInfo(ctx).TaskQueueName,
			ParentClosePolicy: enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
			StaticSummary:     fmt.Sprintf("retrain %s: %s", m.model, t.Detail),
		})
		child = workflow.ExecuteChildWorkflow(cctx, RetrainWorkflow, RetrainInput{
			ModelName:      m.model,
			TriggerType:    t.Kind,
			TriggerID:      t.ID,
			Reason:         t.Detail,
			DriftScore:     driftScore(t),
			RetrainOptions: m.policy.Retrain,
		})
		m.st.InFlight = id
		m.st.Retrains++
		m.st.LastRetrain = id
		_ = workflow.UpsertMemo(ctx, map[string]any{"summary": fmt.Sprintf("retraining %s: %s", m.model, d.Reason)})
	}

	onChildDone := func(f workflow.Future) {
		var res RetrainResult
		err := f.Get(ctx, &res)
		m.st.LastRetrainEnd = workflow.Now(ctx)
		m.st.InFlight = ""
		child = nil
		switch {
		case err != nil:
			m.st.LastResult = "failed: " + err.Error()
		case res.Promoted:
			m.st.Champion = res.ChampionAfter
			m.st.LastResult = "promoted " + res.CandidateVersion
		default:
			if res.ChampionBefore != "" {
				m.st.Champion = res.ChampionBefore
			}
			m.st.LastResult = "kept " + orNone(res.ChampionBefore) + ": " + res.Reason
		}
		logger.Info("retrain finished", "model", m.model, "result", m.st.LastResult)
		_ = workflow.UpsertMemo(ctx, map[string]any{"summary": m.model + ": " + m.st.LastResult})
	}

	// Evidence carried over from the previous run may already be enough.
	decide()
	for {
		sel := workflow.NewSelector(ctx)
		sel.AddReceive(alerts, func(c workflow.ReceiveChannel, _ bool) {
			var s DriftSignal
			c.Receive(ctx, &s)
			m.onAlert(s, workflow.Now(ctx))
		})
		sel.AddReceive(metrics, func(c workflow.ReceiveChannel, _ bool) {
			var s MetricSignal
			c.Receive(ctx, &s)
			m.onMetric(s, workflow.Now(ctx))
		})
		if child != nil {
			sel.AddFuture(child, onChildDone)
		}
		sel.AddReceive(wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
		if timer != nil {
			t := timer
			sel.AddFuture(t, func(workflow.Future) {
				if timer == t {
					timer, timerAt = nil, time.Time{}
				}
			})
		}
		sel.Select(ctx)
		if ctx.Err() != nil {
			// Cancelled: the in-flight child is cancelled with us.
			return ctx.Err()
		}
		decide()

		info := workflow.GetInfo(ctx)
		if child == nil && (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > in.MaxHistoryEvents) {
			// Drain what arrived so no signal is lost with this run.
			for {
				var s DriftSignal
				if !alerts.ReceiveAsync(&s) {
					break
				}
				m.onAlert(s, workflow.Now(ctx))
			}
			for {
				var s MetricSignal
				if !metrics.ReceiveAsync(&s) {
					break
				}
				m.onMetric(s, workflow.Now(ctx))
			}
			// Updates in progress finish in this run.
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return err
			}
			st := m.st
			return workflow.NewContinueAsNewError(ctx, DriftMonitorWorkflow, DriftMonitorInput{
				ModelName: m.model, Policy: m.policy, MaxHistoryEvents: in.MaxHistoryEvents, State: &st,
			})
		}
	}
}

func driftScore(e *Evidence) float64 {
	if e.Kind == TriggerDrift {
		return e.Score
	}
	return 0
}
