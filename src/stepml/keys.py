"""The S3 key layout: one place that knows where each thing lives in the data bucket.

``raw/<dataset>/<file>.csv``            uploads (each starts a pipeline run)
``config/<dataset>.yaml``               optional per-dataset config
``data/<…>.csv``                          other inputs a run reads (``split.test_file``): no run starts
``runs/<dataset>/<run>/validation.json`` the validation report of one run
``preprocessed/<dataset>/<run>/…``       the upload as Validate parsed it, the cleaned train/test
                                         splits (Parquet) and their schema
``runs/<dataset>/<run>/spark-result.json`` the Spark job's run state (the Spark path only)
``glue/stepml_spark_job.py``, ``glue/stepml.zip`` the Glue job's script and library (make deploy)
``preprocessed/<dataset>/<run>/…``       cleaned train/test splits and their schema
``staging/<dataset>/<run>/…``            a trained pipeline before it is registered
``deliveries/<dataset>/<sha256>.json``   which run took each delivered upload (at-least-once events)
``models/<dataset>/version-<n>/…``       registered versions (visible once meta.json exists)
``models/<dataset>/version-<n>/claim.json`` the run that reserved version n
``models/<dataset>/version-<n>/profile.json`` its reference profile (training data, test predictions)
``models/<dataset>/version-<n>/meta.json``  the version's metadata, written last
``models/<dataset>/runs/<run>.json``       the version a run registered (a retried run reuses it)
``models/<dataset>/aliases/<alias>.json`` aliases such as ``champion``, with their recent history
``models/<dataset>/aliases/<alias>/history/<batch>.json`` older history entries, archived in batches
``capture/<model>/dt=YYYY-MM-DD/…``      prediction capture records (written by Firehose, stepml.capture)
``feedback/<model>/dt=YYYY-MM-DD/<time>-<uuid>.jsonl`` labels sent to the API (stepml.feedback)
``feedback/<model>/<file>.csv``          labels uploaded in bulk (request_id,row,actual)
"""

from __future__ import annotations

import re

from stepml.errors import DataError

DATASET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a simple slug (lowercase letters, digits, '-', '_')."""
    if not DATASET_NAME.match(name):
        raise DataError(
            f"dataset name {name!r} is not a simple slug: use 1-63 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit"
        )
    return name


def dataset_from_raw_key(key: str) -> str:
    """The dataset name of an upload key ``raw/<dataset>/<file>.csv``."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] != "raw" or not parts[2]:
        raise DataError(f"{key!r} is not an upload key: expected raw/<dataset>/<file>.csv")
    if not parts[2].lower().endswith(".csv"):
        raise DataError(f"{key!r} is not a .csv file: stepml trains on CSV uploads only")
    return check_dataset_name(parts[1])


