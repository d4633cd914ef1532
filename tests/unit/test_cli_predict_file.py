"""`stepml predict --file`: a batch too long for the command line, from a JSON or CSV file or stdin,
sent as the API takes it; readable errors for a file that holds no body; text printed as written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from stepml.cli.commands import predict
from stepml.client import ApiResponse
from stepml.stack import Stack


class RecordingStack(Stack):
    """A stack whose API answers every prediction, keeping the bodies it was sent."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[Any] = []

    def predict_request(self, name: str, body: Any, version: int | None = None,
                        alias: str | None = None) -> ApiResponse:
        self.sent.append(body)
        rows = len(body["instances"]) if "instances" in body else 1
        return ApiResponse(200, {"model": name, "version": 1, "predictions": ["café"] * rows, "warnings": []})


def predict_with(*args: str, stdin: str | None = None) -> tuple[RecordingStack, int, str]:
    stack = RecordingStack()
    result = CliRunner().invoke(predict, ["wide", *args], obj=stack, input=stdin)
    return stack, result.exit_code, result.output


def test_a_batch_too_long_for_the_command_line_is_sent_from_a_json_file(tmp_path: Path) -> None:
    # Given 150 records of 92 columns (~220 KB: more than one command-line argument may hold)
    records = [{f"feature_{c}": r * c for c in range(92)} for r in range(150)]
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"instances": records}))
    # When it is predicted from the file
    stack, code, out = predict_with("--file", str(body))
    # Then the API gets the whole body, and its answer is printed as JSON
    assert code == 0, out
    assert stack.sent == [{"instances": records}]
    assert len(json.loads(out)["predictions"]) == 150


def test_a_json_list_of_records_becomes_instances(tmp_path: Path) -> None:
    body = tmp_path / "rows.json"
    body.write_text('[{"x": 1}, {"x": 2}]')
    stack, code, out = predict_with("--file", str(body))
    assert code == 0, out
    assert stack.sent == [{"instances": [{"x": 1}, {"x": 2}]}]


def test_csv_rows_become_records_as_written_and_empty_cells_null(tmp_path: Path) -> None:
    table = tmp_path / "rows.csv"
    table.write_text('age,city,income\n39,"Paris, FR",1.5e3\n,Zürich,\n', encoding="utf-8")
    stack, code, out = predict_with("--file", str(table))
    assert code == 0, out
    assert stack.sent == [{"instances": [{"age": "39", "city": "Paris, FR", "income": "1.5e3"},
                                         {"age": None, "city": "Zürich", "income": None}]}]


@pytest.mark.parametrize("text, expected", [
    ('{"x": 1}', {"x": 1}),
    ("x,y\n1,a\n", {"instances": [{"x": "1", "y": "a"}]}),
])
def test_stdin_holds_json_or_a_csv(text: str, expected: Any) -> None:
    stack, code, out = predict_with("--file", "-", stdin=text)
    assert code == 0, out
    assert stack.sent == [expected]


def test_text_is_printed_as_written() -> None:
    _, code, out = predict_with("--json", '{"x": 1}')
    assert code == 0, out
    assert '"café"' in out and "\\u00e9" not in out


@pytest.mark.parametrize("content, message", [
    (None, "cannot read {path}: No such file or directory"),
    (b"\xff\xfex,y", "{path} is not UTF-8 text"),
    (b'{"x": 1,', "{path} is not valid JSON"),
    (b"x,y\n", "{path} has a header but no rows to predict"),
    (b"x,y\n1,2,3\n", "{path} row 1 (after the header) has 3 fields, the header 2"),
    (b"42", "{path} holds a JSON int"),
])
def test_a_file_without_a_body_is_refused_by_name(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / ("body.json" if content in (b'{"x": 1,', b"42") else "body.csv")
    if content is not None:
        path.write_bytes(content)
    stack, code, out = predict_with("--file", str(path))
    assert code == 2 and stack.sent == []
    assert message.format(path=path) in " ".join(out.split()), out


def test_the_body_comes_from_one_place() -> None:
    _, code, out = predict_with()
    assert code == 2 and "give the body with --json '{...}' or --file PATH" in out
    _, code, out = predict_with("--json", "{}", "--file", "-")
    assert code == 2 and "give the body with --json" in out
