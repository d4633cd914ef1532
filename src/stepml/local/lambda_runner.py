"""Run Lambda handlers as Lambda does, each function in its own environments, and route moto's
invocations here.

moto runs Lambda code only in Docker. Every invocation it serves — a Step Functions Task (both
``arn:…:function:NAME`` and ``arn:aws:states:::lambda:invoke``), a direct ``lambda.invoke``, the
local HTTP API — ends in ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``, which
returns ``(payload_json, errored, logs)``. :func:`install` replaces that one method: functions that a
running local stack registered (see :func:`register`) are run by :func:`run_handler`; any other
function falls through to moto's own implementation.

What a handler sees matches AWS where it matters to this project:

* it runs in an execution environment of its own (:mod:`stepml.local.worker`): a process per
  concurrent invocation, kept warm, with the function's environment only — its template variables,
  Lambda's reserved ``AWS_*`` variables and its **role's temporary credentials** (key, secret and
  session token from ``sts:AssumeRole`` on the function's role, as CloudFormation created it);
* it imports only what its package holds on AWS: the standard library, the runtime's boto3, its
  code folder and its ``Layers`` (:mod:`stepml.local.imports`); anything else is
  ``No module named '…'`` — at init, ``Runtime.ImportModuleError``;
* the function's configuration is enforced as deployed: ``Timeout``, ``MemorySize`` (peak resident
  memory), ``EphemeralStorage`` (its ``/tmp``), and Lambda's 6 MB limits on the request and the
  response of a synchronous invocation;
* a function's reserved concurrency (``ReservedConcurrentExecutions``) is a hard cap: an invocation
  beyond it is refused before it runs, with the Invoke API's HTTP 429 ``TooManyRequestsException``
  ("Rate Exceeded."), which Step Functions reports as ``Lambda.TooManyRequestsException``;
* an exception becomes the runtime's error payload, ``{"errorMessage", "errorType", "requestId",
  "stackTrace"}``, so Step Functions matches ``errorType`` (the class name) in ``Retry``/``Catch``;
  a stopped environment returns what Lambda returns (``Sandbox.Timedout``, ``Runtime.OutOfMemory``,
  ``Runtime.ExitError``), which Step Functions reports as ``Lambda.Unknown``.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stepml.local.imports import ImportPolicyError, code_policy, layers_policy
from stepml.local.template import FunctionSpec
from stepml.local.worker import EnvironmentPool, ExecutionEnvironment, Limits

logger = logging.getLogger("stepml_local.lambda")

#: moto's own ``_invoke_lambda``, kept to fall back on and to restore on :func:`uninstall`.
_moto_invoke_lambda: Callable[..., tuple[str, bool, str]] | None = None
_install_lock = threading.Lock()


#: Lambda's limit on a synchronous invocation's request and response (6 MB).
MAX_REQUEST_BYTES = 6 * 1024 * 1024
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100
#: At most this many environments of one function run at once offline (more calls wait).
MAX_ENVIRONMENTS = int(os.environ.get("STEPML_LOCAL_MAX_ENVIRONMENTS", "4"))

#: Lambda's default concurrency quota per account and Region, and the part of it that must stay
#: unreserved: a reservation that leaves less is refused (PutFunctionConcurrency, CloudFormation).
ACCOUNT_CONCURRENCY = 1000
MIN_UNRESERVED_CONCURRENCY = 100

#: Credentials for a role, as a service assumes it: (role ARN, service principal) → Credentials.
CredentialsProvider = Callable[[str, str], Any]


@dataclass
class RegisteredFunction:
    """A deployed function the local stack runs: its template spec, endpoint and environments."""

    spec: FunctionSpec
    endpoint_url: str
    region: str
    stack_name: str
    credentials: CredentialsProvider | None = None
    strict: bool = True
    pool: EnvironmentPool = field(default_factory=lambda: EnvironmentPool(MAX_ENVIRONMENTS))
    role_credentials: dict[str, str] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: The SQS queue an asynchronous invocation goes to once it failed every attempt (DeadLetterQueue).
    dead_letter_arn: str | None = None
    #: Invocations running (or waiting for an environment) now: what reserved concurrency caps.
    in_flight: int = 0
    concurrency_lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, reserved: int | None) -> bool:
        """Count one more invocation in flight, unless ``reserved`` are already: then False."""
        with self.concurrency_lock:
            if reserved is not None and self.in_flight >= reserved:
                return False
            self.in_flight += 1
            return True

    def leave(self) -> None:
        """The invocation counted by :meth:`enter` has ended."""
        with self.concurrency_lock:
            self.in_flight -= 1


def too_many_requests() -> Exception:
    """What Lambda's Invoke API answers for an invocation beyond the function's reserved
    concurrency: HTTP 429, ``x-amzn-ErrorType: TooManyRequestsException``, "Rate Exceeded."."""
    # moto is imported here, not at the top: `import stepml.local` does not load moto.
    from moto.core.exceptions import JsonRESTError

    error = JsonRESTError("TooManyRequestsException", "Rate Exceeded.")
    error.code = 429
    error.description = json.dumps(
        {"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."}
    )
    return error


def reserved_concurrency(function: Any) -> int | None:
    """A deployed function's ``ReservedConcurrentExecutions`` (None: it has none), as moto holds
    it: set by CloudFormation from the template, or by ``put_function_concurrency``."""
    value = getattr(function, "reserved_concurrency", None)
    return None if value is None or value == "" else int(value)


def unreserved_concurrency_problem(
    reserved: Mapping[str, int | None], quota: int = ACCOUNT_CONCURRENCY
) -> str | None:
    """Why Lambda would refuse these reservations (function → ReservedConcurrentExecutions, None
    for none) in an account whose concurrency quota is ``quota``; None if it would accept them."""
    total = sum(value for value in reserved.values() if value is not None)
    if quota - total >= MIN_UNRESERVED_CONCURRENCY:
        return None
    listed = ", ".join(f"{name} {value}" for name, value in sorted(reserved.items()) if value is not None)
    return (
        f"the functions reserve {total} concurrent executions ({listed}) of the account's {quota}: "
        "Lambda refuses a ReservedConcurrentExecutions that decreases the account's "
        f"UnreservedConcurrentExecution below its minimum value of [{MIN_UNRESERVED_CONCURRENCY}]"
    )


#: (account, region, function name) → what to run. Keyed by name, not ARN: a published version
#: has a qualified ARN but the same code.
_registry: dict[tuple[str, str, str], RegisteredFunction] = {}


@dataclass
class Invocation:
    """The outcome of one handler call."""

    function_name: str
    request_id: str
    payload: Any  # the handler's return value, or the runtime's error payload
    errored: bool
    duration_ms: float
    log_lines: list[str] = field(default_factory=list)

    @property
    def error_type(self) -> str | None:
        """``errorType`` of the error payload (the exception class name), if the call failed."""
        if self.errored and isinstance(self.payload, dict):
            return self.payload.get("errorType")
        return None

    def payload_json(self) -> str:
        """The payload as the runtime serializes it."""
        return json.dumps(self.payload)


_environments_root: Path | None = None
_root_lock = threading.Lock()


def environments_root() -> Path:
    """The folder that holds every environment's /tmp and log (one per process)."""
    global _environments_root
    with _root_lock:
        if _environments_root is None or not _environments_root.is_dir():
            _environments_root = Path(tempfile.mkdtemp(prefix="stepml-lambda-"))
        return _environments_root


