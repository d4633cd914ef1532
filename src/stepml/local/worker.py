"""Lambda execution environments offline: one warm worker process per function instance.

Lambda runs each function in its own execution environment: its own process, its own
environment variables (the role's temporary credentials among them), its own ``/tmp``, one
invocation at a time, kept warm between invocations, and stopped when it passes the function's
``Timeout`` or ``MemorySize``. :class:`ExecutionEnvironment` is that, on this machine:

* a process forked from a *fork server* that has already imported the heavy libraries (numpy,
  pandas, scikit-learn, onnxruntime, boto3, stepml), so a new environment is ready in
  milliseconds plus the handler module's own import — the offline stand-in for a cold start;
* its ``os.environ`` is the function's environment only, its working directory the function's
  code folder (``LAMBDA_TASK_ROOT``), ``TMPDIR`` a folder of its own;
* it can import only what the function's package holds on AWS — the standard library, the
  runtime's boto3, its code folder and its layers (:mod:`stepml.local.imports`): each set of layers
  has a fork server of its own, which installs the import guard *before* it preloads the libraries
  of those layers, so the preloaded modules are those the layers provide, imported as they would be
  without the virtualenv's other packages; a function's environments fork from its layers' server;
* its stdout/stderr go to a log file the parent reads after each invocation (the function's
  CloudWatch log stream);
* the parent watches it while it runs: past ``Timeout`` it is killed (``Sandbox.Timedout``), when
  its peak resident memory (``VmHWM``) passes ``MemorySize`` it is killed
  (``Runtime.OutOfMemory``), when its ``/tmp`` holds more than ``EphemeralStorage`` it is killed
  (``No space left on device``), and a process that dies on its own is ``Runtime.ExitError`` —
  the error payloads Lambda's Invoke API returns for these.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from stepml.local.imports import ImportPolicy, active_guard

logger = logging.getLogger("stepml_local.lambda")

#: Modules a fork server imports once, so that each new environment starts warm on libraries (a
#: layer set's server imports those its layers hold).
PRELOAD = (
    "stepml.local.worker",
    "json",
    "numpy",
    "pandas",
    "sklearn",
    "sklearn.ensemble",
    "sklearn.pipeline",
    "onnxruntime",
    "boto3",
    "botocore.session",
    "aws_lambda_powertools",
    "aws_xray_sdk.core",
    "stepml.stages",
    "stepml.serving",
)

#: Lambda's limit on an environment's init phase.
INIT_SECONDS = 10.0
#: How often the parent looks at a running invocation's memory and /tmp.
POLL_SECONDS = 0.02
TMP_POLL_SECONDS = 0.25

_context_lock = threading.Lock()
_context: Any = None
_starting = threading.local()


def _preparation_data(original: Any) -> Any:
    """``multiprocessing.spawn.get_preparation_data`` without the ``__main__`` module, for ours.

    multiprocessing re-imports the parent's ``__main__`` (pytest, the ``stepml`` script, a user's
    script) in every child it starts; an execution environment is the function's code only.
    """

    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if getattr(_starting, "environment", False):
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        server = getattr(_starting, "server", None)
        if name == "ignore" and server is not None:
            # ForkServer.ensure_running asks for this to start its server: the server runs
            # ``main_path`` as its __main__ before it preloads anything — the layer set's guard.
            data["main_path"] = server.bootstrap
        return dict(data)

    return get_preparation_data


def _connect_to_new_process(original: Any) -> Any:
    """``multiprocessing.forkserver.connect_to_new_process`` that asks the fork server of the
    environment being started (:func:`_layer_server`), else multiprocessing's own."""

    def connect_to_new_process(fds: list[int]) -> Any:
        server = getattr(_starting, "server", None)
        return original(fds) if server is None else server.connect_to_new_process(fds)

    return connect_to_new_process


def _fork_context() -> Any:
    """The multiprocessing context whose fork servers start every environment (created once)."""
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                from multiprocessing import spawn

                context: multiprocessing.context.BaseContext = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(list(PRELOAD))
                if not hasattr(spawn.get_preparation_data, "__wrapped_by_stepml__"):
                    wrapper = _preparation_data(spawn.get_preparation_data)
                    wrapper.__wrapped_by_stepml__ = True  # type: ignore[attr-defined]
                    spawn.get_preparation_data = wrapper
                if not hasattr(forkserver.connect_to_new_process, "__wrapped_by_stepml__"):
                    connect = _connect_to_new_process(forkserver.connect_to_new_process)
                    connect.__wrapped_by_stepml__ = True  # type: ignore[attr-defined]
                    forkserver.connect_to_new_process = connect
            else:  # pragma: no cover - not Linux
                context = multiprocessing.get_context("spawn")
            _context = context
        return _context


