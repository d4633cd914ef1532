"""`stepml local up` across a real `kill -9`: what was registered before is served after the restart.

The stack runs as its own process (so the kill is the real thing) with a temporary data dir and a
temporary AWS profile file; the user's side is the `stepml` command, as typed in another shell.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from stepml import keys
from stepml.cli import main
from stepml.config import DatasetConfig
from stepml.local.persistence import STOPPED_ERROR
from stepml.registry import ModelRegistry
from stepml.stack import Stack
from tests.conftest import ROOT
from tests.e2e.test_pipeline import synthetic_csv

START_TIMEOUT = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LocalUp:
    """One `stepml local up` process on free ports, serving from ``data_dir``."""

    def __init__(self, data_dir: Path, aws_dir: Path, log: Path) -> None:
        self.port, api_port = _free_port(), _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.aws_dir = aws_dir
        # Ready means: this start wrote its profile (before that, the stack may answer while it
        # is still being deployed, and an older profile would name the last start's keys).
        for stale in ("credentials", "config"):
            (aws_dir / stale).unlink(missing_ok=True)
        # The stack writes the profile; it does not sign with it (as `make smoke` starts it).
        env = {**os.environ, **self.user_environment(), "AWS_PROFILE": None, "POWERTOOLS_LOG_LEVEL": "WARNING"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")]))
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from stepml.cli import main; main()", "local", "up",
             "--port", str(self.port), "--api-port", str(api_port), "--data-dir", str(data_dir)],
            cwd=ROOT, env={k: v for k, v in env.items() if v is not None}, stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )

    def user_environment(self) -> dict[str, str | None]:
        """A shell whose only credentials are the profile `stepml local up` writes."""
        return {
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_dir / "credentials"),
            "AWS_CONFIG_FILE": str(self.aws_dir / "config"),
            "AWS_PROFILE": "stepml-local",
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_SECURITY_TOKEN": None,
        }

    def stepml(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(
            main, ["--endpoint-url", self.endpoint, *args], env=self.user_environment()
        )
        return result.exit_code, result.output

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"stepml local up exited {self.process.returncode}")
            code, _ = self.stepml("info", "--json")
            if code == 0 and (self.aws_dir / "credentials").exists():
                return
            time.sleep(0.5)
        raise AssertionError(f"stepml local up did not serve within {START_TIMEOUT} s")

    def client_stack(self) -> Stack:
        """The library's view of the stack, signed with the profile's current keys."""
        import configparser

        parser = configparser.RawConfigParser()
        parser.read(self.aws_dir / "credentials")
        section = parser["stepml-local"]
        return Stack(endpoint_url=self.endpoint, credentials={
            "aws_access_key_id": section["aws_access_key_id"],
            "aws_secret_access_key": section["aws_secret_access_key"],
            "aws_session_token": "",
        })

    def kill_9(self) -> None:
        """SIGKILL the stack's process, as `kill -9 <pid>` does; then end what it left behind
        (its Lambda environments, orphaned mid-invocation) so they stop using the CPU."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.stop_group()

    def stop_group(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=30)
        self.log.close()


def _wait_for_state(stack: Stack, key: str, state: str, timeout: float = 120) -> dict[str, Any]:
    """The run started by ``key``, once it is inside ``state``."""
    since = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for execution in stack.executions(limit=20):
            run = stack.run(execution["executionArn"])
            if run["key"] != key:
                continue
            assert run["status"] == "RUNNING", run["outcome"]["summary"]
            if run["states"] and run["states"][-1]["name"] == state:
                return run
        time.sleep(0.2)
    raise AssertionError(f"no run of {key} reached {state!r} within {time.time() - since:.0f} s")


