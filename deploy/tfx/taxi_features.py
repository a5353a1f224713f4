"""The taxi-mlops feature transform (ml/features), in numpy, for the TFX pipeline.

A model the pipeline trains is served by the Go streamers, which encode every
trip with ml/features and the feature spec stored beside the model. This
module computes the same vectors from the same snapshot columns, value for
value, so that the model is trained on what it will be served:

- the ride -> trip step of rides.FeatureTrip: community areas from the
  coordinates by point in polygon on the city's boundaries (even-odd ray
  casting, as geo.Areas.Lookup; the lowest area number wins), else the area
  the city labelled;
- features.Transform: hour, weekday (1 = Sunday) and month on the clock of
  the given time zone; average speed = miles / (seconds / 3600) when
  seconds > 0;
- features.NewSpec: vocabularies of payment type and company by descending
  count, ties in byte order, companies capped at max_companies;
- features.Spec.Vector: area 0 or less -> missing; a vocabulary value ->
  its index, an unknown one -> len(vocabulary), "" -> missing; everything
  computed in float64 and rounded to float32 last;
- training.SortByTime / SplitByTime: order by pickup then trip id, the
  newest round(n * fraction) rows (Go's math.Round) are the validation part.

It needs numpy only (no TensorFlow, no TFX). The encoding of
ml/xgb/testdata/gen_fixtures.py is the same one for the city's CSV; this one
reads the project's Parquet snapshot columns (dataset.Schema).
"""

import datetime
import math
import zoneinfo

import numpy as np

SPEC_VERSION = "v1"  # features.Version

# ml/features names and kinds.
NUMERIC = ("trip_miles", "trip_seconds", "avg_speed_mph", "fare")
CATEGORICAL = (
    "pickup_hour", "pickup_day_of_week", "pickup_month",
    "pickup_community_area", "dropoff_community_area", "payment_type", "company",
)
KNOWN_FEATURES = frozenset(NUMERIC + CATEGORICAL)

# Labels the pipeline's "label" parameter names (training.Model.Label).
LABELS = ("fare", "tips", "big_tipper")

# Snapshot columns (dataset.Schema) the transform reads.
COLUMNS = (
    "trip_id", "event_timestamp", "pickup_latitude", "pickup_longitude",
    "dropoff_latitude", "dropoff_longitude", "pickup_community_area",
    "dropoff_community_area", "trip_miles", "trip_seconds", "fare_amount",
    "payment_type", "company", "fare", "tips",
)

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def go_round(x):
    """Go's math.Round: half away from zero."""
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return int(math.copysign(r, x))


def split_index(n, fraction):
    """training.SplitByTime: how many of n sorted rows come before the newest
    fraction of them."""
    k = n - go_round(float(n) * fraction)
    return max(0, min(k, n))


def sort_order(event_us, trip_ids):
    """training.SortByTime: by pickup time, ties by trip id (byte order)."""
    return sorted(range(len(trip_ids)), key=lambda i: (int(event_us[i]), trip_ids[i].encode("utf-8")))


def vocabulary(values, limit):
    """features.vocabulary: distinct non-empty values by descending count, ties
    by byte order, at most limit of them (0 = all)."""
    counts = {}
    for v in values:
        if v != "":
            counts[v] = counts.get(v, 0) + 1
    vs = sorted(counts, key=lambda v: (-counts[v], v.encode("utf-8")))
    if limit > 0:
        vs = vs[:limit]
    return vs


