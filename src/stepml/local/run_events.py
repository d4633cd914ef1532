"""Step Functions → EventBridge → Lambda, offline: a run's end is an event, and functions are targets.

On AWS, Step Functions sends an "Execution Status Change" event to the default bus whenever an
execution ends, and an EventBridge rule may send it to a Lambda function (asynchronously, if the
function's resource policy lets ``events.amazonaws.com`` invoke it for that rule). moto's
interpreter sends no such event, and moto's EventBridge has no Lambda target. :func:`install` adds
both: the end of every execution is put on the default bus with AWS's shape, and
:func:`deliver_to_functions` (called by :mod:`stepml.local.events` for function targets) invokes
the function through the local Lambda runner — refused, as on AWS, when its resource policy does
not allow the rule.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from typing import Any

from stepml.local.targets import target_input

logger = logging.getLogger("stepml_local.events")

DETAIL_TYPE = "Step Functions Execution Status Change"
_originals: dict[str, Any] = {}
_lock = threading.Lock()
#: Whether a function target's resource policy must allow the rule (strict local stacks).
_check_policies = False
#: Lambda retries a failed asynchronous invocation twice (offline: at once, without AWS's waits).
ASYNC_RETRIES = 2


def is_function_arn(arn: str) -> bool:
    parts = arn.split(":", 6)
    return len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function"


def _millis(value: Any) -> int | None:
    return int(value.timestamp() * 1000) if isinstance(value, dt.datetime) else None


def status_change_event(execution: Any) -> dict[str, Any]:
    """The event AWS puts on the default bus when ``execution`` (moto's parser ``Execution``) ends."""
    status = getattr(execution.exec_status, "value", execution.exec_status)
    output = execution.output
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": DETAIL_TYPE,
        "source": "aws.states",
        "account": execution.account_id,
        "time": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": execution.region_name,
        "resources": [execution.exec_arn],
        "detail": {
            "executionArn": execution.exec_arn,
            "stateMachineArn": execution.state_machine_arn,
            "name": execution.name,
            "status": str(status),
            "startDate": _millis(execution.start_date),
            "stopDate": _millis(execution.stop_date),
            "input": json.dumps(execution.input_data),
            "output": None if output is None else (output if isinstance(output, str) else json.dumps(output)),
            "inputDetails": {"included": True},
            "outputDetails": {"included": True} if output is not None else None,
            "error": execution.error,
            "cause": execution.cause,
        },
    }


def publish_status_change(execution: Any) -> None:
    """Send ``execution``'s status-change event to every rule on its account's default bus."""
    from moto.events.models import events_backends

    event = status_change_event(execution)
    try:
        bus = events_backends[execution.account_id][execution.region_name].event_buses["default"]
    except KeyError:
        return
    for rule in list(bus.rules.values()):
        try:
            rule.send_to_targets(event)  # type: ignore[arg-type]  # EventBridge's message, as moto builds it
        except Exception:  # a target's failure must not fail the execution
            logger.exception(json.dumps({"event": "eventbridge.target_failed", "rule": rule.name}))


def _terminated(self: Any) -> None:
    _originals["terminated"](self)
    publish_status_change(self.execution)


def invoke_problem(rule: Any, function_arn: str) -> str | None:
    """Why EventBridge may not invoke ``function_arn`` for ``rule``, or None if it may."""
    from moto.awslambda.models import lambda_backends

    _, _, _, region, account, _, name = function_arn.split(":", 6)
    try:
        policy = json.loads(lambda_backends[account][region].get_policy(name.split(":")[0], None))
    except Exception:  # noqa: BLE001 - moto raises its own not-found types
        policy = {"Statement": []}
    if isinstance(policy.get("Policy"), str):  # moto answers as the GetPolicy API does
        policy = json.loads(policy["Policy"])
    for statement in policy.get("Statement") or []:
        principal = statement.get("Principal") or {}
        service = principal.get("Service") if isinstance(principal, dict) else principal
        actions = statement.get("Action")
        actions = actions if isinstance(actions, list) else [actions]
        source = ((statement.get("Condition") or {}).get("ArnLike") or {}).get("AWS:SourceArn")
        if (
            statement.get("Effect") == "Allow"
            and service == "events.amazonaws.com"
            and {"lambda:InvokeFunction", "lambda:*"} & set(actions)
            and source in (None, rule.arn)
        ):
            return None
    return (
        f"the resource policy of {function_arn} does not allow events.amazonaws.com to invoke it "
        f"for rule {rule.arn} (an AWS::Lambda::Permission with that SourceArn)"
    )


