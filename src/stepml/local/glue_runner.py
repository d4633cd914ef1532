"""Glue job runs offline: the job's script, run with local PySpark, its real outcome reported.

moto's Glue accepts ``StartJobRun`` and then reports the run ``SUCCEEDED`` a moment later without
running anything, so the state machine's ``glue:startJobRun.sync`` would go on with no model. Here
``moto.glue.models.FakeJob.start_job_run`` is wrapped: for a job the local stack registered, each
run starts ``python -m stepml.spark_job`` (the module the deployed script calls) in a process of
its own with the run's arguments, the job role's temporary credentials (as Glue gives a job its
role) and the endpoint; the run reads ``RUNNING`` while it lives, then ``SUCCEEDED`` or ``FAILED``
with the job's ``ErrorMessage`` (the script's ``stepml-error:`` line - an exception's
``Type: message``, as Glue reports it - else its last line on stderr). A job's ``Timeout`` (minutes) stops the run
as ``TIMEOUT``. Spark runs ``local[2]``; Java 17 must be on PATH (``make java``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("stepml_local.glue")

#: Credentials of a role for the service that assumes it: (role ARN, service) -> environment.
RoleEnvironment = Callable[[str, str], Mapping[str, str]]
#: The prefix of the line stepml.spark_job writes its error under (stepml.spark_job.ERROR_MARKER).
MARKER = "stepml-error: "
#: The longest ErrorMessage kept (Glue's own are a few hundred characters).
MAX_ERROR_MESSAGE = 2048


@dataclass
class JobSpec:
    """A Glue job the local stack runs for real."""

    name: str
    role_arn: str
    endpoint_url: str
    region: str
    credentials: RoleEnvironment | None
    timeout_minutes: int


_jobs: dict[str, JobSpec] = {}
_lock = threading.Lock()
_original_start: Any = None


def register(spec: JobSpec) -> None:
    with _lock:
        _jobs[spec.name] = spec


def job_environment(spec: JobSpec) -> dict[str, str]:
    """The job process's environment: the role's credentials, the region and the endpoint."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_REGION": spec.region,
        "AWS_DEFAULT_REGION": spec.region,
        "AWS_ENDPOINT_URL": spec.endpoint_url,
        # the Python workers Spark starts must be this interpreter (pandas, xgboost, stepml)
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    })
    if spec.credentials is not None:
        env.update(spec.credentials(spec.role_arn, "glue.amazonaws.com"))
    return env


def _arguments(arguments: Mapping[str, str]) -> list[str]:
    """The run's arguments as Glue passes them to a script: ``--name value`` pairs."""
    argv: list[str] = []
    for name, value in arguments.items():
        argv += [name if name.startswith("--") else f"--{name}", str(value)]
    return argv


