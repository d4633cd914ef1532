"""EventBridge → Step Functions, offline: start an execution for each matched S3 event.

moto delivers S3 events to EventBridge rules (``Rule.send_to_targets``) but has no branch for a
Step Functions target, and the S3 path wraps the delivery in a bare ``except``, so the failure is
silent. :func:`install` wraps ``send_to_targets``: state-machine targets are handled here, every
other target still goes to moto.

What reaches the state machine is what AWS would send: moto's S3 event is normalised to the shape
of a real S3 → EventBridge event first (``etag`` not ``eTag``, an ISO ``time``, a fresh ``id``, the
API name as ``reason``), the rule's own pattern decides (so an ``"Object Tags Added"`` event is not
an ``"Object Created"`` one), and a disabled rule delivers nothing.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from stepml.local.targets import target_input

logger = logging.getLogger("stepml_local.events")

_moto_send_to_targets: Callable[..., None] | None = None
_install_lock = threading.Lock()

#: Longest execution name Step Functions accepts.
MAX_EXECUTION_NAME = 80

#: Whether a target's RoleArn must allow ``states:StartExecution`` (strict local stacks).
_check_roles = False


def check_target_roles(enabled: bool) -> None:
    """Have state-machine targets start executions only when their role may (as on AWS)."""
    global _check_roles
    _check_roles = enabled


def target_role_problem(target: dict[str, Any]) -> str | None:
    """Why EventBridge could not start ``target``'s execution with its role, or None if it can."""
    from stepml.local import iam

    role_arn = str(target.get("RoleArn") or "")
    if not role_arn:
        return "the target has no RoleArn: EventBridge needs a role to start an execution"
    account = role_arn.split(":")[4]
    try:
        from moto.iam.models import iam_backends

        role = iam_backends[account][iam.PARTITION].get_role_by_arn(role_arn)
    except Exception:  # noqa: BLE001 - moto raises its own NotFound types
        return f"its role {role_arn} does not exist"
    if not iam.trusts_service(role, "events.amazonaws.com"):
        return f"events.amazonaws.com cannot assume its role {role_arn}"
    if not iam.role_allows(account, role_arn, "states:StartExecution", str(target["Arn"])):
        return iam.denial_message(role_arn, "states:StartExecution", str(target["Arn"]))
    return None


def is_state_machine_arn(arn: str) -> bool:
    """Whether an EventBridge target ARN names a Step Functions state machine."""
    parts = arn.split(":", 6)
    return len(parts) >= 6 and parts[2] == "states" and parts[5] == "stateMachine"


def _is_moto_s3_event(event: dict[str, Any]) -> bool:
    detail = event.get("detail")
    return (
        event.get("source") == "aws.s3"
        and isinstance(detail, dict)
        and isinstance(detail.get("object"), dict)
        and "eTag" in detail["object"]
    )


def normalise_s3_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of moto's S3 EventBridge event in AWS's shape; other events are copied unchanged.

    AWS (S3 → EventBridge): ``detail.object`` has ``key``, ``size``, ``etag``, ``version-id``
    (versioned buckets only), ``sequencer``; ``time`` is ISO 8601; ``id`` is unique per event;
    ``detail.reason`` names the API call (``PutObject``…). moto writes ``eTag``, a Unix ``time``,
    a constant ``id`` and ``reason: ObjectCreated``.
    """
    event = copy.deepcopy(event)
    if not _is_moto_s3_event(event):
        return event
    event["id"] = str(uuid.uuid4())
    when = event.get("time")
    if isinstance(when, (int, float)):
        event["time"] = dt.datetime.fromtimestamp(when, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    detail = event["detail"]
    obj = detail["object"]
    obj["etag"] = obj.pop("eTag")
    if obj.get("version-id") in (None, "null"):
        obj.pop("version-id", None)  # AWS omits it for an unversioned bucket
    # An increasing hex string, as AWS's sequencer is (moto's is a constant).
    obj["sequencer"] = f"{time.time_ns() // 1000:018X}"
    if detail.get("reason") == "ObjectCreated":
        # moto keeps only "ObjectCreated"; a multipart upload's ETag ends in "-<parts>". A copy
        # cannot be told from a put here: both read PutObject.
        detail["reason"] = "CompleteMultipartUpload" if "-" in str(obj["etag"]) else "PutObject"
    return event


def execution_name(event: dict[str, Any], now: dt.datetime | None = None) -> str:
    """A unique, readable execution name: ``<dataset>-<UTC timestamp>-<8 hex>`` (≤ 80 chars).

    For an S3 key ``raw/<dataset>/<file>.csv`` the first part is the dataset folder; for a key
    with no sub-folder it is the file's stem; for other events, the detail-type. Never moto's
    event ``id``, which is the same for every event.
    """
    now = now or dt.datetime.now(dt.UTC)
    key = ((event.get("detail") or {}).get("object") or {}).get("key")
    if isinstance(key, str) and key:
        parts = [p for p in key.split("/") if p]
        label = parts[-2] if len(parts) >= 3 else parts[-1].rsplit(".", 1)[0]
    else:
        label = str(event.get("detail-type") or event.get("source") or "event")
    # Step Functions forbids whitespace, brackets, wildcards and most punctuation in names.
    label = re.sub(r"[^A-Za-z0-9_-]+", "-", label).strip("-") or "event"
    suffix = f"-{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    return label[: MAX_EXECUTION_NAME - len(suffix)] + suffix


def start_execution(state_machine_arn: str, name: str, execution_input: str) -> str:
    """Start an execution in moto's *executing* Step Functions backend; returns its ARN."""
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    _, _, _, region, account, _ = state_machine_arn.split(":", 5)
    backend = stepfunctions_parser_backends[account][region]
    execution = backend.start_execution(
        state_machine_arn, name=name, execution_input=execution_input
    )
    return str(execution.execution_arn)


