// Command gomodel trains the models ml/boost/testdata/go_*.json with
// ml/boost, so that ml/xgb/testdata/gen_fixtures.py can load them with real
// xgboost and record xgboost's predictions (go_preds.csv). It also writes
// go_models.json, the recipe of each model, with which the ml/boost tests
// retrain them. Run it from the repository root:
//
//	go run ./ml/boost/testdata/gomodel
package main

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strconv"

	"github.com/taxi-mlops/taxi-mlops/ml/boost"
	"github.com/taxi-mlops/taxi-mlops/ml/features"
)

// recipe says how a model was trained: rows [0, TrainRows) of taxi.csv.gz,
// the named feature columns and label column, and the parameters.
type recipe struct {
	Name      string
	Features  []string
	Label     string
	TrainRows int
	Params    boost.Params
}

func recipes() []recipe {
	fare := boost.DefaultParams(boost.SquaredError)
	fare.NumRounds, fare.Eta = 10, 0.3
	fare.Subsample, fare.ColsampleByTree = 0.8, 0.8
	fare.Alpha, fare.Gamma, fare.Seed = 0.5, 1, 7
	tipper := boost.DefaultParams(boost.BinaryLogistic)
	tipper.NumRounds, tipper.MaxDepth, tipper.Eta = 30, 4, 0.3
	tipper.Lambda, tipper.MinChildWeight, tipper.MaxBin = 2, 2, 64
	return []recipe{
		{Name: "go_fare", Features: features.FareFeatures, Label: "fare", TrainRows: 12001, Params: fare},
		{Name: "go_tipper", Features: features.TipperFeatures, Label: "big_tipper", TrainRows: 12001, Params: tipper},
	}
}

func main() {
	if err := run("ml/boost/testdata"); err != nil {
		fmt.Fprintln(os.Stderr, "gomodel:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	head, rows, err := readTaxi(dir + "/taxi.csv.gz")
	if err != nil {
		return err
	}
	rs := recipes()
	for _, r := range rs {
		d, err := dataset(head, rows[:r.TrainRows], r)
		if err != nil {
			return err
		}
		res, err := boost.Train(context.Background(), r.Params, d, nil, nil)
		if err != nil {
			return fmt.Errorf("train %s: %w", r.Name, err)
		}
		b, err := res.Model.MarshalJSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(dir+"/"+r.Name+".json", b, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %d trees, train %s %.5f\n", r.Name, res.Model.NumTrees(), res.Metric,
			res.History[len(res.History)-1].TrainLoss)
	}
	b, err := json.MarshalIndent(rs, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(dir+"/go_models.json", append(b, '\n'), 0o644)
}

func dataset(head []string, rows [][]float64, r recipe) (*boost.Dataset, error) {
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	d := &boost.Dataset{NumFeatures: len(r.Features), FeatureNames: r.Features}
	lc, ok := col[r.Label]
	if !ok {
		return nil, fmt.Errorf("%s: no label column %q", r.Name, r.Label)
	}
	for _, row := range rows {
		for _, f := range r.Features {
			c, ok := col[f]
			if !ok {
				return nil, fmt.Errorf("%s: no column %q", r.Name, f)
			}
			d.X = append(d.X, float32(row[c]))
		}
		d.Y = append(d.Y, float32(row[lc]))
	}
	return d, nil
}

func readTaxi(path string) ([]string, [][]float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	recs, err := csv.NewReader(z).ReadAll()
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	}
	rows := make([][]float64, len(recs)-1)
	for i, rec := range recs[1:] {
		rows[i] = make([]float64, len(rec))
		for j, s := range rec {
			if s == "" {
				rows[i][j] = math.NaN()
				continue
			}
			if rows[i][j], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, nil, fmt.Errorf("read %s: %w", path, err)
			}
		}
	}
	return recs[0], rows, nil
}