class _LayerForkServer(forkserver.ForkServer):
    """The fork server of the functions with one set of layers: its ``bootstrap`` file installs
    that set's import guard, then it preloads what the layers hold of :data:`PRELOAD`."""

    def __init__(self, policy: ImportPolicy, bootstrap: Path) -> None:
        super().__init__()
        self.policy = policy
        self.bootstrap = str(bootstrap)
        self.set_forkserver_preload(["__main__", *(name for name in PRELOAD if policy.permits(name))])


_layer_servers: dict[ImportPolicy, _LayerForkServer] = {}

_BOOTSTRAP = """\
# The fork server of the Lambda functions whose runtime and layers provide the modules below
# (written by stepml.local.worker). The worker itself is imported first (standard library only),
# then every later import is checked.
import stepml.local.worker
from stepml.local.imports import ImportGuard, ImportPolicy

ImportGuard(ImportPolicy(modules=frozenset({modules!r}), distributions=frozenset({distributions!r}))).install()
"""


def _layer_server(policy: ImportPolicy, root: Path) -> _LayerForkServer:
    """The fork server of the environments whose runtime + layers hold ``policy`` (one per set)."""
    _fork_context()
    text = _BOOTSTRAP.format(modules=sorted(policy.modules), distributions=sorted(policy.distributions))
    bootstrap = root / f"forkserver-{hashlib.sha256(text.encode()).hexdigest()[:16]}.py"
    with _context_lock:
        if not bootstrap.is_file():  # (re)started servers read it again
            bootstrap.write_text(text, encoding="utf-8")
        server = _layer_servers.get(policy)
        if server is None or server.bootstrap != str(bootstrap):
            server = _layer_servers[policy] = _LayerForkServer(policy, bootstrap)
        return server


@dataclass(frozen=True)
class Limits:
    """What the function's configuration allows one environment (template.yaml's values)."""

    memory_mb: int
    timeout_s: float
    ephemeral_mb: int = 512
    enforced: bool = True


@dataclass
class Outcome:
    """What one invocation produced: the payload (or error payload) and its log lines."""

    payload: Any
    errored: bool
    duration_ms: float
    max_memory_mb: float
    log_lines: list[str] = field(default_factory=list)
    #: "timeout" | "memory" | "tmp" | "exit" when the environment was stopped, else None.
    stopped: str | None = None


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



# -- the child: one execution environment ---------------------------------------------------------


def _load_handler(handler: str) -> tuple[Any, dict[str, Any] | None]:
    """Import ``module.function``: the function, or the init error the Python runtime reports."""
    module_name, _, attribute = handler.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:
        return None, {
            "errorType": "Runtime.UserCodeSyntaxError",
            "errorMessage": f"Syntax error in module '{module_name}': {exc}",
        }
    except Exception as exc:  # noqa: BLE001 - any import failure is reported this way
        return None, {
            "errorType": "Runtime.ImportModuleError",
            "errorMessage": f"Unable to import module '{module_name}': {exc}",
        }
    function = getattr(module, attribute, None)
    if not callable(function):
        return None, {
            "errorType": "Runtime.HandlerNotFound",
            "errorMessage": f"Handler '{attribute}' missing on module '{module_name}'",
        }
    return function, None


