package boost

import (
	"context"
	"testing"

	"github.com/taxi-mlops/taxi-mlops/ml/features"
	"github.com/taxi-mlops/taxi-mlops/ml/metrics"
)

// TestQualityVsXGBoost trains on the same time split, features and
// parameters as xgboost's hist in the fixture and requires the test loss
// to be at most 2% worse than xgboost's.
func TestQualityVsXGBoost(t *testing.T) {
	q := loadQuality(t)
	d := loadTaxi(t)
	if len(d.x) != q.Split.Rows {
		t.Fatalf("%d rows, fixture split has %d", len(d.x), q.Split.Rows)
	}
	if !sameStrings(q.Fare.Features, features.FareFeatures) || !sameStrings(q.BigTipper.Features, features.TipperFeatures) {
		t.Fatalf("fixture features %v / %v differ from ml/features", q.Fare.Features, q.BigTipper.Features)
	}
	if p := DefaultParams(SquaredError); p != paramsFromFixture(q, SquaredError) {
		t.Errorf("DefaultParams %+v differ from the compared xgboost parameters", p)
	}
	n, cut := q.Split.Rows, q.Split.TrainRows

	t.Run("fare rmse", func(t *testing.T) {
		train := d.dataset(t, 0, cut, features.FareFeatures, "fare")
		test := d.dataset(t, cut, n, features.FareFeatures, "fare")
		res, err := Train(context.Background(), paramsFromFixture(q, SquaredError), train, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := res.BaseScore; float32(got) != float32(q.Fare.BaseScore) {
			t.Errorf("base score %v, xgboost run used %v", got, q.Fare.BaseScore)
		}
		pred := make([]float64, test.Rows())
		res.Model.PredictBatch(test.X, pred)
		rmse, mae := metrics.RMSE(test.Y, pred), metrics.MAE(test.Y, pred)
		t.Logf("fare test RMSE %.4f vs xgboost %.4f (ratio %.4f); MAE %.4f vs %.4f (ratio %.4f)",
			rmse, q.Fare.TestRMSE, rmse/q.Fare.TestRMSE, mae, q.Fare.TestMAE, mae/q.Fare.TestMAE)
		if rmse > 1.02*q.Fare.TestRMSE {
			t.Errorf("fare test RMSE %.4f is more than 2%% above xgboost's %.4f", rmse, q.Fare.TestRMSE)
		}
	})
	t.Run("big tipper logloss", func(t *testing.T) {
		train := d.dataset(t, 0, cut, features.TipperFeatures, "big_tipper")
		test := d.dataset(t, cut, n, features.TipperFeatures, "big_tipper")
		res, err := Train(context.Background(), paramsFromFixture(q, BinaryLogistic), train, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		pred := make([]float64, test.Rows())
		res.Model.PredictBatch(test.X, pred)
		ll, auc := metrics.LogLoss(test.Y, pred), metrics.AUC(test.Y, pred)
		t.Logf("big tipper test logloss %.5f vs xgboost %.5f (ratio %.4f); AUC %.5f vs %.5f",
			ll, q.BigTipper.TestLogLoss, ll/q.BigTipper.TestLogLoss, auc, q.BigTipper.TestAUC)
		if ll > 1.02*q.BigTipper.TestLogLoss {
			t.Errorf("big tipper logloss %.5f is more than 2%% above xgboost's %.5f", ll, q.BigTipper.TestLogLoss)
		}
	})
}
