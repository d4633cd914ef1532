"""The Monitor page in a real browser: production traffic of the Adult model, seeded in S3.

Given captured requests from two callers over six hours (the last three with ``age`` shifted),
labels fed back for a third of the rows and the monitor's report of that window (the shared
formats of issue #17, written by ``monitor_data``), When a user opens the Monitor page, Then they
see the alarm, the drifted feature first, estimated next to true accuracy, and the audit trail of
one caller's requests.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import grid, grid_once, settle
from tests.browser.monitor_data import BOB, DRIFTED_FEATURE, seed_monitoring

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def monitored(offline_stack: dict[str, Any]) -> dict[str, Any]:
    stack = offline_stack["stack"]
    champion = int(stack.api.get("/models/adult/history").body["version"])
    return seed_monitoring(stack, offline_stack["csv"], "adult", (champion, 1 if champion == 2 else 2))


def metric(page: Any, label: str) -> Any:
    labelled = page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True)
    return page.get_by_test_id("stMetric").filter(has=labelled).get_by_test_id("stMetricValue")


def audit_caption(page: Any) -> Any:
    return page.get_by_text(re.compile(r"of \d[\d,]* captured requests"))


def test_the_alarm_banner_names_the_drifted_feature_and_it_is_listed_and_drawn_first(
    page: Any, ui_url: str, monitored: dict[str, Any]
) -> None:
    page.goto(ui_url + "/monitor?model=adult")
    settle(page)
    # Then the alarm banner names the drifted feature
    banner = page.get_by_test_id("stAlert").filter(has_text=re.compile(r"1 alarm\b"))
    expect(banner).to_be_visible()
    expect(banner).to_contain_text(f"drift on {DRIFTED_FEATURE}")
    expect(banner).to_contain_text("threshold 0.200")
    # And the drift table lists it first, marked drifted, the others not
    drift = page.get_by_test_id("stDataFrame").first
    expect(drift.locator("[role=gridcell]").first).to_have_text(DRIFTED_FEATURE)
    rows = grid(drift)
    report = monitored["report"]
    assert [r["feature"] for r in rows] == [f["name"] for f in report["features"]]
    assert rows[0]["drifted"] == "true" and all(r["drifted"] == "false" for r in rows[1:]), rows
    assert float(rows[0]["psi"]) == report["features"][0]["psi"]  # the accessible grid holds the raw value
    # And its reference vs current histogram is the first one drawn, titled as drifted
    titles = page.locator('[data-testid="stVegaLiteChart"] g.role-title-text text')
    histogram_titles = [t for t in titles.all_text_contents() if "PSI" in t]
    assert histogram_titles[0].startswith(f"{DRIFTED_FEATURE} · PSI") and histogram_titles[0].endswith("DRIFTED")
    assert not any(t.endswith("DRIFTED") for t in histogram_titles[1:]), histogram_titles
    # And the window's volume and errors are the captured ones
    expect(metric(page, "Requests")).to_have_text(f"{len(monitored['captures']):,}")
    expect(metric(page, "Errors")).to_have_text(str(sum(c["status"] >= 400 for c in monitored["captures"])))


def test_estimated_accuracy_is_shown_next_to_the_true_one_from_feedback(
    page: Any, ui_url: str, monitored: dict[str, Any]
) -> None:
    page.goto(ui_url + "/monitor?model=adult")
    settle(page)
    performance = monitored["report"]["performance"]
    expect(metric(page, "Estimated accuracy")).to_have_text(f"{performance['estimated']:.3f}")
    expect(metric(page, "True accuracy")).to_have_text(f"{performance['true']:.3f}")
    expect(metric(page, "Labelled rows")).to_have_text(f"{performance['labelled_rows']:,}")


def test_the_audit_trail_filters_by_caller_and_time(page: Any, ui_url: str, monitored: dict[str, Any]) -> None:
    captures = monitored["captures"]
    page.goto(ui_url + "/monitor?model=adult")
    settle(page)
    expect(audit_caption(page)).to_contain_text(f"{len(captures):,} of {len(captures):,} captured requests")
    # the truncated capture file is named with its line, and the other files are read
    expect(page.get_by_text(f"Skipped: {monitored['broken']} line 1: not JSON")).to_be_visible()
    # the last half hour was captured in hashed mode: the page says the inputs are not stored
    expect(page.get_by_text(re.compile(r"captured in hashed mode"))).to_be_visible()
    # When the user picks one caller
    picker = page.get_by_test_id("stMultiSelect")
    picker.scroll_into_view_if_needed()
    picker.click()
    page.get_by_role("option", name=BOB).click()
    page.keyboard.press("Escape")
    settle(page)
    # Then only that caller's requests are listed, newest first
    bobs = monitored["requests_by_caller"][BOB]
    expect(audit_caption(page)).to_contain_text(f"{bobs:,} of {len(captures):,} captured requests")
    audit = page.get_by_test_id("stDataFrame").last
    expect(audit.locator("[role=gridcell]").first).to_be_attached()
    rows = grid_once(audit, lambda rows: bool(rows) and {r["caller"] for r in rows} == {BOB})
    assert rows and {r["caller"] for r in rows} == {BOB}, rows
    assert [r["time"] for r in rows] == sorted((r["time"] for r in rows), reverse=True)
    newest = max((c for c in captures if c["caller"] == BOB), key=lambda c: c["time"])
    assert rows[0]["request id"] == newest["request_id"]
    # When the time range ends three hours earlier (the end handle, 12 steps of 15 minutes back)
    end = page.get_by_test_id("stSlider").filter(has_text="Time (UTC)").get_by_role("slider").last
    end.focus()
    for _ in range(12):
        end.press("ArrowLeft")
    settle(page)
    times = sorted(datetime.fromisoformat(c["time"]) for c in captures)
    cutoff = times[-1].replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) - timedelta(hours=3)
    earlier = sum(1 for c in captures if c["caller"] == BOB and datetime.fromisoformat(c["time"]) <= cutoff)
    # Then only that caller's requests before it remain
    expect(audit_caption(page)).to_contain_text(f"{earlier:,} of {len(captures):,} captured requests")
    assert 0 < earlier < bobs


def test_without_a_report_the_page_says_how_to_produce_one(
    page: Any, ui_url: str, offline_stack: dict[str, Any], monitored: dict[str, Any]
) -> None:
    stack = offline_stack["stack"]
    s3, bucket = stack.client("s3"), stack.bucket
    kept = {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in s3.list_objects_v2(Bucket=bucket, Prefix="monitoring/adult/").get("Contents", [])}
    assert "monitoring/adult/latest.json" in kept
    try:
        for key in kept:
            s3.delete_object(Bucket=bucket, Key=key)
        page.goto(ui_url + "/monitor?model=adult")
        settle(page)
        page.get_by_role("button", name="Reload").click()
        settle(page)
        expect(page.get_by_text("No monitor report for adult yet")).to_be_visible()
        expect(page.get_by_text("stepml monitor adult", exact=True)).to_be_visible()
        # the audit trail still shows what was captured
        expect(audit_caption(page)).to_be_visible()
    finally:
        for key, body in kept.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