# -- running a handler -----------------------------------------------------------------------------


def function_env(
    spec: FunctionSpec,
    *,
    function_name: str,
    template_variables: Mapping[str, str],
    endpoint_url: str,
    region: str,
    credentials: Mapping[str, str] | None = None,
    memory_size: int | None = None,
) -> dict[str, str]:
    """The environment a function runs with: its template variables plus what Lambda sets.

    Lambda's reserved variables win over the template's (AWS refuses to let a template set them):
    the region, the role's temporary credentials (``credentials``: ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``) and the function's own names. Offline, the
    AWS SDK is aimed at the local endpoint with ``AWS_ENDPOINT_URL``.
    """
    env = {str(k): str(v) for k, v in template_variables.items()}
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size or spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime or 'python3.12'}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "en_US.UTF-8",
            "TZ": ":UTC",
            # No X-Ray daemon listens offline: Powertools' Tracer stays off (on AWS, Lambda's
            # Active tracing gives it a daemon and a trace id; the template never sets this).
            "POWERTOOLS_TRACE_DISABLED": "true",
        }
    )
    env.update(credentials or {})
    return env


def _runtime_error(error_type: str, message: str, request_id: str) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": []}


def run_handler(
    spec: FunctionSpec,
    event: Any,
    *,
    env: Mapping[str, str],
    function_name: str,
    function_arn: str,
    limits: Limits | None = None,
    pool: EnvironmentPool | None = None,
) -> Invocation:
    """Call the function's handler with ``event`` in an environment of its own; never raises.

    With ``pool``, a warm environment of the function is reused (or started); without, a one-off
    environment runs the call and is stopped after it. With ``limits.enforced``, a spec whose
    ``layers`` are known imports only what its runtime, layers and code folder hold.
    """
    request_id = str(uuid.uuid4())
    limits = limits or Limits(memory_mb=spec.memory_size, timeout_s=float(spec.timeout))
    started = time.perf_counter()
    outcome_lines: list[str] = []
    max_memory_mb = 0.0
    stopped: str | None = None
    try:
        event_json = json.dumps(event)
    except (TypeError, ValueError) as exc:
        payload: Any = _runtime_error("InvalidRequestContentException", f"Could not parse request body into json: {exc}", request_id)
        errored = True
    else:
        if limits.enforced and len(event_json.encode("utf-8")) > MAX_REQUEST_BYTES:
            payload = _runtime_error(
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_REQUEST_BYTES} bytes for the InvokeFunction operation",
                request_id,
            )
            errored = True
        elif not spec.module_file.is_file():
            module = spec.handler.rpartition(".")[0]
            payload = _runtime_error(
                "Runtime.ImportModuleError",
                f"Unable to import module '{module}': No module named '{module}'",
                request_id,
            )
            errored = True
        else:
            own_pool = pool or EnvironmentPool(1)
            code_changed = spec.module_file.stat().st_mtime

            def create() -> ExecutionEnvironment:
                imports = layers_policy(spec.layers) if limits.enforced else None
                return ExecutionEnvironment(
                    function_name=function_name,
                    code_dir=spec.code_dir,
                    handler=spec.handler,
                    env=env,
                    limits=limits,
                    root=environments_root(),
                    imports=imports,
                    own_imports=code_policy(spec.code_dir) if imports is not None else None,
                )

            try:
                environment = own_pool.acquire(create, fresh_after=code_changed)
            except ImportPolicyError as exc:  # a layer folder that went away while the stack runs
                if pool is None:
                    own_pool.close()
                module = spec.handler.rpartition(".")[0]
                payload = _runtime_error(
                    "Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}", request_id
                )
                errored = True
            else:
                try:
                    outcome = environment.invoke(
                        event_json,
                        request_id,
                        {
                            "function_name": function_name,
                            "invoked_function_arn": function_arn,
                            "memory_limit_in_mb": limits.memory_mb,
                            "timeout_seconds": limits.timeout_s,
                            "aws_request_id": request_id,
                        },
                    )
                finally:
                    own_pool.release(environment)
                    if pool is None:
                        own_pool.close()
                payload, errored = outcome.payload, outcome.errored
                outcome_lines, max_memory_mb, stopped = outcome.log_lines, outcome.max_memory_mb, outcome.stopped
                if not errored and limits.enforced:
                    size = len(json.dumps(payload).encode("utf-8"))
                    if size > MAX_RESPONSE_BYTES:
                        payload = _runtime_error(
                            "Function.ResponseSizeTooLarge",
                            "Response payload size exceeded maximum allowed payload size "
                            f"({MAX_RESPONSE_BYTES} bytes).",
                            request_id,
                        )
                        errored = True
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    record = {
        "event": "lambda.invoke",
        "function": spec.logical_id,
        "function_name": function_name,
        "request_id": request_id,
        "duration_ms": duration_ms,
        "max_memory_mb": max_memory_mb,
        "error": payload.get("errorType") if errored and isinstance(payload, dict) else None,
        "stopped": stopped,
    }
    line = json.dumps(record)
    (logger.warning if errored else logger.info)(line)
    log_lines = [*outcome_lines, line]
    if errored:
        log_lines.append(json.dumps(payload))
    return Invocation(
        function_name=function_name,
        request_id=request_id,
        payload=payload,
        errored=errored,
        duration_ms=duration_ms,
        log_lines=log_lines,
    )