def _send_to_targets(
    self: Any, original_event: dict[str, Any], transform_input: bool = True
) -> None:
    """Replacement for ``moto.events.models.Rule.send_to_targets`` (see the module docstring)."""
    if getattr(self, "state", "ENABLED") != "ENABLED":
        return
    from stepml.local import run_events

    state_machines = [t for t in self.targets if is_state_machine_arn(str(t.get("Arn", "")))]
    functions = [t for t in self.targets if run_events.is_function_arn(str(t.get("Arn", "")))]
    others = [t for t in self.targets if t not in state_machines and t not in functions]
    if functions:
        run_events.deliver_to_functions(self, functions, original_event)
    if state_machines:
        event = normalise_s3_event(original_event)
        if self.event_pattern.matches_event(event):
            for target in state_machines:
                name = execution_name(event)
                problem = target_role_problem(target) if _check_roles else None
                if problem is not None:
                    # AWS counts a FailedInvocation and starts nothing; say why here.
                    logger.error(
                        json.dumps(
                            {
                                "event": "eventbridge.target_failed",
                                "rule": self.name,
                                "target": target["Arn"],
                                "cause": problem,
                            }
                        )
                    )
                    run_events.dead_letter(self, target, event, "NO_PERMISSIONS", problem)
                    continue
                try:
                    arn = start_execution(target["Arn"], name, target_input(target, event))
                except Exception as exc:  # moto's caller swallows errors silently: say it here
                    run_events.dead_letter(self, target, event, "SDK_CLIENT_ERROR", str(exc))
                    logger.exception(
                        json.dumps(
                            {
                                "event": "eventbridge.target_failed",
                                "rule": self.name,
                                "target": target["Arn"],
                                "execution": name,
                            }
                        )
                    )
                    continue
                logger.info(
                    json.dumps(
                        {
                            "event": "eventbridge.execution_started",
                            "rule": self.name,
                            "detail_type": event.get("detail-type"),
                            "key": ((event.get("detail") or {}).get("object") or {}).get("key"),
                            "execution": arn,
                        }
                    )
                )
    if others and _moto_send_to_targets is not None:
        # moto raises NotImplementedError on a target type it lacks, which would also drop the
        # targets after it: hand it only the ones it knows.
        rule = copy.copy(self)
        rule.targets = others
        _moto_send_to_targets(rule, original_event, transform_input)


def install() -> None:
    """Wrap moto's ``Rule.send_to_targets`` with the Step Functions branch (idempotent)."""
    global _moto_send_to_targets
    from moto.events.models import Rule

    with _install_lock:
        if _moto_send_to_targets is None:
            _moto_send_to_targets = Rule.send_to_targets
            Rule.send_to_targets = _send_to_targets  # type: ignore[method-assign,assignment]


def uninstall() -> None:
    """Restore moto's own ``Rule.send_to_targets``."""
    global _moto_send_to_targets
    from moto.events.models import Rule

    global _check_roles
    with _install_lock:
        _check_roles = False
        if _moto_send_to_targets is not None:
            Rule.send_to_targets = _moto_send_to_targets  # type: ignore[method-assign]
            _moto_send_to_targets = None
