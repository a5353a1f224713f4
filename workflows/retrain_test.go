package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/taxi-mlops/taxi-mlops/activities"
)

type retrainHarness struct {
	env            *testsuite.TestWorkflowEnvironment
	attrs          map[string]any
	validated      int
	validation     activities.ValidateResult
	materialized   []activities.MaterializeInput
	materializeErr error
	promoted       []activities.PromoteInput
	announce       []activities.AnnounceInput
}

func newRetrainHarness(t *testing.T, champion string, eval activities.EvaluateResult) *retrainHarness {
	h := &retrainHarness{env: newEnv(), attrs: map[string]any{},
		validation: activities.ValidateResult{OK: true, Checks: []activities.Check{{Name: "rows", OK: true}}}}
	h.env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		for k, v := range args.Get(0).(temporal.SearchAttributes).GetUntypedValues() {
			h.attrs[k.GetName()] = v
		}
	}).Return(nil)
	var a *activities.Activities
	h.env.RegisterActivity(a)
	h.env.OnActivity(a.CurrentChampion, mock.Anything, mock.Anything).Return(activities.ChampionInfo{ModelName: "fare", Version: champion}, nil)
	h.env.OnActivity(a.SnapshotDataset, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SnapshotInput) (activities.SnapshotResult, error) {
			if in.DatasetID == "" || strings.Contains(in.DatasetID, "/") {
				t.Errorf("dataset id %q is not S3-safe", in.DatasetID)
			}
			return activities.SnapshotResult{URI: "s3://datasets/fare/x/", TrainURI: "s3://datasets/fare/x/train.parquet",
				HoldoutURI: "s3://datasets/fare/x/holdout.parquet", Rows: 1000}, nil
		})
	h.env.OnActivity(a.ValidateDataset, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ValidateInput) (activities.ValidateResult, error) {
			h.validated++
			return h.validation, nil
		})
	h.env.OnActivity(a.MaterializeFeatures, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.MaterializeInput) (activities.MaterializeResult, error) {
			h.materialized = append(h.materialized, in)
			return activities.MaterializeResult{OfflineURI: "s3://features/trips/x.parquet"}, h.materializeErr
		})
	h.env.OnActivity(a.RunPipeline, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PipelineInput) (activities.TrainResult, error) {
			if in.Lineage.ParentVersion != champion || in.TrainURI == "" {
				t.Errorf("train input %+v misses lineage or data", in)
			}
			return activities.TrainResult{ModelName: "fare", Version: in.Version}, nil
		})
	h.env.OnActivity(a.EvaluateCandidate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.EvaluateInput) (activities.EvaluateResult, error) {
			if in.Champion != champion || !strings.HasSuffix(in.HoldoutURI, "holdout.parquet") {
				t.Errorf("evaluate input %+v does not compare with the champion on the holdout", in)
			}
			return eval, nil
		})
	h.env.OnActivity(a.PromoteModel, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PromoteInput) (activities.PromoteResult, error) {
			h.promoted = append(h.promoted, in)
			return activities.PromoteResult{Changed: true, Champion: in.Version, Previous: in.Expected}, nil
		})
	h.env.OnActivity(a.AnnounceModel, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AnnounceInput) error {
			h.announce = append(h.announce, in)
			return nil
		})
	return h
}

func TestRetrainPromotesABetterChallenger(t *testing.T) {
	h := newRetrainHarness(t, "v1", activities.EvaluateResult{PrimaryMetric: "rmse", Better: true, Reason: "rmse 2.0 vs 3.0"})
	h.env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare", TriggerType: TriggerDrift, TriggerID: "a1", DriftScore: 0.4})
	if err := h.env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res RetrainResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Promoted || res.ChampionBefore != "v1" || res.ChampionAfter != res.CandidateVersion {
		t.Fatalf("result %+v", res)
	}
	if len(h.promoted) != 1 || h.promoted[0].Expected != "v1" {
		t.Fatalf("promote calls %+v: want one compare-and-swap from v1", h.promoted)
	}
	if len(h.announce) != 1 || h.announce[0].Version != res.CandidateVersion {
		t.Fatalf("announcements %+v", h.announce)
	}
	if h.attrs["Promoted"] != true || h.attrs["ModelName"] != "fare" || h.attrs["TriggerType"] != TriggerDrift ||
		h.attrs["DriftScore"] != 0.4 || h.attrs["CandidateVersion"] != res.CandidateVersion {
		t.Fatalf("search attributes %v", h.attrs)
	}
}

