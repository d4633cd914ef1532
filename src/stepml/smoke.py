"""``stepml smoke``: check a deployed stack end to end, then leave no trace of the check.

The check trains a small generated dataset twice under a unique name (``smoke-<time>-<random>``),
so it never touches a user's data, and goes through every part a deploy can break:

1. **find the stack** - its outputs: bucket, state machine, HTTP API URL;
2. **upload** the CSV and its config to ``raw/<dataset>/`` (S3 → EventBridge → Step Functions);
3. **run 1** - follow the run to SUCCEEDED: version 1 registered and promoted to champion;
4. **predict** - ``POST /models/<dataset>/predict`` answers 200 with the expected labels, from v1;
5. **upload again** and **run 2** - a second version, so that promotion has somewhere to go;
6. **promote** - ``POST …/promote`` the version that is not champion, forced with a reason (both
   versions come from the same data, so the quality gate may go either way): the alias moves to
   it, and the answer carries the gate's decision and says ``forced`` exactly when it refused;
7. **rollback** - ``POST …/rollback``: the alias comes back to where it was;
8. **clean up** - always, even after a failure or Ctrl-C: every object version (the bucket is
   versioned) under the dataset's prefixes is deleted and the prefixes are checked empty. A run
   still going (its step timed out) is stopped first, and the prefixes are swept until they stay
   empty, since the stage in flight still finishes and writes.

Promotion and rollback go through the HTTP API (the registry function), as the web UI does, so its
role and routes are checked too; the alias is then read back from S3 independently. The check stops
at the first failing step (later steps depend on it); each step's reason is one readable sentence.
Step Functions executions and CloudWatch logs stay: AWS keeps run history by design.
"""

from __future__ import annotations

import json
import random
import secrets
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from stepml import keys, registry
from stepml.config import DatasetConfig
from stepml.errors import StepmlError
from stepml.runs import readable_cause
from stepml.stack import Stack

TARGET = "label"
COLOURS = ("red", "green", "blue")
# Rows far from the decision boundary: any model that learned the data predicts these right.
PROBES: tuple[tuple[dict[str, Any], str], ...] = (
    ({"amount": 2.0, "colour": "red", "noise": 0.0}, "yes"),
    ({"amount": -2.0, "colour": "blue", "noise": 0.0}, "no"),
)
DEFAULT_RECIPE = "auto"
DEFAULT_RUN_TIMEOUT = 900.0
# Longer than one stage of the small dataset takes on Lambda, cold start included.
DEFAULT_SETTLE_SECONDS = 30.0


def smoke_dataset_name(now: datetime | None = None) -> str:
    """A dataset name no user has: ``smoke-<UTC time>-<4 random hex digits>``."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return keys.check_dataset_name(f"smoke-{moment:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}")


def smoke_csv(rows: int = 300, seed: int = 11) -> bytes:
    """A small, deterministic, learnable classification table (no download, no numpy).

    ``label`` is "yes" when ``amount`` (numeric) plus a bonus for ``colour`` "red" (categorical)
    is high; ``noise`` is an unrelated numeric column.
    """
    rng = random.Random(seed)
    lines = [f"amount,colour,noise,{TARGET}"]
    for _ in range(rows):
        amount = rng.gauss(0.0, 1.0)
        colour = rng.choice(COLOURS)
        noise = rng.gauss(0.0, 1.0)
        label = "yes" if amount + (1.5 if colour == "red" else 0.0) > 0.5 else "no"
        lines.append(f"{amount:.4f},{colour},{noise:.4f},{label}")
    return ("\n".join(lines) + "\n").encode()


class SmokeFailure(Exception):
    """A step's check did not hold; the message says what was expected and what happened."""


@dataclass(frozen=True)
class StepResult:
    """The outcome of one step: what it verified (or why it failed) and how long it took."""

    name: str
    passed: bool
    seconds: float
    detail: str


@dataclass
class SmokeReport:
    """Every step that ran, in order; the check passed when all of them did."""

    stack_name: str
    dataset: str
    steps: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.steps) and all(step.passed for step in self.steps)

    @property
    def failures(self) -> list[StepResult]:
        return [step for step in self.steps if not step.passed]

    @property
    def seconds(self) -> float:
        return round(sum(step.seconds for step in self.steps), 3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stack_name": self.stack_name,
            "dataset": self.dataset,
            "passed": self.passed,
            "seconds": self.seconds,
            "steps": [vars(step) for step in self.steps],
        }