def _wait_for_kept_history(data_dir: Path, run: str, state: str, timeout: float = 30) -> None:
    """The stack writes a running execution's history to its data dir about once a second."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in (data_dir / "executions").glob("*/*.json"):
            with contextlib.suppress(OSError, ValueError):
                record = json.loads(path.read_bytes())
                entered = [e["stateEnteredEventDetails"]["name"] for e in record["events"]
                           if "stateEnteredEventDetails" in e]
                if record["name"] == run and state in entered:
                    return
        time.sleep(0.2)
    raise AssertionError(f"the history of {run} on disk never reached {state!r}")


def _complete_versions(stack: Stack, name: str) -> dict[int, dict[str, Any]]:
    """Every version folder under models/<name>/ that has a meta.json, each artifact checked
    against its recorded SHA-256 (a torn or missing artifact raises)."""
    store = stack.store
    found = {}
    for prefix in store.list_prefixes(keys.models_prefix(name)):
        if not prefix.rstrip("/").rsplit("/", 1)[-1].startswith("version-"):
            continue
        meta = store.find_json(prefix + "meta.json")
        if meta is None:
            continue
        for artifact in meta["artifacts"]:
            ModelRegistry(store).load_artifact(meta, artifact)
        found[meta["version"]] = meta
    return found


def test_kill_9_mid_run_loses_nothing_registered_and_leaves_nothing_partial(tmp_path: Path) -> None:
    data_dir, aws_dir = tmp_path / "state", tmp_path / "aws"
    aws_dir.mkdir()
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    small.write_bytes(synthetic_csv(300, 42))
    large.write_bytes(synthetic_csv(5_000, 7, noise=0.2))
    record = json.dumps({"x": 1.2, "colour": "red", "z": 0})

    # Given a stack that registered a model, and a second run of it killed while it trains
    first = LocalUp(data_dir, aws_dir, tmp_path / "first.log")
    try:
        first.wait_until_serving()
        code, out = first.stepml("upload", str(small), "--dataset", "shop", "--target", "label",
                                 "--recipe", "seed-a")
        assert code == 0 and "version 1" in out, out
        stack = first.client_stack()
        before = {
            "versions": stack.models("shop"),
            "history": stack.history("shop"),
            "raw": stack.store.head(keys.raw("shop", "small.csv")),
        }
        trained = stack.run(stack.executions(1)[0]["executionArn"])
        # Many trees on many rows: Train takes long enough to be killed in it.
        stack.write_config("shop", DatasetConfig(target="label", recipe="seed-a",
                                                 params={"n_estimators": 5000}))
        uploaded = stack.upload(large, "shop")
        interrupted = _wait_for_state(stack, uploaded["key"], "Train model")
        _wait_for_kept_history(data_dir, interrupted["name"], "Train model")
        first.kill_9()
    finally:
        if first.process.poll() is None:
            first.stop_group()

    # When the stack starts again on the same data dir
    second = LocalUp(data_dir, aws_dir, tmp_path / "second.log")
    try:
        second.wait_until_serving()
        stack = second.client_stack()
        started = " ".join((tmp_path / "second.log").read_text().split())
        assert "data dir" in started and "objects, 2 runs)" in started, started

        # Then the model, its alias and its history are served as before
        assert stack.models("shop") == before["versions"]
        assert [v["aliases"] for v in stack.models("shop")] == [["champion"]]
        assert stack.history("shop") == before["history"]
        code, out = second.stepml("predict", "shop", "--json", record)
        assert code == 0 and json.loads(out)["predictions"] == ["yes"], out
        # ... the datasets and the config, with the same object versions (lineage still resolves)
        assert stack.store.head(keys.raw("shop", "small.csv")) == before["raw"]
        lineage = before["versions"][0]["lineage"]
        assert stack.store.get_bytes(lineage["key"], lineage["version_id"]) == small.read_bytes()
        assert stack.read_config("shop").params == {"n_estimators": 5000}

        # ... the runs are listed: the finished one as it ended, the killed one as stopped in Train
        code, out = second.stepml("runs", "--json")
        runs = {r["name"]: r["status"] for r in json.loads(out)}
        assert runs == {trained["name"]: "SUCCEEDED", interrupted["name"]: "ABORTED"}, out
        assert stack.run(trained["name"])["states"] == trained["states"]
        killed = stack.run(interrupted["name"])
        assert killed["error"] == STOPPED_ERROR and "Upload the CSV again" in killed["cause"]
        assert killed["states"][-1]["name"] == "Train model"
        assert killed["states"][-1]["status"] == "ABORTED"
        assert killed["outcome"]["outcome"] == "aborted"
        code, out = second.stepml("runs", "show", interrupted["name"])
        assert code == 0 and "ABORTED" in out and "was stopped in Train model" in " ".join(out.split())

        # ... and the interrupted run left nothing partial: only complete, checksummed versions
        assert list(_complete_versions(stack, "shop")) == [1]
        assert interrupted["name"] not in json.dumps(stack.models("shop"))

        # And uploading the CSV again runs it again, to a new version
        stack.write_config("shop", DatasetConfig(target="label", recipe="seed-a"))
        code, out = second.stepml("upload", str(small), "--dataset", "shop")
        assert code == 0, out
        assert [v["version"] for v in stack.models("shop")] == [1, 2]
        assert sorted(_complete_versions(stack, "shop")) == [1, 2]
    finally:
        second.stop_group()


FRESH_SCRIPT = """
import sys
from pathlib import Path
from stepml.local import LocalStack

root, data = Path(sys.argv[1]), Path(sys.argv[2])
with LocalStack(root, port=0, api_port=0, stack_name="stepml-fresh", data_dir=data) as stack:
    bucket = stack.bucket
    stack.client("s3").put_object(Bucket=bucket, Key="config/shop.yaml", Body=b"target: label\\n")
assert list((data / "s3" / bucket / "keys").glob("*.json"))
with LocalStack(root, port=0, api_port=0, stack_name="stepml-fresh", data_dir=data, fresh=True) as stack:
    assert stack.restored == {"objects": 0, "runs": 0} and stack.bucket != bucket
    assert stack.client("s3").list_objects_v2(Bucket=stack.bucket)["KeyCount"] == 0
assert not (data / "s3" / bucket).exists()
print("fresh ok")
"""


def test_fresh_starts_empty(tmp_path: Path) -> None:
    """`stepml local up --fresh` (the restart that keeps everything is the test above).

    In its own process, as `stepml local up` runs: this process's moto backends also hold the
    session's other stacks, so a stack stopped here is not forgotten by them.
    """
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", FRESH_SCRIPT, str(ROOT), str(tmp_path / "data")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0 and "fresh ok" in result.stdout, result.stdout + result.stderr
