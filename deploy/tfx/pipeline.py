"""The TFX pipeline that trains taxi-mlops candidates on Kubeflow Pipelines.

The control plane's RunPipeline activity (pipeline "kfp", activities/kfp.go)
starts a run of this pipeline with the runtime parameters below, follows it,
and picks up what the Pusher wrote at push_destination:

    model.json          the XGBoost model (Booster.save_raw("json")), which the
                        Go streamers serve unchanged (ml/xgb reads it)
    feature_spec.json   the features.Spec: feature names, payment and company
                        vocabularies learnt from the training rows
    push.json           a manifest (best iteration, rows, validation and
                        holdout metrics, xgboost version), written last

Components, in order:

    ExampleGen        TaxiExampleGen: the snapshot's train.parquet (split
                      "train") and holdout.parquet (split "eval") as
                      tf.Examples. A custom component, not FileBasedExampleGen
                      with the Parquet executor, because that executor turns
                      rows into tf.Examples with ExampleGen's dict_to_example,
                      which has no case for the snapshot's timestamp columns,
                      and because its input is a directory plus split patterns
                      in a proto, which cannot be runtime parameters; the two
                      files are. Timestamps become int64 microseconds.
    StatisticsGen, SchemaGen, ExampleValidator
                      TFX's, on those Examples: statistics, an inferred
                      schema, and the anomalies of the holdout against it
                      (shown in the KFP UI; they do not stop the run: a new
                      company in the holdout is an "anomaly" the encoding
                      handles).
    Trainer           TaxiTrainer calls run_fn: the ml/features encoding
                      (taxi_features.py) and XGBoost with the catalogue's
                      parameters (taxi_trainer.py). It is the transform too:
                      the vocabularies are learnt from the training part, as
                      features.NewSpec learns them, so a TFX Transform graph
                      (whose vocabulary ties break differently and which would
                      learn from the validation rows too) is not used. run_fn
                      reads the snapshot's Parquet itself rather than the
                      tf.Examples, whose FloatList is float32: coordinates
                      rounded to float32 move a pickup by up to half a metre,
                      enough to change its community area on a boundary, and
                      speeds computed from rounded miles would not be the ones
                      the Go transform computes.
    Evaluator         TaxiEvaluator: the model's metrics on the holdout; it is
                      blessed when it beats the constant prediction of the
                      training mean there. (Champion against challenger is
                      the control plane's own EvaluateCandidate.)
    Pusher            TaxiPusher: writes the three files to push_destination
                      when the model is blessed, and fails the run (with the
                      reason, which the control plane reports) when it is not.

Trainer, Evaluator and Pusher are function components with one parameter per
runtime parameter: TFX compiles a RuntimeParameter into a KFP pipeline input
only when it is a component's whole execution property, so the stock
Trainer could receive them only as one custom_config blob. run_fn keeps the
stock Trainer's calling convention (fn_args.serving_model_dir,
fn_args.custom_config) all the same.

Object storage: s3:// URIs (datasets, boundaries, push destination) are
read and written with pyarrow's S3 filesystem, configured from the
environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
AWS_ENDPOINT_URL (e.g. http://minio.kubeflow:9000 for MinIO). Plain paths
are local files.

compile.py compiles the pipeline to a KFP v2 pipeline spec (YAML) for
upload; see README.md.
"""

import json
import os
import types
import urllib.parse

from tfx import v1 as tfx
from tfx.orchestration import data_types
from tfx.types import artifact_utils

import taxi_features
import taxi_trainer

try:  # gives tf.io.gfile an s3:// filesystem where tensorflow-io is installed
    import tensorflow_io  # noqa: F401
except ImportError:
    pass

PIPELINE_NAME = "taxi-mlops-xgboost"