class CommunityAreas:
    """geo.Areas: numbered (multi)polygons and a point lookup that answers as
    geo.Areas.Lookup does."""

    _NUMBER_PROPS = ("area_number", "area_numbe", "area_num_1")

    def __init__(self, geojson):
        if geojson.get("type") != "FeatureCollection" or not geojson.get("features"):
            raise ValueError("community areas: not a FeatureCollection with features")
        areas = []
        for i, f in enumerate(geojson["features"]):
            number = None
            props = f.get("properties") or {}
            for p in self._NUMBER_PROPS:
                if p in props:
                    number = int(str(props[p]).strip())
                    break
            if not number or number <= 0:
                raise ValueError("community areas: feature %d has no positive area number" % i)
            geom = f.get("geometry") or {}
            if geom.get("type") == "Polygon":
                polys = [geom["coordinates"]]
            elif geom.get("type") == "MultiPolygon":
                polys = geom["coordinates"]
            else:
                raise ValueError("community areas: area %d is a %r" % (number, geom.get("type")))
            edges = []
            for poly in polys:
                for ring in poly:
                    n = len(ring)
                    for j in range(n):
                        p, q = ring[j], ring[(j + 1) % n]
                        # The closing repeat of the first position is no edge.
                        if j == n - 1 and p[0] == q[0] and p[1] == q[1]:
                            continue
                        edges.append((p[0], p[1], q[0], q[1]))
            e = np.asarray(edges, dtype=np.float64)
            areas.append((number, e))
        areas.sort(key=lambda a: a[0])
        self.numbers = [a[0] for a in areas]
        self._edges = [a[1] for a in areas]
        self._boxes = []
        for e in self._edges:
            xs = np.concatenate([e[:, 0], e[:, 2]])
            ys = np.concatenate([e[:, 1], e[:, 3]])
            self._boxes.append((ys.min(), xs.min(), ys.max(), xs.max()))
        self.bounds = (
            min(b[0] for b in self._boxes), min(b[1] for b in self._boxes),
            max(b[2] for b in self._boxes), max(b[3] for b in self._boxes),
        )

    def lookup(self, lat, lon):
        """Area numbers of the points (0: in no area, or a coordinate is NaN)."""
        lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        out = np.zeros(lat.shape, dtype=np.int64)
        with np.errstate(invalid="ignore"):
            cand = (lat >= self.bounds[0]) & (lat <= self.bounds[2]) & (lon >= self.bounds[1]) & (lon <= self.bounds[3])
        for number, e, box in zip(self.numbers, self._edges, self._boxes):
            with np.errstate(invalid="ignore"):
                sel = np.nonzero(cand & (out == 0) & (lat >= box[0]) & (lat <= box[2]) & (lon >= box[1]) & (lon <= box[3]))[0]
            if sel.size == 0:
                continue
            inside = self._inside(e, lon[sel], lat[sel])
            out[sel[inside]] = number
        return out

    @staticmethod
    def _inside(e, x, y, chunk=512):
        """Even-odd ray casting towards +x, with geo's exact expression:
        (y0 > y) != (y1 > y) and x < x0 + (y - y0) * (x1 - x0) / (y1 - y0)."""
        odd = np.zeros(x.shape, dtype=bool)
        for s in range(0, len(e), chunk):
            x0, y0, x1, y1 = (e[s:s + chunk, k][None, :] for k in range(4))
            yy, xx = y[:, None], x[:, None]
            spans = (y0 > yy) != (y1 > yy)
            with np.errstate(divide="ignore", invalid="ignore"):
                cross = spans & (xx < x0 + (yy - y0) * (x1 - x0) / (y1 - y0))
            odd ^= (np.count_nonzero(cross, axis=1) % 2) == 1
        return odd


def clock_parts(event_us, timezone):
    """Hour, weekday (1 = Sunday ... 7 = Saturday) and month of each pickup
    (microseconds since the epoch, UTC) on the clock of timezone."""
    zone = zoneinfo.ZoneInfo(timezone)
    uniq, inv = np.unique(np.asarray(event_us, dtype=np.int64), return_inverse=True)
    hour = np.empty(len(uniq), dtype=np.float64)
    dow = np.empty(len(uniq), dtype=np.float64)
    month = np.empty(len(uniq), dtype=np.float64)
    for i, us in enumerate(uniq):
        local = (_EPOCH + datetime.timedelta(microseconds=int(us))).astimezone(zone)
        hour[i] = local.hour
        dow[i] = local.isoweekday() % 7 + 1
        month[i] = local.month
    inv = inv.reshape(-1)
    return hour[inv], dow[inv], month[inv]