#: Compressed or packed files that a user may take for a CSV, and what to do instead.
PACKED_SUFFIXES = {".gz": "gzip", ".zip": "ZIP", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd"}


def upload_problem(filename: str) -> str | None:
    """Why a file of this name would start no run (None when it would): only ``*.csv`` uploads do."""
    lower = filename.lower()
    for suffix, kind in PACKED_SUFFIXES.items():
        if lower.endswith(suffix):
            return (f"is {kind}-compressed: stepml reads plain CSV files only (decompress it, then "
                    "upload the .csv)")
    if lower.endswith((".xlsx", ".xls", ".ods")):
        return "is a spreadsheet: export it as CSV (comma-separated, UTF-8) and upload that"
    if not lower.endswith(".csv"):
        return "is not a .csv file: only uploads named *.csv start a training run"
    return None


def raw(dataset: str, filename: str) -> str:
    return f"raw/{dataset}/{filename}"


def upload_key(dataset: str, filename: str) -> str:
    """Where an upload of ``filename`` goes so that it starts a run: ``raw/<dataset>/<stem>.csv``,
    the suffix in lower case (the rule matches ``.csv`` and ``.CSV``, not ``.Csv``)."""
    check_dataset_name(dataset)
    stem = filename.rsplit("/", 1)[-1]
    if stem.lower().endswith(".csv"):
        stem = stem[:-4]
    return raw(dataset, f"{stem}.csv")


#: Where inputs that a run reads but that must not start a run live (``split.test_file``): the
#: pipeline's functions may read this prefix (template.yaml), and nothing else outside raw/.
DATA_PREFIX = "data/"


def config(dataset: str) -> str:
    return f"config/{dataset}.yaml"


def run_prefix(dataset: str, run_id: str) -> str:
    return f"runs/{dataset}/{run_id}/"


def validation_report(dataset: str, run_id: str) -> str:
    return f"runs/{dataset}/{run_id}/validation.json"


def parsed_upload(dataset: str, run_id: str) -> str:
    """The upload as Validate parsed it, typed and columnar (Parquet): later stages read it, not the
    CSV. Scratch, like the splits: it expires with ``preprocessed/`` (template.yaml's lifecycle)."""
    return preprocessed(dataset, run_id, "upload.parquet")
def spark_result(dataset: str, run_id: str) -> str:
    """The run state the Spark job writes for "Read Spark result" (the same TrainedRun Train returns)."""
    return f"runs/{dataset}/{run_id}/spark-result.json"


#: Where ``make deploy`` puts the Glue job's script and the stepml package it imports.
GLUE_SCRIPT = "glue/stepml_spark_job.py"
GLUE_LIBRARY = "glue/stepml.zip"


def preprocessed(dataset: str, run_id: str, name: str) -> str:
    return f"preprocessed/{dataset}/{run_id}/{name}"


def staging(dataset: str, run_id: str, name: str) -> str:
    return f"staging/{dataset}/{run_id}/{name}"


def deliveries_prefix(dataset: str) -> str:
    return f"deliveries/{dataset}/"


def delivery(dataset: str, digest: str) -> str:
    """The claim of one delivered upload, named by the SHA-256 of its identity."""
    return f"{deliveries_prefix(dataset)}{digest}.json"


#: Everything the registry holds lives under this prefix (IAM in template.yaml says the same).
MODELS_PREFIX = "models/"
#: A version's metadata: its presence makes the version visible.
VERSION_META = "meta.json"
#: The run that reserved a version number.
VERSION_CLAIM = "claim.json"
#: A version's reference profile (stepml.profile): what the monitor compares traffic with.
VERSION_PROFILE = "profile.json"
#: A fingerprint of each of a version's training rows (sorted uint64 hashes, stepml.comparison):
#: a later candidate leaves the rows its champion trained on out of their comparison.
VERSION_TRAINING_ROWS = "training_rows.u64"
_VERSION_FOLDER = re.compile(r"^models/[^/]+/version-(\d+)/$")


def models_prefix(dataset: str) -> str:
    return f"{MODELS_PREFIX}{dataset}/"


def model_from_prefix(prefix: str) -> str:
    """The model name of a folder ``models/<name>/`` (as :func:`list_prefixes` returns it)."""
    return prefix[len(MODELS_PREFIX):].rstrip("/")


def version_prefix(dataset: str, version: int) -> str:
    return f"{models_prefix(dataset)}version-{version}/"


def version_file(dataset: str, version: int, filename: str) -> str:
    return f"{version_prefix(dataset, version)}{filename}"


def version_from_prefix(prefix: str) -> int | None:
    """The version number of a folder ``models/<name>/version-<n>/``, or None for other folders."""
    match = _VERSION_FOLDER.match(prefix)
    return int(match.group(1)) if match else None


def run_registration(dataset: str, run_id: str) -> str:
    """Which version a run registered: a retried Evaluate finds it and registers nothing new."""
    return f"{models_prefix(dataset)}runs/{run_id}.json"


def aliases_prefix(dataset: str) -> str:
    return f"{models_prefix(dataset)}aliases/"


def alias(dataset: str, name: str) -> str:
    return f"{aliases_prefix(dataset)}{name}.json"


def alias_from_key(dataset: str, key: str) -> str | None:
    """The alias name of an alias object's key, or None for any other key (archived history)."""
    prefix = aliases_prefix(dataset)
    if not key.startswith(prefix) or not key.endswith(".json") or "/" in key[len(prefix):]:
        return None
    return key[len(prefix):-len(".json")]


def alias_history_batch(dataset: str, name: str, batch: int) -> str:
    """Archived history entries of an alias, batch ``batch`` (0-based, fixed size)."""
    return f"{aliases_prefix(dataset)}{name}/history/{batch:08d}.json"


#: Where Firehose delivers the prediction API's capture records (template.yaml says the same).
CAPTURE_PREFIX = "capture/"
FEEDBACK_PREFIX = "feedback/"


def capture_prefix(model: str) -> str:
    return f"{CAPTURE_PREFIX}{model}/"


def feedback_prefix(model: str) -> str:
    return f"{FEEDBACK_PREFIX}{model}/"


def feedback_batch(model: str, day: str, batch_id: str) -> str:
    """One batch of labels sent to the API: ``feedback/<model>/dt=<YYYY-MM-DD>/<id>.jsonl`` (the id
    starts with the time it arrived, so a listing is in arrival order)."""
    return f"{feedback_prefix(model)}dt={day}/{batch_id}.jsonl"


def feedback_upload(model: str, filename: str) -> str:
    """A bulk label file: ``feedback/<model>/<stem>.csv``."""
    check_dataset_name(model)
    stem = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = stem[:-4] if stem.lower().endswith(".csv") else stem
    return f"{feedback_prefix(model)}{stem}.csv"


def dataset_prefixes(dataset: str) -> list[str]:
    """Every prefix (and the config key) under which the bucket holds objects of ``dataset``.

    Deleting these removes all trace of the dataset from the bucket; other datasets are never
    matched, since each prefix ends in ``/`` (or is the exact config key).
    """
    check_dataset_name(dataset)
    return [
        f"raw/{dataset}/",
        config(dataset),
        f"runs/{dataset}/",
        f"preprocessed/{dataset}/",
        f"staging/{dataset}/",
        deliveries_prefix(dataset),
        models_prefix(dataset),
        capture_prefix(dataset),
        feedback_prefix(dataset),
        f"{MONITORING_PREFIX}{dataset}/",
    ]


# -- monitoring (issue #17): captured traffic, fed-back labels, monitor reports ------------------

#: Monitor reports (capture and feedback prefixes: above).
MONITORING_PREFIX = "monitoring/"


def capture_day_prefix(model: str, day: str) -> str:
    """The captures of ``model`` on ``day`` (``YYYY-MM-DD``, UTC): ``capture/<model>/dt=<day>/``."""
    return f"{CAPTURE_PREFIX}{model}/dt={day}/"


def monitoring_reports_prefix(model: str) -> str:
    """The dated monitor reports of ``model``."""
    return f"{MONITORING_PREFIX}{model}/reports/"


def monitoring_report(model: str, stamp: str) -> str:
    """One monitor report, named by when it was made (``YYYYMMDDTHHMMSSZ``)."""
    return f"{monitoring_reports_prefix(model)}{stamp}.json"


def monitoring_latest(model: str) -> str:
    """A copy of the newest monitor report of ``model``."""
    return f"{MONITORING_PREFIX}{model}/latest.json"
