"""A deployed stepml stack - on AWS or the offline endpoint - found from its CloudFormation outputs.

The CLI and the UI use this; nothing here knows whether the endpoint is AWS or local.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from stepml import keys
from stepml.client import ApiClient, ApiResponse, quote
from stepml.config import DatasetConfig, dump_config
from stepml.contracts import AliasRecord, HistoryPage, ListedVersion
from stepml.errors import ConfigError, DataError, NotFoundError
from stepml.registry import CHAMPION, ModelRegistry
from stepml.runs import describe_run
from stepml.settings import LOCAL_PROFILE, Settings, aws_config_file, aws_credentials_file
from stepml.storage import S3Store

LOCAL_ENDPOINT = "http://127.0.0.1:4566"
FINISHED = {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}


def local_profile(environ: Mapping[str, str] | None = None) -> str | None:
    """The named profile for the offline stack, unless the caller chose credentials already.

    The offline stack is as strict as AWS: it wants a known identity. ``stepml local up`` writes
    its administrator as the profile ``stepml-local``, used when ``AWS_PROFILE`` names it, or when
    the environment names no credentials (``AWS_ACCESS_KEY_ID``, another ``AWS_PROFILE``) of its own.
    """
    import configparser

    environ = os.environ if environ is None else environ
    named = environ.get("AWS_PROFILE") == LOCAL_PROFILE
    if not named and (environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE")):
        return None
    parser = configparser.RawConfigParser()
    parser.read(aws_credentials_file(environ))
    if parser.has_section(LOCAL_PROFILE):
        return LOCAL_PROFILE
    if named:
        raise ConfigError(
            f"AWS_PROFILE is {LOCAL_PROFILE} but {aws_credentials_file(environ)} has no such "
            "profile: `stepml local up` writes it when the offline stack starts"
        )
    return None


def local_endpoint(stack_name: str = "stepml", environ: Mapping[str, str] | None = None) -> str:
    """The endpoint of the offline stack ``stack_name`` for ``stepml --local``: where ``stepml local up``
    serves it, whatever its ``--port``.

    What the running stack recorded in its data directory (the default one, or
    ``STEPML_LOCAL_DATA_DIR``), else the ``endpoint_url`` of the ``stepml-local`` profile that
    ``local up`` writes (its credentials are that stack's), else :data:`LOCAL_ENDPOINT`.
    """
    import configparser

    environ = os.environ if environ is None else environ
    try:
        from stepml.local import persistence

        running = persistence.serving(persistence.default_data_dir(stack_name, environ))
    except ImportError:  # without the `local` extra there is no offline stack on this machine
        running = None
    if running and running.get("endpoint_url"):
        return str(running["endpoint_url"])
    parser = configparser.RawConfigParser()
    parser.read(aws_config_file(environ))
    section = f"profile {LOCAL_PROFILE}"
    if parser.has_option(section, "endpoint_url"):
        return parser.get(section, "endpoint_url")
    return LOCAL_ENDPOINT


@dataclass
class Stack:
    """Clients and outputs of one deployed stack."""

    stack_name: str = "stepml"
    region: str = "us-east-1"
    endpoint_url: str | None = None
    #: Explicit keys (boto3 keyword arguments) for the offline administrator; else the default chain.
    credentials: Mapping[str, str] | None = None
    _outputs: dict[str, str] | None = field(default=None, init=False)
    _clients: dict[str, Any] = field(default_factory=dict, init=False)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.settings_for("unused").client(service)
        return self._clients[service]

    def settings_for(self, bucket: str) -> Settings:
        return Settings(
            bucket=bucket,
            region=self.region,
            endpoint_url=self.endpoint_url,
            profile=local_profile() if self.endpoint_url is not None else None,
            credentials=self.credentials,
        )

    @property
    def outputs(self) -> dict[str, str]:
        if self._outputs is None:
            try:
                described = self.client("cloudformation").describe_stacks(StackName=self.stack_name)
            except Exception as exc:
                where = self.endpoint_url or f"AWS ({self.region})"
                raise ConfigError(
                    f"cannot find the stack {self.stack_name!r} at {where}: {exc}. "
                    "Start the offline stack with `stepml local up`, or deploy with `make deploy`."
                ) from exc
            stack = described["Stacks"][0]
            self._outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        return self._outputs

    @property
    def bucket(self) -> str:
        return self.outputs["BucketName"]

    @property
    def state_machine_arn(self) -> str:
        return self.outputs["StateMachineArn"]

    @property
    def api_url(self) -> str:
        return self.outputs["ApiUrl"].rstrip("/")

    @property
    def store(self) -> S3Store:
        return S3Store(self.settings_for(self.bucket))

    @property
    def registry(self) -> ModelRegistry:
        return ModelRegistry(self.store)

    def monitor(self, name: str, since: str | None = None) -> dict[str, Any]:
        """Run the stack's monitor function for model ``name`` now (as its schedule does for every
        champion): the report is written, metrics emitted and alarms published. Returns the report."""
        from botocore.config import Config

        from stepml import errors

        function = self.outputs.get("MonitorFunctionName")
        if not function:
            raise ConfigError(f"the stack {self.stack_name!r} has no MonitorFunctionName output: deploy this version")
        event: dict[str, Any] = {"model": keys.check_dataset_name(name)}
        if since:
            event["since"] = since
        client = self.settings_for("unused").client(
            "lambda", Config(read_timeout=360, connect_timeout=10, retries={"total_max_attempts": 1})
        )
        response = client.invoke(FunctionName=function, Payload=json.dumps(event).encode())
        payload = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            # The handler's own error class (NotFoundError, DataError...) and message, not a traceback.
            kind = getattr(errors, str(payload.get("errorType")), None)
            message = str(payload.get("errorMessage") or payload)
            if isinstance(kind, type) and issubclass(kind, errors.StepmlError):
                raise kind(message)
            raise errors.StepmlError(f"the monitor function failed: {payload.get('errorType')}: {message}")
        return dict(payload["reports"][0])

    def info(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack_name,
            "region": self.region,
            "endpoint": self.endpoint_url or "aws",
            "bucket": self.bucket,
            "state_machine_arn": self.state_machine_arn,
            "api_url": self.api_url,
        }

    # -- uploads and runs ------------------------------------------------------------------

    def write_config(self, dataset: str, config: DatasetConfig) -> str:
        key = keys.config(dataset)
        self.store.put_bytes(key, dump_config(config).encode(), content_type="application/yaml")
        return key

    def read_config(self, dataset: str) -> DatasetConfig:
        from stepml.config import load_config

        return load_config(self.store, dataset)

    def upload(self, path: Path, dataset: str) -> dict[str, Any]:
        key = keys.upload_key(dataset, path.name)
        with path.open("rb") as handle:
            response = self.client("s3").put_object(Bucket=self.bucket, Key=key, Body=handle)
        return {"bucket": self.bucket, "key": key, "etag": response.get("ETag", "").strip('"'),
                "version_id": response.get("VersionId")}

    def executions(self, limit: int = 20) -> list[dict[str, Any]]:
        sfn = self.client("stepfunctions")
        found = sfn.list_executions(stateMachineArn=self.state_machine_arn, maxResults=min(limit, 1000))
        runs = found["executions"]
        runs.sort(key=lambda e: e["startDate"], reverse=True)
        return runs[:limit]

    def execution_arn(self, run: str) -> str:
        if run.startswith("arn:"):
            return run
        for execution in self.executions(limit=1000):
            if execution["name"] == run:
                return execution["executionArn"]
        raise NotFoundError(f"no run named {run!r}")

    def find_execution_for(self, key: str, since: datetime) -> dict[str, Any] | None:
        """The execution started by the upload of ``key`` at or after ``since``."""
        sfn = self.client("stepfunctions")
        for execution in self.executions(limit=100):
            if execution["startDate"] < since:
                continue
            described = sfn.describe_execution(executionArn=execution["executionArn"])
            detail = json.loads(described.get("input") or "{}").get("detail", {})
            if detail.get("object", {}).get("key") == key:
                return described
        return None

    def wait_for_run(
        self,
        key: str,
        since: datetime,
        timeout: float = 900,
        on_progress: Callable[[str, list[dict[str, Any]]], None] | None = None,
    ) -> dict[str, Any]:
        """Wait until the run started by the upload of ``key`` finishes; returns the run."""
        deadline = time.monotonic() + timeout
        execution = None
        while time.monotonic() < deadline:
            if execution is None:
                execution = self.find_execution_for(key, since)
                if execution is None:
                    if on_progress:
                        on_progress("waiting for the upload event", [])
                    time.sleep(0.5)
                    continue
            run = self.run(execution["executionArn"])
            if on_progress:
                on_progress(run["status"], run["states"])
            if run["status"] in FINISHED:
                return run
            time.sleep(0.5)
        raise TimeoutError(f"no finished run for s3://{self.bucket}/{key} after {timeout:.0f} s")

    def run(self, run: str) -> dict[str, Any]:
        """One run: status, timing, input key, output, error and its states."""
        return describe_run(self.client("stepfunctions"), self.execution_arn(run))

    def validation_report(self, run: Mapping[str, Any]) -> dict[str, Any] | None:
        """The validation report the run's Validate stage wrote (``runs/<dataset>/<run>/validation.json``),
        or None when there is none: the run was rejected before its report, skipped as a duplicate,
        or its key is not an upload's."""
        try:
            dataset = keys.dataset_from_raw_key(str(run.get("key") or ""))
        except DataError:
            return None
        try:
            report = self.store.find_json(keys.validation_report(dataset, str(run["name"])))
        except Exception as exc:  # botocore's ClientError: the run stays readable without s3:GetObject on runs/
            if "AccessDenied" in str(exc) or "403" in str(exc):
                return None
            raise
        return report if isinstance(report, dict) else None

    # -- models ------------------------------------------------------------------------------

    def models(self, name: str) -> list[ListedVersion]:
        versions = self.registry.list_versions(name)
        if not versions:
            raise NotFoundError(f"no registered versions of {name!r}")
        return versions

    def promote(self, name: str, version: int, reason: str, actor: str, force: bool = False) -> dict[str, Any]:
        """Promote by hand through the quality gate (``force`` overrides it, with a reason)."""
        return self.registry.promote_by_hand(name, version, reason, actor, force=force)

    def rollback(self, name: str, reason: str, actor: str) -> AliasRecord:
        return self.registry.rollback(name, reason, actor=actor)

    def history(self, name: str, limit: int | None = None, before: int | None = None) -> HistoryPage:
        """Changes of the champion alias, newest first, paged as ``GET /models/{name}/history``
        pages them: at most ``limit`` entries (None: all, archived ones included) numbered below
        ``before``, with ``total`` and ``next_before`` (None on the oldest page)."""
        return self.registry.history(name, CHAMPION, limit=limit, before=before)

    def version(self, name: str, version: int) -> ListedVersion:
        return self.registry.get_version_with_aliases(name, version)

    def api_credentials(self) -> Any:
        """Who signs HTTP API requests: the explicit keys, else the named local profile (offline),
        else boto3's default chain - the caller's own AWS identity."""
        if self.credentials:
            return dict(self.credentials)
        import boto3

        profile = local_profile() if self.endpoint_url is not None else None
        session = boto3.Session(profile_name=profile) if profile else boto3.Session()
        return session.get_credentials()

    @property
    def api(self) -> ApiClient:
        """A client of the stack's HTTP API, signing as :meth:`api_credentials`."""
        return ApiClient(self.api_url, self.region, self.api_credentials(),
                         operator_policy_arn=self.outputs.get("OperatorPolicyArn"),
                         consumer_policy_arn=self.outputs.get("ConsumerPolicyArn"))

    def feedback(self, name: str, body: Any) -> tuple[int, Any]:
        """POST labels to ``/models/{name}/feedback`` (signed); returns (status, parsed JSON body)."""
        answer = self.api.post(f"/models/{quote(name)}/feedback", body)
        return answer.status, answer.body

    def upload_feedback(self, name: str, path: Path) -> tuple[str, int]:
        """Check a label CSV (request_id,row,actual) and upload it under feedback/<name>/; returns
        the key and the number of labels."""
        from stepml import feedback, keys

        data = path.read_bytes()
        count = feedback.check_csv(data, str(path))
        key = keys.feedback_upload(name, path.name)
        self.store.put_bytes(key, data, content_type="text/csv")
        return key, count

    def predict(self, name: str, body: Any, version: int | None = None, alias: str | None = None) -> tuple[int, Any]:
        """POST to the HTTP API (signed); returns (status, parsed JSON body)."""
        answer = self.predict_request(name, body, version, alias)
        return answer.status, answer.body

    def predict_request(self, name: str, body: Any, version: int | None = None,
                        alias: str | None = None) -> ApiResponse:
        """POST to the HTTP API (signed); the whole answer, with its request id (for feedback)."""
        return self.api.post(f"/models/{quote(name)}/predict", body, {"version": version, "alias": alias})
