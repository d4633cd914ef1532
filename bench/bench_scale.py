"""Both engines from 50k to 10M rows offline: per-stage seconds and peak memory, and where each stops.

For every size an Adult-like CSV (Adult's rows resampled, the generator of
bench/bench_stage_memory.py, written in chunks) is uploaded twice to one offline stack built from
the project's template with every function raised to 10,240 MB (so nothing is stopped while
measuring; the configured limits are compared afterwards):

* ``engine: lambda`` - each stage runs in its own Lambda worker process; the offline stack
  records its duration and peak resident memory (``Max Memory Used``). A stage whose peak is over
  its template ``MemorySize``, or that ran into its ``Timeout`` (enforced offline), **stops** the
  Lambda path at that size.
* ``engine: spark`` - the Glue job's script with local PySpark (``local[2]``): seconds from start
  to end, rows/s, and the peak of the summed resident memory of its process tree (the job's
  Python, Spark's JVM and its Python workers; shared pages counted once per process), sampled
  every :data:`POLL_SECONDS`; then Verify, Evaluate and Promote as Lambda stages.

From the Lambda runs it fits ``peak MB`` and ``seconds`` per stage as lines in the CSV's size and
reports the largest upload each stage's MemorySize and Timeout allow: the smallest of them is the
``SparkThresholdBytes`` the measurements imply. Results: a table, and ``bench/results/scale.json``.

    STEPML_DATA_DIR=../shared/datasets python bench/bench_scale.py --sizes 50000 200000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_stage_memory import _Peaks, adult_like, roomy_project

from stepml.local import LocalStack

SIZES = (50_000, 200_000, 500_000, 2_000_000, 10_000_000)
#: Rows generated per chunk of a large CSV (a chunk is built in memory, then appended).
CHUNK_ROWS = 500_000
#: How often the Spark job's process tree is sampled.
POLL_SECONDS = 0.25
LAMBDA_STAGES = ("ValidateFunction", "PreprocessFunction", "TrainFunction", "VerifyFunction",
                 "EvaluateFunction", "PromoteFunction")
SPARK_MODULE = "stepml.spark_job"


def configured_limits() -> dict[str, dict[str, int]]:
    """Each pipeline function's MemorySize (MB) and Timeout (s), as the template hands them to the
    state machine (``<Function>MemorySize`` / ``<Function>Timeout`` substitutions)."""
    text = (ROOT / "template.yaml").read_text()
    limits: dict[str, dict[str, int]] = {}
    for stage in LAMBDA_STAGES:
        memory = re.search(rf'{stage}MemorySize: "(\d+)"', text)
        timeout = re.search(rf'{stage}Timeout: "(\d+)"', text)
        if memory and timeout:
            limits[stage] = {"memory_mb": int(memory.group(1)), "timeout_s": int(timeout.group(1))}
    return limits


def write_csv(rows: int, path: Path) -> int:
    """An Adult-like CSV of ``rows`` rows at ``path``, built chunk by chunk; its size in bytes."""
    with path.open("wb") as out:
        done, chunk = 0, 0
        while done < rows:
            part = min(CHUNK_ROWS, rows - done)
            body = adult_like(part, seed=chunk)
            out.write(body if chunk == 0 else body.split(b"\n", 1)[1])
            done, chunk = done + part, chunk + 1
    return path.stat().st_size


# -- the Spark job's process tree -------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _is_spark_job(pid: int) -> bool:
    try:
        return SPARK_MODULE in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False


class SparkJobWatch(threading.Thread):
    """Samples the Glue job processes this process starts: peak summed RSS, first and last seen."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mb = 0.0
        self.first: float | None = None
        self.last: float | None = None
        self._done = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self._done.is_set():
            tree = _children()
            descendants, todo = [], list(tree.get(me, []))
            while todo:
                pid = todo.pop()
                descendants.append(pid)
                todo.extend(tree.get(pid, []))
            roots = [pid for pid in descendants if _is_spark_job(pid)]
            if roots:
                now = time.perf_counter()
                self.first = self.first if self.first is not None else now
                self.last = now
                total, todo = 0.0, list(roots)
                while todo:
                    pid = todo.pop()
                    total += _rss_mb(pid)
                    todo.extend(tree.get(pid, []))
                self.peak_mb = max(self.peak_mb, total)
            self._done.wait(POLL_SECONDS)

    def stop(self) -> None:
        self._done.set()
        self.join()


# -- one run ----------------------------------------------------------------------------------------


