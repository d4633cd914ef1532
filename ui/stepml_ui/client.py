"""What the UI reads and changes, through the HTTP API and the AWS APIs (S3, Step Functions).

The stack is found from its CloudFormation outputs (:class:`stepml.stack.Stack`, a boto3 client);
the registry is changed only through the registry HTTP API, so promotions from the UI are checked
and recorded exactly like those from any other client.
"""

from __future__ import annotations

import io
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stepml import keys
from stepml.config import DatasetConfig
from stepml.runs import readable_cause
from stepml.stack import Stack

if TYPE_CHECKING:
    import pandas as pd

#: Environment variables that aim the UI at a stack (set by ``stepml ui``).
ENV_ENDPOINT = "STEPML_ENDPOINT_URL"
ENV_STACK = "STEPML_STACK"
ENV_API_URL = "STEPML_API_URL"


@dataclass(frozen=True)
class ApiResponse:
    """An HTTP API answer: status and parsed JSON body (``{"message": …}`` for non-JSON)."""

    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def message(self) -> str:
        if isinstance(self.body, dict) and self.body.get("message"):
            return str(self.body["message"])
        return f"HTTP {self.status}"

    def field_errors(self) -> dict[str, list[str]]:
        """The API's per-field messages (422 ``errors``), by field name."""
        found: dict[str, list[str]] = {}
        errors = self.body.get("errors") if isinstance(self.body, dict) else None
        for error in errors or []:
            if isinstance(error, dict) and error.get("field"):
                found.setdefault(str(error["field"]), []).append(str(error.get("message", "invalid")))
        return found


@dataclass
class Console:
    """The UI's view of one stack: HTTP API calls plus S3 / Step Functions reads."""

    stack: Stack
    api_override: str | None = None
    timeout: float = 30.0
    _definition: dict[str, Any] | None = field(default=None, init=False)

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

    def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None) -> ApiResponse:
        url = self.api_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urllib.parse.urlencode(params)
        data = None if body is None else json.dumps(body, allow_nan=False).encode()
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return ApiResponse(response.status, _json_or_message(response.read()))
        except urllib.error.HTTPError as exc:
            return ApiResponse(exc.code, _json_or_message(exc.read()))

    def model_names(self) -> list[str]:
        """Registered models: ``GET /models`` when the API has it, else the registry's S3 prefixes."""
        answer = self.request("GET", "/models")
        if answer.ok:
            listed = answer.body.get("models") if isinstance(answer.body, dict) else answer.body
            names = [m.get("name") if isinstance(m, dict) else m for m in listed or []]
            if all(isinstance(n, str) for n in names):
                return sorted(names)
        return self.stack.registry.list_models()

    def describe(self, name: str, version: int | None = None) -> ApiResponse:
        return self.request("GET", f"/models/{_quote(name)}", query={"version": version})

    def predict(self, name: str, body: Any, version: int | None = None) -> ApiResponse:
        return self.request("POST", f"/models/{_quote(name)}/predict", body, query={"version": version})

    def versions(self, name: str) -> ApiResponse:
        return self.request("GET", f"/models/{_quote(name)}/versions")

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

    def held_out_rows(self, name: str, version: int, limit_bytes: int = 65536) -> pd.DataFrame | None:
        """The first rows of a version's hold-out split (from its lineage), as realistic examples;
        None when the split is gone or the version has no lineage."""
        import pandas as pd

        answer = self.request("GET", f"/models/{_quote(name)}/versions/{version}")
        lineage = answer.body.get("lineage") if answer.ok and isinstance(answer.body, dict) else None
        if not lineage or not lineage.get("run_id"):
            return None
        key = keys.preprocessed(answer.body.get("dataset") or name, lineage["run_id"], "test.csv")
        try:
            head = self.stack.client("s3").get_object(Bucket=self.stack.bucket, Key=key,
                                                      Range=f"bytes=0-{limit_bytes - 1}")["Body"].read()
        except Exception:  # noqa: BLE001 - examples are a convenience: no split, no examples
            return None
        text = head.decode("utf-8", errors="replace")
        complete = text[: text.rfind("\n") + 1] if len(head) >= limit_bytes else text
        categorical = {f["name"]: str for f in answer.body.get("schema", []) if f.get("kind") in ("categorical", "date")}
        return pd.read_csv(io.StringIO(complete), dtype=categorical, keep_default_na=False, na_values=[""])

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


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _json_or_message(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"message": raw.decode("utf-8", errors="replace")[:500]}


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