def _area(lat, lon, label, areas):
    """rides.area: the area containing the coordinates, else the label, else 0."""
    label = np.asarray(label, dtype=np.float64)
    out = np.where(np.isnan(label), 0.0, label)
    if areas is not None:
        found = areas.lookup(lat, lon)
        out = np.where(found > 0, found.astype(np.float64), out)
    return out


def feature_rows(cols, timezone, areas=None):
    """features.Transform of every row: a dict of numpy float64 arrays (NaN =
    unknown) for the numeric and number-coded features, and lists of strings
    for payment_type and company. cols holds the COLUMNS: event_timestamp as
    int64 microseconds, nullable numbers as float64 with NaN, strings as
    lists ("" for null)."""
    miles = np.asarray(cols["trip_miles"], dtype=np.float64)
    secs = np.asarray(cols["trip_seconds"], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        speed = np.where((secs > 0) & ~np.isnan(miles), miles / (secs / 3600), np.nan)
    hour, dow, month = clock_parts(cols["event_timestamp"], timezone)
    return {
        "trip_miles": miles,
        "trip_seconds": secs,
        "avg_speed_mph": speed,
        "pickup_hour": hour,
        "pickup_day_of_week": dow,
        "pickup_month": month,
        "pickup_community_area": _area(cols["pickup_latitude"], cols["pickup_longitude"], cols["pickup_community_area"], areas),
        "dropoff_community_area": _area(cols["dropoff_latitude"], cols["dropoff_longitude"], cols["dropoff_community_area"], areas),
        "payment_type": list(cols["payment_type"]),
        "company": list(cols["company"]),
        "fare": np.asarray(cols["fare_amount"], dtype=np.float64),
    }


def take(rows, idx):
    """The rows (of feature_rows or a COLUMNS dict) at positions idx."""
    idx = np.asarray(idx, dtype=np.int64)
    out = {}
    for k, v in rows.items():
        out[k] = [v[i] for i in idx] if isinstance(v, list) else np.asarray(v)[idx]
    return out


def new_spec(names, rows, max_companies):
    """features.NewSpec: the spec of the named features, vocabularies learnt
    from rows (the training part)."""
    names = list(names)
    for n in names:
        if n not in KNOWN_FEATURES:
            raise ValueError("unknown feature %r" % n)
    if len(set(names)) != len(names):
        raise ValueError("a feature is named twice in %r" % names)
    return {
        "version": SPEC_VERSION,
        "names": names,
        "payment_vocab": vocabulary(rows["payment_type"], 0),
        "company_vocab": vocabulary(rows["company"], max_companies),
    }


def _encode(values, vocab):
    index = {v: i for i, v in enumerate(vocab)}
    unknown = float(len(vocab))
    return np.array([np.nan if v == "" else float(index.get(v, unknown)) for v in values], dtype=np.float64)


def vectors(spec, rows):
    """features.Spec.Vector of every row: a float32 matrix, NaN = missing."""
    n = len(rows["trip_miles"])
    cols = []
    for name in spec["names"]:
        if name in ("pickup_community_area", "dropoff_community_area"):
            a = rows[name]
            cols.append(np.where(a <= 0, np.nan, a))
        elif name == "payment_type":
            cols.append(_encode(rows[name], spec["payment_vocab"]))
        elif name == "company":
            cols.append(_encode(rows[name], spec["company_vocab"]))
        else:
            cols.append(rows[name])
    if not cols:
        return np.zeros((n, 0), dtype=np.float32)
    return np.stack(cols, axis=1).astype(np.float32)


def labels(cols, label):
    """training.Model.Label of every row, as float32."""
    fare = np.asarray(cols["fare"], dtype=np.float64)
    tips = np.asarray(cols["tips"], dtype=np.float64)
    if label == "fare":
        y = fare
    elif label == "tips":
        y = tips
    elif label == "big_tipper":
        y = (tips > 0.2 * fare).astype(np.float64)
    else:
        raise ValueError("unknown label %r (known: %s)" % (label, ", ".join(LABELS)))
    return y.astype(np.float32)