def run_once(stack: LocalStack, peaks: _Peaks, csv: Path, rows: int, engine: str) -> dict[str, Any]:
    dataset = f"scale-{engine}-{rows}"
    s3 = stack.client("s3")
    s3.put_object(Bucket=stack.bucket, Key=f"config/{dataset}.yaml",
                  Body=f"target: income\nengine: {engine}\n".encode())
    peaks.records.clear()
    watch = SparkJobWatch()
    watch.start()
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    clock = time.perf_counter()
    with csv.open("rb") as body:
        s3.put_object(Bucket=stack.bucket, Key=f"raw/{dataset}/data.csv", Body=body)
    sfn = stack.client("stepfunctions")
    while True:
        executions = [e for e in sfn.list_executions(stateMachineArn=stack.state_machine_arn)["executions"]
                      if e["name"].startswith(dataset) and e["startDate"] >= started]
        if executions and executions[0]["status"] != "RUNNING":
            break
        time.sleep(1)
    total_seconds = time.perf_counter() - clock
    watch.stop()
    described = sfn.describe_execution(executionArn=executions[0]["executionArn"])
    stages: dict[str, dict[str, Any]] = {}
    for record in peaks.records:
        name = record["function"].removesuffix("Function")
        stages[name] = {"peak_mb": round(record["max_memory_mb"]),
                        "seconds": round(record["duration_ms"] / 1000, 2)}
    result: dict[str, Any] = {"engine": engine, "rows": rows, "csv_mb": round(csv.stat().st_size / 1e6, 1),
                              "status": described["status"], "seconds": round(total_seconds, 1), "stages": stages}
    if described["status"] != "SUCCEEDED":
        result["error"] = described.get("error")
        result["cause"] = (described.get("cause") or "")[:500]
    if engine == "spark" and watch.first is not None and watch.last is not None:
        job_seconds = watch.last - watch.first
        result["spark_job"] = {"seconds": round(job_seconds, 1), "peak_mb": round(watch.peak_mb),
                               "rows_per_second": round(rows / job_seconds) if job_seconds > 0 else None}
    return result


def stops(run: dict[str, Any], limits: dict[str, dict[str, int]]) -> list[str]:
    """Why the Lambda path could not take this upload on AWS: stages over their limits, a failed run."""
    reasons = []
    for stage, measured in run["stages"].items():
        limit = limits.get(f"{stage}Function")
        if limit is None:
            continue
        if measured["peak_mb"] > limit["memory_mb"]:
            reasons.append(f"{stage} {measured['peak_mb']} MB > MemorySize {limit['memory_mb']}")
        if measured["seconds"] >= limit["timeout_s"]:
            reasons.append(f"{stage} {measured['seconds']} s >= Timeout {limit['timeout_s']}")
    if run["status"] != "SUCCEEDED":
        reasons.append(f"run {run['status']}: {run.get('error')}")
    return reasons


