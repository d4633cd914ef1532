"""The offline HTTP API's own cost: a single-row predict through ``stepml local up``'s API, timed
from the client, next to the same handler called without HTTP.

It starts the project's own stack (template.yaml deployed into an in-process moto, the local API
on a free port), registers a tiny classifier as a champion (the API tests' model: 30 boosting
rounds on 400 synthetic rows, exported to ONNX) and then times, per single-row ``POST
/models/bench/predict``:

* ``keep_alive``: one connection reused for every request (what a client library's pool does);
* ``new_connection``: a fresh TCP connection per request (what ``curl`` or ``urllib`` does);
* ``direct_invoke``: ``lambda.invoke`` through moto with the same API Gateway event, no HTTP API
  in between (the floor the HTTP API adds to);
* ``handler``: the invocation as the local Lambda runner logs it (with its worker process, if any);
* ``concurrent``: 64 clients at once, each on its own connection, a few requests each: how many
  answers came back 200 and how many connections failed.

Each latency series also reports the CPU time the whole process spent per request (client, API
server, moto and handler threads): it moves less than the wall clock when other processes share
the cores. Latencies are wall-clock times: compare runs made on one machine close together.
Results are merged into the output file under ``--label`` (so a run on another checkout,
e.g. ``PYTHONPATH=../main/src python bench/bench_local_api.py --label before``, sits beside it).

Usage: python bench/bench_local_api.py [--label after] [--output bench/results/local_api.json]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stepml.local import LocalStack
from stepml.registry import CHAMPION, ModelRegistry
from stepml.stack import Stack
from tests.functional.inference_models import SCHEMA, classifier_onnx, record

MODEL = "bench"
PATH = f"/models/{MODEL}/predict"
BODY = json.dumps(record()).encode("utf-8")
HEADERS = {"Content-Type": "application/json"}
CLIENTS = 64
TARGETS = {"keep_alive_p50_ms": 5.0, "concurrent_failures": 0}


def register_champion(stack: LocalStack) -> None:
    """The tiny classifier as version 1 and champion of ``MODEL`` in the stack's bucket."""
    # The store the CLI gets for this stack, as its administrator (when the stack is strict).
    admin = getattr(stack, "admin_credentials", None)
    store = Stack(
        stack_name=stack.stack_name,
        region=stack.region,
        endpoint_url=stack.endpoint_url,
        **({"credentials": admin.client_kwargs()} if admin is not None else {}),
    ).store
    meta = {
        "dataset": MODEL,
        "task": "classification",
        "target": "income",
        "recipe": "auto",
        "schema": SCHEMA,
        "evaluation": {
            "primary_metric": "accuracy",
            "metrics": {"accuracy": 0.9},
            "baseline": {"accuracy": 0.5},
        },
    }
    models = ModelRegistry(store)
    created = models.register_version(MODEL, "run-bench", {"model.onnx": classifier_onnx()}, meta)
    models.set_alias(MODEL, CHAMPION, created["version"], "bench")


def _connect(stack: LocalStack, timeout: float) -> http.client.HTTPConnection:
    address = urlsplit(stack.api_url)
    return http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=timeout
    )


def _predict(connection: http.client.HTTPConnection) -> int:
    connection.request("POST", PATH, body=BODY, headers=HEADERS)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200 or b"predictions" not in body:
        raise RuntimeError(f"predict answered {response.status}: {body[:200]!r}")
    return response.status


def _timed(call: Callable[[], Any], seconds: float, limit: int) -> dict[str, float]:
    """Wall-clock p50/p99 per call, for ``seconds`` or ``limit`` calls, whichever ends first, and
    the CPU time this process (client, API server, moto and handler threads alike) spent per call:
    a figure less at the mercy of other processes on the machine than the wall clock."""
    timings: list[float] = []
    cpu_started = time.process_time()
    deadline = time.perf_counter() + seconds
    while len(timings) < limit and time.perf_counter() < deadline:
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / len(timings)
    return {**_summary(timings), "cpu_ms_per_request": round(cpu_ms, 3)}


def _summary(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3),
    }


def keep_alive(stack: LocalStack, seconds: float, limit: int) -> dict[str, float]:
    connection = _connect(stack, 30)
    try:
        for _ in range(5):  # warm: the handler's first call loads the model
            _predict(connection)
        return _timed(lambda: _predict(connection), seconds, limit)
    finally:
        connection.close()


def new_connection(stack: LocalStack, seconds: float, limit: int) -> dict[str, float]:
    def once() -> None:
        connection = _connect(stack, 30)
        try:
            _predict(connection)
        finally:
            connection.close()

    return _timed(once, seconds, limit)


def direct_invoke(stack: LocalStack, seconds: float, limit: int) -> dict[str, float]:
    """``lambda.invoke`` of the inference function with the event the API would build."""
    from stepml.local.api import build_event

    route = next(
        r for r in stack.template.http_routes() if r.route_key == "POST /models/{name}/predict"
    )
    event = build_event(
        route=route,
        path_parameters={"name": MODEL},
        method="POST",
        raw_path=PATH,
        raw_query="",
        headers=HEADERS.items(),
        body=BODY,
        source_ip="127.0.0.1",
    )
    client = stack.client("lambda")
    name = stack.function_name(route.function)
    payload = json.dumps(event).encode("utf-8")

    def once() -> None:
        client.invoke(FunctionName=name, Payload=payload)["Payload"].read()

    once()
    return _timed(once, seconds, limit)


