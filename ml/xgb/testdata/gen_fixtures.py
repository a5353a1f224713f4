#!/usr/bin/python3
"""Reference fixtures for ml/xgb, ml/boost and ml/metrics, made with real xgboost.

Nothing in the Go tests needs Python: this script is only re-run when the
fixtures are to be remade. Versions used for the committed files (Debian
bookworm packages): xgboost 1.7.4, scikit-learn 1.2.1, pandas 1.5.3,
numpy 1.24.2.

Re-run from the repository root (Go must be on PATH for step 4):

    apt-get install -y python3-xgboost python3-sklearn python3-pandas
    /usr/bin/python3 ml/xgb/testdata/gen_fixtures.py [--data PATH] [--skip-go | --go-only]

PATH defaults to /work/shared/data/chicago_taxi/data.csv (the TFX Chicago taxi
sample, 15,002 trips).

Steps and outputs:

1. Encode the trips exactly like ml/features (see encode() below), sort them by
   trip_start_timestamp (stable) and split: first 80% train, last 20% test.
   - ml/boost/testdata/taxi.csv.gz: the encoded rows in that order, columns
     features.TipperFeatures + big_tipper (tips > 0.2 * fare); the fare column
     is also the fare label. float32 values written with the shortest text
     that reads back to the same float32; empty = missing.
   - ml/boost/testdata/spec.json: the features.Spec (vocabularies learned from
     the train rows) and ml/boost/testdata/raw_sample.csv +
     raw_sample_encoded.csv: raw CSV rows (including companies outside the
     vocabulary) and their encoding, so a Go test can check that ml/features
     encodes them identically.
2. Train xgboost (tree_method=hist) models on the train rows and save them with
   Booster.save_model (JSON) into ml/xgb/testdata/models/ (gzip'd), together
   with inputs_fare.csv / inputs_tipper.csv (test rows, rows with NaN, an all
   missing row, extreme values, values exactly on split conditions and one
   float32 step below them) and preds_<model>.csv.gz (xgboost's margin and
   prediction for each input row, full float32 precision).
3. Record xgboost's quality on the time split (fare RMSE with reg:squarederror,
   big-tipper logloss with binary:logistic) with the parameters the Go trainer
   is compared with and its training time on this machine with 1 and 2
   threads (best of 9 runs, DMatrix construction included):
   ml/boost/testdata/xgb_quality.json; prediction times (batch with 1 and 2
   threads, single row) of the 100-tree fare model:
   ml/xgb/testdata/xgb_timing.json. Only these two files change when the
   script is re-run; everything else is deterministic.
4. `go run ./ml/boost/testdata/gomodel` trains models with ml/boost and writes
   ml/boost/testdata/go_fare.json and go_tipper.json; this script loads them
   with xgboost (Booster(model_file=...)) and writes xgboost's predictions on
   the first 300 test rows to ml/boost/testdata/go_preds.csv.
5. ml/metrics/testdata/sklearn.json: RMSE, MAE, MAPE, log loss, ROC AUC,
   accuracy and calibration tables computed with scikit-learn.

Base score: xgboost 1.7 keeps base_score = 0.5 for reg:squarederror and
binary:logistic (boost_from_average only acts for reg:absoluteerror, where it
uses the median); automatic intercepts arrived in xgboost 2.0. The quality run
therefore passes base_score explicitly: the mean train fare for the fare model
(what ml/boost does by default) and 0.5 for the big-tipper model.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import sklearn
import sklearn.calibration
import sklearn.metrics
import xgboost as xgb

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
XGB_TD = HERE
BOOST_TD = os.path.join(ROOT, "ml", "boost", "testdata")
METRICS_TD = os.path.join(ROOT, "ml", "metrics", "testdata")

# ml/features: FareFeatures and TipperFeatures, in order.
FARE_FEATURES = [
    "trip_miles", "trip_seconds", "avg_speed_mph", "pickup_hour",
    "pickup_day_of_week", "pickup_month", "pickup_community_area",
    "dropoff_community_area", "payment_type", "company",
]
TIPPER_FEATURES = FARE_FEATURES + ["fare"]
MAX_COMPANIES = 20  # features.MaxCompanies

# The parameters the Go trainer is compared with (ml/boost quality test).
QUALITY_PARAMS = {
    "tree_method": "hist", "max_depth": 6, "eta": 0.1, "max_bin": 256,
    "lambda": 1.0, "alpha": 0.0, "gamma": 0.0, "min_child_weight": 1.0,
    "subsample": 1.0, "colsample_bytree": 1.0, "nthread": 2, "seed": 0,
}
QUALITY_ROUNDS = 100


def f32s(v):
    """Shortest text that reads back (as float32) to the same float32; '' for NaN."""
    v = np.float32(v)
    if np.isnan(v):
        return ""
    return str(v)


def f64s(v):
    """Full precision text of a float (float32 values are widened exactly)."""
    return repr(float(v))


def vocabulary(values, limit):
    """features.vocabulary: distinct non-empty values by descending count,
    ties by name (byte order, like Go's string comparison), at most limit
    (0 = all)."""
    counts = {}
    for v in values:
        if v != "":
            counts[v] = counts.get(v, 0) + 1
    vs = sorted(counts, key=lambda v: (-counts[v], v.encode("utf-8")))
    if limit > 0:
        vs = vs[:limit]
    return vs


def encode(df, payment_vocab, company_vocab):
    """The ml/features transform and vector, for trips of the city's CSV.

    - trip_miles, trip_seconds: as recorded, missing seconds = NaN.
    - avg_speed_mph = miles / (seconds / 3600) when seconds > 0 and miles is
      known, else NaN (features.Transform).
    - pickup_hour / pickup_day_of_week (1 = Sunday) / pickup_month: the CSV's
      trip_start_hour / trip_start_day / trip_start_month, which are the
      Chicago clock (checked against trip_start_timestamp read as UTC).
    - community areas: the area number, missing or 0 = NaN (features.areaCode).
    - payment_type, company: index in the vocabulary, len(vocabulary) for an
      unknown value, NaN for empty (features.encode).
    - fare: as recorded.
    Values are computed in float64 and rounded to float32 last, as
    features.Spec.Vector does.
    """
    miles = df["trip_miles"].astype(float).to_numpy()
    secs = df["trip_seconds"].astype(float).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where((secs > 0) & ~np.isnan(miles), miles / (secs / 3600.0), np.nan)

    def area(col):
        a = df[col].to_numpy(dtype=float)
        return np.where(np.isnan(a) | (a <= 0), np.nan, a)

    def cat(col, vocab):
        idx = {v: i for i, v in enumerate(vocab)}
        return np.array([np.nan if v == "" else float(idx.get(v, len(vocab))) for v in df[col]])

    cols = {
        "trip_miles": miles,
        "trip_seconds": secs,
        "avg_speed_mph": speed,
        "pickup_hour": df["trip_start_hour"].to_numpy(dtype=float),
        "pickup_day_of_week": df["trip_start_day"].to_numpy(dtype=float),
        "pickup_month": df["trip_start_month"].to_numpy(dtype=float),
        "pickup_community_area": area("pickup_community_area"),
        "dropoff_community_area": area("dropoff_community_area"),
        "payment_type": cat("payment_type", payment_vocab),
        "company": cat("company", company_vocab),
        "fare": df["fare"].to_numpy(dtype=float),
    }
    return np.column_stack([cols[n] for n in TIPPER_FEATURES]).astype(np.float32)


def load(path):
    df = pd.read_csv(path, dtype={"payment_type": str, "company": str}, keep_default_na=False,
                     na_values={c: [""] for c in ["pickup_community_area", "fare", "trip_miles", "trip_seconds",
                                                  "dropoff_community_area", "tips"]})
    df["payment_type"] = df["payment_type"].fillna("")
    df["company"] = df["company"].fillna("")
    clock = pd.to_datetime(df["trip_start_timestamp"], unit="s")
    assert (clock.dt.hour == df["trip_start_hour"]).all()
    assert ((clock.dt.dayofweek + 1) % 7 + 1 == df["trip_start_day"]).all()
    assert (clock.dt.month == df["trip_start_month"]).all()
    return df


def write_csv(path, header, rows):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(r) + "\n")


def write_gz_csv(path, header, rows):
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write((",".join(header) + "\n").encode())
        for r in rows:
            f.write((",".join(r) + "\n").encode())


def save_model_gz(bst, path):
    raw = bst.save_raw("json")
    with gzip.GzipFile(path, "wb", compresslevel=9, mtime=0) as f:
        f.write(bytes(raw))


def timed(fn, repeat):
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.min(ts))  # the least disturbed run: the machine is shared


def rmse(y, p):
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(p, float)) ** 2)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/work/shared/data/chicago_taxi/data.csv")
    ap.add_argument("--skip-go", action="store_true", help="skip step 4 (Go-trained models)")
    ap.add_argument("--go-only", action="store_true", help="only steps 1 and 4")
    args = ap.parse_args()
    for d in (os.path.join(XGB_TD, "models"), BOOST_TD, METRICS_TD):
        os.makedirs(d, exist_ok=True)

    # ---- 1. data ---------------------------------------------------------
    raw = load(args.data)
    df = raw.sort_values("trip_start_timestamp", kind="mergesort").reset_index(drop=True)
    n = len(df)
    n_train = int(0.8 * n)
    train_df = df.iloc[:n_train]
    payment_vocab = vocabulary(train_df["payment_type"], 0)
    company_vocab = vocabulary(train_df["company"], MAX_COMPANIES)
    X = encode(df, payment_vocab, company_vocab)
    big_tipper = (df["tips"].to_numpy(float) > 0.2 * df["fare"].to_numpy(float)).astype(np.float32)
    fare = X[:, TIPPER_FEATURES.index("fare")]
    nf = len(FARE_FEATURES)

    write_gz_csv(os.path.join(BOOST_TD, "taxi.csv.gz"), TIPPER_FEATURES + ["big_tipper"],
                 ([f32s(v) for v in X[i]] + [f32s(big_tipper[i])] for i in range(n)))
    spec = {"version": "v1", "names": TIPPER_FEATURES, "payment_vocab": payment_vocab,
            "company_vocab": company_vocab}
    with open(os.path.join(BOOST_TD, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
        f.write("\n")
    # Raw rows for the encoding check: the two edge-case rows, a spread, and
    # rows whose company or payment type is outside the vocabularies.
    rare = [i for i in range(len(raw)) if (raw["company"].iat[i] not in company_vocab + [""]) or
            (raw["payment_type"].iat[i] not in payment_vocab + [""])]
    sample_idx = sorted(set([0, 1] + list(range(2, len(raw), 97)) + rare[:8]))
    sample = raw.iloc[sample_idx]
    with open(args.data) as f:
        lines = f.read().splitlines()
    assert len(lines) == len(raw) + 1, "a CSV record spans lines"
    write_csv(os.path.join(BOOST_TD, "raw_sample.csv"), [lines[0]], ([lines[i + 1]] for i in sample_idx))
    Xs = encode(sample, payment_vocab, company_vocab)
    write_csv(os.path.join(BOOST_TD, "raw_sample_encoded.csv"), TIPPER_FEATURES,
              ([f32s(v) for v in r] for r in Xs))

    Xtr, Xte = X[:n_train], X[n_train:]
    ytr_fare, yte_fare = fare[:n_train], fare[n_train:]
    ytr_tip, yte_tip = big_tipper[:n_train], big_tipper[n_train:]

    def dm(Xp, y=None, names=True):
        return xgb.DMatrix(Xp, label=y, missing=np.nan,
                           feature_names=(TIPPER_FEATURES[:Xp.shape[1]] if names else None))

    if not args.go_only:
        xgboost_fixtures(Xtr, Xte, ytr_fare, yte_fare, ytr_tip, yte_tip, n, n_train, dm)

    # ---- 4. Go-trained models ----------------------------------------------
    if not args.skip_go:
        subprocess.run(["go", "run", "./ml/boost/testdata/gomodel"], cwd=ROOT, check=True)
        rows = Xte[:300]
        cols = []
        for name, k in (("go_fare", nf), ("go_tipper", nf + 1)):
            bst = xgb.Booster(model_file=os.path.join(BOOST_TD, name + ".json"))
            d = dm(rows[:, :k])
            cols.append(bst.predict(d, output_margin=True))
            cols.append(bst.predict(d))
            print(name, "trees:", bst.num_boosted_rounds())
        write_csv(os.path.join(BOOST_TD, "go_preds.csv"),
                  ["fare_margin", "fare_pred", "tipper_margin", "tipper_pred"],
                  ([f64s(c[i]) for c in cols] for i in range(len(rows))))


def xgboost_fixtures(Xtr, Xte, ytr_fare, yte_fare, ytr_tip, yte_tip, n, n_train, dm):
    """Steps 2, 3 and 5."""
    nf = len(FARE_FEATURES)

    # ---- 3. quality on the time split ------------------------------------
    fare_base = float(np.float32(np.mean(ytr_fare.astype(np.float64))))
    qfare = dict(QUALITY_PARAMS, objective="reg:squarederror", eval_metric="rmse", base_score=fare_base)
    qtip = dict(QUALITY_PARAMS, objective="binary:logistic", eval_metric="logloss", base_score=0.5)
    dfare_tr, dfare_te = dm(Xtr[:, :nf], ytr_fare), dm(Xte[:, :nf], yte_fare)
    dtip_tr, dtip_te = dm(Xtr, ytr_tip), dm(Xte, yte_tip)

    fare_bst = xgb.train(qfare, dfare_tr, QUALITY_ROUNDS)
    tip_bst = xgb.train(qtip, dtip_tr, QUALITY_ROUNDS)
    fare_pred = fare_bst.predict(dfare_te)
    tip_pred = tip_bst.predict(dtip_te)
    fare_default_base = xgb.train(dict(qfare, base_score=0.5), dfare_tr, QUALITY_ROUNDS).predict(dfare_te)

    fare_train_s, tip_train_s = {}, {}
    for nt in (1, 2):
        fare_train_s[nt] = timed(lambda: xgb.train(dict(qfare, nthread=nt), dm(Xtr[:, :nf], ytr_fare),
                                                   QUALITY_ROUNDS), 9)
        tip_train_s[nt] = timed(lambda: xgb.train(dict(qtip, nthread=nt), dm(Xtr, ytr_tip), QUALITY_ROUNDS), 9)
    big = np.tile(Xte[:, :nf], (10, 1))
    batch_s = {}
    for nt in (1, 2):
        fare_bst.set_param({"nthread": nt})
        batch_s[nt] = timed(lambda: fare_bst.inplace_predict(big), 7)
    one = Xte[:1, :nf].copy()
    reps = 2000
    single_s = timed(lambda: [fare_bst.inplace_predict(one) for _ in range(reps)], 5) / reps
    fare_bst.set_param({"nthread": 2})

    quality = {
        "xgboost_version": xgb.__version__,
        "split": {"order": "trip_start_timestamp (stable)", "rows": n, "train_rows": n_train,
                  "test_rows": n - n_train},
        "params": dict(QUALITY_PARAMS, rounds=QUALITY_ROUNDS),
        "fare": {
            "objective": "reg:squarederror", "features": FARE_FEATURES, "base_score": fare_base,
            "test_rmse": rmse(yte_fare, fare_pred),
            "test_mae": float(sklearn.metrics.mean_absolute_error(yte_fare, fare_pred)),
            "train_rmse": rmse(ytr_fare, fare_bst.predict(dfare_tr)),
            "test_rmse_base_score_0_5": rmse(yte_fare, fare_default_base),
            "train_seconds_1_thread": fare_train_s[1],
            "train_seconds_2_threads": fare_train_s[2],
        },
        "big_tipper": {
            "objective": "binary:logistic", "features": TIPPER_FEATURES, "base_score": 0.5,
            "test_logloss": float(sklearn.metrics.log_loss(yte_tip, tip_pred.astype(np.float64), eps=1e-15)),
            "test_auc": float(sklearn.metrics.roc_auc_score(yte_tip, tip_pred)),
            "train_seconds_1_thread": tip_train_s[1],
            "train_seconds_2_threads": tip_train_s[2],
        },
    }
    timing = {
        "xgboost_version": xgb.__version__,
        "model": "fare_d6_t100 (100 trees, depth 6)",
        "batch_rows": int(big.shape[0]),
        "batch_ns_per_row_1_thread": batch_s[1] / big.shape[0] * 1e9,
        "batch_ns_per_row_2_threads": batch_s[2] / big.shape[0] * 1e9,
        "single_row_ns": single_s * 1e9,
        "single_row_note": "Booster.inplace_predict on one row; includes the Python call overhead",
    }
    with open(os.path.join(XGB_TD, "xgb_timing.json"), "w") as f:
        json.dump(timing, f, indent=1)
        f.write("\n")
    with open(os.path.join(BOOST_TD, "xgb_quality.json"), "w") as f:
        json.dump(quality, f, indent=1)
        f.write("\n")
    print(json.dumps(quality, indent=1))

    # ---- 2. parity models --------------------------------------------------
    rng = np.random.default_rng(20240601)
    base_hist = {"tree_method": "hist", "nthread": 2, "seed": 0}
    Xmiss = Xtr.copy()
    Xmiss[rng.random(Xmiss.shape) < 0.3] = np.nan
    pos = ytr_fare > 0
    specs = [
        # name, features, X, y, params, rounds, feature names
        ("fare_d1_t1", nf, Xtr, ytr_fare, {"objective": "reg:squarederror", "max_depth": 1}, 1, True),
        ("fare_d3_t10", nf, Xtr, ytr_fare, {"objective": "reg:squarederror", "max_depth": 3}, 10, True),
        ("tipper_d1_t1", nf + 1, Xtr, ytr_tip, {"objective": "binary:logistic", "max_depth": 1}, 1, True),
        ("tipper_d3_t10", nf + 1, Xtr, ytr_tip, {"objective": "binary:logistic", "max_depth": 3}, 10, True),
        ("tipper_base03_d3_t10", nf + 1, Xtr, ytr_tip,
         {"objective": "binary:logistic", "max_depth": 3, "base_score": 0.3}, 10, True),
        ("fare_missing_d3_t10", nf, Xmiss, ytr_fare, {"objective": "reg:squarederror", "max_depth": 3}, 10, False),
        ("fare_poisson_d3_t10", nf, Xtr[pos], ytr_fare[pos], {"objective": "count:poisson", "max_depth": 3}, 10, True),
        ("fare_tweedie_d3_t10", nf, Xtr[pos], ytr_fare[pos], {"objective": "reg:tweedie", "max_depth": 3}, 10, True),
        ("fare_absolute_d3_t10", nf, Xtr, ytr_fare, {"objective": "reg:absoluteerror", "max_depth": 3}, 10, True),
        ("fare_pseudohuber_d3_t10", nf, Xtr, ytr_fare,
         {"objective": "reg:pseudohubererror", "max_depth": 3}, 10, True),
        ("fare_forest_d3", nf, Xtr, ytr_fare,
         {"objective": "reg:squarederror", "max_depth": 3, "num_parallel_tree": 3, "subsample": 0.8,
          "colsample_bynode": 0.8}, 2, True),
    ]
    boosters = {}
    for name, k, Xm, y, p, rounds, names in specs:
        boosters[name] = (xgb.train(dict(base_hist, **p), dm(Xm[:, :k], y, names), rounds), k, names)
    boosters["fare_d6_t100"] = (fare_bst, nf, True)
    boosters["tipper_d6_t100"] = (tip_bst, nf + 1, True)

    # Inputs: test rows, then edge rows.
    base_rows = Xte[:120]
    extra = [np.full(nf + 1, np.nan, np.float32),
             np.full(nf + 1, 1e30, np.float32),
             np.full(nf + 1, -1e30, np.float32),
             np.zeros(nf + 1, np.float32)]
    for name in sorted(boosters):
        bst, k, _ = boosters[name]
        trees = json.loads(bytes(bst.save_raw("json")))["learner"]["gradient_booster"]["model"]["trees"]
        for t in trees[:3]:
            for nid, left in enumerate(t["left_children"][:8]):
                if left == -1:
                    continue
                fi, cond = t["split_indices"][nid], np.float32(t["split_conditions"][nid])
                for v in (cond, np.nextafter(cond, np.float32(-np.inf))):
                    r = Xte[len(extra) % len(Xte)].copy()
                    r[fi] = v
                    extra.append(r)
    inputs = np.vstack([base_rows, np.array(extra, np.float32)])
    write_csv(os.path.join(XGB_TD, "inputs_fare.csv"), FARE_FEATURES, ([f32s(v) for v in r[:nf]] for r in inputs))
    write_csv(os.path.join(XGB_TD, "inputs_tipper.csv"), TIPPER_FEATURES, ([f32s(v) for v in r] for r in inputs))
    for name in sorted(boosters):
        bst, k, names = boosters[name]
        save_model_gz(bst, os.path.join(XGB_TD, "models", name + ".json.gz"))
        d = dm(inputs[:, :k], None, names)
        margin = bst.predict(d, output_margin=True)
        pred = bst.predict(d)
        write_gz_csv(os.path.join(XGB_TD, "preds_" + name + ".csv.gz"), ["margin", "pred"],
                  ([f64s(a), f64s(b)] for a, b in zip(margin, pred)))

    # ---- 5. metrics --------------------------------------------------------
    write_metrics(yte_fare, fare_pred, yte_tip, tip_pred, rng)


def write_metrics(yte_fare, fare_pred, yte_tip, tip_pred, rng):
    """sklearn reference values. MAPE is sklearn's on the rows with a non-zero
    label (ml/metrics skips zero labels; sklearn would divide by eps).
    Calibration: sklearn.calibration.calibration_curve(strategy="uniform")
    gives the non-empty bins; ECE = sum over bins of count/N * |frac_pos -
    mean_pred|."""
    def reg_case(name, y, p):
        y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
        nz = y != 0
        return {"name": name, "y": y.tolist(), "pred": p.tolist(),
                "rmse": float(np.sqrt(sklearn.metrics.mean_squared_error(y, p))),
                "mae": float(sklearn.metrics.mean_absolute_error(y, p)),
                "mape": float(sklearn.metrics.mean_absolute_percentage_error(y[nz], p[nz])) if nz.any() else None,
                "mape_used": int(nz.sum())}

    def cls_case(name, y, p, bins=10):
        y, p = np.asarray(y, np.float64), np.asarray(p, np.float64)
        c = {"name": name, "y": y.tolist(), "p": p.tolist(),
             "logloss": float(sklearn.metrics.log_loss(y, p, eps=1e-15, labels=[0, 1])),
             "accuracy": float(sklearn.metrics.accuracy_score(y, (p > 0.5).astype(float))),
             "auc": float(sklearn.metrics.roc_auc_score(y, p)) if 0 < y.sum() < len(y) else None,
             "bins": bins}
        prob_true, prob_pred = sklearn.calibration.calibration_curve(y, p, n_bins=bins, strategy="uniform")
        edges = np.linspace(0.0, 1.0, bins + 1)
        ids = np.searchsorted(edges[1:-1], p)
        counts = np.bincount(ids, minlength=bins)
        nonempty = counts[counts > 0]
        c["calibration"] = {"frac_pos": prob_true.tolist(), "mean_pred": prob_pred.tolist(),
                            "count": nonempty.tolist(), "bin": np.nonzero(counts)[0].tolist(),
                            "ece": float(np.sum(nonempty / len(p) * np.abs(prob_true - prob_pred)))}
        return c

    sel = np.sort(rng.choice(len(yte_fare), 400, replace=False))
    # Round real predictions to fewer digits so that exact ties occur too.
    tip_round = np.round(tip_pred[sel].astype(np.float64), 2)
    out = {
        "sklearn_version": sklearn.__version__,
        "regression": [
            reg_case("small", [3, -0.5, 2, 7], [2.5, 0.0, 2, 8]),
            reg_case("zero labels", [0, 1, 2, 0, 4], [0.5, 1.5, 1, 0, 3]),
            reg_case("taxi fare, xgboost", yte_fare[sel], fare_pred[sel]),
        ],
        "classification": [
            cls_case("small", [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]),
            cls_case("ties", [0, 1, 0, 1, 1, 0, 0, 1], [0.5, 0.5, 0.2, 0.2, 0.9, 0.9, 0.1, 0.7]),
            cls_case("edges and extremes", [0, 1, 1, 0, 1, 0, 1, 0, 1, 0],
                     [0.0, 1.0, 0.5, 0.5, 0.1, 0.1, 0.3, 0.7, 0.2, 0.9999999999999999]),
            cls_case("taxi big tipper, xgboost", yte_tip[sel], tip_pred[sel]),
            cls_case("taxi big tipper, rounded", yte_tip[sel], tip_round, bins=15),
        ],
    }
    with open(os.path.join(METRICS_TD, "sklearn.json"), "w") as f:
        json.dump(out, f)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
