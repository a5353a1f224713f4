"""Compile the taxi-mlops TFX pipeline to a Kubeflow Pipelines v2 pipeline spec.

    python compile.py --image registry.example.com/taxi-mlops-tfx:1 \
        [--pipeline-root s3://mlpipeline/taxi-mlops] [--output taxi_pipeline.yaml]

TFX's KubeflowV2DagRunner is TFX's compiler to the KFP v2 intermediate
representation (PipelineSpec, schema 2.0.0; the same IR the kfp v2 compiler
writes). It returns a PipelineJob; this script keeps its pipelineSpec, sets
defaultPipelineRoot, and writes it as YAML, which `kfp pipeline create` and
the KFP UI upload. The runtime parameters of pipeline.RUNTIME_PARAMETERS
become the spec's root input parameters. Needs TFX (pip install tfx), not a
cluster; run it from this directory.
"""

import argparse
import json
import sys

from tfx import v1 as tfx

import pipeline


def compile_spec(image, pipeline_root):
    """The PipelineSpec of the pipeline, as a dict (camelCase JSON names)."""
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=image))
    job = runner.run(pipeline.create_pipeline(pipeline_root), write_out=False)
    spec = job["pipelineSpec"]
    spec["defaultPipelineRoot"] = pipeline_root
    got = set(spec["root"]["inputDefinitions"]["parameters"])
    want = set(pipeline.RUNTIME_PARAMETERS)
    if got != want:
        raise SystemExit("compiled inputs %s differ from RUNTIME_PARAMETERS %s" % (sorted(got), sorted(want)))
    return spec


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", required=True, help="container image with TFX, xgboost, pyarrow and these modules")
    ap.add_argument("--pipeline-root", default="s3://mlpipeline/taxi-mlops",
                    help="default root of the run's artifacts (a run's runtime_config.pipeline_root overrides it)")
    ap.add_argument("--output", default="taxi_pipeline.yaml", help="file to write (.yaml or .json)")
    args = ap.parse_args(argv)
    spec = compile_spec(args.image, args.pipeline_root)
    with open(args.output, "w") as f:
        if args.output.endswith(".json"):
            json.dump(spec, f, indent=1, sort_keys=True)
        else:
            import yaml

            yaml.safe_dump(spec, f, sort_keys=False)
    print("wrote %s: pipeline %s, inputs %s" % (
        args.output, spec["pipelineInfo"]["name"], ", ".join(sorted(spec["root"]["inputDefinitions"]["parameters"]))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