class _HandlerDurations(logging.Handler):
    """Collects ``duration_ms`` from the local Lambda runner's ``lambda.invoke`` log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.durations: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.loads(record.getMessage())
        except ValueError:
            return
        if line.get("event") == "lambda.invoke" and isinstance(
            line.get("duration_ms"), float | int
        ):
            self.durations.append(float(line["duration_ms"]))


def concurrent(stack: LocalStack, clients: int, requests_each: int) -> dict[str, Any]:
    """``clients`` threads, each on its own connection, released together."""
    answered: list[int] = []
    failures: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client() -> None:
        barrier.wait()
        connection = _connect(stack, 60)
        try:
            for _ in range(requests_each):
                status = _predict(connection)
                with lock:
                    answered.append(status)
        except (
            OSError,
            http.client.HTTPException,
            RuntimeError,
        ) as exc:  # reset, hang-up, wrong answer
            with lock:
                failures.append(f"{type(exc).__name__}: {exc}")
        finally:
            connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": clients * requests_each,
        "answered_200": len(answered),
        "failed_clients": len(failures),
        "failures": sorted(set(failures))[:5],
        "requests_per_s": round(len(answered) / elapsed, 1),
    }


def measure(seconds: float, limit: int, requests_each: int) -> dict[str, Any]:
    durations = _HandlerDurations()
    runner_log = logging.getLogger("stepml_local.lambda")
    runner_log.addHandler(durations)
    runner_log.setLevel(logging.INFO)
    runner_log.propagate = False  # one line per invocation: collected, not printed
    try:
        with LocalStack(ROOT, port=0, api_port=0, stack_name="stepml-bench-api") as stack:
            register_champion(stack)
            result: dict[str, Any] = {}
            result["keep_alive"] = keep_alive(stack, seconds, limit)
            result["new_connection"] = new_connection(stack, seconds, limit)
            durations.durations.clear()
            result["direct_invoke"] = direct_invoke(stack, seconds, limit)
            result["handler"] = _summary(durations.durations)
            result["concurrent"] = concurrent(stack, CLIENTS, requests_each)
    finally:
        runner_log.removeHandler(durations)
        runner_log.propagate = True
    result["targets_met"] = {
        "keep_alive_p50_ms": result["keep_alive"]["p50_ms"] <= TARGETS["keep_alive_p50_ms"],
        "concurrent_failures": result["concurrent"]["answered_200"]
        == result["concurrent"]["requests"],
    }
    return result


def _revision() -> str:
    try:
        return subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def table(results: dict[str, Any]) -> Table:
    grid = Table(title="Local HTTP API, single-row predict (ms, client-side wall clock)")
    for column in (
        "run",
        "keep-alive p50 / p99 (CPU)",
        "new connection p50 / p99",
        "lambda.invoke p50",
        "handler p50",
        f"{CLIENTS} clients: 200s",
        "req/s",
    ):
        grid.add_column(column, justify="left" if column == "run" else "right")
    for label, run in results["runs"].items():
        c = run["concurrent"]
        grid.add_row(
            f"{label} ({run['revision']})",
            f"{run['keep_alive']['p50_ms']:.2f} / {run['keep_alive']['p99_ms']:.2f}"
            f" ({run['keep_alive'].get('cpu_ms_per_request', float('nan')):.2f})",
            f"{run['new_connection']['p50_ms']:.2f} / {run['new_connection']['p99_ms']:.2f}",
            f"{run['direct_invoke']['p50_ms']:.2f}",
            f"{run['handler']['p50_ms']:.3f}",
            f"{c['answered_200']}/{c['requests']}",
            f"{c['requests_per_s']:.0f}",
        )
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "local_api.json"
    )
    parser.add_argument("--label", default="after", help="the key this run is saved under")
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per latency series")
    parser.add_argument(
        "--requests", type=int, default=400, help="at most this many requests per series"
    )
    parser.add_argument(
        "--requests-each", type=int, default=5, help="requests per concurrent client"
    )
    parser.add_argument(
        "--from-json", type=Path, help="print the table of a saved file; measure nothing"
    )
    args = parser.parse_args()
    console = Console(width=140)
    if args.from_json:
        console.print(table(json.loads(args.from_json.read_text())))
        return
    logging.basicConfig(level=logging.WARNING)
    import stepml

    console.print(f"measuring {Path(stepml.__file__).parent} ...")
    run = measure(args.seconds, args.requests, args.requests_each)
    run.update(
        {
            "revision": _revision()
            if Path(stepml.__file__).is_relative_to(ROOT)
            else str(Path(stepml.__file__).parent),
            "date": dt.date.today().isoformat(),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "load_1min": round(os.getloadavg()[0], 2),
            },
        }
    )
    results = json.loads(args.output.read_text()) if args.output.is_file() else {}
    results.setdefault("targets", TARGETS)
    results.setdefault("runs", {})[args.label] = run
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(table(results))
    missed = [name for name, ok in run["targets_met"].items() if not ok]
    console.print("targets " + ("all met" if not missed else f"MISSED: {', '.join(missed)}"))


if __name__ == "__main__":
    main()