def _serve(
    conn: Connection,
    code_dir: str,
    handler: str,
    env: dict[str, str],
    log_path: str,
    own_imports: ImportPolicy | None = None,
) -> None:
    """The body of an environment process: import the handler, then answer invocations.

    ``own_imports`` (what the function's code folder provides) is given when the environment was
    forked from its layers' server: the guard admits it, and forgets what was imported before the
    guard and is refused now.
    """
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    logging.root.handlers.clear()  # whatever the fork server's parent had set up is not ours

    os.environ.clear()
    os.environ.update(env)
    tempfile.tempdir = None  # read TMPDIR again
    os.chdir(code_dir)
    sys.path.insert(0, code_dir)

    guard = active_guard()
    if guard is not None:
        guard.allow(own_imports or ImportPolicy(frozenset()))
        guard.forget_refused()
    if own_imports is not None and guard is None:  # never silently unguarded
        function: Any = None
        init_error: dict[str, Any] | None = {
            "errorType": "Runtime.Unknown",
            "errorMessage": "stepml local: the import guard of this function's layers is not "
            "installed in its environment",
        }
    else:
        function, init_error = _load_handler(handler)
    if init_error is not None:
        print(f"[ERROR] {init_error['errorType']}: {init_error['errorMessage']}", flush=True)

    conn.send_bytes(b"ready")  # the init phase is over: invocations are timed from here
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        request_id = message["request_id"]
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        if init_error is not None:
            conn.send_bytes(json.dumps({"errored": True, "payload": {**init_error, "requestId": request_id, "stackTrace": []}}).encode())
            continue
        context = LambdaContext(**message["context"])
        try:
            result = function(json.loads(message["event"]), context)
            try:
                body = json.dumps({"errored": False, "payload": result})
            except (TypeError, ValueError) as exc:
                body = json.dumps(
                    {
                        "errored": True,
                        "payload": {
                            "errorMessage": f"Unable to marshal response: {exc}",
                            "errorType": "Runtime.MarshalError",
                            "requestId": request_id,
                            "stackTrace": [],
                        },
                    }
                )
        except Exception as exc:  # noqa: BLE001 - the runtime turns any exception into a payload
            frames = traceback.extract_tb(exc.__traceback__)[1:]  # from the handler down
            payload = {
                "errorMessage": str(exc),
                "errorType": type(exc).__name__,
                "requestId": request_id,
                "stackTrace": traceback.format_list(frames),
            }
            print(f"[ERROR] {type(exc).__name__}: {exc}", flush=True)
            body = json.dumps({"errored": True, "payload": payload})
        sys.stdout.flush()
        sys.stderr.flush()
        conn.send_bytes(body.encode("utf-8"))


# -- the parent's handle on one environment --------------------------------------------------------


def _read_status_kb(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


class ExecutionEnvironment:
    """One warm worker process of one function (see the module docstring)."""

    def __init__(
        self,
        *,
        function_name: str,
        code_dir: Path,
        handler: str,
        env: Mapping[str, str],
        limits: Limits,
        root: Path,
        imports: ImportPolicy | None = None,
        own_imports: ImportPolicy | None = None,
    ) -> None:
        """``imports``: what the runtime and the function's layers provide (None: imports are not
        checked); ``own_imports``: what its code folder provides."""
        self.function_name = function_name
        self.limits = limits
        self.folder = Path(tempfile.mkdtemp(prefix=f"{function_name[:40]}-", dir=root))
        self.tmp_dir = self.folder / "tmp"
        self.tmp_dir.mkdir()
        self.log_path = self.folder / "log.txt"
        self.log_path.touch()
        self._log_offset = 0
        environment = dict(env)
        environment.update({"TMPDIR": str(self.tmp_dir), "TMP": str(self.tmp_dir), "TEMP": str(self.tmp_dir)})
        environment.setdefault("HOME", str(self.tmp_dir))
        context = _fork_context()
        server = _layer_server(imports, root) if imports is not None else None
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(
                child_conn,
                str(code_dir),
                handler,
                environment,
                str(self.log_path),
                None if imports is None else own_imports or ImportPolicy(frozenset()),
            ),
            name=f"lambda:{function_name}",
            daemon=True,
        )
        _starting.environment = True
        _starting.server = server
        try:
            self._process.start()
        finally:
            _starting.environment = False
            _starting.server = None
        child_conn.close()
        self.invocations = 0
        self.started_at = time.time()
        self._ready = False

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def invoke(self, event_json: str, request_id: str, context: Mapping[str, Any]) -> Outcome:
        """Run one invocation; the environment is stopped if it breaks a limit or dies."""
        if not self._ready:
            # Lambda's init phase (imports, module-level code) has its own 10 s limit and is not
            # part of the function's Timeout.
            self._ready = self._conn.poll(INIT_SECONDS)
            if self._ready:
                with contextlib.suppress(EOFError, OSError):  # it died in init: seen below
                    self._conn.recv_bytes()
        started = time.monotonic()
        deadline = started + self.limits.timeout_s
        self.invocations += 1
        stopped: str | None = None
        reply: dict[str, Any] | None = None
        peak_kb = 0
        try:
            self._conn.send({"request_id": request_id, "event": event_json, "context": dict(context)})
        except (OSError, ValueError):
            stopped = "exit"
        next_tmp_check = started + TMP_POLL_SECONDS
        while stopped is None:
            if self._conn.poll(POLL_SECONDS):
                try:
                    reply = json.loads(self._conn.recv_bytes().decode("utf-8"))
                except (EOFError, OSError):
                    stopped = "exit"
                break
            now = time.monotonic()
            pid = self._process.pid
            hwm = _read_status_kb(pid, "VmHWM") if pid else None
            if hwm is not None:
                peak_kb = max(peak_kb, hwm)
            if not self._process.is_alive():
                stopped = "exit"
            elif self.limits.enforced and peak_kb > self.limits.memory_mb * 1024:
                stopped = "memory"
            elif self.limits.enforced and now >= deadline:
                stopped = "timeout"
            elif self.limits.enforced and now >= next_tmp_check:
                next_tmp_check = now + TMP_POLL_SECONDS
                if _folder_bytes(self.tmp_dir) > self.limits.ephemeral_mb * 1024 * 1024:
                    stopped = "tmp"
        pid = self._process.pid
        if pid and stopped is None:
            peak_kb = max(peak_kb, _read_status_kb(pid, "VmHWM") or 0)
        if stopped is not None:
            self.stop()
        duration_ms = round((time.monotonic() - started) * 1000, 3)
        log_lines = self._read_log()
        max_memory_mb = round(peak_kb / 1024, 1)
        if stopped is None and reply is not None:
            payload, errored = reply["payload"], bool(reply["errored"])
        else:
            payload, errored = self._stopped_payload(stopped or "exit", request_id, duration_ms), True
        log_lines.append(
            f"END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms"
            f"\tMemory Size: {self.limits.memory_mb} MB\tMax Memory Used: {max_memory_mb:.0f} MB"
            + (f"\tStatus: {stopped}" if stopped else "")
        )
        return Outcome(
            payload=payload,
            errored=errored,
            duration_ms=duration_ms,
            max_memory_mb=max_memory_mb,
            log_lines=log_lines,
            stopped=stopped,
        )

    def _stopped_payload(self, why: str, request_id: str, duration_ms: float) -> dict[str, Any]:
        """The error payload Lambda's Invoke API returns when the environment was stopped."""
        if why == "timeout":
            return {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"RequestId: {request_id} Error: Task timed out after "
                f"{self.limits.timeout_s:.2f} seconds",
            }
        if why == "memory":
            return {
                "errorType": "Runtime.OutOfMemory",
                "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                f"signal: killed (memory limit {self.limits.memory_mb} MB reached)",
            }
        if why == "tmp":
            return {
                "errorType": "OSError",
                "errorMessage": f"[Errno 28] No space left on device: /tmp holds more than "
                f"{self.limits.ephemeral_mb} MB (EphemeralStorage)",
            }
        code = self._process.exitcode
        status = f"signal: {-code}" if code is not None and code < 0 else f"exit status {code}"
        return {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {status}",
        }

    def _read_log(self) -> list[str]:
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
                self._log_offset = handle.tell()
        except OSError:
            return []
        return data.decode("utf-8", errors="replace").splitlines()

    def stop(self) -> None:
        """Kill the process and remove its folder (its /tmp goes with it)."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(timeout=5)
        with contextlib.suppress(OSError):
            self._conn.close()

    def discard(self) -> None:
        """Stop the environment and delete its files."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


