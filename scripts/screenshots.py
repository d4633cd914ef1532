"""`make screenshots`: PNGs of every page of the web UI, for the README.

Starts the offline stack, trains Adult twice on a small slice (the seed-a recipe, then the default
auto recipe, whose choice the Models page charts; each takes seconds),
uploads a broken CSV (for a failed run), seeds six hours of captured traffic and a monitor
report (the Monitor page), starts `stepml ui` and photographs each page in headless
Chromium into docs/screenshots/.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.conftest import CHROMIUM_ARGS, free_port
from tests.browser.monitor_data import seed_monitoring
from tests.conftest import head_bytes

WIDTH = 1400


def _wait_idle(page: Any) -> None:
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=60_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    time.sleep(1.5)  # charts and the graph render after the script finishes


def _photograph(page: Any, path: Path) -> None:
    """The whole page: Streamlit scrolls inside its main block, so grow the viewport to fit."""
    height = page.evaluate(
        "Math.max(...[...document.querySelectorAll('[data-testid=stMain], [data-testid=stMainBlockContainer]')]"
        ".map(e => e.scrollHeight))")
    page.set_viewport_size({"width": WIDTH, "height": min(int(height) + 60, 4000)})
    time.sleep(1.0)
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": WIDTH, "height": 1000})
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _train(stack: Any, path: Path, dataset: str) -> dict[str, Any]:
    since = datetime.now(UTC) - timedelta(seconds=5)
    uploaded = stack.upload(path, dataset)
    return stack.wait_for_run(uploaded["key"], since, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--chromium", default=os.environ.get("STEPML_CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    data_dir = os.environ.get("STEPML_DATA_DIR")
    adult = Path(data_dir or "") / "adult.csv"
    if not adult.is_file():
        sys.exit("set STEPML_DATA_DIR to a folder holding adult.csv")
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    from stepml.config import DatasetConfig
    from stepml.local.endpoint import LocalStack
    from stepml.stack import Stack

    with tempfile.TemporaryDirectory() as scratch, LocalStack(ROOT, port=0, api_port=0) as local:
        folder = Path(scratch)
        rows = head_bytes(adult, 3000).splitlines(keepends=True)
        for name, lines in (("first", rows), ("second", rows[:2001])):
            (folder / name).mkdir()
            (folder / name / "adult.csv").write_bytes(b"".join(lines))
        (folder / "broken").mkdir()
        (folder / "broken" / "adult.csv").write_bytes(b"age;income\n39;<=50K\n50;>50K\n")
        stack = Stack(endpoint_url=local.endpoint_url, credentials=local.admin_credentials.client_kwargs())
        stack.write_config("adult", DatasetConfig(target="income", recipe="seed-a"))
        first = _train(stack, folder / "first" / "adult.csv", "adult")
        # the second version on the default recipe: the Models page shows what auto chose, and why
        stack.write_config("adult", DatasetConfig(target="income"))
        _train(stack, folder / "second" / "adult.csv", "adult")
        _train(stack, folder / "broken" / "adult.csv", "broken")
        # Six hours of production traffic with a drifted feature, feedback and the monitor's report
        champion = int(stack.api.get("/models/adult/history").body["version"])
        seed_monitoring(stack, folder / "first" / "adult.csv", "adult", (champion, 1 if champion == 2 else 2),
                        truncated_file=False)

        port = free_port()
        env = {**os.environ, **local.client_environment()}
        ui = subprocess.Popen(
            [sys.executable, "-m", "stepml.cli", "--endpoint-url", local.endpoint_url, "ui",
             "--port", str(port), "--no-open"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                    break
                except OSError:
                    time.sleep(0.5)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": WIDTH, "height": 1000})

                page.goto(url + "/")
                _wait_idle(page)
                page.get_by_role("button", name="Predict").click()
                page.get_by_test_id("stVegaLiteChart").first.wait_for()
                _wait_idle(page)
                _photograph(page, args.out / "predict.png")

                page.goto(f"{url}/runs?run={first['name']}")
                _wait_idle(page)
                _photograph(page, args.out / "runs.png")

                failed = [r for r in stack.executions(limit=10) if r["status"] == "FAILED"]
                if failed:
                    page.goto(f"{url}/runs?run={failed[0]['name']}")
                    _wait_idle(page)
                    _photograph(page, args.out / "runs-failed.png")

                page.goto(url + "/models?model=adult")
                _wait_idle(page)
                _photograph(page, args.out / "models.png")

                page.goto(url + "/monitor?model=adult")
                _wait_idle(page)
                _photograph(page, args.out / "monitor.png")

                page.goto(url + "/upload")
                _wait_idle(page)
                page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(
                    str(folder / "second" / "adult.csv"))
                page.get_by_role("button", name="Upload and train").click()
                page.get_by_text("Open the run").wait_for(timeout=300_000)
                _wait_idle(page)
                _photograph(page, args.out / "upload.png")
                browser.close()
        finally:
            ui.terminate()
            ui.wait(timeout=10)


if __name__ == "__main__":
    main()
