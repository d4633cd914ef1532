"""Recipes x datasets, with AutoGluon beside them: hold-out metrics, fit seconds, single-row
predict latency and model size, side by side.

Datasets: the two seed datasets (Adult split the official way: its first 16,281 rows are UCI's
adult.test, the rest adult.data, ``split.test_rows``; California housing 80/20 with seed 42) and
the 30 real tables of bench/real_datasets.py (each with its own 80/20 hold-out, seed 0, given as
``split.test_file``, the config naming only the target). Each recipe runs through the same
library calls as the pipeline's stages (validate, split, fit, evaluate), with only a config; its
single-row latency is onnxruntime running the exported graph as serving runs it.

``autogluon``: AutoGluon's ``medium_quality`` preset with a fixed ``time_limit``, fitted on the
very rows and columns ``auto`` trains on and scored on the same test rows with stepml's own
metric code (bench/autogluon_runner.py, in .venv-autogluon: ``make autogluon-venv``). Its latency
is ``predictor.predict`` on a one-row DataFrame.

Usage: STEPML_DATA_DIR=../shared/datasets python bench/bench_models.py [--tune-seconds 120]
       [--autogluon-seconds 60] [--only adult iris] [--recipes auto autogluon] [--update]
       [--output bench/results/models.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from real_datasets import CATALOGUE, hold_out
from rich.console import Console
from rich.table import Table

from stepml import recipes
from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.evaluation import evaluate, metric_value
from stepml.preprocessing import class_labels, feature_schema, split, to_model_frame
from stepml.training import fit_recorded
from stepml.validation import read_csv, validate

ROOT = Path(__file__).resolve().parents[1]
AUTOGLUON_PYTHON = Path(os.environ.get("AUTOGLUON_PYTHON", ROOT / ".venv-autogluon" / "bin" / "python"))
#: AutoGluon's name for each stepml metric (``eval_metric``).
AUTOGLUON_METRIC = {"accuracy": "accuracy", "balanced_accuracy": "balanced_accuracy", "f1": "f1",
                    "roc_auc": "roc_auc", "rmse": "root_mean_squared_error", "mae": "mean_absolute_error",
                    "r2": "r2"}
#: One-row predictions timed through onnxruntime; the median is reported.
LATENCY_CALLS = 200
#: A recipe's fit under this many seconds is timed this many times (the same fit: seeded), and its
#: median reported: a 1-2 s fit moved by a third from one run to the next on these hosts.
REFIT_UNDER_SECONDS = 10.0
FIT_TIMINGS = 3
#: Paired bootstrap of the test rows (auto's or tune's predictions and AutoGluon's, resampled
#: together): the 95 % interval of the gap to AutoGluon that the test split's own noise allows.
BOOTSTRAP_RESAMPLES = 1000


@dataclass(frozen=True)
class Scored:
    """One recipe's predictions for the test rows, kept in memory to compare recipes row by row."""

    task: str
    metric: str
    y: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray | None
    classes: np.ndarray | None

    def score(self, rows: np.ndarray) -> float:
        """The metric on ``rows`` (indices, repeats allowed): accuracy, balanced accuracy and the
        errors in numpy (a thousand resamples of Adult's 16k rows through evaluation's full set of
        metrics took minutes), the others as evaluation computes them."""
        y, predicted = self.y[rows], self.predicted[rows]
        if self.metric in ("accuracy", "balanced_accuracy"):
            right = y == predicted
            if self.metric == "accuracy":
                return float(np.mean(right))
            codes = np.unique(y, return_inverse=True)[1]  # recall averaged over the classes present
            return float(np.mean(np.bincount(codes, weights=right) / np.bincount(codes)))
        if self.metric in ("rmse", "mae"):
            errors = np.asarray(predicted, dtype=float) - np.asarray(y, dtype=float)
            return float(np.sqrt(np.mean(errors ** 2)) if self.metric == "rmse" else np.mean(np.abs(errors)))
        return metric_value(self.task, self.metric, y, predicted,
                            None if self.probabilities is None else self.probabilities[rows], self.classes)