func TestRetrainKeepsTheChampionWhenTheChallengerIsWorse(t *testing.T) {
	h := newRetrainHarness(t, "v1", activities.EvaluateResult{PrimaryMetric: "rmse", Better: false, Reason: "rmse 3.1 vs 3.0"})
	h.env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare"})
	var res RetrainResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Promoted || res.ChampionAfter != "v1" || !strings.Contains(res.Reason, "3.1") {
		t.Fatalf("result %+v: a worse challenger must not be promoted, and the reason must say why", res)
	}
	if len(h.promoted) != 0 || len(h.announce) != 0 {
		t.Fatalf("promoted %v announced %v", h.promoted, h.announce)
	}
	if h.attrs["Promoted"] != false || h.attrs["TriggerType"] != TriggerManual {
		t.Fatalf("search attributes %v", h.attrs)
	}
}

func TestRetrainStopsOnABadDataset(t *testing.T) {
	env := newEnv()
	var a *activities.Activities
	env.RegisterActivity(a)
	env.OnActivity(a.CurrentChampion, mock.Anything, mock.Anything).Return(activities.ChampionInfo{Version: "v1"}, nil)
	calls := 0
	env.OnActivity(a.SnapshotDataset, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.SnapshotInput) (activities.SnapshotResult, error) {
			calls++
			return activities.SnapshotResult{}, temporal.NewNonRetryableApplicationError("12 labelled trips, need 500", activities.ErrTypeBadDataset, nil)
		})
	env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "need 500") {
		t.Fatalf("error %v does not carry the reason", err)
	}
	if calls != 1 {
		t.Fatalf("a bad dataset was retried: %d calls", calls)
	}
}

func TestRetrainValidatesInput(t *testing.T) {
	for name, in := range map[string]RetrainInput{
		"model_name":       {},
		"holdout_fraction": {ModelName: "fare", RetrainOptions: RetrainOptions{HoldoutFraction: 2}},
		"pipeline":         {ModelName: "fare", RetrainOptions: RetrainOptions{Pipeline: "spark"}},
	} {
		env := newEnv()
		env.ExecuteWorkflow(RetrainWorkflow, in)
		if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %v does not name the field", name, err)
		}
	}
}

func TestRetrainStopsWhenValidationFails(t *testing.T) {
	h := newRetrainHarness(t, "v1", activities.EvaluateResult{Better: true})
	h.validation = activities.ValidateResult{OK: false, Checks: []activities.Check{
		{Name: "rows", OK: true}, {Name: "unique_trips", OK: false, Detail: "12 trip ids appear more than once"}}}
	trained := 0
	var a *activities.Activities
	h.env.OnActivity(a.RunPipeline, mock.Anything, mock.Anything).Return(
		func(context.Context, activities.PipelineInput) (activities.TrainResult, error) {
			trained++
			return activities.TrainResult{}, nil
		}).Maybe()
	h.env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare"})
	err := h.env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "unique_trips") || !strings.Contains(err.Error(), "12 trip ids") {
		t.Fatalf("error %v does not name the failed check", err)
	}
	if trained != 0 || len(h.promoted) != 0 {
		t.Fatalf("trained %d, promoted %v after a failed validation", trained, h.promoted)
	}
}

