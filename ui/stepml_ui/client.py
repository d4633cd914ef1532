"""What the UI reads and changes, through the HTTP API and the AWS APIs (S3, Step Functions).

The stack is found from its CloudFormation outputs (:class:`stepml.stack.Stack`, a boto3 client);
the registry is changed only through the registry HTTP API, so promotions from the UI are checked
and recorded exactly like those from any other client.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from stepml import keys
from stepml.client import ApiClient, ApiResponse
from stepml.config import DatasetConfig
from stepml.runs import readable_cause
from stepml.stack import Stack
from stepml_ui import monitoring

if TYPE_CHECKING:
    import pandas as pd

#: Environment variables that aim the UI at a stack (set by ``stepml ui``).
ENV_ENDPOINT = "STEPML_ENDPOINT_URL"
ENV_STACK = "STEPML_STACK"
ENV_API_URL = "STEPML_API_URL"


@dataclass
class Console:
    """The UI's view of one stack: HTTP API calls plus S3 / Step Functions reads."""

    stack: Stack
    api_override: str | None = None
    timeout: float = 30.0
    _definition: dict[str, Any] | None = field(default=None, init=False)
    _api: ApiClient | None = field(default=None, init=False)

    @classmethod
    def from_environment(cls) -> Console:
        """The stack named by ``STEPML_STACK`` at ``STEPML_ENDPOINT_URL`` (unset: AWS)."""
        stack = Stack(
            stack_name=os.environ.get(ENV_STACK, "stepml"),
            region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            endpoint_url=os.environ.get(ENV_ENDPOINT) or None,
        )
        return cls(stack=stack, api_override=os.environ.get(ENV_API_URL) or None)

    @property
    def api_url(self) -> str:
        return (self.api_override or self.stack.api_url).rstrip("/")

    @property
    def where(self) -> str:
        return self.stack.endpoint_url or f"AWS {self.stack.region}"

    # -- HTTP API --------------------------------------------------------------------------------

    @property
    def api(self) -> ApiClient:
        """The stack's API client (signing as the user), aimed at ``api_override`` when given."""
        if self._api is None:
            client = self.stack.api if self.api_override is None else ApiClient(
                self.api_url, self.stack.region, self.stack.api_credentials())
            client.timeout = self.timeout
            self._api = client
        return self._api

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> ApiResponse:
        """A signed request to the HTTP API; a 403 says which policy the user lacks."""
        return self.api.request(method, path, body, query)

    def model_names(self) -> list[str]:
        """Registered models: ``GET /models`` when the API has it, else the registry's S3 prefixes."""
        answer = self.request("GET", "/models")
        if answer.ok:
            listed = answer.body.get("models") if isinstance(answer.body, dict) else answer.body
            names = [m.get("name") if isinstance(m, dict) else m for m in listed or []]
            strings = [n for n in names if isinstance(n, str)]
            if len(strings) == len(names):
                return sorted(strings)
        return self.stack.registry.list_models()

    def describe(self, name: str, version: int | None = None) -> ApiResponse:
        return self.request("GET", f"/models/{_quote(name)}", query={"version": version})

    def predict(self, name: str, body: Any, version: int | None = None) -> ApiResponse:
        return self.request("POST", f"/models/{_quote(name)}/predict", body, query={"version": version})

    def versions(self, name: str, with_lineage: bool = False) -> ApiResponse:
        """The versions; ``with_lineage``: each with its lineage when the user may read it (the
        operator route, one request per version)."""
        answer = self.request("GET", f"/models/{_quote(name)}/versions")
        if with_lineage and answer.ok and isinstance(answer.body, dict):
            for meta in answer.body.get("versions") or []:
                lineage = self.lineage(name, meta.get("version"))
                if lineage is None:
                    break  # not an operator: no version's lineage is readable
                meta["lineage"] = lineage
        return answer

    def lineage(self, name: str, version: Any) -> dict[str, Any] | None:
        """A version's lineage (source object, run, execution), or None when refused or missing."""
        answer = self.request("GET", f"/lineage/{_quote(name)}/{version}")
        body = answer.body if answer.ok and isinstance(answer.body, dict) else {}
        return body.get("lineage") if answer.ok else None

    def history(self, name: str) -> ApiResponse:
        return self.request("GET", f"/models/{_quote(name)}/history")

    def diff(self, name: str, first: int, second: int) -> ApiResponse:
        return self.request("GET", f"/models/{_quote(name)}/diff", query={"a": first, "b": second})

    def promote(self, name: str, version: int, reason: str, force: bool = False) -> ApiResponse:
        body: dict[str, Any] = {"version": version, "reason": reason}
        if force:  # past the quality gate: the API requires a reason and records it as forced
            body["force"] = True
        return self.request("POST", f"/models/{_quote(name)}/promote", body)

    def rollback(self, name: str, reason: str) -> ApiResponse:
        return self.request("POST", f"/models/{_quote(name)}/rollback", {"reason": reason})

    # -- Step Functions --------------------------------------------------------------------------

    def executions(self, limit: int = 25) -> list[dict[str, Any]]:
        """Recent runs, newest first: name, status, start, duration and the uploaded key."""
        sfn = self.stack.client("stepfunctions")
        rows = []
        for execution in self.stack.executions(limit=limit):
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            key = _uploaded_key(described.get("input"))
            stop = described.get("stopDate")
            start = described["startDate"]
            rows.append({
                "run": described["name"],
                "status": described["status"],
                "dataset": _dataset_of(key),
                "started": start,
                "duration_s": round(((stop or datetime.now(UTC)) - start).total_seconds(), 1),
                "key": key,
                "arn": described["executionArn"],
            })
        return rows

    def definition(self) -> dict[str, Any]:
        """The pipeline's ASL, as deployed."""
        if self._definition is None:
            described = self.stack.client("stepfunctions").describe_state_machine(
                stateMachineArn=self.stack.state_machine_arn)
            self._definition = json.loads(described["definition"])
        return self._definition

    def run(self, run: str) -> dict[str, Any]:
        """One run (see :meth:`Stack.run`) with each state's input and output keys added."""
        summary = self.stack.run(run)
        payloads = self.state_payloads(summary["arn"])
        for state in summary["states"]:
            entered, exited = payloads.get(state["name"], (None, None))
            state["input_keys"] = _keys_of(entered)
            state["output_keys"] = _keys_of(exited)
        summary["cause"] = readable_cause(summary.get("cause"))
        return summary

    def state_payloads(self, arn: str) -> dict[str, tuple[Any, Any]]:
        """Each state's last input and output document, from the execution history."""
        sfn = self.stack.client("stepfunctions")
        found: dict[str, list[Any]] = {}
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = sfn.get_execution_history(**kwargs)
            for event in page["events"]:
                if event["type"].endswith("StateEntered"):
                    details = event["stateEnteredEventDetails"]
                    found.setdefault(details["name"], [None, None])[0] = _json_or_none(details.get("input"))
                elif event["type"].endswith("StateExited"):
                    details = event["stateExitedEventDetails"]
                    found.setdefault(details["name"], [None, None])[1] = _json_or_none(details.get("output"))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        return {name: (pair[0], pair[1]) for name, pair in found.items()}

    def execution_output(self, arn: str) -> dict[str, Any] | None:
        try:
            described = self.stack.client("stepfunctions").describe_execution(executionArn=arn)
        except Exception:  # noqa: BLE001 - an expired or foreign execution just has no output to show
            return None
        return _json_or_none(described.get("output"))

    # -- S3 --------------------------------------------------------------------------------------

    def validation_report(self, dataset: str, run_id: str) -> dict[str, Any] | None:
        s3 = self.stack.client("s3")
        try:
            body = s3.get_object(Bucket=self.stack.bucket, Key=keys.validation_report(dataset, run_id))["Body"]
        except s3.exceptions.NoSuchKey:
            return None
        except Exception as exc:  # moto and AWS differ on the exception class of a 404
            if "NoSuchKey" in str(exc) or "404" in str(exc):
                return None
            raise
        return json.loads(body.read())

    def held_out_rows(self, name: str, version: int, limit_rows: int = 500) -> pd.DataFrame | None:
        """The first rows of a version's hold-out split (from its lineage, Parquet), as realistic
        examples; None when the split is gone or the version has no lineage."""
        from stepml import tables

        answer = self.request("GET", f"/models/{_quote(name)}/versions/{version}")
        lineage = self.lineage(name, version) if answer.ok and isinstance(answer.body, dict) else None
        if not lineage or not lineage.get("run_id"):
            return None
        key = keys.preprocessed(answer.body.get("dataset") or name, lineage["run_id"], "test.parquet")
        try:
            data = self.stack.client("s3").get_object(Bucket=self.stack.bucket, Key=key)["Body"].read()
            frame = tables.read_parquet(data, key)
        except Exception:  # noqa: BLE001 - examples are a convenience: no split, no examples
            return None
        return frame.head(limit_rows)

    def _get(self, key: str) -> bytes | None:
        """An object's bytes, or None when it does not exist; :class:`S3ReadRefused` when the
        user may not read it (S3 answers 403 for a missing key, too, without ``s3:ListBucket``)."""
        s3 = self.stack.client("s3")
        try:
            return bytes(s3.get_object(Bucket=self.stack.bucket, Key=key)["Body"].read())
        except Exception as exc:  # moto and AWS differ on the exception class of a 404
            if "NoSuchKey" in str(exc) or "404" in str(exc):
                return None
            if _refused(exc):
                raise S3ReadRefused(f"your AWS identity may not read s3://{self.stack.bucket}/{key} "
                                    "(s3:GetObject on it and s3:ListBucket on its prefix are needed)") from exc
            raise

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Every object (key, size, modified) under ``prefix``, and the folders one level down."""
        paginator = self.stack.client("s3").get_paginator("list_objects_v2")
        kwargs: dict[str, Any] = {"Bucket": self.stack.bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        objects: list[dict[str, Any]] = []
        folders: list[str] = []
        try:
            for page in paginator.paginate(**kwargs):
                objects += page.get("Contents", [])
                folders += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
        except Exception as exc:
            if _refused(exc):
                raise S3ReadRefused(f"your AWS identity may not list s3://{self.stack.bucket}/{prefix} "
                                    "(s3:ListBucket with this prefix is needed)") from exc
            raise
        return objects, folders

    def monitor_report(self, name: str, report_key: str | None = None) -> tuple[str, dict[str, Any] | None]:
        """A monitor report (``latest.json`` unless ``report_key``) and its key; None when there is
        none. A report that is not JSON or not of a schema this UI reads is an UnreadableReport naming it."""
        key = report_key or monitoring.latest_report_key(name)
        data = self._get(key)
        if data is None:
            return key, None
        try:
            report = json.loads(data)
        except ValueError as exc:
            raise monitoring.UnreadableReport(f"{key}: not JSON ({exc})") from exc
        return key, monitoring.check_report(key, report)

    def monitor_report_keys(self, name: str) -> list[str]:
        """The dated monitor reports of a model, newest first."""
        objects, _ = self._list(monitoring.reports_prefix(name))
        return sorted((o["Key"] for o in objects if o["Key"].endswith(".json")), reverse=True)

    def capture_days(self, name: str) -> list[date]:
        """The days that have capture files (``capture/<model>/dt=YYYY-MM-DD/``), oldest first."""
        _, folders = self._list(monitoring.capture_prefix(name), delimiter="/")
        return sorted(day for day in map(monitoring.day_of_partition, folders) if day is not None)

    def captures(self, name: str, days: list[date], limit: int = 50_000, workers: int = 16) -> monitoring.Captures:
        """The capture records of ``days``, newest files first, at most ``limit`` records (then
        ``truncated``). Firehose leaves many small files, so ``workers`` of them are fetched at once."""
        listed: list[dict[str, Any]] = []
        for day in days:
            listed += self._list(monitoring.capture_day_prefix(name, day))[0]
        listed.sort(key=lambda o: (o["LastModified"], o["Key"]), reverse=True)
        found = monitoring.Captures()
        with ThreadPoolExecutor(max_workers=workers) as pool:  # boto3 clients are thread-safe
            for start in range(0, len(listed), workers):
                batch = [o["Key"] for o in listed[start:start + workers]]
                for key, data in zip(batch, pool.map(self._get, batch), strict=True):
                    if data is not None:
                        found.extend(monitoring.parse_capture_file(key, data))
                if len(found.records) >= limit:
                    found.truncated = start + workers < len(listed) or len(found.records) > limit
                    del found.records[limit:]
                    break
        return found

    def read_config(self, dataset: str) -> DatasetConfig:
        return self.stack.read_config(dataset)

    def upload(self, data: bytes, filename: str, dataset: str, config: DatasetConfig | None) -> dict[str, Any]:
        """Write the dataset's config (when given), then the CSV, which starts a run."""
        key = keys.upload_key(dataset, filename)  # checks the name; a run starts for this key
        if config is not None:
            self.stack.write_config(dataset, config)
        response = self.stack.client("s3").put_object(Bucket=self.stack.bucket, Key=key, Body=data,
                                                      ContentType="text/csv")
        return {"bucket": self.stack.bucket, "key": key, "version_id": response.get("VersionId")}


class S3ReadRefused(PermissionError):
    """S3 refused a read the UI needs; the message names the object or prefix and the action."""


def _refused(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("AccessDenied", "403", "InvalidAccessKeyId", "ExpiredToken")


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _keys_of(document: Any) -> list[str]:
    return sorted(document) if isinstance(document, dict) else []


def _uploaded_key(execution_input: str | None) -> str | None:
    detail = (_json_or_none(execution_input) or {}).get("detail") or {}
    key = (detail.get("object") or {}).get("key")
    return str(key) if key else None


def _dataset_of(key: str | None) -> str | None:
    parts = (key or "").split("/")
    return parts[1] if len(parts) == 3 and parts[0] == "raw" else None
