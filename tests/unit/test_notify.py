"""The failed-run message: what a person needs, within SNS's limits."""

from __future__ import annotations

from stepml.notify import MAX_SUBJECT, dataset_of, failed_state, message

RUN = {
    "name": "adult-20261126T120000Z-1a2b3c4d",
    "arn": "arn:aws:states:eu-west-1:123456789012:execution:Pipeline:adult-20261126T120000Z-1a2b3c4d",
    "status": "FAILED",
    "started": "2026-11-26T12:00:00+00:00",
    "duration_s": 4.2,
    "key": "raw/adult/2026-11.csv",
    "error": "DataError",
    "cause": '{"errorMessage": "no target column \'income\'", "errorType": "DataError"}',
    "states": [
        {"name": "Validate dataset", "type": "Task", "status": "FAILED", "error": "DataError",
         "cause": "no target column 'income'"},
        {"name": "Dataset rejected", "type": "Fail", "status": "FAILED", "error": "DataError",
         "cause": "no target column 'income'"},
    ],
}


def test_the_message_names_dataset_run_failed_state_cause_and_where_to_look() -> None:
    subject, body = message(RUN, "eu-west-1")

    assert subject == "stepml: adult run failed"
    assert "Failed state: Validate dataset" in body  # not the Fail state that re-raised it
    assert "Cause:        no target column 'income'" in body
    assert "stepml runs show adult-20261126T120000Z-1a2b3c4d" in body
    assert "https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/arn%3Aaws%3Astates" in body


def test_a_timed_out_run_without_an_erroring_state_names_the_last_state() -> None:
    run = {**RUN, "status": "TIMED_OUT", "error": None, "cause": None,
           "states": [{"name": "Train model", "type": "Task", "status": "RUNNING", "error": None, "cause": None}]}

    subject, body = message(run, "us-east-1")

    assert subject == "stepml: adult run timed out"
    assert failed_state(run)["name"] == "Train model" and "Error:        TIMED_OUT" in body


def test_long_names_and_causes_are_cut_with_a_count() -> None:
    run = {**RUN, "key": f"raw/{'d' * 300}/x.csv"}
    run["states"] = [{**RUN["states"][0], "cause": "x" * 10_000}]

    subject, body = message(run, "us-east-1")

    assert len(subject) <= MAX_SUBJECT
    assert "more characters)" in body and len(body) < 6000


def test_the_dataset_is_the_upload_folder() -> None:
    assert dataset_of("raw/housing/2026/11.csv") == "housing"
    assert dataset_of("elsewhere.csv") == "unknown dataset" and dataset_of(None) == "unknown dataset"
