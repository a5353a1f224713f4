package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Duration is a time.Duration written in JSON as a Go duration string
// ("15m", "1h30m") so workflow inputs are easy to type by hand. A JSON
// number is read as seconds.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "15m" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: use Go syntax like 90s, 15m or 1h", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if err := json.Unmarshal(b, &secs); err != nil {
		return fmt.Errorf("duration: want a string like \"15m\" or a number of seconds, got %s", b)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}

// Std returns the time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Policy decides when a drift monitor retrains its model.
type Policy struct {
	// DriftThreshold: an alert counts as evidence when its drift score
	// (largest per-feature PSI) reaches it.
	DriftThreshold float64 `json:"drift_threshold"`
	// MinEvidence alerts or metric breaches within EvidenceWindow trigger a
	// retrain.
	MinEvidence    int      `json:"min_evidence"`
	EvidenceWindow Duration `json:"evidence_window"`
	// Cooldown after a retrain ends before another may start.
	Cooldown Duration `json:"cooldown"`
	// Retrain is passed to every RetrainWorkflow the monitor starts.
	Retrain RetrainOptions `json:"retrain"`
}

// DefaultPolicy is what a monitor uses for fields left zero.
func DefaultPolicy() Policy {
	return Policy{
		DriftThreshold: 0.2,
		MinEvidence:    1,
		EvidenceWindow: Duration(time.Hour),
		Cooldown:       Duration(15 * time.Minute),
	}
}

// WithDefaults fills zero fields from DefaultPolicy.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.DriftThreshold == 0 {
		p.DriftThreshold = d.DriftThreshold
	}
	if p.MinEvidence == 0 {
		p.MinEvidence = d.MinEvidence
	}
	if p.EvidenceWindow == 0 {
		p.EvidenceWindow = d.EvidenceWindow
	}
	if p.Cooldown == 0 {
		p.Cooldown = d.Cooldown
	}
	return p
}

// Validate says what is wrong with a policy, in terms a person can act on.
func (p Policy) Validate() error {
	var errs []error
	if p.DriftThreshold <= 0 {
		errs = append(errs, fmt.Errorf("drift_threshold must be > 0 (PSI; 0.1 is a small shift, 0.25 a large one), got %g", p.DriftThreshold))
	}
	if p.MinEvidence < 1 {
		errs = append(errs, fmt.Errorf("min_evidence must be >= 1, got %d", p.MinEvidence))
	}
	if p.EvidenceWindow <= 0 {
		errs = append(errs, fmt.Errorf("evidence_window must be positive, got %s", p.EvidenceWindow.Std()))
	}
	if p.Cooldown < 0 {
		errs = append(errs, fmt.Errorf("cooldown must not be negative, got %s", p.Cooldown.Std()))
	}
	if err := p.Retrain.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Evidence is one signal a monitor received that may justify a retrain.
type Evidence struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"` // TriggerDrift or TriggerMetric
	At    time.Time `json:"at"`   // workflow time of receipt
	Score float64   `json:"score"`
	// Breach says whether a metric was over its threshold; drift evidence
	// is judged by its score against the policy when deciding.
	Breach       bool   `json:"breach"`
	ModelVersion string `json:"model_version"`
	Detail       string `json:"detail"`
}

// Decision is what the policy concluded, and why.
type Decision struct {
	At      time.Time `json:"at"`
	Retrain bool      `json:"retrain"`
	Reason  string    `json:"reason"`
	// Trigger is the evidence a retrain is started for.
	Trigger *Evidence `json:"trigger,omitempty"`
	// WaitUntil is set when enough evidence waits for a cooldown to end.
	WaitUntil time.Time `json:"wait_until,omitempty"`
}

// PolicyState is what Decide needs to know besides the evidence.
type PolicyState struct {
	Paused bool `json:"paused"`
	// InFlight is the workflow id of a running retrain, "" when none.
	InFlight string `json:"in_flight"`
	// LastRetrainEnd is when the last retrain ended (zero: never).
	LastRetrainEnd time.Time `json:"last_retrain_end"`
	// Champion is the champion version as far as the monitor knows ("" =
	// unknown); evidence about other versions is stale.
	Champion string `json:"champion"`
}

// Decide applies the policy to the evidence at time now. It is pure: the
// same inputs always give the same decision, which keeps the workflow
// deterministic and the policy table-testable.
func Decide(p Policy, s PolicyState, evidence []Evidence, now time.Time) Decision {
	d := Decision{At: now}
	if s.Paused {
		d.Reason = "paused"
		return d
	}
	var relevant []Evidence
	for _, e := range evidence {
		breach := e.Breach
		if e.Kind == TriggerDrift {
			// Judged against the policy in force, which an update may
			// have changed since the alert came.
			breach = e.Score >= p.DriftThreshold
		}
		switch {
		case !breach:
		case now.Sub(e.At) > p.EvidenceWindow.Std():
		case !s.LastRetrainEnd.IsZero() && !e.At.After(s.LastRetrainEnd):
			// Seen before the last retrain ended: that retrain answered it.
		case s.Champion != "" && e.ModelVersion != "" && e.ModelVersion != s.Champion:
			// About a model that is no longer the champion.
		default:
			relevant = append(relevant, e)
		}
	}
	if len(relevant) < p.MinEvidence {
		d.Reason = fmt.Sprintf("%d of %d required signals over threshold within %s", len(relevant), p.MinEvidence, p.EvidenceWindow.Std())
		return d
	}
	trigger := relevant[len(relevant)-1]
	d.Trigger = &trigger
	if s.InFlight != "" {
		d.Reason = "retrain " + s.InFlight + " in flight"
		return d
	}
	if !s.LastRetrainEnd.IsZero() {
		if until := s.LastRetrainEnd.Add(p.Cooldown.Std()); now.Before(until) {
			d.Reason = "cooldown until " + until.UTC().Format(time.RFC3339)
			d.WaitUntil = until
			return d
		}
	}
	d.Retrain = true
	d.Reason = fmt.Sprintf("%d signals over threshold within %s; latest %s %s (score %.3f)",
		len(relevant), p.EvidenceWindow.Std(), trigger.Kind, trigger.ID, trigger.Score)
	return d
}