def _run(spec: JobSpec, job_run: Any) -> None:
    """Run the job's script for ``job_run`` and set its final state."""
    command = [sys.executable, "-m", "stepml.spark_job", *_arguments(job_run.arguments or {})]
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.run(command, env=job_environment(spec), stdout=subprocess.DEVNULL, stderr=stderr,
                                     timeout=spec.timeout_minutes * 60, check=False)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            code = None
        stderr.seek(0)
        lines = [line for line in stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
    if code == 0:
        _finish(job_run, "SUCCEEDED")
    elif code is None:
        _finish(job_run, "TIMEOUT", f"Job run timed out after {spec.timeout_minutes} minutes (the job's Timeout)")
    else:
        marked = [line.split(MARKER, 1)[1] for line in lines if MARKER in line]
        message = (marked or lines or [f"the job's script exited with status {code}"])[-1]
        _finish(job_run, "FAILED", message[:MAX_ERROR_MESSAGE])
    logger.info("glue job run %s of %s ended %s", job_run.job_run_id, spec.name, job_run._stepml_state)


def _finish(job_run: Any, state: str, message: str | None = None) -> None:
    job_run._stepml_state = state
    job_run._stepml_error = message


def _start_job_run(self: Any, *args: Any, **kwargs: Any) -> str:
    """Replacement for ``FakeJob.start_job_run``: registered jobs run their script."""
    run_id: str = _original_start(self, *args, **kwargs)
    spec = _jobs.get(self.name)
    if spec is None:
        return run_id
    job_run = next(run for run in self.job_runs if run.job_run_id == run_id)
    job_run._stepml_state = "RUNNING"
    threading.Thread(target=_run, args=(spec, job_run), name=f"glue-{run_id[:12]}", daemon=True).start()
    return run_id


def _status(self: Any) -> str | None:
    """``FakeJobRun.status``: the real run's state where stepml runs it, else moto's."""
    state = getattr(self, "_stepml_state", None)
    if state is not None:
        return str(state)
    return _original_status.fget(self)  # type: ignore[no-any-return]


def _as_dict(self: Any) -> dict[str, Any]:
    answer: dict[str, Any] = _original_as_dict(self)
    if getattr(self, "_stepml_error", None):
        answer["ErrorMessage"] = self._stepml_error
    return answer


_original_status: Any = None
_original_as_dict: Any = None
_original_integration: Any = None
_original_sdk_task: Any = None


def _sdk_task_with_text_bodies(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
    """``arn:aws:states:::aws-sdk:*`` as AWS answers it: a streamed body (S3 GetObject's ``Body``)
    becomes its text. moto's interpreter hands the stream object on, and the next intrinsic
    (``States.StringToJson($.Body)`` in "Read Spark result") fails on it."""
    _original_sdk_task(self, env, *args, **kwargs)
    response = env.stack.pop()
    if isinstance(response, dict):
        response = {key: value.read().decode("utf-8") if hasattr(value, "read") else value
                    for key, value in response.items()}
    env.stack.append(response)


def _glue_sync(self: Any, env: Any, resource_runtime_part: Any, normalised_parameters: dict[str, Any],
               state_credentials: Any) -> None:
    """``glue:startJobRun.sync`` for moto's interpreter (5.2.5 crashes after every ``.sync`` Glue task:
    it calls ``interrupt_all`` on a callback endpoint that only ``.waitForTaskToken`` creates;
    LocalStack fixed it in PR 13706). Polls GetJobRun until the run ends, as its own code does:
    a FAILED, TIMEOUT or ERROR run raises States.TaskFailed with the run as the cause."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.resource import (
        ResourceCondition,
    )

    if self.resource.condition != ResourceCondition.Sync:
        _original_integration(self, env, resource_runtime_part, normalised_parameters, state_credentials)
        return
    started = env.stack.pop()  # StartJobRun's answer: the resolver reads JobName and JobRunId
    self.timeout.eval(env=env)
    timeout_seconds = env.stack.pop()
    env.stack.append(started)
    resolver = self._build_sync_resolver(env=env, resource_runtime_part=resource_runtime_part,
                                         normalised_parameters=normalised_parameters,
                                         state_credentials=state_credentials)
    outcome = self._eval_sync(env=env, sync_resolver=resolver, timeout_seconds=timeout_seconds,
                              callback_endpoint=None, heartbeat_endpoint=None)
    env.stack.append(outcome)


def install() -> None:
    """Wrap moto's Glue job runs (idempotent)."""
    global _original_start, _original_status, _original_as_dict, _original_integration, _original_sdk_task
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    with _lock:
        if _original_start is not None:
            return
        _original_sdk_task = StateTaskServiceAwsSdk._eval_service_task
        StateTaskServiceAwsSdk._eval_service_task = _sdk_task_with_text_bodies  # type: ignore[method-assign]
        _original_integration = StateTaskServiceGlue._eval_integration_pattern
        StateTaskServiceGlue._eval_integration_pattern = _glue_sync  # type: ignore[method-assign]
        _original_start = FakeJob.start_job_run
        _original_status = FakeJobRun.__dict__.get("status") or FakeJobRun.status
        _original_as_dict = FakeJobRun.as_dict
        FakeJob.start_job_run = _start_job_run  # type: ignore[method-assign]
        FakeJobRun.status = property(_status)  # type: ignore[method-assign, assignment]
        FakeJobRun.as_dict = _as_dict  # type: ignore[method-assign]


def uninstall() -> None:
    global _original_start, _original_status, _original_as_dict, _original_integration, _original_sdk_task
    from moto.glue.models import FakeJob, FakeJobRun
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_aws_sdk import (
        StateTaskServiceAwsSdk,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_glue import (
        StateTaskServiceGlue,
    )

    with _lock:
        if _original_start is None:
            return
        StateTaskServiceAwsSdk._eval_service_task = _original_sdk_task  # type: ignore[method-assign]
        StateTaskServiceGlue._eval_integration_pattern = _original_integration  # type: ignore[method-assign]
        FakeJob.start_job_run = _original_start  # type: ignore[method-assign]
        FakeJobRun.status = _original_status  # type: ignore[method-assign]
        FakeJobRun.as_dict = _original_as_dict  # type: ignore[method-assign]
        _original_start = _original_status = _original_as_dict = _original_integration = _original_sdk_task = None
        _jobs.clear()


__all__ = ["JobSpec", "install", "job_environment", "register", "uninstall"]