def implied_threshold(runs: list[dict[str, Any]], limits: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Per stage, lines through (CSV MB, peak MB) and (CSV MB, seconds) over the measured sizes;
    the largest upload its MemorySize and its Timeout allow; the smallest over all stages."""
    per_stage: dict[str, Any] = {}
    for stage in (s.removesuffix("Function") for s in LAMBDA_STAGES):
        points = [(r["csv_mb"], r["stages"][stage]) for r in runs if stage in r["stages"]]
        if len(points) < 2 or f"{stage}Function" not in limits:
            continue
        limit = limits[f"{stage}Function"]
        largest = {}
        for measure, bound in (("peak_mb", limit["memory_mb"]), ("seconds", limit["timeout_s"])):
            (x0, p0), (x1, p1) = points[0], points[-1]
            slope = (p1[measure] - p0[measure]) / (x1 - x0) if x1 != x0 else 0.0
            base = p0[measure] - slope * x0
            largest[measure] = round((bound - base) / slope) if slope > 0 else None
        per_stage[stage] = {"largest_upload_mb_by_memory": largest["peak_mb"],
                            "largest_upload_mb_by_timeout": largest["seconds"], **limit}
    bounds = [(mb, stage, kind) for stage, row in per_stage.items()
              for kind, mb in (("memory", row["largest_upload_mb_by_memory"]),
                               ("timeout", row["largest_upload_mb_by_timeout"])) if mb is not None]
    if not bounds:
        return {"stages": per_stage}
    mb, stage, kind = min(bounds)
    return {"stages": per_stage, "spark_threshold_bytes": int(mb * 1e6), "decided_by": f"{stage} ({kind})"}


def print_tables(runs: list[dict[str, Any]], threshold: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(Console().width, 170))  # the tables' width also when piped to a file
    stages = [s.removesuffix("Function") for s in LAMBDA_STAGES]
    table = Table(title="Lambda path (engine: lambda): seconds/peak MB per stage")
    for column in ("rows", "CSV MB", *stages, "total s", "rows/s", "stops"):
        table.add_column(column, justify="right" if column != "stops" else "left")
    for run in (r for r in runs if r["engine"] == "lambda"):
        cells = [f"{run['stages'][s]['seconds']:.0f}s/{run['stages'][s]['peak_mb']:,}" if s in run["stages"]
                 else "-" for s in stages]
        table.add_row(f"{run['rows']:,}", f"{run['csv_mb']:.0f}", *cells, f"{run['seconds']:.0f}",
                      f"{run['rows'] / run['seconds']:,.0f}", "; ".join(run["stops"]) or "no")
    console.print(table)
    table = Table(title="Spark path (engine: spark, local[2]): the Glue job, then Verify / Evaluate / Promote")
    for column in ("rows", "CSV MB", "job s", "job peak MB", "job rows/s", "Verify", "Evaluate", "Promote",
                   "total s", "status"):
        table.add_column(column, justify="right" if column != "status" else "left")
    for run in (r for r in runs if r["engine"] == "spark"):
        job = run.get("spark_job", {})
        cells = [f"{run['stages'][s]['seconds']:.0f}s/{run['stages'][s]['peak_mb']:,}" if s in run["stages"]
                 else "-" for s in ("Verify", "Evaluate", "Promote")]
        table.add_row(f"{run['rows']:,}", f"{run['csv_mb']:.0f}", str(job.get("seconds", "-")),
                      f"{job.get('peak_mb', 0):,}", f"{job.get('rows_per_second') or 0:,}", *cells,
                      f"{run['seconds']:.0f}", run["status"] if run["status"] == "SUCCEEDED"
                      else f"{run['status']}: {run.get('error')}")
    console.print(table)
    if "spark_threshold_bytes" in threshold:
        console.print(f"Implied SparkThresholdBytes: {threshold['spark_threshold_bytes']:,} "
                      f"(the Lambda path's first limit: {threshold['decided_by']}, from lines through the sizes run)")


def measure(stack: LocalStack, peaks: _Peaks, folder: Path, sizes: list[int], engines: list[str],
            limits: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    runs = []
    for rows in sizes:
        csv = folder / f"adult-{rows}.csv"
        write_csv(rows, csv)
        for engine in engines:
            run = run_once(stack, peaks, csv, rows, engine)
            run["stops"] = stops(run, limits) if engine == "lambda" else []
            runs.append(run)
            print(json.dumps(run), flush=True)
        csv.unlink()
    return runs


def merged(runs: list[dict[str, Any]], earlier: list[Path], limits: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    """This run's results and those of earlier result files, one per (engine, rows) - the newest
    wins - ordered by engine then rows. A run without its own date takes its file's."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    by_key: dict[tuple[str, int], dict[str, Any]] = {}
    for path in earlier:
        saved = json.loads(path.read_text())
        for run in saved["runs"]:
            run.setdefault("measured", saved["measured"])
            if run["engine"] == "lambda":
                run["stops"] = stops(run, limits)
            by_key[(run["engine"], run["rows"])] = run
    for run in runs:
        by_key[(run["engine"], run["rows"])] = {**run, "measured": now}
    return [by_key[key] for key in sorted(by_key, key=lambda k: (k[0] != "lambda", k[1]))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="rows per upload")
    parser.add_argument("--engines", nargs="+", default=["lambda", "spark"], choices=["lambda", "spark"])
    parser.add_argument("--spark-driver-memory", default="4g",
                        help="the local Spark JVM's heap (local mode: driver and executors in one JVM)")
    parser.add_argument("--output", type=Path, default=ROOT / "bench/results/scale.json")
    parser.add_argument("--merge", type=Path, nargs="*", default=[], metavar="JSON",
                        help="earlier results of this bench (e.g. a 10M Spark run) to keep beside this run's: "
                             "a (engine, rows) measured now replaces theirs; each run keeps its date")
    args = parser.parse_args()
    if "STEPML_DATA_DIR" not in os.environ:
        parser.error("set STEPML_DATA_DIR to the folder holding adult.csv (e.g. ../shared/datasets)")
    # the Glue job's process inherits this (stepml.local.glue_runner), and PySpark reads it at start
    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--driver-memory {args.spark_driver_memory} pyspark-shell"

    peaks = _Peaks()
    logging.getLogger("stepml_local.lambda").addHandler(peaks)
    logging.getLogger("stepml_local.lambda").setLevel(logging.INFO)
    limits = configured_limits()
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder) / "project"
        project.mkdir()
        with LocalStack(roomy_project(project), port=0, api_port=0, stack_name="stepml-scale") as stack:
            runs = measure(stack, peaks, Path(folder), args.sizes, args.engines, limits)
    runs = merged(runs, args.merge, limits)
    threshold = implied_threshold([r for r in runs if r["engine"] == "lambda" and r["status"] == "SUCCEEDED"], limits)
    print_tables(runs, threshold)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "measured": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "note": "Adult rows resampled; Lambda stages in their own worker processes at 10,240 MB (limits compared "
                "after); the Spark job with local PySpark local[2], peak = summed RSS of its process tree",
        "limits": limits,
        "runs": runs,
        "threshold": threshold,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