# Runtime parameters: name -> (type, default). The control plane sends every
# one of them on every run (activities/kfp.go, KFPParameterNames; a Go test
# keeps the two lists equal). None = required.
RUNTIME_PARAMETERS = {
    "train_uri": (str, None),
    "holdout_uri": (str, None),
    "model_name": (str, None),
    "model_version": (str, None),
    "objective": (str, None),
    "label": (str, None),
    "feature_names": (str, None),
    "timezone": (str, "America/Chicago"),
    "community_areas_uri": (str, ""),
    "validation_fraction": (float, 0.1),
    "max_companies": (int, 20),
    "xgb_params": (str, None),
    "num_boost_round": (int, 100),
    "early_stopping_rounds": (int, 0),
    "push_destination": (str, None),
}

Parameter = tfx.dsl.components.Parameter
InputArtifact = tfx.dsl.components.InputArtifact
OutputArtifact = tfx.dsl.components.OutputArtifact
standard_artifacts = tfx.types.standard_artifacts


# ---- object storage ---------------------------------------------------------


def _s3():
    from pyarrow import fs

    kwargs = {"region": os.environ.get("AWS_REGION", "us-east-1")}
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    if endpoint:
        u = urllib.parse.urlparse(endpoint if "://" in endpoint else "http://" + endpoint)
        kwargs["endpoint_override"] = u.netloc
        kwargs["scheme"] = u.scheme
    return fs.S3FileSystem(**kwargs)


def _fs_path(uri):
    """A filesystem and path for an s3:// URI or a local path."""
    if uri.startswith("s3://"):
        return _s3(), uri[len("s3://"):]
    from pyarrow import fs

    return fs.LocalFileSystem(), uri


def read_bytes(uri):
    fsys, path = _fs_path(uri)
    with fsys.open_input_stream(path) as f:
        return f.read()


def write_bytes(uri, data):
    fsys, path = _fs_path(uri)
    if not uri.startswith("s3://"):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with fsys.open_output_stream(path) as f:
        f.write(data)


def read_table(uri):
    import pyarrow.parquet as pq

    fsys, path = _fs_path(uri)
    return pq.read_table(path, filesystem=fsys)


