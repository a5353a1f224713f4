#!/usr/bin/python3
"""Reference values for package drift, computed with scipy and numpy.

Writes fixtures.json next to this script: real columns of the Chicago taxi
sample (trip_miles, fare, trip_seconds, payment type, pickup community area,
pickup hour; rows in time order) and, for named cases built from them and
from synthetic edge cases (ties, empty bins, identical and disjoint
samples):

  ks           scipy.stats.ks_2samp, method='auto' (the default) and 'asymp',
               and scipy.stats.wasserstein_distance of the same samples
  kstwo_sf     scipy.stats.kstwo.sf on a grid of (n, d) covering every branch
  js           scipy.spatial.distance.jensenshannon (natural log)
  chi2         scipy.stats.chi2_contingency(correction=False) on the 2 x k table
  chi2_sf      scipy.stats.chi2.sf on a grid of (x, df)
  psi          population stability index with proportions floored at 1e-4
  profiles     reference bins (edges or categories) and counts, a window's
               counts, and PSI / Jensen-Shannon / chi-square of the window

Re-run from the repository root when a definition or the data changes:

    /usr/bin/python3 ml/drift/testdata/gen_fixtures.py [path/to/data.csv]

The default data path is the project's reference copy,
../shared/data/chicago_taxi/data.csv relative to the repository root.
Needs Debian's python3-numpy and python3-scipy (numpy 1.24, scipy 1.10 were
used). Nothing in the Go tests runs Python.
"""

import csv
import json
import math
import os
import sys

import numpy as np
import scipy
import scipy.spatial.distance
import scipy.stats

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
DEFAULT_CSV = os.path.join(REPO, "..", "shared", "data", "chicago_taxi", "data.csv")

PSI_FLOOR = 1e-4
MAX_CATEGORIES = 30


def num(s):
    return float(s) if s != "" else math.nan