@dataclass(frozen=True)
class Dataset:
    """One benchmark dataset: how to read its upload (and held-out file), and its config."""

    name: str
    config: dict[str, Any]
    seed: bool  # a seed dataset: every recipe runs on it; the real tables run auto, tune, AutoGluon

    def read(self) -> tuple[pd.DataFrame, pd.DataFrame | None, str]:
        if self.seed:
            path = Path(os.environ["STEPML_DATA_DIR"]) / f"{self.name}.csv"
            return read_csv(path.read_bytes(), str(path)), None, str(path)
        (real,) = [d for d in CATALOGUE if d.name == self.name]
        training, held_out = hold_out(real.read())
        test = read_csv(held_out.to_csv(index=False).encode(), f"{self.name}/held_out.csv")
        return read_csv(training, f"{self.name}.csv"), test, f"{self.name}.csv"


DATASETS: dict[str, Dataset] = {
    "adult": Dataset("adult", {"target": "income", "split": {"test_rows": 16281}}, seed=True),
    "california_housing": Dataset(
        "california_housing", {"target": "median_house_value", "split": {"test_size": 0.2, "seed": 42}}, seed=True
    ),
    **{real.name: Dataset(real.name, {"target": real.target, "split": {"test_file": f"data/{real.name}/held_out.csv"}},
                          seed=False) for real in CATALOGUE},
}
#: Every registered recipe, and each tunable one tuned (``<name>+tune``).
RECIPES: dict[str, dict[str, Any]] = {
    **{name: {"recipe": name} for name in recipes.names()},
    **{f"{name}+tune": {"recipe": name, "tune": {"budget_seconds": None}} for name in recipes.tunable()},
    "autogluon": {"recipe": "auto"},  # auto's split and columns; AutoGluon fits them
}
#: Recipes run on the real tables (the seed recipes are the seed datasets' story).
REAL_RECIPES = ("auto", "auto+tune", "autogluon")
#: The issue's targets: metric -> (bound, "min" or "max").
TARGETS = {
    ("adult", "auto"): {"accuracy": (0.870, "min"), "roc_auc": (0.927, "min")},
    ("adult", "auto+tune"): {"accuracy": (0.873, "min")},
    ("california_housing", "auto"): {"rmse": (47_500, "max")},
    ("california_housing", "auto+tune"): {"rmse": (45_000, "max")},
}


@dataclass
class Prepared:
    """A dataset read and validated once: its frames, target, task and the pipeline's config."""

    frame: pd.DataFrame
    test_frame: pd.DataFrame | None
    source: str
    target: str
    task: str
    primary_metric: str


def prepare(dataset: Dataset) -> Prepared | str:
    frame, test_frame, source = dataset.read()
    try:
        report = validate(frame, DatasetConfig.from_dict({**dataset.config, "recipe": "auto"}), source)
    except ConfigError as exc:
        return str(exc)
    return Prepared(frame, test_frame, source, report["target"], report["task"], report["primary_metric"])


def run(dataset: Dataset, prepared: Prepared, recipe: str, args: argparse.Namespace) -> tuple[dict[str, Any], Scored | None]:
    settings = {**dataset.config, **RECIPES[recipe]}
    if "tune" in settings:
        settings["tune"] = {"budget_seconds": args.tune_seconds}
    config = DatasetConfig.from_dict(settings).with_metric(prepared.primary_metric)
    row: dict[str, Any] = {"dataset": dataset.name, "recipe": recipe}
    target, task = prepared.target, prepared.task
    try:
        validate(prepared.frame, config, prepared.source)  # a recipe may refuse the task (seed-b)
    except ConfigError as exc:
        return {**row, "skipped": str(exc)}, None
    train, test = split(prepared.frame, target, task, config, prepared.test_frame)
    schema = feature_schema(train, target)
    row.update(task=task, train_rows=len(train), test_rows=len(test), primary_metric=config.metric_for(task))
    if recipe == "autogluon":
        result, scored = autogluon(train, test, target, task, config.metric_for(task), args)
        return {**row, **result}, scored
    started = time.perf_counter()
    fitted = fit_recorded(train, target, schema, task, config)
    pipeline, tuning = fitted.pipeline, fitted.tuning
    seconds = time.perf_counter() - started
    if seconds < REFIT_UNDER_SECONDS and "tune" not in settings:
        # a fit of a second or two moves by a third with the host's load: the median of three
        refits = [seconds]
        for _ in range(FIT_TIMINGS - 1):
            started = time.perf_counter()
            fit_recorded(train, target, schema, task, config)
            refits.append(time.perf_counter() - started)
        seconds = statistics.median(refits)
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    evaluation = evaluate(pipeline, train, test, target, schema, task, config.metric_for(task))
    row.update(
        metrics={k: _round(k, v) for k, v in evaluation["metrics"].items()},
        baseline={k: _round(k, v) for k, v in evaluation["baseline"].items()},
        train_seconds=round(seconds, 1),
        predict_row_ms=round(onnx_row_ms(pipeline, test, schema, task), 3),
        model_bytes=len(buffer.getvalue()),
    )
    if tuning:
        row["tuning"] = tuning
    if fitted.auto_choice:  # rounds, target transform, model family and their validation scores
        row["auto_choice"] = fitted.auto_choice
    scored = test_predictions(pipeline, train, test, target, schema, task, config.metric_for(task))
    targets = TARGETS.get((dataset.name, recipe))
    if targets:
        row["targets"] = {
            name: {"bound": bound, "kind": kind, "met": (evaluation["metrics"][name] >= bound)
                   if kind == "min" else (evaluation["metrics"][name] <= bound)}
            for name, (bound, kind) in targets.items()
        }
    return row, scored


