"""The web UI in a real browser, against the offline stack with Adult trained (versions 1 and 2;
the Models page's account of the auto recipe's choice also trains a small auto model of its own).

Given the app started with `stepml ui` on the offline stack, When a user works each page in
headless Chromium, Then they see what the HTTP API and the AWS APIs say.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import grid_once, settle, train
from tests.conftest import head_bytes

pytestmark = pytest.mark.slow

#: A model trained by the auto recipe: the session's 'adult' versions are seed-a's, which record no choice.
AUTO_MODEL = "adult-auto"
ADULT_FIELDS = ["age", "workclass", "fnlwgt", "education", "educational-num", "marital-status",
                "occupation", "relationship", "race", "gender", "capital-gain", "capital-loss",
                "hours-per-week", "native-country"]


def metric(page: Any, label: str) -> Any:
    """The value of the metric tile labelled exactly ``label``."""
    labelled = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=labelled).get_by_test_id("stMetricValue")


def champion_from_api(offline_stack: dict[str, Any]) -> int:
    answer = offline_stack["stack"].api.get("/models/adult/history")
    assert answer.ok, answer.message
    return int(answer.body["version"])


def field_labels(offline_stack: dict[str, Any]) -> dict[str, str]:
    """Each feature's label as the form shows it: a required one (per the API) carries '*'."""
    answer = offline_stack["stack"].api.get("/models/adult")
    assert answer.ok, answer.message
    features = answer.body["features"]
    return {f["name"]: f"{f['name']} *" if f.get("required", True) else f["name"] for f in features}