def snapshot_columns(table):
    """The columns taxi_features reads: timestamps as int64 microseconds,
    numbers as float64 (NaN for null), strings as lists ("" for null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = {}
    for name in taxi_features.COLUMNS:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            cols[name] = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            cols[name] = ["" if v is None else v for v in col.to_pylist()]
        else:
            cols[name] = pc.fill_null(col.cast(pa.float64()), float("nan")).to_numpy()
    return cols


def load_areas(uri):
    if not uri:
        return None
    return taxi_features.CommunityAreas(json.loads(read_bytes(uri)))


# ---- components ---------------------------------------------------------------


def _examples(table):
    """tf.Examples of the snapshot rows; timestamps as int64 microseconds,
    nulls as empty features."""
    import pyarrow as pa
    import tensorflow as tf

    columns = {}
    for name, col in zip(table.column_names, table.columns):
        if pa.types.is_timestamp(col.type):
            col = col.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        columns[name] = col.to_pylist()
    for i in range(table.num_rows):
        feature = {}
        for name, values in columns.items():
            v = values[i]
            if v is None:
                feature[name] = tf.train.Feature()
            elif isinstance(v, bool) or isinstance(v, int):
                feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v)]))
            elif isinstance(v, float):
                feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[v]))
            else:
                feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(v).encode("utf-8")]))
        yield tf.train.Example(features=tf.train.Features(feature=feature))


@tfx.dsl.components.component
def TaxiExampleGen(
    examples: OutputArtifact[standard_artifacts.Examples],
    train_uri: Parameter[str],
    holdout_uri: Parameter[str],
):
    """The snapshot as Examples: train.parquet -> split "train",
    holdout.parquet -> split "eval" (gzip'd TFRecords of tf.Example)."""
    import tensorflow as tf

    splits = [("train", train_uri), ("eval", holdout_uri)]
    for split, uri in splits:
        table = read_table(uri)
        out_dir = os.path.join(examples.uri, "Split-" + split)
        tf.io.gfile.makedirs(out_dir)
        path = os.path.join(out_dir, "data_tfrecord-00000-of-00001.gz")
        with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
            for ex in _examples(table):
                w.write(ex.SerializeToString())
        print("ExampleGen: %s -> %s (%d rows)" % (uri, split, table.num_rows))
    examples.split_names = artifact_utils.encode_split_names([s for s, _ in splits])
    examples.set_string_custom_property("payload_format", "FORMAT_TF_EXAMPLE")


def run_fn(fn_args):
    """The Trainer's user function (TFX's run_fn convention): train on
    fn_args.custom_config["train_uri"] with the custom_config parameters and
    write model.json, feature_spec.json and push.json into
    fn_args.serving_model_dir."""
    c = fn_args.custom_config
    cols = snapshot_columns(read_table(c["train_uri"]))
    model_json, spec, manifest = taxi_trainer.train(
        cols,
        model_name=c["model_name"],
        model_version=c["model_version"],
        objective=c["objective"],
        label=c["label"],
        feature_names=json.loads(c["feature_names"]),
        timezone=c["timezone"],
        areas=load_areas(c["community_areas_uri"]),
        validation_fraction=float(c["validation_fraction"]),
        max_companies=int(c["max_companies"]),
        xgb_params=json.loads(c["xgb_params"]),
        num_boost_round=int(c["num_boost_round"]),
        early_stopping_rounds=int(c["early_stopping_rounds"]),
    )
    manifest["train_uri"] = c["train_uri"]
    import tensorflow as tf

    tf.io.gfile.makedirs(fn_args.serving_model_dir)
    for name, data in taxi_trainer.files(model_json, spec, manifest):
        with tf.io.gfile.GFile(os.path.join(fn_args.serving_model_dir, name), "wb") as f:
            f.write(data)


def _read_model(model_uri):
    import tensorflow as tf

    def read(name):
        with tf.io.gfile.GFile(os.path.join(model_uri, name), "rb") as f:
            return f.read()

    return (read(taxi_trainer.MODEL_FILE), json.loads(read(taxi_trainer.SPEC_FILE)),
            json.loads(read(taxi_trainer.MANIFEST_FILE)))


@tfx.dsl.components.component
def TaxiTrainer(
    examples: InputArtifact[standard_artifacts.Examples],
    anomalies: InputArtifact[standard_artifacts.ExampleAnomalies],
    model: OutputArtifact[standard_artifacts.Model],
    train_uri: Parameter[str],
    model_name: Parameter[str],
    model_version: Parameter[str],
    objective: Parameter[str],
    label: Parameter[str],
    feature_names: Parameter[str],
    timezone: Parameter[str],
    community_areas_uri: Parameter[str],
    validation_fraction: Parameter[float],
    max_companies: Parameter[int],
    xgb_params: Parameter[str],
    num_boost_round: Parameter[int],
    early_stopping_rounds: Parameter[int],
):
    """The Trainer: run_fn with the runtime parameters as custom_config. The
    Examples and the validator's anomalies are inputs for order and lineage."""
    print("Trainer: after ExampleGen %s and ExampleValidator %s" % (examples.uri, anomalies.uri))
    fn_args = types.SimpleNamespace(
        serving_model_dir=model.uri,
        custom_config={
            "train_uri": train_uri,
            "model_name": model_name,
            "model_version": model_version,
            "objective": objective,
            "label": label,
            "feature_names": feature_names,
            "timezone": timezone,
            "community_areas_uri": community_areas_uri,
            "validation_fraction": validation_fraction,
            "max_companies": max_companies,
            "xgb_params": xgb_params,
            "num_boost_round": num_boost_round,
            "early_stopping_rounds": early_stopping_rounds,
        },
    )
    run_fn(fn_args)


@tfx.dsl.components.component
def TaxiEvaluator(
    model: InputArtifact[standard_artifacts.Model],
    blessing: OutputArtifact[standard_artifacts.ModelBlessing],
    holdout_uri: Parameter[str],
    objective: Parameter[str],
    label: Parameter[str],
    timezone: Parameter[str],
    community_areas_uri: Parameter[str],
):
    """The model on the holdout; blessed when it beats the training mean."""
    import tensorflow as tf

    model_json, spec, manifest = _read_model(model.uri)
    cols = snapshot_columns(read_table(holdout_uri))
    blessed, reason, metrics = taxi_trainer.evaluate(
        model_json, spec, manifest, cols, objective, label, timezone, load_areas(community_areas_uri))
    print("Evaluator: %s: %s" % ("blessed" if blessed else "NOT blessed", reason))
    tf.io.gfile.makedirs(blessing.uri)
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "BLESSED" if blessed else "NOT_BLESSED"), "w") as f:
        f.write(reason + "\n")
    with tf.io.gfile.GFile(os.path.join(blessing.uri, "holdout_metrics.json"), "w") as f:
        f.write(json.dumps(metrics, sort_keys=True))
    blessing.set_int_custom_property("blessed", 1 if blessed else 0)
    blessing.set_string_custom_property("reason", reason)