def test_predictions(pipeline: Any, train: pd.DataFrame, test: pd.DataFrame, target: str,
                     schema: list[dict[str, Any]], task: str, metric: str) -> Scored:
    """The fitted pipeline's predictions for the test rows, as evaluate scores them."""
    features = to_model_frame(test, schema)
    if task == "regression":
        return Scored(task, metric, test[target].astype(float).to_numpy(), np.asarray(pipeline.predict(features)),
                      None, None)
    classes = np.asarray(pipeline.classes_)
    probabilities = np.asarray(pipeline.predict_proba(features))
    return Scored(task, metric, class_labels(test[target]).to_numpy(), classes[np.argmax(probabilities, axis=1)],
                  probabilities, classes)


def gap_interval(ours: Scored, theirs: Scored, resamples: int = BOOTSTRAP_RESAMPLES) -> list[float] | None:
    """The 95 % interval of our gap to AutoGluon (as ``side_by_side`` measures it: a difference, or
    a ratio for RMSE/MAE) over paired bootstrap resamples of the test rows; None without two rows."""
    rows = len(ours.y)
    if rows < 2 or len(theirs.y) != rows:
        return None
    error = ours.metric in ("rmse", "mae")
    generator = np.random.default_rng(0)
    gaps = []
    for _ in range(resamples):
        drawn = generator.integers(0, rows, rows)
        try:
            a, b = ours.score(drawn), theirs.score(drawn)
        except ValueError:  # e.g. ROC AUC on a resample holding one class only
            continue
        gaps.append(a / b - 1 if error and b else a - b)
    if len(gaps) < resamples // 2:
        return None
    low, high = np.percentile(gaps, [2.5, 97.5])
    return [round(float(low), 4), round(float(high), 4)]


def onnx_row_ms(pipeline: Any, test: pd.DataFrame, schema: list[dict[str, Any]], task: str) -> float:
    """Median milliseconds of one single-row ``session.run`` of the exported graph, as serving runs it."""
    from stepml.onnx_export import export, reference
    from stepml.onnx_model import feeds
    from stepml.serving import _session

    session = _session(export(pipeline, schema, task))
    inputs = feeds(reference(pipeline, test.head(1), schema, task)["columns"], schema)
    session.run(None, inputs)
    timings = []
    for _ in range(LATENCY_CALLS):
        started = time.perf_counter()
        session.run(None, inputs)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings) * 1000


