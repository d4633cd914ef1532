"""Run Lambda handlers in-process, as the Python runtime would, and route moto's invocations here.

moto runs Lambda code only in Docker. Every invocation it serves — a Step Functions Task (both
``arn:…:function:NAME`` and ``arn:aws:states:::lambda:invoke``), a direct ``lambda.invoke``, the
local HTTP API — ends in ``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event)``, which
returns ``(payload_json, errored, logs)``. :func:`install` replaces that one method: functions that a
running local stack registered (see :func:`register`) are run by :func:`run_handler`; any other
function falls through to moto's own implementation.

What a handler sees matches AWS where it matters to this project:

* its module is imported from the function's ``CodeUri`` folder, under a module name of its own
  (every function here has an ``app.py``), once, and kept warm until the file changes;
* its environment is the function's own (template variables as moto resolved them, plus the
  reserved ``AWS_*`` variables and the local endpoint), handed over with
  :func:`stepml.settings.function_environment` — per call and per thread, never via ``os.environ``,
  because executions run concurrently in one process;
* an exception becomes the runtime's error payload, ``{"errorMessage", "errorType", "requestId",
  "stackTrace"}``, so Step Functions matches ``errorType`` (the class name) in ``Retry``/``Catch``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from stepml.local.template import FunctionSpec
from stepml.settings import function_environment

logger = logging.getLogger("stepml_local.lambda")

#: moto's own ``_invoke_lambda``, kept to fall back on and to restore on :func:`uninstall`.
_moto_invoke_lambda: Callable[..., tuple[str, bool, str]] | None = None
_install_lock = threading.Lock()


@dataclass(frozen=True)
class RegisteredFunction:
    """A deployed function the local stack runs: its template spec and its endpoint."""

    spec: FunctionSpec
    endpoint_url: str
    region: str
    stack_name: str


#: (account, region, function name) → what to run. Keyed by name, not ARN: a published version
#: has a qualified ARN but the same code.
_registry: dict[tuple[str, str, str], RegisteredFunction] = {}


class LambdaContext:
    """The ``context`` argument of a handler: the attributes AWS's Python runtime provides."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        memory_limit_in_mb: int,
        timeout_seconds: int,
        function_version: str = "$LATEST",
        aws_request_id: str | None = None,
    ) -> None:
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        self.memory_limit_in_mb = memory_limit_in_mb
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = time.strftime("%Y/%m/%d/[$LATEST]") + uuid.uuid4().hex
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's configured timeout (never negative)."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))


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


# -- handler modules -------------------------------------------------------------------------------


class RuntimeFailure(Exception):
    """A failure of the runtime itself (module or handler not found), not of the handler's code."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class _ModuleCache:
    """Handler modules by function, reloaded when the file changes (a warm container otherwise)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._modules: dict[str, tuple[float, ModuleType]] = {}

    def handler(self, spec: FunctionSpec) -> Callable[[Any, LambdaContext], Any]:
        path = spec.module_file
        module_name = spec.handler.rpartition(".")[0]
        mtime = path.stat().st_mtime if path.is_file() else None
        with self._lock:
            key = str(path)
            cached = self._modules.get(key)
            if cached is None or cached[0] != mtime:
                if mtime is None:
                    raise RuntimeFailure(
                        "Runtime.ImportModuleError",
                        f"Unable to import module '{module_name}': No module named '{module_name}'",
                    )
                try:
                    cached = (mtime, self._import(spec, path))
                except SyntaxError as exc:
                    raise RuntimeFailure(
                        "Runtime.UserCodeSyntaxError",
                        f"Syntax error in module '{module_name}': {exc}",
                    ) from exc
                except Exception as exc:  # any import failure is reported this way
                    raise RuntimeFailure(
                        "Runtime.ImportModuleError",
                        f"Unable to import module '{module_name}': {exc}",
                    ) from exc
                self._modules[key] = cached
        function = getattr(cached[1], spec.function_attribute, None)
        if not callable(function):
            raise RuntimeFailure(
                "Runtime.HandlerNotFound",
                f"Handler '{spec.function_attribute}' missing on module '{module_name}'",
            )
        return function  # type: ignore[no-any-return]

    @staticmethod
    def _import(spec: FunctionSpec, path: Path) -> ModuleType:
        # A unique module name per function: two functions' app.py must not share sys.modules.
        # Flat (no dots), so that pickle and friends can look it up in sys.modules without
        # importing parent packages that do not exist.
        name = "stepml_local_fn_" + "".join(
            c if c.isalnum() else "_"
            for c in f"{spec.logical_id}_{spec.handler.rpartition('.')[0]}"
        )
        module_spec = importlib.util.spec_from_file_location(name, path)
        if module_spec is None or module_spec.loader is None:
            raise ImportError(f"Unable to import module '{spec.handler}' from {path}")
        module = importlib.util.module_from_spec(module_spec)
        # Registered before executing, as the import system does (dataclasses and pickling need
        # the module to be findable by its __name__).
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        return module