def load_columns(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    # Time order; ties keep file order (sorted is stable).
    order = sorted(range(len(rows)), key=lambda i: int(rows[i]["trip_start_timestamp"]))
    rows = [rows[i] for i in order]
    counts = {}
    for r in rows:
        counts[r["payment_type"]] = counts.get(r["payment_type"], 0) + 1
    # Vocabulary index by descending frequency, ties by name: Cash = 0, ...
    vocab = sorted(counts, key=lambda v: (-counts[v], v))
    code = {v: float(i) for i, v in enumerate(vocab)}
    return {
        "trip_miles": [num(r["trip_miles"]) for r in rows],
        "fare": [num(r["fare"]) for r in rows],
        "trip_seconds": [num(r["trip_seconds"]) for r in rows],
        "payment": [code[r["payment_type"]] for r in rows],
        "pickup_area": [num(r["pickup_community_area"]) for r in rows],
        "hour": [num(r["trip_start_hour"]) for r in rows],
    }, vocab


def resolve(cols, spec):
    """A sample spec as the Go test resolves it: literal values, or a slice of
    a column, optionally scaled then shifted (x*scale + shift in float64)."""
    if "values" in spec:
        return np.array(spec["values"], dtype=np.float64)
    x = np.array(cols[spec["column"]][spec["from"]:spec["to"]], dtype=np.float64)
    if spec.get("scale", 0) != 0:
        x = x * spec["scale"] + spec.get("shift", 0.0)
    return x


def finite(x):
    return x[~np.isnan(x)]


def jsonable(v):
    """NaN becomes null; numpy scalars become Python numbers."""
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [jsonable(x) for x in v]
    if isinstance(v, (np.floating, float)):
        v = float(v)
        return None if math.isnan(v) else v
    if isinstance(v, np.integer):
        return int(v)
    return v


def psi(expected, actual):
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    p = np.maximum(e / e.sum(), PSI_FLOOR)
    q = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def chi2(expected, observed):
    table = np.array([expected, observed], dtype=np.float64)
    table = table[:, table.sum(axis=0) > 0]  # columns empty in both rows
    stat, p, dof, _ = scipy.stats.chi2_contingency(table, correction=False)
    return float(stat), float(p), int(dof)


def edges_of(x, bins):
    """Interior cut points: for i = 1..bins-1 the inverted-CDF quantile
    (Hyndman-Fan type 1) x_(k), k = ceil(n*i/bins) in exact integer
    arithmetic, 1-based over the sorted non-NaN values; deduplicated."""
    v = np.sort(finite(x))
    n = len(v)
    if n == 0:
        return []
    out = []
    for i in range(1, bins):
        k = -(-n * i // bins)
        e = float(v[k - 1])
        q = float(np.quantile(v, i / bins, method="inverted_cdf"))
        assert e == q, (i, e, q)  # numpy agrees on this data
        if not out or e != out[-1]:
            out.append(e)
    return out


def numeric_counts(x, edges):
    counts = np.zeros(len(edges) + 2)
    nan = np.isnan(x)
    counts[-1] = nan.sum()
    # side='left': bin i holds edges[i-1] < x <= edges[i].
    idx = np.searchsorted(np.array(edges, dtype=np.float64), x[~nan], side="left")
    np.add.at(counts, idx, 1)
    return counts


def categories_of(x):
    v = finite(x)
    vals, cnt = np.unique(v, return_counts=True)
    order = sorted(range(len(vals)), key=lambda i: (-cnt[i], vals[i]))
    return [float(vals[i]) for i in order[:MAX_CATEGORIES]]


def categorical_counts(x, cats):
    counts = np.zeros(len(cats) + 2)
    pos = {c: i for i, c in enumerate(cats)}
    for v in x:
        if math.isnan(v):
            counts[-1] += 1
        else:
            counts[pos.get(float(v), len(cats))] += 1
    return counts


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CSV
    cols, vocab = load_columns(path)
    n = len(cols["fare"])
    half = (n + 1) // 2
    rng = np.random.default_rng(20240601)

    def col(name, lo, hi, scale=0.0, shift=0.0):
        s = {"column": name, "from": lo, "to": hi}
        if scale:
            s["scale"], s["shift"] = scale, shift
        return s

    def vals(v):
        return {"values": [float(x) for x in v]}

    pairs = [
        ("fare halves", col("fare", 0, half), col("fare", half, n)),
        ("trip_miles halves", col("trip_miles", 0, half), col("trip_miles", half, n)),
        ("trip_seconds halves (NaN dropped)", col("trip_seconds", 0, half), col("trip_seconds", half, n)),
        ("fare first half vs second half x1.1+0.5", col("fare", 0, half), col("fare", half, n, 1.1, 0.5)),
        ("trip_miles first half vs second half x1.2", col("trip_miles", 0, half), col("trip_miles", half, n, 1.2, 0.0)),
        ("fare whole vs whole x1.02 (asymptotic: n > 10000)", col("fare", 0, n), col("fare", 0, n, 1.02, 0.0)),
        ("trip_seconds whole vs first 3000", col("trip_seconds", 0, n), col("trip_seconds", 0, 3000)),
        ("trip_miles first 3000 vs last 4000", col("trip_miles", 0, 3000), col("trip_miles", n - 4000, n)),
        ("fare rows 0-400 vs 400-700", col("fare", 0, 400), col("fare", 400, 700)),
        ("fare rows 0-60 vs 60-110", col("fare", 0, 60), col("fare", 60, 110)),
        ("identical", col("fare", 0, 500), col("fare", 0, 500)),
        ("ties", vals([1, 1, 1, 2, 2, 3]), vals([1, 2, 2, 2, 3, 3, 3])),
        ("disjoint", vals([1, 2, 3]), vals([4, 5, 6, 7])),
        ("single values", vals([1]), vals([2])),
        ("small shifted", vals([0.1, 0.5, 0.9, 1.3, 1.7]), vals([0.2, 0.6, 1.0, 1.4, 1.8, 2.2])),
        ("with NaN", vals([1, math.nan, 3, 4, 5]), vals([2, 3, math.nan, math.nan, 6])),
    ]
    # Random normal samples whose asymptotic p-value goes through each
    # branch of scipy's kstwo (n <= 140: Durbin matrix, Pomeranz, Smirnov).
    for n1, n2, shift in [(30, 40, 0.0), (30, 40, 0.5), (30, 40, 1.5), (200, 150, 0.0), (200, 150, 0.3),
                          (2000, 2500, 0.05), (2000, 2500, 0.2), (9000, 10000, 0.02)]:
        # Four decimals keep the file small (and add ties).
        a = np.round(rng.standard_normal(n1), 4)
        b = np.round(rng.standard_normal(n2) + shift, 4)
        pairs.append((f"normal {n1} vs {n2} shifted {shift}", vals(a), vals(b)))

    ks = []
    for name, sa, sb in pairs:
        a, b = finite(resolve(cols, sa)), finite(resolve(cols, sb))
        auto = scipy.stats.ks_2samp(a, b)
        with np.errstate(divide="ignore"):  # 1 vs 1 sample: n = round(0.5) = 0, p is NaN
            asym = scipy.stats.ks_2samp(a, b, method="asymp")
        ks.append({"name": name, "a": sa, "b": sb,
                   "method_auto": "exact" if max(len(a), len(b)) <= 10000 else "asymp",
                   "stat_auto": auto.statistic, "p_auto": auto.pvalue,
                   "stat_asymp": asym.statistic, "p_asymp": asym.pvalue,
                   "wasserstein": scipy.stats.wasserstein_distance(a, b)})

    kstwo = []
    for nn in [1, 2, 3, 5, 10, 27, 50, 100, 140, 141, 500, 1000, 3750, 10000, 100000, 100001, 250000, 2000000]:
        for d in [1e-4, 0.001, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25,
                  0.3, 0.4, 0.45, 0.5, 0.6, 0.75, 0.9, 0.99, 1.0]:
            kstwo.append({"n": nn, "d": d, "sf": scipy.stats.kstwo.sf(d, nn)})
        for t in [0.5, 0.75, 1.0, 1.5]:  # around d = 1/n
            kstwo.append({"n": nn, "d": t / nn, "sf": scipy.stats.kstwo.sf(t / nn, nn)})

    def counts_of(x, cats):
        return categorical_counts(np.asarray(x, dtype=np.float64), cats)[:-2]

    pay_cats = [float(i) for i in range(len(vocab))]
    pay1 = counts_of(cols["payment"][:half], pay_cats)
    pay2 = counts_of(cols["payment"][half:], pay_cats)
    area_cats = [float(i) for i in range(1, 78)]
    area1 = counts_of(cols["pickup_area"][:half], area_cats)
    area2 = counts_of(cols["pickup_area"][half:], area_cats)
    hour1 = counts_of(cols["hour"][:half], [float(i) for i in range(24)])
    hour2 = counts_of(cols["hour"][half:], [float(i) for i in range(24)])
    hour_late = counts_of(cols["hour"][n - 500:], [float(i) for i in range(24)])

    dist_pairs = [
        ("payment type halves", pay1, pay2),
        ("pickup area halves", area1, area2),
        ("pickup hour halves", hour1, hour2),
        ("pickup hour first half vs last 500", hour1, hour_late),
        ("proportions vs counts", [0.5, 0.25, 0.25], [10, 30, 60]),
        ("zero bin in expected", [0, 10, 20, 30], [5, 10, 20, 30]),
        ("zero bin in actual", [5, 10, 20, 30], [0, 10, 20, 30]),
        ("zero bin in both", [5, 0, 20, 30], [7, 0, 15, 30]),
        ("identical", [3, 1, 4, 1, 5], [3, 1, 4, 1, 5]),
        ("proportional", [3, 1, 4, 1, 5], [6, 2, 8, 2, 10]),
        ("disjoint", [1, 1, 0, 0], [0, 0, 1, 1]),
        ("one bin", [7], [9]),
        ("two bins", [40, 60], [55, 45]),
    ]
    js, ch, ps = [], [], []
    for name, p, q in dist_pairs:
        p, q = [float(v) for v in p], [float(v) for v in q]
        js.append({"name": name, "p": p, "q": q, "value": scipy.spatial.distance.jensenshannon(p, q)})
        stat, pv, dof = chi2(p, q)
        ch.append({"name": name, "expected": p, "observed": q, "stat": stat, "p": pv, "dof": dof})
        ps.append({"name": name, "expected": p, "actual": q, "value": psi(p, q)})

    chi2_sf = []
    for df in [1, 2, 3, 4, 5, 9, 10, 23, 29, 30, 62, 76, 100, 500, 1000]:
        for x in [1e-6, 0.01, 0.1, 0.5, 1, 2, 3, 5, 8, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500,
                  700, 1000, 1100, 1500, 2000]:
            chi2_sf.append({"x": x, "df": df, "sf": scipy.stats.chi2.sf(x, df)})

    # Profiles: reference = first half, window = second half, values as
    # float32 (what the models' vectors hold).
    specs = [("trip_miles", "numeric"), ("fare", "numeric"), ("trip_seconds", "numeric"),
             ("payment", "categorical"), ("pickup_area", "categorical"), ("hour", "categorical")]
    profiles = []
    for bins in [10, 4]:
        feats = []
        for name, kind in specs:
            x = np.array(cols[name], dtype=np.float32).astype(np.float64)
            ref, win = x[:half], x[half:]
            if kind == "numeric":
                edges = edges_of(ref, bins)
                cats = []
                rc, wc = numeric_counts(ref, edges), numeric_counts(win, edges)
            else:
                edges = []
                cats = categories_of(ref)
                rc, wc = categorical_counts(ref, cats), categorical_counts(win, cats)
            stat, pv, dof = chi2(rc, wc)
            feats.append({"name": name, "kind": kind, "edges": edges, "categories": cats,
                          "counts": rc, "n": float(len(ref)), "window_counts": wc,
                          "psi": psi(rc, wc),
                          "js": scipy.spatial.distance.jensenshannon(rc, wc),
                          "chi2": stat, "chi2_p": pv, "chi2_dof": dof})
        profiles.append({"bins": bins, "reference": [0, half], "window": [half, n], "features": feats})

    out = {
        "generator": "ml/drift/testdata/gen_fixtures.py",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "rows": n,
        "half": half,
        "payment_vocab": vocab,
        "columns": cols,
        "ks": ks,
        "kstwo_sf": kstwo,
        "js": js,
        "chi2": ch,
        "chi2_sf": chi2_sf,
        "psi": ps,
        "profiles": profiles,
    }
    dst = os.path.join(HERE, "fixtures.json")
    with open(dst, "w") as f:
        json.dump(jsonable(out), f, separators=(",", ":"), allow_nan=False)
        f.write("\n")
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
