"""Feast definitions of taxi-mlops' features.

The control plane's MaterializeFeatures activity (activities/materialize.go)
writes two Parquet tables to the feature bucket, one object per dataset
snapshot in a Hive-style partition:

    s3://<bucket>/trip_features/dataset=<id>/part-0.parquet
    s3://<bucket>/area_stats/dataset=<id>/part-0.parquet

Each FileSource below reads a table's whole directory. Column names and types
here are checked against what the Go code writes by
activities.TestFeastRepoMatchesTheTables, so the two cannot drift apart.

Environment:
    TAXI_S3_FEATURE_BUCKET  the feature bucket (default "features", as the
                            worker's --s3-feature-bucket)
    FEAST_S3_ENDPOINT_URL   the S3 endpoint, e.g. http://minio:9000 (unset:
                            AWS S3)
"""

import os
from datetime import timedelta

from feast import (
    Entity,
    FeatureService,
    FeatureView,
    Field,
    FileSource,
    PushSource,
    ValueType,
)
from feast.data_format import ParquetFormat
from feast.types import Float64, Int64, String

FEATURE_BUCKET = os.environ.get("TAXI_S3_FEATURE_BUCKET", "features")
S3_ENDPOINT = os.environ.get("FEAST_S3_ENDPOINT_URL") or None

# Table directories under the bucket (activities.TripFeaturesTable and
# activities.AreaStatsTable).
TRIP_FEATURES_PREFIX = "trip_features/"
AREA_STATS_PREFIX = "area_stats/"

# The inputs of the fare model (ml/features.FareFeatures) and of the
# big-tipper model (ml/features.TipperFeatures: the same and the meter fare).
FARE_MODEL_FEATURES = [
    "trip_miles",
    "trip_seconds",
    "avg_speed_mph",
    "pickup_hour",
    "pickup_day_of_week",
    "pickup_month",
    "pickup_community_area",
    "dropoff_community_area",
    "payment_type",
    "company",
]
BIG_TIPPER_MODEL_FEATURES = FARE_MODEL_FEATURES + ["fare"]

trip = Entity(
    name="trip",
    join_keys=["trip_id"],
    value_type=ValueType.STRING,
    description="One taxi trip of the City of Chicago's data, by its trip id.",
)

pickup_area = Entity(
    name="pickup_area",
    join_keys=["pickup_community_area"],
    value_type=ValueType.INT64,
    description="A Chicago community area (1..77) where trips start.",
)

trip_features_source = FileSource(
    name="trip_features_source",
    path=f"s3://{FEATURE_BUCKET}/{TRIP_FEATURES_PREFIX}",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    s3_endpoint_override=S3_ENDPOINT,
    description="One row per labelled trip of each snapshot; event_timestamp is the pickup.",
)

area_stats_source = FileSource(
    name="area_stats_source",
    path=f"s3://{FEATURE_BUCKET}/{AREA_STATS_PREFIX}",
    file_format=ParquetFormat(),
    timestamp_field="event_timestamp",
    created_timestamp_column="created_timestamp",
    s3_endpoint_override=S3_ENDPOINT,
    description="Trips per pickup area and hour; event_timestamp is the end of the hour.",
)

# Streaming area statistics: the control plane pushes each area's latest hour
# after materializing; a streamer can push its closed windows the same way.
area_stats_push = PushSource(
    name="area_stats_push",
    batch_source=area_stats_source,
)

# The model inputs as the features streamer computes them (rides.FeatureTrip
# then features.Transform). Unknown values are null.
trip_features = FeatureView(
    name="trip_features",
    entities=[trip],
    ttl=timedelta(days=1),
    schema=[
        Field(name="trip_id", dtype=String),
        Field(name="trip_miles", dtype=Float64),
        Field(name="trip_seconds", dtype=Float64),
        Field(name="avg_speed_mph", dtype=Float64),
        Field(name="pickup_hour", dtype=Int64),
        Field(name="pickup_day_of_week", dtype=Int64),
        Field(name="pickup_month", dtype=Int64),
        Field(name="pickup_community_area", dtype=Int64),
        Field(name="dropoff_community_area", dtype=Int64),
        Field(name="payment_type", dtype=String),
        Field(name="company", dtype=String),
        Field(name="fare", dtype=Float64),
    ],
    source=trip_features_source,
    online=True,
    tags={"team": "taxi-mlops"},
)

# What each trip turned out to be, for training sets built with
# get_historical_features; never served online.
trip_labels = FeatureView(
    name="trip_labels",
    entities=[trip],
    ttl=timedelta(days=1),
    schema=[
        Field(name="trip_id", dtype=String),
        Field(name="actual_fare", dtype=Float64),
        Field(name="tips", dtype=Float64),
        Field(name="big_tipper", dtype=Int64),
    ],
    source=trip_features_source,
    online=False,
    tags={"team": "taxi-mlops"},
)

# A day without trips leaves an area without current statistics.
area_stats = FeatureView(
    name="area_stats",
    entities=[pickup_area],
    ttl=timedelta(days=1),
    schema=[
        Field(name="pickup_community_area", dtype=Int64),
        Field(name="trip_count", dtype=Int64),
        Field(name="avg_fare", dtype=Float64),
        Field(name="avg_trip_duration", dtype=Float64),
    ],
    source=area_stats_push,
    online=True,
    tags={"team": "taxi-mlops"},
)

fare_model = FeatureService(
    name="fare_model",
    features=[trip_features[FARE_MODEL_FEATURES]],
    description="The inputs of the fare model.",
)

big_tipper_model = FeatureService(
    name="big_tipper_model",
    features=[trip_features[BIG_TIPPER_MODEL_FEATURES]],
    description="The inputs of the big-tipper model.",
)