_modules = _ModuleCache()


# -- running a handler -----------------------------------------------------------------------------


def function_env(
    spec: FunctionSpec,
    *,
    function_name: str,
    template_variables: Mapping[str, str],
    endpoint_url: str,
    region: str,
) -> dict[str, str]:
    """The environment a function runs with: its template variables plus what Lambda sets.

    Lambda's reserved variables win over the template's (AWS refuses to let a template set them),
    and the AWS SDK is aimed at the local endpoint with fake credentials.
    """
    env = {str(k): str(v) for k, v in template_variables.items()}
    env.update(
        {
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_LAMBDA_FUNCTION_NAME": function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function_name}",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime or 'python3.12'}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
        }
    )
    return env


def error_payload(
    exc: BaseException, request_id: str, tb: TracebackType | None = None
) -> dict[str, Any]:
    """The payload AWS's Python runtime returns for an unhandled exception."""
    frames = traceback.extract_tb(tb if tb is not None else exc.__traceback__)
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": request_id,
        "stackTrace": traceback.format_list(frames),
    }


def run_handler(
    spec: FunctionSpec,
    event: Any,
    *,
    env: Mapping[str, str],
    function_name: str,
    function_arn: str,
) -> Invocation:
    """Call the function's handler with ``event`` in its own environment; never raises."""
    request_id = str(uuid.uuid4())
    context = LambdaContext(
        function_name=function_name,
        invoked_function_arn=function_arn,
        memory_limit_in_mb=spec.memory_size,
        timeout_seconds=spec.timeout,
        aws_request_id=request_id,
    )
    started = time.perf_counter()
    errored = False
    try:
        with function_environment(env):
            handler = _modules.handler(spec)
            result = handler(event, context)
        try:
            json.dumps(result)
            payload: Any = result
        except (TypeError, ValueError) as exc:
            # What the runtime reports when the return value is not JSON serializable.
            errored = True
            payload = {
                "errorMessage": f"Unable to marshal response: {exc}",
                "errorType": "Runtime.MarshalError",
                "requestId": request_id,
                "stackTrace": [],
            }
    except Exception as exc:  # noqa: BLE001 - the runtime turns any exception into a payload
        errored = True
        tb = exc.__traceback__
        # Drop this runner's own frames: the trace starts in the handler, as on AWS.
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        payload = error_payload(exc, request_id, tb)
        if isinstance(exc, RuntimeFailure):
            payload["errorType"] = exc.error_type
            payload["stackTrace"] = []
    duration_ms = round((time.perf_counter() - started) * 1000, 3)
    record = {
        "event": "lambda.invoke",
        "function": spec.logical_id,
        "function_name": function_name,
        "request_id": request_id,
        "duration_ms": duration_ms,
        "error": payload.get("errorType") if errored else None,
    }
    line = json.dumps(record)
    (logger.warning if errored else logger.info)(line)
    log_lines = [line]
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
) -> None:
    """Have the deployed function ``function_name`` run ``spec``'s handler from now on."""
    _registry[(account_id, region, function_name)] = RegisteredFunction(
        spec=spec, endpoint_url=endpoint_url, region=region, stack_name=stack_name
    )


def unregister_stack(stack_name: str, endpoint_url: str) -> None:
    """Forget the functions a stopped stack registered."""
    for key, value in list(_registry.items()):
        if value.stack_name == stack_name and value.endpoint_url == endpoint_url:
            del _registry[key]


def registered(account_id: str, region: str, function_name: str) -> RegisteredFunction | None:
    """The registration of a deployed function, if a running local stack owns it."""
    return _registry.get((account_id, region, function_name))


def _parse_event(event: Any) -> Any:
    # moto's LambdaFunction.invoke json-decodes the body, and passes the *string* "{}" when the
    # request had none; the runtime would hand the handler an empty dict.
    if event is None or event == "{}":
        return {}
    return event


def _invoke_lambda(self: Any, event: Any = None) -> tuple[str, bool, str]:
    """Replacement for ``LambdaFunction._invoke_lambda``: run registered functions in-process."""
    registration = _registry.get((self.account_id, self.region, self.function_name))
    if registration is None:
        assert _moto_invoke_lambda is not None
        return _moto_invoke_lambda(self, event)
    env = function_env(
        registration.spec,
        function_name=self.function_name,
        template_variables=self.environment_vars or {},
        endpoint_url=registration.endpoint_url,
        region=registration.region,
    )
    invocation = run_handler(
        registration.spec,
        _parse_event(event),
        env=env,
        function_name=self.function_name,
        function_arn=self.function_arn,
    )
    _save_logs(self, invocation)
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