@pytest.fixture(scope="module")
def auto_version(offline_stack: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Version 1 of a model the auto recipe trained on Adult's first 1,000 rows (its fits take seconds)."""
    from stepml.config import DatasetConfig

    stack = offline_stack["stack"]
    csv = tmp_path_factory.mktemp("auto") / "adult.csv"
    csv.write_bytes(head_bytes(offline_stack["csv"], 1000))
    stack.write_config(AUTO_MODEL, DatasetConfig(target="income", recipe="auto"))
    train(stack, csv, AUTO_MODEL)
    return dict(stack.version(AUTO_MODEL, 1))


def open_models_page(page: Any, ui_url: str, model: str, timeout: float = 30.0) -> None:
    """The Models page of ``model``, opened again until its picker shows it: the UI caches the
    model names for a few seconds, and falls back to the first model (rewriting ?model=) meanwhile."""
    picker = page.get_by_test_id("stSelectbox").filter(has=page.get_by_text("Model", exact=True))
    deadline = time.monotonic() + timeout
    while True:
        page.goto(f"{ui_url}/models?model={model}")
        settle(page)
        picked = picker.locator("input").first.input_value()
        if picked == model or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert picked == model, picked


def test_stepml_ui_started_from_a_script_serves_and_opens_the_browser(ui_url: str, opened_urls: Path) -> None:
    # Given `stepml ui` started with its defaults (--open) without a terminal (the ui_url fixture),
    # Then it serves (the fixture waited for it) instead of waiting on Streamlit's e-mail prompt,
    # And it opened the browser on the UI once, when the UI answered
    deadline = time.monotonic() + 10
    while not opened_urls.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert opened_urls.read_text().split() == [ui_url]


def test_predict_form_has_a_field_for_every_adult_feature(
    page: Any, ui_url: str, offline_stack: dict[str, Any]
) -> None:
    labels = field_labels(offline_stack)
    assert sorted(labels) == sorted(ADULT_FIELDS)
    # the fixture's seed-a pipeline imputes a missing number but trains only on complete rows, so
    # it cannot serve a missing category: categories are marked required, numbers are not
    assert labels["age"] == "age" and labels["workclass"] == "workclass *"
    page.goto(ui_url + "/")
    settle(page)
    form = page.locator('[data-testid="stForm"]')
    for field in ADULT_FIELDS:
        expect(form.get_by_text(labels[field], exact=True)).to_be_visible()
    # numbers are number inputs, with the training range in their help
    expect(form.get_by_role("spinbutton", name=labels["age"], exact=True)).to_be_visible()
    expect(form.get_by_role("spinbutton", name=labels["hours-per-week"], exact=True)).to_be_visible()
    form.get_by_role("button", name=f"Help for {labels['age']}", exact=True).hover()
    expect(page.get_by_text(re.compile(r"training range 17 – 90"))).to_be_visible()


def test_a_submitted_record_shows_the_prediction_and_the_version(
    page: Any, ui_url: str, offline_stack: dict[str, Any]
) -> None:
    page.goto(ui_url + "/")
    settle(page)
    page.get_by_role("button", name="Predict").click()
    expect(metric(page, "Prediction")).to_have_text(re.compile(r"^\s*(<=50K|>50K)\s*$"))
    expect(metric(page, "Model version")).to_have_text(str(champion_from_api(offline_stack)))
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()  # class probabilities


def test_the_probability_chart_shows_every_class_with_its_value(page: Any, ui_url: str) -> None:
    # Given the Predict page, When a record is predicted
    page.goto(ui_url + "/")
    settle(page)
    page.get_by_role("button", name="Predict").click()
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    expect(chart).to_be_visible()
    values = chart.locator("g.mark-text.role-mark text")
    expect(values).to_have_count(2)
    # Then each class has a printed value (Vega describes each label: "...; class: >50K; label: 83.2%")
    labelled = dict(re.findall(r"class: ([^;]+); label: ([^;]+)$", "\n".join(
        label for label in (text.get_attribute("aria-label") or "" for text in values.all())
    ), flags=re.MULTILINE))
    assert sorted(labelled) == ["<=50K", ">50K"]
    assert all(re.fullmatch(r"[<>]?\d{1,3}\.\d%", value) for value in labelled.values()), labelled
    shown = [text.text_content() for text in values.all()]
    assert sorted(shown) == sorted(labelled.values())
    exact = [float(v.strip("%")) for v in labelled.values() if v[0].isdigit()]
    if len(exact) == 2:
        assert abs(sum(exact) - 100) <= 0.2
    # and every class is a row of its own, a full-width track at least 20 px high (not a hairline)
    rows = chart.locator("g.mark-rect.role-mark").first.locator("path")
    expect(rows).to_have_count(2)
    boxes = [row.bounding_box() for row in rows.all()]
    assert all(box is not None and box["height"] >= 20 for box in boxes), boxes
    assert abs(boxes[0]["y"] - boxes[1]["y"]) >= 20, boxes


def test_a_bad_value_shows_the_api_message_next_to_its_field(
    page: Any, ui_url: str, offline_stack: dict[str, Any]
) -> None:
    page.goto(ui_url + "/")
    settle(page)
    page.get_by_text("Send raw JSON").click()
    body = page.get_by_label("Request body")
    expect(body).to_be_visible()
    record = json.loads(body.input_value())
    record["age"] = "forty"
    body.fill(json.dumps(record))
    body.press("Control+Enter")  # commit the text area's value before the click
    settle(page)
    page.get_by_role("button", name="Send JSON").click()
    # the API's message sits under the age field, and its summary above the response
    age = field_labels(offline_stack)["age"]
    age_column = page.locator('[data-testid="stColumn"]', has=page.get_by_role("spinbutton", name=age, exact=True))
    expect(age_column.get_by_text("expected a number, got str 'forty'")).to_be_visible()
    expect(page.get_by_text(re.compile(r"refused the request \(HTTP 422\)"))).to_be_visible()


def test_the_runs_page_draws_a_completed_run_state_by_state(
    page: Any, ui_url: str, offline_stack: dict[str, Any]
) -> None:
    run = offline_stack["runs"][0]
    page.goto(f"{ui_url}/runs?run={run['name']}")
    settle(page)
    expect(metric(page, "Status")).to_have_text("SUCCEEDED")
    graph = page.locator('[data-testid="stGraphVizChart"] svg').first
    expect(graph).to_be_visible()
    for state in ("Validate dataset", "Preprocess data", "Train model", "Evaluate and register"):
        node = graph.locator("g.node", has=page.locator(f"title:text-is('{state}')"))
        # a state this run passed through is drawn green
        expect(node.locator("[fill='#c8e6c9']").first).to_be_attached()
    # the validation report of that run
    expect(page.get_by_text("Validation report")).to_be_visible()
    expect(metric(page, "Rows")).to_have_text("3,000")


def test_promote_and_rollback_change_the_champion(
    page: Any, ui_url: str, offline_stack: dict[str, Any]
) -> None:
    before = champion_from_api(offline_stack)
    page.goto(ui_url + "/models?model=adult")
    settle(page)
    expect(metric(page, "Champion")).to_have_text(f"version {before}")

    from stepml.registry import judge

    other = 1 if before == 2 else 2
    stack = offline_stack["stack"]
    verdict = judge(stack.version("adult", other), stack.version("adult", before))
    promote_reason = page.get_by_placeholder("why this version should serve")
    if not verdict["passed"]:
        # Without force the quality gate's refusal is shown and the champion stays
        page.get_by_role("button", name="Promote to champion").click()
        settle(page)
        expect(page.get_by_text("refused by the quality gate")).to_be_visible()
        assert champion_from_api(offline_stack) == before
        page.get_by_test_id("stCheckbox").get_by_text("Force past the quality gate").click()
        settle(page)
    promote_reason.fill("browser test: try the other version")
    promote_reason.press("Enter")
    settle(page)
    page.get_by_role("button", name="Promote to champion").click()
    settle(page)
    expect(page.get_by_text(f"champion is now version {other}")).to_be_visible()
    entry = stack.history("adult")["entries"][0]  # newest first
    assert (entry["to"], entry["reason"], entry["forced"]) == (other, "browser test: try the other version",
                                                                not verdict["passed"])
    if not verdict["passed"]:
        expect(page.get_by_text("forced past the quality gate").first).to_be_visible()
    expect(metric(page, "Champion")).to_have_text(f"version {other}")
    assert champion_from_api(offline_stack) == other

    page.get_by_placeholder("what went wrong").fill("browser test: back again")
    page.get_by_role("button", name="Roll back").click()
    settle(page)
    expect(page.get_by_text(f"champion is now version {before}")).to_be_visible()
    expect(metric(page, "Champion")).to_have_text(f"version {before}")
    assert champion_from_api(offline_stack) == before


def test_the_models_page_says_what_auto_chose_and_how_each_family_scored(
    page: Any, ui_url: str, auto_version: dict[str, Any]
) -> None:
    from stepml.describe import describe_auto_choice

    # Given a version the auto recipe trained, whose metadata records its choice
    chosen = auto_version["auto_choice"]
    primary = auto_version["evaluation"]["primary_metric"]
    # When the user opens its model's page
    open_models_page(page, ui_url, AUTO_MODEL)
    # Then the Versions table's model column names the family the recipe chose
    versions = page.get_by_test_id("stDataFrame").first
    rows = grid_once(versions, lambda rows: any(r.get("version") == "1" for r in rows))
    row = next(r for r in rows if r.get("version") == "1")
    assert row["model"].split(", ")[0] == chosen["family"], row
    # And Side by side says the choice in the words of `stepml models show`
    expect(page.get_by_text(describe_auto_choice(chosen, primary), exact=True)).to_be_visible()
    # And charts each family's validation score, the chosen family's bar alone in colour
    how = "cross-validation" if chosen.get("folds", 1) > 1 else "one validation split"
    chart = page.locator('[data-testid="stVegaLiteChart"]').filter(has_text=how)
    expect(chart).to_be_visible()
    bars = chart.locator("g.mark-rect.role-mark path")
    expect(bars).to_have_count(len(chosen["families"]))
    coloured = [bar.get_attribute("aria-label") or "" for bar in bars.all() if bar.get_attribute("fill") == "#e4572e"]
    assert len(coloured) == 1 and f"family: {chosen['family']}" in coloured[0], coloured
    # each a bar one can see in the version's narrow column, not a hairline
    boxes = [bar.bounding_box() for bar in bars.all()]
    assert all(box is not None and box["height"] >= 10 and box["width"] >= 2 for box in boxes), boxes
