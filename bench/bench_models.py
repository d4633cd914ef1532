"""Recipes x seed datasets: hold-out metrics, training seconds and model size, side by side.

Adult is split the official way (its first 16,281 rows are UCI's adult.test, the rest adult.data:
``split.test_rows``); California housing 80/20 with seed 42. Each recipe runs through the same
library calls as the pipeline's stages (validate, split, fit, evaluate), with only a config.

Usage: STEPML_DATA_DIR=../shared/datasets python bench/bench_models.py [--tune-seconds 120]
       [--only adult] [--output bench/results/models.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import joblib
from rich.console import Console
from rich.table import Table

from stepml import recipes
from stepml.config import DatasetConfig
from stepml.errors import ConfigError
from stepml.evaluation import evaluate
from stepml.preprocessing import feature_schema, split
from stepml.training import fit_with_config
from stepml.validation import read_csv, validate

ROOT = Path(__file__).resolve().parents[1]
DATASETS: dict[str, dict[str, Any]] = {
    "adult": {"file": "adult.csv", "config": {"target": "income", "split": {"test_rows": 16281}}},
    "california_housing": {
        "file": "california_housing.csv",
        "config": {"target": "median_house_value", "split": {"test_size": 0.2, "seed": 42}},
    },
}
#: Every registered recipe, and each tunable one tuned (``<name>+tune``).
RECIPES: dict[str, dict[str, Any]] = {
    **{name: {"recipe": name} for name in recipes.names()},
    **{f"{name}+tune": {"recipe": name, "tune": {"budget_seconds": None}} for name in recipes.tunable()},
}
#: The issue's targets: metric -> (bound, "min" or "max").
TARGETS = {
    ("adult", "auto"): {"accuracy": (0.870, "min"), "roc_auc": (0.927, "min")},
    ("adult", "auto+tune"): {"accuracy": (0.873, "min")},
    ("california_housing", "auto"): {"rmse": (47_500, "max")},
    ("california_housing", "auto+tune"): {"rmse": (45_000, "max")},
}


def run(dataset: str, recipe: str, tune_seconds: int) -> dict[str, Any]:
    spec = DATASETS[dataset]
    settings = {**spec["config"], **RECIPES[recipe]}
    if "tune" in settings:
        settings["tune"] = {"budget_seconds": tune_seconds}
    config = DatasetConfig.from_dict(settings)
    path = Path(os.environ["STEPML_DATA_DIR"]) / spec["file"]
    frame = read_csv(path.read_bytes(), str(path))
    row: dict[str, Any] = {"dataset": dataset, "recipe": recipe}
    try:
        report = validate(frame, config, str(path))
    except ConfigError as exc:
        return {**row, "skipped": str(exc)}
    target, task = report["target"], report["task"]
    train, test = split(frame, target, task, config)
    schema = feature_schema(train, target)
    started = time.perf_counter()
    pipeline, tuning = fit_with_config(train, target, schema, task, config)
    seconds = time.perf_counter() - started
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer, compress=3)
    evaluation = evaluate(pipeline, train, test, target, schema, task, config.metric_for(task))
    row.update(
        task=task,
        train_rows=len(train),
        test_rows=len(test),
        metrics={k: _round(k, v) for k, v in evaluation["metrics"].items()},
        baseline={k: _round(k, v) for k, v in evaluation["baseline"].items()},
        train_seconds=round(seconds, 1),
        model_bytes=len(buffer.getvalue()),
    )
    if tuning:
        row["tuning"] = tuning
    targets = TARGETS.get((dataset, recipe))
    if targets:
        row["targets"] = {
            name: {"bound": bound, "kind": kind, "met": (evaluation["metrics"][name] >= bound)
                   if kind == "min" else (evaluation["metrics"][name] <= bound)}
            for name, (bound, kind) in targets.items()
        }
    return row


def _round(name: str, value: float) -> float:
    return round(value, 1) if name in ("rmse", "mae") else round(value, 4)


def table(rows: list[dict[str, Any]]) -> Table:
    out = Table(title="stepml recipes x seed datasets (hold-out test split)")
    for column in ("dataset", "recipe", "accuracy", "roc_auc", "bal. acc", "f1", "rmse $", "mae $", "r2",
                   "train s", "model size", "targets"):
        out.add_column(column, justify="left" if column in ("dataset", "recipe", "targets") else "right")
    for row in rows:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune-seconds", type=int, default=120)
    parser.add_argument("--only", choices=sorted(DATASETS))
    parser.add_argument("--recipes", nargs="*", choices=sorted(RECIPES), default=list(RECIPES))
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "models.json")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    rows = []
    for dataset in [args.only] if args.only else list(DATASETS):
        for recipe in args.recipes:
            with console.status(f"{dataset} / {recipe}"):
                rows.append(run(dataset, recipe, args.tune_seconds))
    console.print(table(rows))
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "tune_seconds": args.tune_seconds,
        "rows": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