class EnvironmentPool:
    """The warm environments of one function: one invocation per environment at a time.

    Lambda starts a new environment for each concurrent invocation. Offline, at most
    ``max_environments`` run at once per function (more concurrent calls wait for one), so a burst
    of requests cannot fork dozens of processes on a laptop.
    """

    def __init__(self, max_environments: int = 4) -> None:
        self.max_environments = max(1, max_environments)
        self._idle: list[ExecutionEnvironment] = []
        self._busy = 0
        self._condition = threading.Condition()
        self._closed = False

    def acquire(self, create: Any, fresh_after: float | None = None) -> ExecutionEnvironment:
        """A warm idle environment, or a new one from ``create()``."""
        with self._condition:
            while True:
                if self._closed:
                    raise RuntimeError("the function's environments were shut down")
                while self._idle:
                    environment = self._idle.pop()
                    if environment.alive and (
                        fresh_after is None or environment.started_at >= fresh_after
                    ):
                        self._busy += 1
                        return environment
                    environment.discard()
                if self._busy < self.max_environments:
                    self._busy += 1
                    break
                self._condition.wait()
        try:
            environment = create()
        except BaseException:
            with self._condition:
                self._busy -= 1
                self._condition.notify()
            raise
        return environment

    def release(self, environment: ExecutionEnvironment) -> None:
        """Give an environment back (kept warm if it still runs)."""
        with self._condition:
            self._busy -= 1
            if environment.alive and not self._closed:
                self._idle.append(environment)
            else:
                environment.discard()
            self._condition.notify()

    def close(self) -> None:
        """Stop every idle environment; busy ones are stopped when released."""
        with self._condition:
            self._closed = True
            idle, self._idle = self._idle, []
            self._condition.notify_all()
        for environment in idle:
            environment.discard()
