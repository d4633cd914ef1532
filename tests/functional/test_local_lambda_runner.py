"""The in-process Lambda runner: what a handler sees and what the caller gets back.

Given handler files in a temp folder, When :func:`run_handler` calls them, Then they behave as on
AWS's Python runtime: their own module and environment, a context, and the runtime's error payload.
"""

from __future__ import annotations

import json
import os
import textwrap
import threading
import time
from pathlib import Path

import pytest

from stepml.local.lambda_runner import MAX_REQUEST_BYTES, Invocation, run_handler
from stepml.local.template import FunctionSpec
from stepml.local.worker import EnvironmentPool, Limits

ARN = "arn:aws:lambda:us-east-1:123456789012:function:f"


def make_function(
    root: Path, folder: str, source: str, handler: str = "app.lambda_handler", timeout: int = 30
) -> FunctionSpec:
    code = root / folder
    code.mkdir(parents=True, exist_ok=True)
    (code / "app.py").write_text(textwrap.dedent(source))
    return FunctionSpec(
        logical_id=folder.title() + "Function",
        code_dir=code,
        handler=handler,
        timeout=timeout,
        memory_size=512,
    )


def run(
    spec: FunctionSpec,
    event: object = None,
    env: dict[str, str] | None = None,
    limits: Limits | None = None,
    pool: EnvironmentPool | None = None,
) -> Invocation:
    return run_handler(
        spec,
        event if event is not None else {},
        env=env or {},
        function_name=spec.logical_id,
        function_arn=ARN,
        limits=limits,
        pool=pool,
    )


def test_two_functions_with_the_same_module_name_stay_apart(tmp_path: Path) -> None:
    first = make_function(
        tmp_path, "one", "NAME = 'one'\ndef lambda_handler(event, context):\n    return NAME\n"
    )
    second = make_function(
        tmp_path, "two", "NAME = 'two'\ndef lambda_handler(event, context):\n    return NAME\n"
    )

    assert (run(first).payload, run(second).payload, run(first).payload) == ("one", "two", "one")


