"""The pages that work on one model (Predict, Models, Monitor) before any model is registered."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytest.importorskip("streamlit", reason="the web UI needs the 'ui' extra")
from streamlit.testing.v1 import AppTest


@pytest.mark.parametrize("view", ["predict", "models", "monitor"])
def test_a_page_without_registered_models_says_how_to_get_one_and_asks_nothing_else(
    view: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a stack with no registered model (the UI's modules imported as the app imports them)
    monkeypatch.syspath_prepend(str(ROOT / "ui"))
    from stepml_ui import page

    monkeypatch.setattr(page, "model_names", list)

    def console() -> None:
        raise AssertionError("the page asked the stack for more than the model names")

    monkeypatch.setattr(page, "console", console)
    # When the page is opened
    app = AppTest.from_file(str(ROOT / "ui" / "views" / f"{view}.py"), default_timeout=60).run()
    # Then it points to the Upload page and stops there: no picker, no request for a model of None
    assert not app.exception
    assert [info.value for info in app.info] == [
        "No registered models yet: upload a CSV on the **Upload** page to train one."]
    assert not app.selectbox
