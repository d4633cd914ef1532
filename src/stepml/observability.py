"""Logs, traces and metrics of the Lambda functions (AWS Lambda Powertools), in one place.

Every handler builds its instruments here, so all functions log, trace and count alike:

* **Logger**: one JSON line per event; the pipeline's lines carry the run id and the Step Functions
  execution ARN (the correlation id), the HTTP functions' lines the API Gateway request id.
* **Tracer** (X-Ray; pipeline stages and the registry API): the handler's segment, plus a
  subsegment around each stage's main work (``span("fit")``). Off where no X-Ray daemon listens:
  outside Lambda, and in the offline stack (``POWERTOOLS_TRACE_DISABLED``).
* **Metrics**: CloudWatch embedded-metric-format lines in namespace ``stepml`` with dimensions
  ``service`` and ``stage``; CloudWatch Logs turns them into metrics (no API call, no permission).

The prediction function has no Powertools at all: the X-Ray SDK costs more than its whole
cold-start budget when compiled from source, and Powertools' Logger + Metrics imports cost
~0.12 s of a 0.5 s cold start (README, Observability). It writes its metrics with
:class:`RequestMetrics`: the same EMF document Powertools would write, built by hand, one line
per request that has something to count. Lambda's own segment still traces it.

The core (:mod:`stepml.stages`) calls :func:`span` only; it is a no-op until a handler installs a
tracer with :func:`trace_with`, so the CLI, the UI and the tests run the same code untraced.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer

#: CloudWatch namespace of every stepml metric (template.yaml: POWERTOOLS_METRICS_NAMESPACE).
NAMESPACE = "stepml"
#: Powertools' service name (template.yaml: POWERTOOLS_SERVICE_NAME), a dimension of every metric.
SERVICE = "stepml"

_subsegment: Callable[[str], contextlib.AbstractContextManager[Any]] | None = None


def api_instruments(stage: str) -> tuple[Logger, Metrics]:
    """Logger and Metrics of an HTTP API function (no Tracer: see the module docstring)."""
    from aws_lambda_powertools.logging import Logger
    from aws_lambda_powertools.metrics import Metrics

    logger = Logger(service=SERVICE)
    logger.append_keys(stage=stage)
    metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
    metrics.set_default_dimensions(stage=stage)
    return logger, metrics


def stage_instruments(stage: str) -> tuple[Logger, Tracer, Metrics]:
    """Logger, Tracer and Metrics of one pipeline function; :func:`span` reports to the Tracer."""
    from aws_lambda_powertools.tracing import Tracer

    logger, metrics = api_instruments(stage)
    tracer = Tracer(service=SERVICE)
    trace_with(tracer)
    return logger, tracer, metrics


def trace_with(tracer: Tracer | None) -> None:
    """Have :func:`span` open X-Ray subsegments on ``tracer`` (None: spans are no-ops again)."""
    global _subsegment
    if tracer is None or tracer.disabled:
        _subsegment = None
    else:
        _subsegment = lambda name: tracer.provider.in_subsegment(name=name)


@contextlib.contextmanager
def span(name: str) -> Iterator[None]:
    """An X-Ray subsegment ``## name`` around a stage's main step, when a handler traces."""
    if _subsegment is None:
        yield
        return
    with _subsegment(f"## {name}"):
        yield


def correlate(logger: Logger, tracer: Tracer | None, event: dict[str, Any]) -> None:
    """Tag this invocation's log lines (and trace) with the pipeline run it belongs to.

    The execution ARN is the correlation id (it names the run in the Step Functions console); the
    run id and dataset are searchable keys of every line and annotations of the trace.
    """
    names = ("dataset", "run_id", "execution_arn")
    keys = {name: value for name in names if isinstance(value := event.get(name), str) and value}
    logger.remove_keys(list(names))  # a warm environment's previous run
    logger.append_keys(**keys)
    logger.set_correlation_id(keys.get("execution_arn") or keys.get("run_id"))
    if tracer is not None and not tracer.disabled:
        for name in ("dataset", "run_id"):
            if name in keys:
                tracer.put_annotation(name, keys[name])


class RequestMetrics:
    """Metrics of one HTTP API request as one EMF line, without Powertools (see the module doc).

    Namespace ``stepml``, dimensions ``service``, ``stage`` and ``model`` (the model served), as
    the pipeline's Powertools metrics; the first request of an execution environment also writes
    Powertools' ``ColdStart`` document (dimensions ``service`` and ``function_name``).
    """

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.service = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE
        self.namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or NAMESPACE
        self._cold = True
        self._values: dict[str, float] = {}
        self._properties: dict[str, Any] = {}

    def add(self, name: str, value: float, **properties: Any) -> None:
        """Count ``value`` under ``name`` in this request's document; ``properties`` ride along."""
        self._values[name] = self._values.get(name, 0) + value
        self._properties.update(properties)

    def _document(self, values: dict[str, float], dimensions: dict[str, str], properties: dict[str, Any]) -> str:
        return json.dumps({
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                }],
            },
            **dimensions, **values, **properties,
        }, separators=(",", ":"), default=str)

    def flush(self, function_name: str | None) -> None:
        """Write this request's document (nothing when it counted nothing) and start afresh."""
        lines = []
        if self._cold:
            self._cold = False
            lines.append(self._document(
                {"ColdStart": 1}, {"service": self.service, "function_name": function_name or "unknown"}, {}))
        if self._values:
            model = str(self._properties.pop("model", "unknown"))
            lines.append(self._document(
                self._values, {"service": self.service, "stage": self.stage, "model": model}, self._properties))
            self._values, self._properties = {}, {}
        if lines:
            sys.stdout.write("\n".join(lines) + "\n")
