"""`stepml local invoke FUNCTION -e events/FILE.json` on a fresh machine, as a user types it.

Given a checkout and the seed datasets (nothing else: no stack running), When `stepml local invoke`
runs a function on its sample event, Then it starts a fresh offline stack, seeds what the event
refers to, and the function returns the documented result — for the pipeline's stages, the next
stage's sample event (so events/ is one run, stage by stage); for the API, a prediction.

Each call is its own `stepml` process, exactly what a user runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from stepml.local import LocalStack
from tests.conftest import ROOT, seed_dataset

EVENTS = ROOT / "events"
SAMPLE_BUCKET = "stepml-databucket-example"  # scripts/make_sample_events.py
# Values of the sample run that a fresh stack cannot reproduce (S3 and the clock make them; the ONNX
# model's size and the staged files' SHA-256 follow the fitted trees, which may differ with another
# host's float arithmetic).
VOLATILE = {"train_seconds", "max_abs_difference", "model_bytes", "artifact_sha256"}


def stepml(
    *args: str, timeout: float = 240, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `stepml` command in the checkout, in a process of its own."""
    env = {**os.environ, "STEPML_DATA_DIR": str(seed_dataset("adult").parent), **(extra_env or {})}
    return subprocess.run(
        [sys.executable, "-m", "stepml.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def assert_close(actual: Any, expected: Any, where: str = "payload") -> None:
    """Equal, except floats (metrics) within 0.03, and timings/float noise ignored."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), where
        assert set(actual) == set(expected), f"{where}: {sorted(set(actual) ^ set(expected))}"
        for key in expected:
            if key not in VOLATILE:
                assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=0.03), where
    else:
        assert actual == expected, where


def assert_is_next_event(payload: dict[str, Any], next_event: str) -> None:
    """The stage returned the next stage's sample event, in the fresh stack's bucket."""
    expected = event(next_event)
    source = payload.get("source")
    if source is not None:
        # The upload the sample run read, byte for byte, in the fresh stack's own bucket.
        assert source["bucket"].startswith("stepml-databucket-")
        assert source["bucket"] != SAMPLE_BUCKET
        assert source["version_id"] and source["version_id"] != expected["source"]["version_id"]
        for name in ("key", "etag", "size", "sha256"):
            assert source[name] == expected["source"][name], name
        payload = {**payload, "source": expected["source"]}
    assert_close(payload, expected)


def check_inference(payload: dict[str, Any]) -> None:
    assert payload["statusCode"] == 200, payload
    body = json.loads(payload["body"])
    assert body["model"] == "adult" and body["version"] == 1
    assert body["predictions"] in (["<=50K"], [">50K"])
    assert sum(body["probabilities"][0].values()) == pytest.approx(1.0, abs=1e-4)


def check_promote(payload: dict[str, Any]) -> None:
    assert payload["promoted"] is True, payload["decision"]
    assert (payload["dataset"], payload["version"]) == ("adult", 1)
    assert payload["gate"]["promoted"] is True
    # The rest is what Evaluate returned (events/promote.json).
    rest = {k: v for k, v in payload.items() if k not in ("promoted", "decision", "gate")}
    expected = {k: v for k, v in event("promote").items() if k != "gate"}
    assert_close(rest, expected)


#: The documented result of each events/ file (README, "stepml local invoke on a fresh machine").
def check_claim(payload: dict[str, Any]) -> None:
    # the sample upload is small and its config names no engine: the size decides (auto)
    assert payload["duplicate"] is False and payload["engine"] == "auto"
    assert payload["limits"] == {"spark_threshold_bytes": 600000000, "max_upload_bytes": 10000000000}
    assert payload["source"]["size"] < payload["limits"]["spark_threshold_bytes"]


DOCUMENTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "claim": check_claim,
    "validate": lambda payload: assert_is_next_event(payload, "preprocess"),
    "preprocess": lambda payload: assert_is_next_event(payload, "train"),
    "train": lambda payload: assert_is_next_event(payload, "verify"),
    "verify": lambda payload: assert_is_next_event(payload, "evaluate"),
    "evaluate": lambda payload: assert_is_next_event(payload, "promote"),
    "promote": check_promote,
    "inference": check_inference,
}


def test_every_event_file_has_a_documented_result() -> None:
    assert sorted(p.stem for p in EVENTS.glob("*.json")) == sorted(DOCUMENTED)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_local_invoke_on_a_fresh_machine_gives_the_documented_result(name: str) -> None:
    # Given only the checkout: When the function (named by its code folder) runs on its event
    result = stepml("local", "invoke", name, "-e", f"events/{name}.json")

    # Then it succeeds, with the payload alone on stdout and the seeding told on stderr
    assert result.returncode == 0, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert "seeded s3://stepml-databucket-" in result.stderr
    DOCUMENTED[name](payload)


@pytest.mark.slow
def test_no_seed_leaves_the_fresh_stack_empty() -> None:
    result = stepml("local", "invoke", "ValidateFunction", "-e", "events/validate.json", "--no-seed")

    assert result.returncode == 1
    payload = json.loads(result.stdout)
    assert payload["errorType"] == "DataError"
    assert "raw/adult/adult.csv does not exist" in payload["errorMessage"]


@pytest.mark.slow
def test_a_running_stack_is_never_seeded() -> None:
    # Given a running stack with no data (as `stepml local up` serves it)
    with LocalStack(ROOT, port=0, api_port=0, stack_name="stepml-invoke-running") as running:
        # When the event is invoked against it
        result = stepml(
            "--endpoint-url", running.endpoint_url, "--stack-name", "stepml-invoke-running",
            "local", "invoke", "ValidateFunction", "-e", "events/validate.json",
            extra_env=running.client_environment(),
        )  # fmt: skip

        # Then the function runs on the stack as it is: nothing was uploaded for it
        assert result.returncode == 1
        assert json.loads(result.stdout)["errorType"] == "DataError"
        assert "seeded" not in result.stderr
        s3 = running.client("s3")
        for prefix in ("raw/", "preprocessed/", "staging/", "models/"):
            assert s3.list_objects_v2(Bucket=running.bucket, Prefix=prefix)["KeyCount"] == 0