func TestRetrainAnnouncesEvenWhenMaterializationFails(t *testing.T) {
	h := newRetrainHarness(t, "v1", activities.EvaluateResult{PrimaryMetric: "rmse", Better: true, Reason: "better"})
	h.materializeErr = temporal.NewNonRetryableApplicationError("feast is down", activities.ErrTypeInvalidInput, nil)
	h.env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare"})
	var res RetrainResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Promoted || len(h.announce) != 1 || !strings.Contains(res.MaterializeError, "feast is down") {
		t.Fatalf("promoted %v, announcements %d, materialize error %q", res.Promoted, len(h.announce), res.MaterializeError)
	}
	if len(h.materialized) != 1 || h.materialized[0].DatasetURI == "" {
		t.Fatalf("materialize calls %+v", h.materialized)
	}
}

func TestRetrainShadowRunCanRefuse(t *testing.T) {
	h := newRetrainHarness(t, "v1", activities.EvaluateResult{PrimaryMetric: "rmse", Better: true, Reason: "holdout: better"})
	var a *activities.Activities
	var shadowIn activities.ShadowInput
	h.env.OnActivity(a.ShadowEvaluate, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ShadowInput) (activities.ShadowResult, error) {
			shadowIn = in
			return activities.ShadowResult{Better: false, Reason: "shadow over 300 live trips: rmse 3.2 vs 3.0"}, nil
		})
	h.env.ExecuteWorkflow(RetrainWorkflow, RetrainInput{ModelName: "fare",
		RetrainOptions: RetrainOptions{ShadowRecords: 300, ShadowMaxWait: Duration(2 * time.Minute)}})
	var res RetrainResult
	if err := h.env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Promoted || len(h.promoted) != 0 || !strings.Contains(res.Reason, "shadow over 300") {
		t.Fatalf("result %+v: a challenger the shadow refused was promoted or the reason is lost", res)
	}
	if shadowIn.Records != 300 || shadowIn.MaxWaitSeconds != 120 || shadowIn.Champion != "v1" {
		t.Fatalf("shadow input %+v", shadowIn)
	}
}

func TestRollbackWorkflow(t *testing.T) {
	env := newEnv()
	var a *activities.Activities
	env.RegisterActivity(a)
	env.OnActivity(a.CurrentChampion, mock.Anything, mock.Anything).Return(activities.ChampionInfo{ModelName: "fare", Version: "v3"}, nil)
	var prom activities.PromoteInput
	env.OnActivity(a.PromoteModel, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.PromoteInput) (activities.PromoteResult, error) {
			prom = in
			return activities.PromoteResult{Changed: true, Champion: in.Version, Previous: in.Expected}, nil
		})
	var ann activities.AnnounceInput
	env.OnActivity(a.AnnounceModel, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.AnnounceInput) error { ann = in; return nil })
	env.ExecuteWorkflow(RollbackWorkflow, RollbackInput{ModelName: "fare", ToVersion: "v1", Reason: "v3 overcharges"})
	var res RollbackResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if !res.Changed || res.Previous != "v3" || res.Champion != "v1" {
		t.Fatalf("result %+v", res)
	}
	if prom.Expected != "v3" || prom.Version != "v1" || prom.Reason != "v3 overcharges" || ann.Version != "v1" || ann.Previous != "v3" {
		t.Fatalf("promote %+v announce %+v", prom, ann)
	}
	env = newEnv()
	env.ExecuteWorkflow(RollbackWorkflow, RollbackInput{ModelName: "fare"})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "to_version") {
		t.Fatalf("rollback without a version: %v", err)
	}
}

func TestBacktestWorkflowValidatesRange(t *testing.T) {
	env := newEnv()
	t0 := time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)
	env.ExecuteWorkflow(BacktestWorkflow, BacktestInput{ModelName: "fare", Version: "v1", From: t0, To: t0})
	if err := env.GetWorkflowError(); err == nil || !strings.Contains(err.Error(), "to after from") {
		t.Fatalf("empty range: %v", err)
	}
}
