"""Peak memory of each pipeline stage against the upload's size, on the strict offline stack.

Each stage runs in its own Lambda execution environment (a worker process); the offline stack
records its peak resident memory (``Max Memory Used``) per invocation. This bench deploys the
project's template with every pipeline function raised to 10,240 MB (so that nothing is stopped
while measuring), uploads Adult-like CSVs of growing size (Adult's rows resampled), and fits
``peak MB = base + slope x CSV MB`` per stage. From that it reports the largest upload each
stage's *configured* MemorySize (template.yaml) can take, which is how the sizes are chosen.

    python bench/bench_stage_memory.py --rows 48842 200000 500000 --output bench/results/stage_memory.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import logging
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stepml import datasets, keys  # noqa: E402
from stepml.local import LocalStack  # noqa: E402

STAGES = ("ValidateFunction", "PreprocessFunction", "TrainFunction", "VerifyFunction",
          "EvaluateFunction", "PromoteFunction")
LAMBDA_MAX_MB = 10240


class _Peaks(logging.Handler):
    """Collects the runner's ``lambda.invoke`` records: function → peak MB and duration."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if line.get("event") == "lambda.invoke":
            self.records.append(line)


def configured_limits() -> dict[str, int]:
    """Each pipeline function's MemorySize in template.yaml (Globals applied)."""
    text = (ROOT / "template.yaml").read_text()
    default = int(re.search(r"Globals:.*?MemorySize: (\d+)", text, re.S).group(1))
    limits = {}
    for stage in STAGES:
        block = re.search(rf"\n  {stage}:\n(.*?)(?=\n  \w+:\n)", text, re.S).group(1)
        found = re.search(r"\n      MemorySize: (\d+)", block)
        limits[stage] = int(found.group(1)) if found else default
    return limits


def roomy_project(folder: Path) -> Path:
    """The project with every function at Lambda's maximum memory (nothing stopped while measuring)."""
    for name in ("functions", "statemachine", "layer", "layer-inference"):
        (folder / name).symlink_to(ROOT / name)
    text = (ROOT / "template.yaml").read_text()
    text = re.sub(r"MemorySize: \d+", f"MemorySize: {LAMBDA_MAX_MB}", text)
    (folder / "template.yaml").write_text(text)
    return folder


def adult_like(rows: int, seed: int = 0) -> bytes:
    adult = pd.read_csv(datasets.get("adult"))
    sample = adult.sample(n=rows, replace=rows > len(adult), random_state=seed)
    buffer = io.StringIO()
    sample.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def run_once(stack: LocalStack, peaks: _Peaks, rows: int) -> dict[str, Any]:
    body = adult_like(rows)
    dataset = f"mem-{rows}"
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key=f"config/{dataset}.yaml", Body=b"target: income\n")
    peaks.records.clear()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    s3.put_object(Bucket=stack.bucket, Key=f"raw/{dataset}/data.csv", Body=body)
    sfn = stack.client("stepfunctions")
    while True:
        executions = [e for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
                      if e["name"].startswith(dataset) and e["startDate"] >= started]
        if executions and executions[0]["status"] != "RUNNING":
            break
        time.sleep(1)
    status = executions[0]["status"]
    stages = {}
    for record in peaks.records:
        stages[record["function"]] = {"peak_mb": record["max_memory_mb"],
                                      "seconds": round(record["duration_ms"] / 1000, 2)}
    csv_mb = round(len(body) / 1e6, 2)
    print(f"{rows:>9,} rows {csv_mb:>7.1f} MB  {status}  "
          + "  ".join(f"{k.removesuffix('Function')} {v['peak_mb']:.0f} MB {v['seconds']:.0f} s"
                      for k, v in stages.items()),
          flush=True)
    run = {"rows": rows, "csv_mb": csv_mb, "status": status, "stages": stages,
           "upload_to_end_s": round((executions[0]["stopDate"] - executions[0]["startDate"]).total_seconds(), 2)}
    # the fit's own seconds (recorded with the version): the rest of the run is the stages around it
    metas = [k["Key"] for k in s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"models/{dataset}/").get("Contents", [])
             if k["Key"].endswith("/" + keys.VERSION_META)]
    if status == "SUCCEEDED" and metas:
        fit_s = json.loads(s3.get_object(Bucket=stack.bucket, Key=sorted(metas)[-1])["Body"].read())["train_seconds"]
        total = sum(v["seconds"] for v in stages.values())
        run.update(fit_seconds=fit_s, stage_seconds=round(total, 2),
                   outside_fit_share=round((total - fit_s) / total, 3))
        print(f"{'':>9}  upload -> end {run['upload_to_end_s']:.1f} s; stages {total:.1f} s, the fit {fit_s:.1f} s: "
              f"{run['outside_fit_share']:.0%} of the stages' time is outside the fit", flush=True)
    return run


def fit(runs: list[dict[str, Any]], limits: dict[str, int]) -> dict[str, Any]:
    table = {}
    for stage in STAGES:
        points = [(r["csv_mb"], r["stages"][stage]["peak_mb"]) for r in runs if stage in r["stages"]]
        if len(points) < 2:
            continue
        (x0, y0), (x1, y1) = points[0], points[-1]
        slope = (y1 - y0) / (x1 - x0) if x1 != x0 else 0.0
        base = y0 - slope * x0
        limit = limits[stage]
        largest = (limit - base) / slope if slope > 0 else float("inf")
        table[stage] = {
            "base_mb": round(base, 1),
            "mb_per_csv_mb": round(slope, 2),
            "memory_size_mb": limit,
            "largest_upload_mb": round(largest, 0) if largest != float("inf") else None,
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[48842, 200000, 500000])
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/stage_memory.json")
    args = parser.parse_args()

    peaks = _Peaks()
    logging.getLogger("stepml_local.lambda").addHandler(peaks)
    logging.getLogger("stepml_local.lambda").setLevel(logging.INFO)
    limits = configured_limits()
    with tempfile.TemporaryDirectory() as folder, \
            LocalStack(roomy_project(Path(folder)), port=0, api_port=0, stack_name="stepml-memory") as stack:
        runs = [run_once(stack, peaks, rows) for rows in args.rows]
    table = fit(runs, limits)
    print("\nstage        base MB  MB per CSV MB  MemorySize  largest upload")
    for stage, row in table.items():
        print(f"{stage.removesuffix('Function'):<12} {row['base_mb']:>7.0f}  {row['mb_per_csv_mb']:>13.2f}"
              f"  {row['memory_size_mb']:>10}  {row['largest_upload_mb'] or '-':>10} MB")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "note": "peak resident memory per stage (the offline stack's Max Memory Used), Adult rows resampled",
        "runs": runs,
        "fit": table,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