def autogluon(train: pd.DataFrame, test: pd.DataFrame, target: str, task: str, metric: str,
              args: argparse.Namespace) -> tuple[dict[str, Any], Scored | None]:
    """AutoGluon fitted on ``train`` in its own venv; its test predictions scored as stepml scores."""
    if not AUTOGLUON_PYTHON.is_file():
        return {"skipped": f"{AUTOGLUON_PYTHON} not found: make autogluon-venv"}, None
    labels = class_labels if task == "classification" else (lambda values: values.astype(float))
    y_train, y_test = labels(train[target]), labels(test[target])
    with tempfile.TemporaryDirectory(prefix="stepml-autogluon-") as folder:
        work = Path(folder)
        for name, frame, y in (("train", train, y_train), ("test", test, y_test)):
            frame.assign(**{target: y.astype(str) if task == "classification" else y}).to_csv(
                work / f"{name}.csv", index=False)
        request = {"train": str(work / "train.csv"), "test": str(work / "test.csv"), "target": target, "task": task,
                   "eval_metric": AUTOGLUON_METRIC[metric], "time_limit": args.autogluon_seconds,
                   "num_cpus": args.autogluon_cpus, "presets": args.autogluon_presets,
                   "model_dir": str(work / "model"), "output": str(work / "result.json")}
        (work / "request.json").write_text(json.dumps(request))
        done = subprocess.run([str(AUTOGLUON_PYTHON), str(ROOT / "bench" / "autogluon_runner.py"),
                               str(work / "request.json")], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            return {"failed": f"autogluon_runner exited {done.returncode}: {done.stderr[-1500:]}"}, None
        result = json.loads((work / "result.json").read_text())
        model_bytes = sum(p.stat().st_size for p in (work / "model").rglob("*") if p.is_file())
    if task == "classification":
        classes = np.array(sorted(y_train.unique()))
        by_text = {str(c): c for c in classes}
        predicted = np.array([by_text.get(p, p) for p in result["predictions"]], dtype=object)
        order = [result["classes"].index(str(c)) for c in classes]
        probabilities = np.asarray(result["probabilities"], dtype=float)[:, order]
        metrics = {name: metric_value(task, name, y_test.to_numpy(), predicted, probabilities, classes)
                   for name in ("accuracy", "balanced_accuracy", "f1", "roc_auc")}
        scored = Scored(task, metric, y_test.to_numpy(), predicted, probabilities, classes)
    else:
        predicted = np.asarray(result["predictions"], dtype=float)
        metrics = {name: metric_value(task, name, y_test.to_numpy(), predicted) for name in ("rmse", "mae", "r2")}
        scored = Scored(task, metric, y_test.to_numpy(), predicted, None, None)
    return {"metrics": {k: _round(k, v) for k, v in metrics.items()}, "train_seconds": round(result["fit_seconds"], 1),
            "predict_row_ms": round(result["predict_row_ms"], 3), "model_bytes": model_bytes,
            "autogluon": {"version": result["autogluon"], "presets": args.autogluon_presets,
                          "time_limit": args.autogluon_seconds, "num_cpus": args.autogluon_cpus,
                          "best_model": result["best_model"], "models": result["models"],
                          "leaderboard": result.get("leaderboard", [])}}, scored


def _round(name: str, value: float) -> float:
    return round(value, 1) if name in ("rmse", "mae") and abs(value) >= 100 else round(value, 4)


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="stepml recipes x seed datasets (hold-out test split)")
    for column in ("dataset", "recipe", "accuracy", "roc_auc", "bal. acc", "f1", "rmse $", "mae $", "r2",
                   "train s", "model size", "targets"):
        out.add_column(column, justify="left" if column in ("dataset", "recipe", "targets") else "right")
    for row in rows:
        if row["dataset"] not in ("adult", "california_housing") or row["recipe"] == "autogluon":
            continue
        if "skipped" in row:
            out.add_row(row["dataset"], row["recipe"], *["-"] * 9, "n/a (see JSON: skipped)")
            continue
        def fmt(name: str, spec: str, metrics: dict[str, float] = row["metrics"]) -> str:
            return format(metrics[name], spec) if name in metrics else "-"

        targets = row.get("targets", {})
        verdict = ", ".join(f"{k} {'ok' if t['met'] else 'MISSED'}" for k, t in targets.items())
        out.add_row(
            row["dataset"], row["recipe"], fmt("accuracy", ".4f"), fmt("roc_auc", ".4f"),
            fmt("balanced_accuracy", ".4f"), fmt("f1", ".4f"), fmt("rmse", ",.0f"), fmt("mae", ",.0f"),
            fmt("r2", ".4f"), f"{row['train_seconds']:.1f}", f"{row['model_bytes'] / 1e6:.2f} MB", verdict,
        )
    return out


