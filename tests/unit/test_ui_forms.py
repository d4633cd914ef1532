"""The UI's Predict form builds requests from the feature schema: a date is text in its format."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import pandas as pd

_FORMS = Path(__file__).resolve().parents[2] / "ui" / "stepml_ui" / "forms.py"
_spec = importlib.util.spec_from_file_location("stepml_ui_forms", _FORMS)
assert _spec is not None and _spec.loader is not None
forms = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(forms)

DATE = {"name": "date", "kind": "date", "format": "iso8601", "parts": ["year", "month", "day"],
        "earliest": "2012-01-01", "latest": "2015-12-31", "required": False, "nullable": True}


def test_a_date_field_starts_at_the_latest_training_date_and_says_how_to_write_one() -> None:
    assert forms.default_value(DATE) == "2015-12-31"
    text = forms.help_text(DATE)
    assert "ISO 8601" in text and "2012-01-01 – 2015-12-31" in text and "year, month, day" in text


def test_csv_dates_are_sent_as_the_strings_they_are_and_blank_ones_left_out() -> None:
    frame = pd.read_csv(io.StringIO("date,y\n2015-01-02,1\n,2\n"), dtype={"date": str})

    records, ignored = forms.batch_records(frame, [DATE])

    assert records == [{"date": "2015-01-02"}, {}] and ignored == ["y"]