# -- the moto hook ---------------------------------------------------------------------------------


def register(
    *,
    account_id: str,
    region: str,
    function_name: str,
    spec: FunctionSpec,
    endpoint_url: str,
    stack_name: str,
    credentials: CredentialsProvider | None = None,
    strict: bool = True,
    dead_letter_arn: str | None = None,
) -> None:
    """Have the deployed function ``function_name`` run ``spec``'s handler from now on.

    ``credentials(role_arn, "lambda.amazonaws.com")`` gives the role's temporary credentials for
    each function's environments; ``strict`` enforces the function's limits; ``dead_letter_arn``
    is the SQS queue of its failed asynchronous invocations.

    Raises :class:`~stepml.local.imports.ImportPolicyError` when one of the function's layers
    cannot be read (its ``ContentUri`` folder, its requirements files).
    """
    if strict:
        unknown = [layer.name for layer in spec.layers or () if layer.content_dir is None]
        if spec.layers is not None and layers_policy(spec.layers) is None:
            logger.warning(
                json.dumps(
                    {
                        "event": "lambda.imports_not_checked",
                        "function": spec.logical_id,
                        "reason": f"the contents of its layers {unknown} are unknown offline",
                    }
                )
            )
    previous = _registry.get((account_id, region, function_name))
    if previous is not None:
        previous.pool.close()
    _registry[(account_id, region, function_name)] = RegisteredFunction(
        spec=spec,
        endpoint_url=endpoint_url,
        region=region,
        stack_name=stack_name,
        credentials=credentials,
        strict=strict,
        dead_letter_arn=dead_letter_arn,
    )