def with_intervals(scored: dict[str, tuple[dict[str, Any], Scored]]) -> None:
    """Record on auto's and tune's rows the bootstrap interval of their gap to the AutoGluon row
    fitted in the same run (with AutoGluon's metric, so that a later AutoGluon row leaves it out)."""
    if "autogluon" not in scored:
        return
    theirs_row, theirs = scored["autogluon"]
    for recipe in ("auto", "auto+tune"):
        if recipe in scored and "autogluon_gap" not in scored[recipe][0]:
            row, ours = scored[recipe]
            interval = gap_interval(ours, theirs)
            if interval is not None:
                row["autogluon_gap"] = {"autogluon_metric": theirs_row["metrics"][theirs.metric],
                                        "interval95": interval, "resamples": BOOTSTRAP_RESAMPLES}


def side_by_side(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per dataset: the primary metric, fit seconds and single-row ms of auto, auto+tune and AutoGluon,
    and auto's gap to AutoGluon (accuracy points, or RMSE/MAE as a ratio)."""
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["recipe"] in REAL_RECIPES and "metrics" in row:
            entry = found.setdefault(row["dataset"], {"metric": row["primary_metric"]})
            entry[row["recipe"]] = {"metric": row["metrics"][row["primary_metric"]], "train_seconds": row["train_seconds"],
                                    "predict_row_ms": row["predict_row_ms"]}
            if "autogluon_gap" in row:
                entry[row["recipe"]]["autogluon_gap"] = row["autogluon_gap"]
    for entry in found.values():
        if "auto" in entry and "autogluon" in entry:
            ours, theirs = entry["auto"]["metric"], entry["autogluon"]["metric"]
            entry["auto_gap"] = round(ours / theirs - 1, 4) if entry["metric"] in ("rmse", "mae") else round(ours - theirs, 4)
            entry["auto_time_share"] = round(entry["auto"]["train_seconds"] / max(entry["autogluon"]["train_seconds"], 1e-9), 3)
            entry["targets"] = model_quality_targets(entry)
        for recipe, key in (("auto", "auto_gap_interval95"), ("auto+tune", "tune_gap_interval95")):
            measured = entry.get(recipe, {}).pop("autogluon_gap", None)
            # measured against the AutoGluon fit the entry shows (not one an --update replaced since)
            if measured and "autogluon" in entry and measured["autogluon_metric"] == entry["autogluon"]["metric"]:
                entry[key] = measured["interval95"]
    return found


#: The model-quality targets, against AutoGluon on the same split: ``auto`` within this many
#: accuracy points (classification) or this share of RMSE/MAE (regression)...
AUTO_WITHIN = {"accuracy": 0.005, "error": 0.03}
#: ...in at most this share of AutoGluon's fit time; ``tune`` at least level with AutoGluon.
AUTO_TIME_SHARE = 0.1


def model_quality_targets(entry: dict[str, Any]) -> dict[str, bool]:
    """Which targets one dataset's side-by-side entry meets (``tune_level`` only when tune ran)."""
    error = entry["metric"] in ("rmse", "mae")
    bound = AUTO_WITHIN["error" if error else "accuracy"]
    met = {"auto_within": entry["auto_gap"] <= bound if error else entry["auto_gap"] >= -bound,
           "auto_time": entry["auto_time_share"] <= AUTO_TIME_SHARE}
    if "auto+tune" in entry:
        tuned, theirs = entry["auto+tune"]["metric"], entry["autogluon"]["metric"]
        met["tune_level"] = tuned <= theirs if error else tuned >= theirs
    return met


def comparison_table(summary: dict[str, dict[str, Any]]) -> Table:
    out = Table(title="auto, auto+tune and AutoGluon (medium_quality) on the same splits")
    for column in ("dataset", "metric", "auto", "auto+tune", "AutoGluon", "auto gap [95% bootstrap]", "fit s auto / tune / AG",
                   "1-row ms auto / tune / AG", "targets missed"):
        out.add_column(column, justify="left" if column in ("dataset", "metric") else "right")
    for name, entry in summary.items():
        def value(recipe: str, key: str, spec: str, entry: dict[str, Any] = entry) -> str:
            return format(entry[recipe][key], spec) if recipe in entry else "-"

        spec = ",.4g" if entry["metric"] in ("rmse", "mae") else ".4f"
        gap = entry.get("auto_gap")
        def as_gap(value: float, entry: dict[str, Any] = entry) -> str:
            return f"{value:+.1%}" if entry["metric"] in ("rmse", "mae") else f"{value:+.4f}"

        gap_text = "-" if gap is None else as_gap(gap)
        if gap is not None and "auto_gap_interval95" in entry:
            gap_text += " [{}, {}]".format(*map(as_gap, entry["auto_gap_interval95"]))
        out.add_row(name, entry["metric"], value("auto", "metric", spec), value("auto+tune", "metric", spec),
                    value("autogluon", "metric", spec), gap_text,
                    " / ".join(value(r, "train_seconds", ".1f") for r in REAL_RECIPES),
                    " / ".join(value(r, "predict_row_ms", ".2f") for r in REAL_RECIPES),
                    ", ".join(name for name, met in entry.get("targets", {}).items() if not met) or "-")
    return out


def merged(rows: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` and the ``previous`` rows of other (dataset, recipe) pairs (``--update``), in bench order."""
    fresh = {(r["dataset"], r["recipe"]) for r in rows}
    kept = [r for r in previous if (r["dataset"], r["recipe"]) not in fresh]
    order = list(DATASETS)
    return sorted(kept + rows, key=lambda r: (order.index(r["dataset"]) if r["dataset"] in order else len(order),
                                              list(RECIPES).index(r["recipe"]) if r["recipe"] in RECIPES else 99))


def write(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Write the results (after every row: an interrupted run keeps what it measured)."""
    summary = side_by_side(rows)
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "tune_seconds": args.tune_seconds,
        "autogluon": {"presets": args.autogluon_presets, "time_limit": args.autogluon_seconds,
                      "num_cpus": args.autogluon_cpus},
        "rows": rows,
        "side_by_side": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune-seconds", type=int, default=120)
    parser.add_argument("--autogluon-seconds", type=int, default=60, help="AutoGluon's time_limit per dataset")
    parser.add_argument("--autogluon-cpus", default="auto", help="AutoGluon's num_cpus (default: all)")
    parser.add_argument("--autogluon-presets", default="medium_quality")
    parser.add_argument("--only", nargs="*", choices=sorted(DATASETS))
    parser.add_argument("--recipes", nargs="*", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--update", action="store_true",
                        help="keep the output file's other rows: replace only the (dataset, recipe) rows run now")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "models.json")
    args = parser.parse_args()
    if args.autogluon_cpus != "auto":
        args.autogluon_cpus = int(args.autogluon_cpus)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    console = Console(width=max(Console().width, 150))
    previous = json.loads(args.output.read_text())["rows"] if args.update and args.output.is_file() else []
    rows: list[dict[str, Any]] = []
    for name in args.only or list(DATASETS):
        dataset = DATASETS[name]
        with console.status(f"{name}: reading"):
            prepared = prepare(dataset)
        scored: dict[str, tuple[dict[str, Any], Scored]] = {}  # this run's rows and test predictions
        for recipe in args.recipes:
            if not dataset.seed and recipe not in REAL_RECIPES:
                continue
            if isinstance(prepared, str):
                rows.append({"dataset": name, "recipe": recipe, "skipped": prepared})
                continue
            with console.status(f"{name} / {recipe}"):
                row, predictions = run(dataset, prepared, recipe, args)
                rows.append(row)
                if predictions is not None and "metrics" in row:
                    scored[recipe] = (row, predictions)
                    with_intervals(scored)
            done = rows[-1]
            if "metrics" in done:
                console.log(f"{name} / {recipe}: {done['primary_metric']} {done['metrics'][done['primary_metric']]}, "
                            f"fit {done['train_seconds']} s")
            else:
                console.log(f"{name} / {recipe}: {done.get('skipped') or done.get('failed')}")
            write(merged(rows, previous), args)
    rows = merged(rows, previous)
    if any(row["dataset"] in ("adult", "california_housing") for row in rows):
        console.print(table(rows))
    console.print(comparison_table(write(rows, args)))
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