@tfx.dsl.components.component
def TaxiPusher(
    model: InputArtifact[standard_artifacts.Model],
    model_blessing: InputArtifact[standard_artifacts.ModelBlessing],
    pushed_model: OutputArtifact[standard_artifacts.PushedModel],
    push_destination: Parameter[str],
):
    """model.json, feature_spec.json, then push.json at push_destination; a
    model that is not blessed fails the run with the Evaluator's reason."""
    import tensorflow as tf

    reason = model_blessing.get_string_custom_property("reason")
    if model_blessing.get_int_custom_property("blessed") != 1:
        raise RuntimeError("model not blessed: " + reason)
    model_json, spec, manifest = _read_model(model.uri)
    with tf.io.gfile.GFile(os.path.join(model_blessing.uri, "holdout_metrics.json")) as f:
        manifest["holdout_metrics"] = json.loads(f.read())
    manifest["blessing"] = reason
    dest = push_destination if push_destination.endswith("/") else push_destination + "/"
    for name, data in taxi_trainer.files(model_json, spec, manifest):
        write_bytes(dest + name, data)
        print("Pusher: wrote %s%s (%d bytes)" % (dest, name, len(data)))
    pushed_model.set_int_custom_property("pushed", 1)
    pushed_model.set_string_custom_property("pushed_destination", dest)


# ---- the pipeline ---------------------------------------------------------------


def runtime_parameters():
    """The RuntimeParameters, by name."""
    out = {}
    for name, (ptype, default) in RUNTIME_PARAMETERS.items():
        out[name] = data_types.RuntimeParameter(name=name, ptype=ptype, default=default)
    return out


def create_pipeline(pipeline_root):
    """The pipeline; every run trains (no caching: the inputs are new data)."""
    p = runtime_parameters()
    example_gen = TaxiExampleGen(
        train_uri=p["train_uri"], holdout_uri=p["holdout_uri"]).with_id("ExampleGen")
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    trainer = TaxiTrainer(
        examples=example_gen.outputs["examples"],
        anomalies=example_validator.outputs["anomalies"],
        train_uri=p["train_uri"],
        model_name=p["model_name"],
        model_version=p["model_version"],
        objective=p["objective"],
        label=p["label"],
        feature_names=p["feature_names"],
        timezone=p["timezone"],
        community_areas_uri=p["community_areas_uri"],
        validation_fraction=p["validation_fraction"],
        max_companies=p["max_companies"],
        xgb_params=p["xgb_params"],
        num_boost_round=p["num_boost_round"],
        early_stopping_rounds=p["early_stopping_rounds"],
    ).with_id("Trainer")
    evaluator = TaxiEvaluator(
        model=trainer.outputs["model"],
        holdout_uri=p["holdout_uri"],
        objective=p["objective"],
        label=p["label"],
        timezone=p["timezone"],
        community_areas_uri=p["community_areas_uri"],
    ).with_id("Evaluator")
    pusher = TaxiPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=p["push_destination"],
    ).with_id("Pusher")
    return tfx.dsl.Pipeline(
        pipeline_name=PIPELINE_NAME,
        pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, trainer, evaluator, pusher],
        enable_cache=False,
    )