def deliver_to_functions(rule: Any, targets: list[dict[str, Any]], event: dict[str, Any]) -> None:
    """Invoke each function target asynchronously with the (transformed) event, as EventBridge does."""
    from moto.awslambda.models import lambda_backends

    if not rule.event_pattern.matches_event(event):
        return
    for target in targets:
        arn = str(target["Arn"])
        problem = invoke_problem(rule, arn) if _check_policies else None
        if problem is not None:
            logger.error(json.dumps({"event": "eventbridge.target_failed", "rule": rule.name, "target": arn, "cause": problem}))
            dead_letter(rule, target, event, "NO_PERMISSIONS", problem)
            continue
        _, _, _, region, account, _, name = arn.split(":", 6)
        function = lambda_backends[account][region].get_function(name)
        body = target_input(target, event)

        def invoke(function: Any = function, body: str = body, target: dict[str, Any] = target) -> None:
            try:
                for _ in range(1 + ASYNC_RETRIES):
                    headers: dict[str, str] = {}
                    payload = function.invoke(body, {"x-amz-invocation-type": "Event"}, headers)
                    if not headers.get("x-amz-function-error"):
                        return
                function_dead_letter(function, body, payload)
            except Exception as exc:  # asynchronous: nobody waits for the answer
                logger.exception(json.dumps({"event": "eventbridge.target_failed", "rule": rule.name, "target": target["Arn"]}))
                dead_letter(rule, target, event, "SDK_CLIENT_ERROR", str(exc))

        threading.Thread(target=invoke, name=f"eventbridge-{rule.name}", daemon=True).start()
        logger.info(json.dumps({"event": "eventbridge.function_invoked", "rule": rule.name, "target": arn}))


def dead_letter(rule: Any, target: dict[str, Any], event: dict[str, Any], code: str, message: str) -> None:
    """Put an event EventBridge could not deliver in the target's dead-letter queue, with the
    attributes AWS adds (RULE_ARN, TARGET_ARN, ERROR_CODE, ERROR_MESSAGE); no queue: it is lost."""
    from moto.sqs.models import sqs_backends

    queue_arn = str((target.get("DeadLetterConfig") or {}).get("Arn") or "")
    if not queue_arn:
        return
    _, _, _, region, account, queue = queue_arn.split(":", 5)
    attributes = {
        "RULE_ARN": rule.arn,
        "TARGET_ARN": str(target.get("Arn")),
        "ERROR_CODE": code,
        "ERROR_MESSAGE": message[:1000],
    }
    sqs_backends[account][region].send_message(
        queue,
        json.dumps(event),
        message_attributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
    )


def function_dead_letter(function: Any, event_body: str, payload: Any) -> None:
    """Send an asynchronous invocation that failed every attempt to the function's own dead-letter
    queue, as Lambda does: the event as the body, RequestID/ErrorCode/ErrorMessage attributes, sent
    with the function's role (a role that may not send to the queue is refused, and logged)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from stepml.local import lambda_runner

    registration = lambda_runner.registered(function.account_id, function.region, function.function_name)
    if registration is None or not registration.dead_letter_arn:
        logger.error(json.dumps({"event": "lambda.async_invocation_failed", "function": function.function_name}))
        return
    try:
        error = str(json.loads(payload).get("errorMessage", ""))
    except (TypeError, ValueError, AttributeError):
        error = str(payload)
    _, _, _, region, account, queue = registration.dead_letter_arn.split(":", 5)
    credentials = registration.role_credentials or {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"
    }
    sqs = boto3.client(
        "sqs", endpoint_url=registration.endpoint_url, region_name=region,
        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=credentials.get("AWS_SESSION_TOKEN"),
    )
    try:
        sqs.send_message(
            QueueUrl=f"{registration.endpoint_url.rstrip('/')}/{account}/{queue}",
            MessageBody=event_body,
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": str(uuid.uuid4())},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": error[:1000] or "unknown"},
            },
        )
    except (BotoCoreError, ClientError) as exc:  # Lambda counts these as DeadLetterErrors; nobody else hears
        logger.error(json.dumps({"event": "lambda.dead_letter_failed", "function": function.function_name,
                                 "queue": registration.dead_letter_arn, "cause": str(exc)}))
    else:
        logger.warning(json.dumps({"event": "lambda.dead_lettered", "function": function.function_name,
                                   "queue": registration.dead_letter_arn, "error": error[:200]}))


def check_function_policies(enabled: bool) -> None:
    global _check_policies
    _check_policies = enabled


def install() -> None:
    """Put every execution's end on the default bus (idempotent)."""
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    with _lock:
        if "terminated" not in _originals:
            _originals["terminated"] = BaseExecutionWorkerCommunication.terminated
            BaseExecutionWorkerCommunication.terminated = _terminated  # type: ignore[method-assign]


def uninstall() -> None:
    global _check_policies
    from moto.stepfunctions.parser.backend.execution import BaseExecutionWorkerCommunication

    with _lock:
        _check_policies = False
        if "terminated" in _originals:
            BaseExecutionWorkerCommunication.terminated = _originals.pop("terminated")  # type: ignore[method-assign]