def unregister_stack(stack_name: str, endpoint_url: str) -> None:
    """Forget the functions a stopped stack registered."""
    for key, value in list(_registry.items()):
        if value.stack_name == stack_name and value.endpoint_url == endpoint_url:
            del _registry[key]
            value.pool.close()


def registered(account_id: str, region: str, function_name: str) -> RegisteredFunction | None:
    """The registration of a deployed function, if a running local stack owns it."""
    return _registry.get((account_id, region, function_name))


def invoke_as_service(function: Any, event: Any) -> tuple[bytes, bool]:
    """Invoke a deployed function (moto's model) synchronously, as an AWS service integration
    does (API Gateway): its payload and whether it errored. A throttled invocation (over the
    function's reserved concurrency) is an error too, with Lambda's ``TooManyRequestsException``
    as payload: the caller answers it as it answers any failed invocation."""
    response_headers: dict[str, str] = {}
    try:
        payload = function.invoke(json.dumps(event), {}, response_headers)
    except Exception as exc:
        if getattr(exc, "code", None) != 429:
            raise
        throttled = {"errorType": "TooManyRequestsException", "errorMessage": "Rate Exceeded."}
        return json.dumps(throttled).encode("utf-8"), True
    raw = payload if isinstance(payload, bytes) else str(payload).encode("utf-8")
    return raw, "x-amz-function-error" in response_headers


