"""Inference capture through the prediction API's dispatcher: Given registered versions with each
capture mode, When requests arrive as API Gateway v2 events, Then each prediction request emits
exactly the record its version's mode asks for (one line, the shared capture format)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from stepml import capture, registry
from stepml.api import handle
from stepml.registry import ModelRegistry
from stepml.serving import ModelServer
from stepml.settings import Settings
from stepml.storage import S3Store
from tests.functional.conftest import EVENT_BUCKET
from tests.functional.inference_models import SCHEMA, classifier_onnx, record, regressor_onnx

PREDICT = "POST /models/{name}/predict"
ALICE = "arn:aws:iam::123456789012:user/alice"


def _register(store: S3Store, name: str, mode: str | None, task: str = "classification") -> int:
    meta: dict[str, Any] = {
        "dataset": name, "task": task, "target": "income", "recipe": "auto", "schema": SCHEMA,
        "evaluation": {"primary_metric": "accuracy", "metrics": {"accuracy": 0.9}},
    }
    if mode is not None:
        meta["config"] = {"capture": mode}
    models = ModelRegistry(store)
    onnx = classifier_onnx() if task == "classification" else regressor_onnx()
    version = models.register_version(name, f"run-{name}", {"model.onnx": onnx}, meta)["version"]
    models.set_alias(name, registry.CHAMPION, version, "test")
    return int(version)


@pytest.fixture
def server(s3: Any) -> ModelServer:
    store = S3Store(Settings(bucket=EVENT_BUCKET))
    for name, mode in (("full", "full"), ("hashed", "hashed"), ("quiet", "off"), ("legacy", None)):
        _register(store, name, mode)
    _register(store, "houses", "full", task="regression")
    return ModelServer(store)


def _event(name: str, body: Any, *, raw: str | None = None, query: dict[str, str] | None = None,
           authorizer: dict[str, Any] | None = None, route: str = PREDICT) -> dict[str, Any]:
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": route, "isBase64Encoded": False, "pathParameters": {"name": name},
        "body": raw if raw is not None else json.dumps(body),
        "requestContext": {"requestId": f"req-{name}", "authorizer": authorizer or {"iam": {"userArn": ALICE}}},
    }
    if query:
        event["queryStringParameters"] = query
    return event


def _send(server: ModelServer, event: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    lines: list[str] = []
    answer = handle(event, server, emit=lines.append)
    return answer["statusCode"], [json.loads(line) for line in lines]


def test_full_mode_records_the_rows_as_sent_the_outputs_and_the_caller(server: ModelServer) -> None:
    rows = [record(), record(age=70, job="zzz-never-seen")]
    status, records = _send(server, _event("full", {"instances": rows}))
    assert status == 200 and len(records) == 1
    (captured,) = records
    assert captured["stepml_capture"] == 1 and captured["request_id"] == "req-full"
    assert captured["caller"] == ALICE
    assert (captured["model"], captured["version"], captured["alias"]) == ("full", 1, "champion")
    assert captured["task"] == "classification" and captured["mode"] == "full"
    assert captured["inputs"] == rows and captured["input_hashes"] is None
    assert len(captured["outputs"]) == 2 and captured["outputs"][0] in {"<=50K", ">50K"}
    assert set(captured["probabilities"][1]) == {"<=50K", ">50K"}
    assert any(w.startswith("row 1: ") and "zzz-never-seen" in w for w in captured["warnings"])
    assert captured["status"] == 200 and captured["latency_ms"] > 0 and "error" not in captured
    assert captured["time"].endswith("Z") and len(captured["time"]) == len("2026-11-26T18:40:01.123Z")


def test_a_warning_many_rows_share_is_recorded_once_with_their_row_numbers(server: ModelServer) -> None:
    # a client sending the same unseen value (or a column the model ignores) on every row of a batch
    rows = [record(job="zzz-never-seen")] * 30 + [record(), record(job="zzz-never-seen")]
    status, (full,) = _send(server, _event("full", {"instances": rows}))
    assert status == 200
    (warning,) = full["warnings"]
    assert warning.startswith("rows 0-29, 31: ") and "zzz-never-seen" in warning
    status, (hashed,) = _send(server, _event("hashed", {"instances": rows}))
    assert status == 200 and hashed["warnings"] == [
        "rows 0-29, 31: 1 warning(s), not kept in hashed mode (they quote input values)"]


def test_row_spans_join_runs_of_consecutive_rows() -> None:
    assert capture.by_rows([["a"], [], ["a", "b"], ["a"]]) == ["rows 0, 2-3: a", "row 2: b"]
    assert capture.by_rows([[], []]) == []
    assert capture.row_span([5]) == "row 5" and capture.row_span([0, 1, 2, 4, 6, 7]) == "rows 0-2, 4, 6-7"


def test_hashed_mode_keeps_no_raw_input(server: ModelServer) -> None:
    row = record(job="secret-job-title")
    status, records = _send(server, _event("hashed", row))
    assert status == 200 and len(records) == 1
    (captured,) = records
    assert captured["mode"] == "hashed" and captured["inputs"] is None
    assert captured["input_hashes"] == [capture.row_hash(row)]
    # The same row with its keys in another order hashes the same (canonical JSON).
    assert capture.row_hash(dict(reversed(list(row.items())))) == captured["input_hashes"][0]
    assert "secret-job-title" not in json.dumps(captured)  # not even in the unseen-category warning
    assert captured["warnings"] and len(captured["outputs"]) == 1
    status, records = _send(server, _event("hashed", {"age": "secret-age"}))
    assert status == 422 and "secret-age" not in json.dumps(records) and records[0]["error"]


def test_off_leaves_no_record_and_older_versions_capture_in_full(server: ModelServer) -> None:
    assert _send(server, _event("quiet", record())) == (200, [])
    status, records = _send(server, _event("legacy", record()))
    assert status == 200 and [r["mode"] for r in records] == ["full"]


def test_a_jwt_caller_is_named_by_its_subject_and_an_explicit_version_has_no_alias(server: ModelServer) -> None:
    jwt = {"jwt": {"claims": {"sub": "user-42", "email": "a@example.com"}}}
    status, records = _send(server, _event("houses", record(), authorizer=jwt, query={"version": "1"}))
    assert status == 200 and records[0]["caller"] == "jwt:user-42"
    assert records[0]["alias"] is None and records[0]["probabilities"] is None
    assert records[0]["task"] == "regression" and isinstance(records[0]["outputs"][0], float)


@pytest.mark.parametrize(
    ("body", "raw", "status"),
    [({"age": "old"}, None, 422), (None, "{not json", 400), ({"instances": []}, None, 400)],
)
def test_a_refused_request_leaves_one_record_with_its_status_and_error(
    server: ModelServer, body: Any, raw: str | None, status: int
) -> None:
    answer, records = _send(server, _event("full", body, raw=raw))
    assert answer == status and len(records) == 1
    assert records[0]["status"] == status and records[0]["outputs"] == [] and records[0]["error"]
    assert records[0]["version"] == 1


def test_requests_without_a_model_to_file_under_and_reads_leave_no_record(server: ModelServer) -> None:
    assert _send(server, _event("nosuch", record()))[0] == 404
    assert _send(server, _event("nosuch", record()))[1] == []
    assert _send(server, _event("full", record(), query={"version": "9"})) == (404, [])
    assert _send(server, _event("full", None, route="GET /models/{name}")) == (200, [])


def test_an_oversized_record_keeps_row_hashes_instead_of_the_rows() -> None:
    rows = [{"text": "x" * 1000, "n": i} for i in range(400)]
    captured = capture.record(event={}, model="m", version=1, alias=None, task="regression", mode="full",
                              rows=rows, result={"predictions": [1.0] * 400, "warnings": [[]] * 400},
                              latency_ms=1.0, status=200)
    text = capture.line(captured)
    assert len(text.encode()) <= capture.MAX_LINE_BYTES
    shrunk = json.loads(text)
    assert shrunk["inputs"] is None and shrunk["mode"] == "hashed" and len(shrunk["input_hashes"]) == 400
    assert any("stored as row hashes" in w for w in shrunk["warnings"])


def test_delivered_files_read_back_plain_or_gzipped() -> None:
    import gzip

    lines = b'{"stepml_capture": 1, "model": "a"}\nnot json\n{"other": 1}\n{"stepml_capture": 1, "model": "b"}\n'
    assert [r["model"] for r in capture.read_records(lines)] == ["a", "b"]
    assert [r["model"] for r in capture.read_records(gzip.compress(lines))] == ["a", "b"]


def test_rows_orjson_cannot_write_are_still_captured_as_sent(server: ModelServer) -> None:
    # orjson refuses integers beyond 64 bits; the standard library writes them: the record is kept.
    huge = {**record(), "age": 10**30}
    status, lines = _send(server, _event("full", huge))
    assert len(lines) == 1 and lines[0]["inputs"] == [huge] and lines[0]["status"] == status


def test_the_default_emit_writes_one_line_per_request_to_stdout(
    server: ModelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    handle(_event("full", {"instances": [record(), record()]}), server)
    handle(_event("quiet", record()), server)
    out = capsys.readouterr().out
    assert out.endswith("\n") and len(out.splitlines()) == 1
    assert json.loads(out)["model"] == "full" and len(json.loads(out)["inputs"]) == 2