def readable_reason(exc: BaseException) -> str:
    """One sentence for a failed step: no traceback, the cause in the user's terms."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} from {exc.url}"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot reach the HTTP API: {exc.reason}"
    if isinstance(exc, (SmokeFailure, StepmlError, TimeoutError)):
        return str(exc)
    if isinstance(exc, KeyError):
        return f"missing {exc}"
    return f"{type(exc).__name__}: {exc}"


class SmokeCheck:
    """One end-to-end check of ``stack`` (see the module docstring for the steps).

    Parameters
    ----------
    stack
        The deployed stack (AWS or the offline endpoint).
    dataset
        The dataset (and model) name to use; default :func:`smoke_dataset_name`. Everything under
        its prefixes is deleted at the end, so it must be a name nothing else uses.
    run_timeout
        Seconds to wait for each pipeline run.
    recipe
        The training recipe (``auto`` trains the small table in about a second).
    settle_seconds
        After stopping a run that was still going (a timeout, Ctrl-C), how long the dataset's
        prefixes must stay empty before the cleanup trusts that its last stage wrote everything.
    on_step_start, on_step_end, on_progress
        Callbacks for a live display: a step's name when it starts, its result when it ends, and
        a short status line while a run is followed.
    """

    def __init__(
        self,
        stack: Stack,
        dataset: str | None = None,
        run_timeout: float = DEFAULT_RUN_TIMEOUT,
        recipe: str = DEFAULT_RECIPE,
        settle_seconds: float = DEFAULT_SETTLE_SECONDS,
        on_step_start: Callable[[str], None] | None = None,
        on_step_end: Callable[[StepResult], None] | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.stack = stack
        self.dataset = keys.check_dataset_name(dataset or smoke_dataset_name())
        self.run_timeout = run_timeout
        self.recipe = recipe
        self.settle_seconds = settle_seconds
        self.on_step_start = on_step_start
        self.on_step_end = on_step_end
        self.on_progress = on_progress
        self.report = SmokeReport(stack_name=stack.stack_name, dataset=self.dataset)
        self._started = datetime.now(UTC) - timedelta(seconds=5)
        self._wrote_anything = False
        self._uploads: list[str] = []
        self._versions: list[int] = []
        self._champion: int | None = None

    # -- the check ---------------------------------------------------------------------------

    def run(self) -> SmokeReport:
        """Run every step until one fails, then always clean up; returns the report.

        On Ctrl-C the step is recorded as interrupted, the cleanup still runs, and the
        ``KeyboardInterrupt`` is raised again (``self.report`` holds what was done).
        """
        steps: list[tuple[str, Callable[[], str]]] = [
            ("find the stack", self.find_stack),
            ("upload the dataset", lambda: self.upload(1)),
            ("run 1 trains version 1", lambda: self.follow_run(1)),
            ("predict through the HTTP API", self.predict),
            ("upload it again", lambda: self.upload(2)),
            ("run 2 trains version 2", lambda: self.follow_run(2)),
            ("promote through the HTTP API", self.promote),
            ("roll back through the HTTP API", self.rollback),
        ]
        try:
            for name, action in steps:
                if not self._step(name, action):
                    break
        finally:
            # Also on Ctrl-C: the smoke dataset must not outlive the check.
            left = ", ".join(keys.dataset_prefixes(self.dataset))
            self._step("clean up", self.cleanup, interrupted=f"interrupted (Ctrl-C): delete what is left under {left}")
        return self.report

    def _step(self, name: str, action: Callable[[], str], interrupted: str = "interrupted (Ctrl-C)") -> bool:
        if self.on_step_start:
            self.on_step_start(name)
        started = time.monotonic()
        try:
            detail, passed = action(), True
        except KeyboardInterrupt:
            # Recorded, then passed on: run() still cleans up, and the caller decides how to end.
            self._record(name, started, False, interrupted)
            raise
        except Exception as exc:  # noqa: BLE001 - any failure (boto, HTTP, a bug) is the step's readable reason
            detail, passed = readable_reason(exc), False
        self._record(name, started, passed, detail)
        return passed

    def _record(self, name: str, started: float, passed: bool, detail: str) -> None:
        result = StepResult(name, passed, round(time.monotonic() - started, 3), detail)
        self.report.steps.append(result)
        if self.on_step_end:
            self.on_step_end(result)

    def find_stack(self) -> str:
        """The stack exists and has the outputs stepml needs."""
        outputs = self.stack.outputs
        missing = [name for name in ("BucketName", "StateMachineArn", "ApiUrl") if name not in outputs]
        if missing:
            raise SmokeFailure(
                f"stack {self.stack.stack_name!r} has no output {', '.join(missing)}: is it a stepml stack?"
            )
        return f"bucket {self.stack.bucket}, HTTP API {self.stack.api_url}"

    def upload(self, number: int) -> str:
        """Write the config (first time) and upload the CSV as ``raw/<dataset>/smoke-<n>.csv``."""
        if number == 1:
            config = DatasetConfig.from_dict(
                {"target": TARGET, "task": "classification", "recipe": self.recipe}, "smoke config"
            )
            self._wrote_anything = True
            self.stack.write_config(self.dataset, config)
        with tempfile.TemporaryDirectory(prefix="stepml-smoke-") as folder:
            path = Path(folder) / f"smoke-{number}.csv"
            path.write_bytes(smoke_csv())
            self._wrote_anything = True
            uploaded = self.stack.upload(path, self.dataset)
        self._uploads.append(uploaded["key"])
        rows = smoke_csv().count(b"\n") - 1
        return f"s3://{uploaded['bucket']}/{uploaded['key']} ({rows} rows, recipe {self.recipe})"

    def follow_run(self, number: int) -> str:
        """The run of upload ``number`` SUCCEEDED and registered a new version."""
        key = self._uploads[number - 1]

        def progress(status: str, states: list[dict[str, Any]]) -> None:
            if self.on_progress:
                current = states[-1]["name"] if states else "-"
                self.on_progress(f"{status} · {current}")

        run = self.stack.wait_for_run(key, self._started, timeout=self.run_timeout, on_progress=progress)
        if run["status"] != "SUCCEEDED":
            failed = [s["name"] for s in run["states"] if s["status"] == "FAILED"]
            where = f" at {failed[0]!r}" if failed else ""
            raise SmokeFailure(
                f"run {run['name']} ended {run['status']}{where}: {run.get('error')}: {readable_cause(run.get('cause'))} "
                f"(`stepml runs show {run['name']}` shows every state)"
            )
        output = run.get("output") or {}
        version = output.get("version")
        if not isinstance(version, int):
            raise SmokeFailure(f"run {run['name']} SUCCEEDED without registering a version: output {output}")
        if version in self._versions:
            raise SmokeFailure(f"run {run['name']} registered version {version} again")
        self._versions.append(version)
        if number == 1 and not output.get("promoted"):
            raise SmokeFailure(
                f"version {version} was not promoted to champion: {(run.get('outcome') or {}).get('reason')}"
            )
        verdict = "champion" if output.get("promoted") else "candidate"
        return f"run {run['name']} SUCCEEDED in {run['duration_s']:.1f} s: version {version}, {verdict}"

    def predict(self) -> str:
        """The champion answers 200 with the expected labels for rows far from the boundary."""
        instances = [row for row, _ in PROBES]
        status, body = self.stack.predict(self.dataset, {"instances": instances})
        if status != 200:
            message = body.get("message") if isinstance(body, dict) else body
            raise SmokeFailure(f"POST /models/{self.dataset}/predict answered {status}: {message}")
        predictions = body.get("predictions") if isinstance(body, dict) else None
        expected = [label for _, label in PROBES]
        if predictions != expected:
            raise SmokeFailure(f"expected predictions {expected}, got {predictions!r}")
        if body.get("version") != self._versions[0]:
            raise SmokeFailure(f"expected the champion v{self._versions[0]} to answer, got v{body.get('version')}")
        return f"HTTP 200 from v{body['version']}: {predictions}"

    def promote(self) -> str:
        """Promote the version that is not champion; the alias must move to it."""
        before = self._read_champion()
        if before not in self._versions:
            raise SmokeFailure(f"champion is {before!r}, not one of the smoke versions {self._versions}")
        self._champion = before
        target = next(v for v in self._versions if v != before)
        body = self._post(f"models/{self.dataset}/promote",
                          {"version": target, "force": True, "reason": "stepml smoke: promote"})
        if body.get("version") != target:
            raise SmokeFailure(f"promote answered champion v{body.get('version')}, expected v{target}")
        gate = body.get("gate")
        if not isinstance(gate, dict) or body.get("forced") is not (not gate.get("passed")):
            raise SmokeFailure(f"promote answered without the quality gate's decision: gate {gate!r}, "
                               f"forced {body.get('forced')!r}")
        after = self._read_champion()
        if after != target:
            raise SmokeFailure(f"after promoting v{target} the champion alias in S3 is v{after}")
        verdict = "forced past the gate" if body["forced"] else "gate passed"
        return f"champion v{before} → v{target} ({verdict}: {gate.get('reason')})"

    def rollback(self) -> str:
        """Roll back; the alias must come back to the champion from before the promotion."""
        before = self._read_champion()
        body = self._post(f"models/{self.dataset}/rollback", {"reason": "stepml smoke: rollback"})
        if body.get("version") != self._champion:
            raise SmokeFailure(f"rollback answered champion v{body.get('version')}, expected v{self._champion}")
        after = self._read_champion()
        if after != self._champion:
            raise SmokeFailure(f"after the rollback the champion alias in S3 is v{after}, expected v{self._champion}")
        return f"champion v{before} → v{after}"

    def cleanup(self) -> str:
        """Stop the smoke runs still going and delete every object version of the dataset."""
        if not self._wrote_anything:
            return "nothing to clean up: nothing was uploaded"
        stopped = self._stop_running_executions()
        deleted = self._delete_everything()
        if stopped:
            # Stopping an execution does not stop the Lambda invocation in flight: its stage still
            # finishes and may write (a report, a staged model) after the deletion above. Sweep
            # again until the prefixes have stayed empty for settle_seconds.
            if self.on_progress:
                self.on_progress(f"stopped {stopped} run(s); waiting for their last stage to finish")
            quiet_since = time.monotonic()
            while time.monotonic() - quiet_since < self.settle_seconds:
                time.sleep(min(1.0, self.settle_seconds))
                more = self._delete_everything()
                if more:
                    deleted += more
                    quiet_since = time.monotonic()
        bucket = self.stack.bucket
        left = [prefix for prefix in keys.dataset_prefixes(self.dataset) if self._object_versions(prefix)]
        if left:
            raise SmokeFailure(f"objects are left under s3://{bucket}/ {', '.join(left)}: delete them by hand")
        note = f", stopped {stopped} running execution(s)" if stopped else ""
        return f"deleted {deleted} object versions of {self.dataset}{note}"

    # -- helpers -----------------------------------------------------------------------------

    def _read_champion(self) -> int | None:
        """The champion as stored in S3 (read independently of the API that changed it)."""
        return self.stack.registry.alias_version(self.dataset, registry.CHAMPION)

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST JSON to the stack's HTTP API; anything but a 200 with a JSON object fails the step."""
        url = f"{self.stack.api_url}/{path}"
        request = urllib.request.Request(
            url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"message": raw[:200].decode(errors="replace")}
        if status != 200 or not isinstance(body, dict):
            message = body.get("message") if isinstance(body, dict) else body
            raise SmokeFailure(f"POST /{urllib.parse.unquote(path)} answered {status}: {message}")
        return body

    def _delete_everything(self) -> int:
        """Delete every object version and delete marker under the dataset's prefixes; how many."""
        s3 = self.stack.client("s3")
        bucket = self.stack.bucket
        deleted = 0
        for prefix in keys.dataset_prefixes(self.dataset):
            found = self._object_versions(prefix)
            # delete_objects takes at most 1,000 keys per request.
            for start in range(0, len(found), 1000):
                chunk = found[start : start + 1000]
                answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": chunk, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise SmokeFailure(
                        f"could not delete s3://{bucket}/{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                    )
                deleted += len(chunk)
        return deleted

    def _object_versions(self, prefix: str) -> list[dict[str, str]]:
        """Every version and delete marker under ``prefix`` (the config prefix is one exact key)."""
        s3 = self.stack.client("s3")
        found: list[dict[str, str]] = []
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=self.stack.bucket, Prefix=prefix):
            for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                if prefix.endswith("/") or item["Key"] == prefix:
                    found.append({"Key": item["Key"], "VersionId": item["VersionId"]})
        return found

    def _stop_running_executions(self) -> int:
        """Stop the runs of the smoke uploads that are still going, so they write nothing later."""
        stopped = 0
        for key in self._uploads:
            execution = self.stack.find_execution_for(key, self._started)
            if execution is not None and execution["status"] == "RUNNING":
                self.stack.client("stepfunctions").stop_execution(
                    executionArn=execution["executionArn"], cause="stepml smoke cleaned up"
                )
                stopped += 1
        return stopped


def run_smoke(stack: Stack, **options: Any) -> SmokeReport:
    """Run :class:`SmokeCheck` on ``stack`` with ``options``; returns its report."""
    return SmokeCheck(stack, **options).run()
