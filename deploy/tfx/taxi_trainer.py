"""Training and evaluation of a taxi-mlops model with XGBoost, without TFX.

pipeline.py's Trainer, Evaluator and Pusher call these functions; they need
numpy and xgboost only, so they can be run and checked outside a cluster.

train() does what the Go control plane's training.Fit does, with xgboost in
place of ml/boost: encode the snapshot's rows with the ml/features transform
(taxi_features), order them by pickup, keep the newest validation_fraction
for early stopping and the recorded metrics, learn the vocabularies from the
rest, and train with the catalogue's parameters. base_score, when the
catalogue leaves it open, follows ml/boost's rule (the mean training label
for regression, 0.5 for binary:logistic), which xgboost 2's own estimate
does not. The metrics are computed from xgboost's margins the way the Go
evaluator computes them, so the control plane can compare the two numbers
(a difference means training/serving skew).
"""

import json
import math

import numpy as np

import taxi_features

LOG_LOSS_EPS = 1e-15  # ml/metrics.LogLossEps

MODEL_FILE = "model.json"
SPEC_FILE = "feature_spec.json"
MANIFEST_FILE = "push.json"


def base_score(objective, y):
    """ml/boost's default: 0.5 for binary:logistic, else the mean label
    (summed in float64 in row order, rounded to float32)."""
    if objective == "binary:logistic":
        return 0.5
    s = 0.0
    for v in y:
        s += float(v)
    return float(np.float32(s / len(y)))


def margins(booster, x, feature_names):
    import xgboost as xgb

    d = xgb.DMatrix(x, missing=np.nan, feature_names=list(feature_names))
    return booster.predict(d, output_margin=True).astype(np.float32)


def score(objective, margin, y):
    """training.Score's loss metrics from float32 margins: rmse and mae, or
    logloss and accuracy (probabilities 1/(1+exp(-margin)) in float64)."""
    y = np.asarray(y, dtype=np.float64)
    m = np.asarray(margin, dtype=np.float32).astype(np.float64)
    out = {"rows": float(len(y))}
    if len(y) == 0:
        return out
    if objective == "binary:logistic":
        p = 1.0 / (1.0 + np.exp(-m))
        q = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = np.where(y != 0, y * np.log(q), 0.0)
            neg = np.where(y != 1, (1 - y) * np.log(1 - q), 0.0)
        out["logloss"] = float(-(pos + neg).sum() / len(y))
        out["accuracy"] = float(np.mean((p > 0.5) == (y > 0.5)))
        return out
    d = y - m
    out["rmse"] = math.sqrt(float((d * d).sum()) / len(y))
    out["mae"] = float(np.abs(d).sum() / len(y))
    return out


def primary_metric(objective):
    return "logloss" if objective == "binary:logistic" else "rmse"


def train(cols, model_name, model_version, objective, label, feature_names, timezone, areas,
          validation_fraction, max_companies, xgb_params, num_boost_round, early_stopping_rounds, log=print):
    """Train on the snapshot columns (taxi_features.COLUMNS). Returns the
    model as XGBoost JSON bytes, the feature spec (dict) and the manifest
    (dict) the Pusher writes as push.json."""
    import xgboost as xgb

    if objective not in ("reg:squarederror", "binary:logistic"):
        raise ValueError("objective %r is not reg:squarederror or binary:logistic" % objective)
    n = len(cols["trip_id"])
    rows = taxi_features.feature_rows(cols, timezone, areas)
    y = taxi_features.labels(cols, label)
    order = taxi_features.sort_order(cols["event_timestamp"], cols["trip_id"])
    k = taxi_features.split_index(n, validation_fraction)
    if k == 0:
        raise ValueError("%d rows leave nothing to train on after the validation part" % n)
    tr, va = order[:k], order[k:]
    train_rows = taxi_features.take(rows, tr)
    valid_rows = taxi_features.take(rows, va)
    spec = taxi_features.new_spec(feature_names, train_rows, max_companies)
    x_tr, y_tr = taxi_features.vectors(spec, train_rows), y[tr]
    x_va, y_va = taxi_features.vectors(spec, valid_rows), y[va]

    params = dict(xgb_params)
    params["objective"] = objective
    if "base_score" not in params:
        params["base_score"] = base_score(objective, y_tr)
    names = spec["names"]
    d_tr = xgb.DMatrix(x_tr, label=y_tr, missing=np.nan, feature_names=names)
    evals = [(d_tr, "train")]
    if len(va):
        evals.append((xgb.DMatrix(x_va, label=y_va, missing=np.nan, feature_names=names), "validation"))
    kwargs = {}
    if early_stopping_rounds > 0 and len(va):
        kwargs["early_stopping_rounds"] = early_stopping_rounds
    log("training %s %s: %d rows, %d validation, params %s" % (model_name, model_version, k, len(va), params))
    booster = xgb.train(params, d_tr, num_boost_round=num_boost_round, evals=evals, verbose_eval=10, **kwargs)
    best = num_boost_round - 1
    if "early_stopping_rounds" in kwargs:
        best = int(booster.best_iteration)
        # The Go evaluator reads every tree in the file: keep only the best.
        booster = booster[: best + 1]
    model_json = bytes(booster.save_raw("json"))

    valid_metrics = score(objective, margins(booster, x_va, names), y_va) if len(va) else {}
    manifest = {
        "model_name": model_name,
        "model_version": model_version,
        "best_iteration": best,
        "train_rows": int(k),
        "validation_rows": int(len(va)),
        "validation_metrics": valid_metrics,
        "train_label_mean": float(np.mean(y_tr.astype(np.float64))),
        "params": params,
        "num_boost_round": num_boost_round,
        "xgboost_version": xgb.__version__,
    }
    log("trained %s %s: validation %s" % (model_name, model_version, valid_metrics))
    return model_json, spec, manifest


def evaluate(model_json, spec, manifest, cols, objective, label, timezone, areas):
    """The model's metrics on the holdout columns and whether it beats the
    constant baseline (the training label mean) there: (blessed, reason,
    metrics)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(bytearray(model_json))
    rows = taxi_features.feature_rows(cols, timezone, areas)
    y = taxi_features.labels(cols, label)
    if len(y) == 0:
        return True, "empty holdout: nothing to judge", {}
    model_metrics = score(objective, margins(booster, taxi_features.vectors(spec, rows), spec["names"]), y)
    mean = manifest["train_label_mean"]
    if objective == "binary:logistic":
        mean = min(max(mean, LOG_LOSS_EPS), 1 - LOG_LOSS_EPS)
        constant = math.log(mean / (1 - mean))
    else:
        constant = mean
    baseline = score(objective, np.full(len(y), constant, dtype=np.float32), y)
    key = primary_metric(objective)
    blessed = model_metrics[key] < baseline[key]
    reason = "holdout %s %.6g vs %.6g predicting the training mean" % (key, model_metrics[key], baseline[key])
    metrics = dict(model_metrics)
    metrics["baseline_" + key] = baseline[key]
    return blessed, reason, metrics


def files(model_json, spec, manifest):
    """What the Pusher writes, in order (push.json last, as the marker that
    the others are complete)."""
    return [
        (MODEL_FILE, model_json),
        (SPEC_FILE, (json.dumps(spec, indent=1) + "\n").encode("utf-8")),
        (MANIFEST_FILE, (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")),
    ]