def test_environment_is_per_call_and_never_the_process_one(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "env",
        """
        import os, time
        from stepml.settings import current_environment

        def lambda_handler(event, context):
            time.sleep(0.05)  # overlap with the other thread
            return {"mine": current_environment().get("WHO"), "process": os.environ.get("WHO")}
        """,
    )
    results: dict[str, object] = {}

    def call(who: str) -> None:
        results[who] = run(spec, env={"WHO": who}).payload

    threads = [threading.Thread(target=call, args=(who,)) for who in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Each call runs in an environment (a process) of its own: the function's environment is
    # that process's os.environ, and the caller's is untouched.
    assert results == {"a": {"mine": "a", "process": "a"}, "b": {"mine": "b", "process": "b"}}
    assert "WHO" not in os.environ


def test_an_exception_becomes_the_runtime_error_payload(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "bad",
        """
        from stepml.errors import DataError

        def lambda_handler(event, context):
            raise DataError("the CSV has no header row")
        """,
    )

    invocation = run(spec)

    assert invocation.errored and invocation.error_type == "DataError"
    payload = invocation.payload
    assert payload["errorMessage"] == "the CSV has no header row"
    assert payload["requestId"] == invocation.request_id
    # The trace starts in the handler (no runner frames), in the runtime's "File ..." format.
    assert payload["stackTrace"][0].startswith(f'  File "{spec.code_dir / "app.py"}"')
    assert all("lambda_runner.py" not in line for line in payload["stackTrace"])


def test_one_json_log_line_per_invocation(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = make_function(
        tmp_path, "log", "def lambda_handler(event, context):\n    raise KeyError('x')\n"
    )

    with caplog.at_level("INFO", logger="stepml_local.lambda"):
        run(spec)

    records = [
        json.loads(r.getMessage()) for r in caplog.records if r.name == "stepml_local.lambda"
    ]
    assert len(records) == 1
    assert records[0]["function"] == "LogFunction" and records[0]["error"] == "KeyError"
    assert records[0]["duration_ms"] >= 0


def test_runtime_failures_have_the_runtimes_error_types(tmp_path: Path) -> None:
    missing_module = FunctionSpec(
        logical_id="Missing", code_dir=tmp_path / "nowhere", handler="app.lambda_handler"
    )
    no_handler = make_function(tmp_path, "nohandler", "def other(event, context):\n    return 1\n")
    broken_import = make_function(tmp_path, "broken", "import not_a_module_anywhere\n")
    unserializable = make_function(
        tmp_path, "marshal", "def lambda_handler(event, context):\n    return {1, 2}\n"
    )

    assert run(missing_module).error_type == "Runtime.ImportModuleError"
    assert run(no_handler).error_type == "Runtime.HandlerNotFound"
    assert run(broken_import).error_type == "Runtime.ImportModuleError"
    assert run(unserializable).error_type == "Runtime.MarshalError"


def test_context_has_the_lambda_attributes(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "ctx",
        """
        def lambda_handler(event, context):
            return {
                "name": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "request": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
            }
        """,
        timeout=5,
    )

    invocation = run(spec)

    assert invocation.payload["name"] == "CtxFunction" and invocation.payload["arn"] == ARN
    assert (
        invocation.payload["memory"] == 512
        and invocation.payload["request"] == invocation.request_id
    )
    assert 4000 < invocation.payload["remaining"] <= 5000


def test_a_changed_handler_file_is_reloaded(tmp_path: Path) -> None:
    spec = make_function(tmp_path, "edit", "def lambda_handler(event, context):\n    return 1\n")
    assert run(spec).payload == 1

    time.sleep(0.01)
    (spec.code_dir / "app.py").write_text("def lambda_handler(event, context):\n    return 2\n")
    os.utime(spec.code_dir / "app.py", (time.time() + 5, time.time() + 5))

    assert run(spec).payload == 2


# -- Lambda's limits -------------------------------------------------------------------------------


def test_a_handler_past_its_timeout_is_stopped_with_lambdas_error(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path, "slow", "import time\ndef lambda_handler(event, context):\n    time.sleep(30)\n"
    )

    started = time.monotonic()
    invocation = run(spec, limits=Limits(memory_mb=512, timeout_s=1.0))

    assert time.monotonic() - started < 10
    assert invocation.errored and invocation.error_type == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in invocation.payload["errorMessage"]


def test_a_handler_past_its_memory_size_is_stopped_with_lambdas_error(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "hungry",
        """
        def lambda_handler(event, context):
            block = bytearray(400 * 1024 * 1024)
            for i in range(0, len(block), 4096):
                block[i] = 1
            return len(block)
        """,
    )

    invocation = run(spec, limits=Limits(memory_mb=256, timeout_s=60.0))

    assert invocation.errored and invocation.error_type == "Runtime.OutOfMemory"
    assert "256 MB" in invocation.payload["errorMessage"]
    assert any("Max Memory Used" in line for line in invocation.log_lines)


def test_tmp_is_bounded_by_ephemeral_storage(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "disk",
        """
        import os, tempfile, time
        def lambda_handler(event, context):
            with open(os.path.join(tempfile.gettempdir(), "big"), "wb") as handle:
                for _ in range(40):
                    handle.write(b"x" * 1024 * 1024)
                    handle.flush()
                    time.sleep(0.02)
            time.sleep(2)
            return tempfile.gettempdir()
        """,
    )

    invocation = run(spec, limits=Limits(memory_mb=512, timeout_s=30.0, ephemeral_mb=10))

    assert invocation.errored and "No space left on device" in invocation.payload["errorMessage"]


def test_payloads_over_six_megabytes_fail_as_on_lambda(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path, "big", "def lambda_handler(event, context):\n    return 'x' * (7 * 1024 * 1024)\n"
    )

    too_large_request = run(spec, event={"blob": "y" * (MAX_REQUEST_BYTES + 1)})
    too_large_response = run(spec)

    assert too_large_request.error_type == "RequestTooLargeException"
    assert too_large_response.error_type == "Function.ResponseSizeTooLarge"


def test_a_process_that_exits_is_a_runtime_exit_error_and_the_next_call_starts_fresh(tmp_path: Path) -> None:
    spec = make_function(
        tmp_path,
        "exits",
        """
        import os
        def lambda_handler(event, context):
            if event.get("exit"):
                os._exit(3)
            return os.getpid()
        """,
    )
    pool = EnvironmentPool(1)
    try:
        first = run(spec, pool=pool).payload
        assert run(spec, pool=pool).payload == first  # warm: the same environment serves again
        crashed = run(spec, event={"exit": True}, pool=pool)
        after = run(spec, pool=pool).payload
    finally:
        pool.close()

    assert crashed.error_type == "Runtime.ExitError" and "exit status 3" in crashed.payload["errorMessage"]
    assert after != first
