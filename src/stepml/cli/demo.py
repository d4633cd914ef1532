"""`make demo`: the whole pipeline offline on a seed dataset, ending in a prediction over HTTP."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from stepml.cli.render import follow, print_versions
from stepml.config import DatasetConfig
from stepml.contracts import Feature


def _sample_record(path: Path, target: str, schema: list[Feature]) -> dict[str, Any]:
    """The first complete row of the CSV, as a prediction request."""
    numeric = {f["name"] for f in schema if f["kind"] == "numeric"}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            features = {f["name"]: row.get(f["name"], "") for f in schema}
            if all(v not in ("", "?") for v in features.values()):
                return {k: (float(v) if k in numeric else v) for k, v in features.items()}
    raise RuntimeError(f"{path} has no complete row to predict")


def run_demo(
    console: Console, project_root: Path, dataset: str, *, port: int, api_port: int, datasets: ModuleType
) -> None:
    from stepml.local.endpoint import LocalStack
    from stepml.stack import Stack

    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task(f"fetching {dataset}", total=None)
        try:
            path = datasets.get(dataset, progress=lambda done, total: progress.update(task, completed=done, total=total))
        except datasets.DatasetUnavailable as exc:
            console.print(f"[yellow]{exc}[/yellow]")
            console.print("[yellow]running on breast_cancer instead (shipped with scikit-learn, needs no network)[/yellow]")
            dataset = "breast_cancer"
            path = datasets.get(dataset)
    console.print(f"dataset [bold]{dataset}[/bold]: {path}")

    # The handlers' structured logs (one JSON line per stage) would bury the demo's own output.
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    with console.status("starting the offline stack (moto + template.yaml)…"):
        local = LocalStack(project_root, port=port, api_port=api_port)
        local.start()
    try:
        console.print(f"offline stack up: AWS endpoint {local.endpoint_url}, HTTP API {local.api_url}")
        admin = local.admin_credentials
        assert admin is not None  # start() created the administrator
        stack = Stack(endpoint_url=local.endpoint_url, credentials=admin.client_kwargs())
        target = datasets.target_of(dataset)
        if target:
            stack.write_config(dataset, DatasetConfig(target=target))
        since = datetime.now(UTC) - timedelta(seconds=5)
        uploaded = stack.upload(path, dataset)
        console.print(f"uploaded s3://{uploaded['bucket']}/{uploaded['key']} → EventBridge → Step Functions")
        run = follow(stack, uploaded["key"], since, timeout=900)
        if run["status"] != "SUCCEEDED":
            raise SystemExit(1)
        versions = stack.models(dataset)
        print_versions(dataset, versions)
        record = _sample_record(path, versions[-1]["target"], versions[-1]["schema"])
        signer = local.admin_credentials.arn if local.admin_credentials else "the local admin"
        console.print(f"POST {stack.api_url}/models/{dataset}/predict  (SigV4-signed as {signer})")
        console.print_json(json.dumps(record))
        status, response = stack.predict(dataset, record)
        console.print(f"HTTP {status}")
        console.print_json(json.dumps(response))
        if status != 200:
            raise SystemExit(1)
    finally:
        local.stop()
