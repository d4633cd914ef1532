"""What the hostile data/config cases share: run an upload through the real stage handlers and
judge the failure the way a user (and Step Functions) would see it.

A handler's exception reaches Step Functions as the Lambda runtime's error payload
(``errorType``, ``errorMessage``, ``stackTrace``); the run's cause is that payload. So a failure is
judged as a payload: a DataError or ConfigError, a message matching the case's text, no library
exception text, and under the 256 KB a state may hold.
"""

from __future__ import annotations

import json
import re
import traceback
from typing import Any

import pandas as pd

from tests.functional.conftest import EVENT_BUCKET
from tests.functional.test_any_csv import registered, upload

#: Step Functions' limit on a state's input or output, and so on a run's cause.
STATE_LIMIT = 256 * 1024
#: Text that only a library (or Python itself) writes: never part of a run's cause.
RAW = re.compile(
    r"Traceback|InvalidParameterError|ValueError:|TypeError:|KeyError|IndexError|ParserError|"
    r"UnicodeDecodeError|C error|scikit-learn\.org|sklearn\.|numpy\.|pandas\.|dtype\(|could not convert"
)
#: Few boosting rounds: the hostile tier checks behaviour, not model quality.
FAST = "params: {max_iter: 30}\n"


def error_payload(exc: BaseException) -> dict[str, Any]:
    """The Lambda Python runtime's error payload for ``exc`` (what Step Functions' cause holds)."""
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "requestId": "00000000-0000-0000-0000-000000000000",
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def run(s3: Any, invoke: Any, body: bytes, config: str | None = FAST, *, dataset: str = "hostile",
        stages: str = "evaluate") -> dict[str, Any]:
    """Upload ``body`` (and ``config``) and run the stages as the state machine does, up to
    ``evaluate`` (``all``: the version is registered), ``promote``, or only ``validate`` or
    ``preprocess`` (enough to see how the data was read, in a fraction of the time).

    Returns the last state, or ``{"error": payload}`` when a stage raised.
    """
    event = upload(s3, dataset, body, config)
    try:
        if stages == "validate":
            return invoke("validate", event)
        state = invoke("validate", event)
        for stage in ("preprocess", "train", "verify", "evaluate", "promote"):
            state = invoke(stage, state)
            if stage == stages:
                break
        return state
    except Exception as exc:  # noqa: BLE001 - a handler's error: judged as its payload by the caller
        return {"error": error_payload(exc)}


def assert_refused(s3: Any, outcome: dict[str, Any], error: str, message: str) -> str:
    """The run failed with ``error`` whose message matches ``message``, readably, within the state
    limit, and nothing was registered. Returns the message."""
    assert "error" in outcome, f"expected {error}, but the run succeeded: {json.dumps(outcome)[:500]}"
    payload = outcome["error"]
    text = payload["errorMessage"]
    assert payload["errorType"] == error, f"{payload['errorType']}: {text[:2000]}"
    assert re.search(message, text, re.DOTALL), text[:2000]
    assert not RAW.search(text), f"library text in the cause: {text[:2000]}"
    assert len(json.dumps(payload).encode()) < STATE_LIMIT
    assert registered(s3) == []
    return text


def assert_trained(s3: Any, outcome: dict[str, Any]) -> dict[str, Any]:
    """The run registered version 1 and every state it returned fits in a Step Functions state."""
    assert "error" not in outcome, json.dumps(outcome["error"])[:3000] if "error" in outcome else ""
    assert outcome["version"] == 1
    assert len(json.dumps(outcome).encode()) < STATE_LIMIT
    assert any(key.endswith("/meta.json") for key in registered(s3))
    return outcome


def stored_json(s3: Any, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=EVENT_BUCKET, Key=key)["Body"].read())


def validation_report(s3: Any, dataset: str = "hostile") -> dict[str, Any]:
    from tests.functional.test_any_csv import report

    return report(s3, dataset)


def model_meta(s3: Any, dataset: str = "hostile") -> dict[str, Any]:
    from tests.functional.test_any_csv import meta

    return meta(s3, dataset)


def table(rows: int = 60, seed: int = 0) -> pd.DataFrame:
    """A small learnable table: a number, a category, a boolean and a two-class target."""
    import numpy as np

    rng = np.random.default_rng(seed)
    size = rng.uniform(0, 10, rows).round(2)
    colour = rng.choice(["red", "green", "blue"], rows)
    flag = rng.choice([True, False], rows)
    label = np.where(size + (colour == "red") * 3 > 6, "high", "low")
    return pd.DataFrame({"size": size, "colour": colour, "flag": flag, "label": label})


def csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)
