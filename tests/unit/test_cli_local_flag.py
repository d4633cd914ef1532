"""`stepml --local` reaches the offline stack `stepml local up` serves, whatever its --port: the
endpoint the running stack recorded in its data dir, else the `stepml-local` profile's, else the
default port; `--endpoint-url` still wins."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stepml.cli.commands import _local_command, main
from stepml.local.persistence import DataDir, serving
from stepml.stack import LOCAL_ENDPOINT, Stack, local_endpoint


@pytest.fixture
def environ(tmp_path: Path) -> dict[str, str]:
    """No running stack, no profile: the data dir and the AWS config file are the test's own."""
    return {"STEPML_LOCAL_DATA_DIR": str(tmp_path / "data"), "AWS_CONFIG_FILE": str(tmp_path / "aws-config")}


def write_profile_endpoint(environ: dict[str, str], endpoint_url: str) -> None:
    Path(environ["AWS_CONFIG_FILE"]).write_text(f"[profile stepml-local]\nregion = us-east-1\n"
                                                f"endpoint_url = {endpoint_url}\n")


def stack_of(*args: str) -> Stack:
    """The stack `stepml ARGS info` would talk to (the group's options parsed, nothing called)."""
    assert main.callback is not None
    with main.make_context("stepml", [*args, "info"]) as ctx:
        ctx.invoke(main.callback, **ctx.params)
        stack: Stack = ctx.obj
    return stack


def test_the_port_a_running_stack_recorded_is_used(environ: dict[str, str]) -> None:
    # Given `stepml local up --port 4599` serving from the data dir (and an older profile's port)
    data_dir = DataDir(Path(environ["STEPML_LOCAL_DATA_DIR"]))
    data_dir.acquire("stepml", "us-east-1")
    data_dir.record_serving("http://127.0.0.1:4599", "http://127.0.0.1:3099")
    write_profile_endpoint(environ, "http://127.0.0.1:4600")
    try:
        # Then --local resolves to the running stack's endpoint
        assert local_endpoint("stepml", environ) == "http://127.0.0.1:4599"
    finally:
        data_dir.release()
    # and once it stops, its record goes with it: the profile's endpoint is next
    assert serving(data_dir.path) is None
    assert local_endpoint("stepml", environ) == "http://127.0.0.1:4600"


def test_a_record_left_by_a_killed_stack_is_not_used(environ: dict[str, str]) -> None:
    data_dir = Path(environ["STEPML_LOCAL_DATA_DIR"])
    data_dir.mkdir()
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                              check=True)
    record = {"endpoint_url": "http://127.0.0.1:4599", "api_url": "", "pid": int(finished.stdout)}
    (data_dir / "serving.json").write_text(json.dumps(record))  # as `kill -9` leaves it
    assert local_endpoint("stepml", environ) == LOCAL_ENDPOINT


def test_the_profile_endpoint_and_else_the_default_port(environ: dict[str, str]) -> None:
    assert local_endpoint("stepml", environ) == LOCAL_ENDPOINT
    write_profile_endpoint(environ, "http://127.0.0.1:4599")
    assert local_endpoint("stepml", environ) == "http://127.0.0.1:4599"


def test_the_local_flag_resolves_and_endpoint_url_wins(environ: dict[str, str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("STEPML_ENDPOINT_URL", raising=False)
    write_profile_endpoint(environ, "http://127.0.0.1:4599")
    assert stack_of("--local").endpoint_url == "http://127.0.0.1:4599"
    assert stack_of("--local", "--endpoint-url", "http://127.0.0.1:5000").endpoint_url == "http://127.0.0.1:5000"
    assert stack_of().endpoint_url is None


def test_the_startup_message_names_a_command_that_reaches_the_stack(environ: dict[str, str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    # Nothing records port 4599: another shell must name it
    assert _local_command("stepml", "http://127.0.0.1:4599") == "stepml --endpoint-url http://127.0.0.1:4599"
    write_profile_endpoint(environ, "http://127.0.0.1:4599")
    assert _local_command("stepml", "http://127.0.0.1:4599") == "stepml --local"
    assert _local_command("shop", "http://127.0.0.1:4599") == "stepml --stack-name shop --local"