def _parse_event(event: Any) -> Any:
    # moto's LambdaFunction.invoke json-decodes the body, and passes the *string* "{}" when the
    # request had none; the runtime would hand the handler an empty dict.
    if event is None or event == "{}":
        return {}
    return event


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for ``LambdaFunction._invoke_lambda``: run registered functions as Lambda does."""
    registration = _registry.get((self.account_id, self.region, self.function_name))
    if registration is None:
        assert _moto_invoke_lambda is not None
        return _moto_invoke_lambda(self, event)
    # Not strict (--no-strict): no limit is enforced, reserved concurrency included.
    reserved = reserved_concurrency(self) if registration.strict else None
    if not registration.enter(reserved):
        logger.warning(
            json.dumps(
                {"event": "lambda.throttled", "function_name": self.function_name, "reserved_concurrency": reserved}
            )
        )
        raise too_many_requests()
    try:
        return _run_registered(self, registration, event)
    finally:
        registration.leave()


def _run_registered(self: Any, registration: RegisteredFunction, event: Any) -> tuple[str, bool, str]:
    with registration.lock:
        if registration.role_credentials is None and registration.credentials is not None:
            # One session per function, as long as the stack runs (moto never expires them).
            credentials = registration.credentials(self.role, "lambda.amazonaws.com")
            registration.role_credentials = credentials.environment()
    memory = int(getattr(self, "memory_size", None) or registration.spec.memory_size)
    timeout = float(getattr(self, "timeout", None) or registration.spec.timeout)
    ephemeral = getattr(self, "ephemeral_storage", None)
    env = function_env(
        registration.spec,
        function_name=self.function_name,
        template_variables=self.environment_vars or {},
        endpoint_url=registration.endpoint_url,
        region=registration.region,
        credentials=registration.role_credentials,
        memory_size=memory,
    )
    invocation = run_handler(
        registration.spec,
        _parse_event(event),
        env=env,
        function_name=self.function_name,
        function_arn=self.function_arn,
        limits=Limits(
            memory_mb=memory,
            timeout_s=timeout,
            ephemeral_mb=int(ephemeral or 512),
            enforced=registration.strict,
        ),
        pool=registration.pool,
    )
    _save_logs(self, invocation)
    _publish_metrics(self, invocation)
    return invocation.payload_json(), invocation.errored, "\n".join(invocation.log_lines)


def _save_logs(function: Any, invocation: Invocation) -> None:
    """Write the invocation's log lines to the function's CloudWatch log group, as Lambda does."""
    try:
        function.logs_backend.ensure_log_group(function.logs_group_name)
        function.save_logs("\n".join(invocation.log_lines))
    except Exception:  # logs are a convenience: never fail an invocation for them
        logger.debug(
            "could not write CloudWatch logs for %s", function.function_name, exc_info=True
        )


def _publish_metrics(function: Any, invocation: Invocation) -> None:
    """Turn the invocation's embedded-metric-format lines into CloudWatch metrics, as CloudWatch
    Logs does on AWS (:mod:`stepml.local.emf`)."""
    from moto.cloudwatch.models import cloudwatch_backends

    from stepml.local import emf

    try:
        emf.publish(invocation.log_lines, cloudwatch_backends[function.account_id][function.region])
    except Exception:  # metrics are a convenience: never fail an invocation for them
        logger.debug("could not put the metrics of %s", function.function_name, exc_info=True)


def install() -> None:
    """Route moto's Lambda invocations through :func:`run_handler` (idempotent)."""
    global _moto_invoke_lambda
    from moto.awslambda.models import LambdaFunction

    with _install_lock:
        if _moto_invoke_lambda is None:
            _moto_invoke_lambda = LambdaFunction._invoke_lambda
            LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]


def uninstall() -> None:
    """Restore moto's own ``_invoke_lambda``."""
    global _moto_invoke_lambda
    from moto.awslambda.models import LambdaFunction

    with _install_lock:
        if _moto_invoke_lambda is not None:
            LambdaFunction._invoke_lambda = _moto_invoke_lambda  # type: ignore[method-assign]
            _moto_invoke_lambda = None
