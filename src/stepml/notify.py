"""Tell people when a run fails: one readable SNS message per failed, timed-out or aborted run.

An EventBridge rule sends Step Functions' "Execution Status Change" events for the pipeline (status
FAILED, TIMED_OUT or ABORTED) to the Notify function, which reads the run's history and publishes
what a person needs: which dataset, which run, the state that failed, the cause, and how to look at
it (the CLI command and the console page).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from stepml.runs import describe_run

#: SNS limits: a subject is at most 100 characters; the cause is cut well before the body's 256 KB.
MAX_SUBJECT = 100
MAX_CAUSE = 4000


def dataset_of(key: str | None) -> str:
    """The dataset an upload key belongs to: ``raw/<dataset>/<file>.csv`` → ``<dataset>``."""
    parts = [p for p in (key or "").split("/") if p]
    if len(parts) >= 3 and parts[0] == "raw":
        return parts[1]
    return "unknown dataset"


def failed_state(run: dict[str, Any]) -> dict[str, Any] | None:
    """The state a person should look at: the first one with an error (a Fail state only re-raises
    it), else the last state entered."""
    states = run.get("states") or []
    with_error = [s for s in states if s.get("error") and s.get("type") != "Fail"]
    if with_error:
        return with_error[0]
    return states[-1] if states else None


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 40]}… ({len(text) - limit + 40:,} more characters)"


def message(run: dict[str, Any], region: str) -> tuple[str, str]:
    """The SNS subject and body for a run that did not succeed."""
    dataset = dataset_of(run.get("key"))
    state = failed_state(run)
    outcome = run.get("outcome") or {}
    status = str(run.get("status"))
    subject = _cut(f"stepml: {dataset} run {status.replace('_', ' ').lower()}", MAX_SUBJECT)
    error = (state or {}).get("error") or run.get("error") or status
    cause = (state or {}).get("cause") or outcome.get("summary") or run.get("cause") or "no cause recorded"
    console = (
        f"https://{region}.console.aws.amazon.com/states/home?region={region}"
        f"#/v2/executions/details/{quote(str(run.get('arn')), safe='')}"
    )
    lines = [
        f"The stepml pipeline run for dataset {dataset!r} ended {status}.",
        "",
        f"Dataset:      {dataset}",
        f"Upload:       {run.get('key') or 'unknown'}",
        f"Run:          {run.get('name')}",
        f"Started:      {run.get('started')} ({run.get('duration_s')} s)",
        f"Failed state: {(state or {}).get('name') or 'none reached'}",
        f"Error:        {error}",
        f"Cause:        {_cut(str(cause), MAX_CAUSE)}",
        "",
        "Nothing new is served: the champion alias did not move.",
        "",
        "See it:",
        f"  stepml runs show {run.get('name')}",
        f"  {console}",
    ]
    return subject, "\n".join(lines)


def notify(event: dict[str, Any], sfn: Any, sns: Any, topic_arn: str, region: str) -> dict[str, Any]:
    """Publish one message for the execution named in ``event`` (an EventBridge "Step Functions
    Execution Status Change" event); returns what was sent."""
    detail = event.get("detail") or {}
    arn = str(detail.get("executionArn") or "")
    if not arn:
        raise ValueError("the event names no executionArn: not a Step Functions status change")
    run = describe_run(sfn, arn)
    subject, body = message(run, region)
    published = sns.publish(TopicArn=topic_arn, Subject=subject, Message=body)
    return {
        "execution": arn,
        "status": run["status"],
        "dataset": dataset_of(run.get("key")),
        "subject": subject,
        "message_id": published.get("MessageId"),
    }
