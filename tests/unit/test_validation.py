"""Blocking rules name the problem; the report describes what a user needs to know."""

from __future__ import annotations

import pandas as pd
import pytest

from stepml.config import DatasetConfig
from stepml.errors import DataError
from stepml.validation import infer_task, read_csv, validate

SOURCE = "s3://bucket/raw/demo/data.csv"


def frame(text: str):
    return read_csv(text.encode(), SOURCE)


def test_question_marks_and_empty_cells_are_missing() -> None:
    data = frame("a,b,y\n1,?,x\n2,,y\n3,NA,x\n" + "4,u,y\n" * 30)
    report = validate(data, DatasetConfig(), SOURCE)
    b = next(c for c in report["columns"] if c["name"] == "b")
    assert b["missing"] == 3
    assert report["target"] == "y" and report["task"] == "classification" and report["task_inferred"]
    assert report["target_distribution"] == {"y": 31, "x": 2}
    assert any("duplicate row" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("text", "config", "message"),
    [
        ("a,y\n" + "1,\n" * 30, DatasetConfig(), "target column 'y' has no values"),
        ("a,y\n" + "1,x\n" * 30, DatasetConfig(), "single class"),
        ("a,y\n1,x\n2,z\n", DatasetConfig(), "2 data rows; at least 20"),
        ("a,y\n" + "1,x\n2,z\n" * 20, DatasetConfig(target="label"), "no target column 'label'"),
        ("a,y\n" + "1,x\n2,z\n" * 20, DatasetConfig(task="regression"), "not numeric"),
        ("a,y\n" + "1,x\n2,z\n" * 20, DatasetConfig(drop_columns=("b",)), "drop_columns"),
    ],
)
def test_blocking_rules(text: str, config: DatasetConfig, message: str) -> None:
    with pytest.raises(DataError, match=message) as raised:
        validate(frame(text), config, SOURCE)
    assert SOURCE in str(raised.value) or "drop_columns" in message


def test_a_misaligned_row_is_reported_with_its_line() -> None:
    with pytest.raises(DataError, match="not a well-formed CSV.*line 3"):
        read_csv(b"a,b\n1,2\n1,2,3,4\n", SOURCE)


def test_numeric_targets_with_many_values_are_regression() -> None:
    data = frame("a,y\n" + "".join(f"{i},{i * 1.5}\n" for i in range(40)))
    assert infer_task(data["y"], DatasetConfig()) == "regression"
    small = frame("a,y\n" + "".join(f"{i},{i % 3}\n" for i in range(40)))
    assert infer_task(small["y"], DatasetConfig()) == "classification"


def test_warnings_count_missing_cells_and_duplicate_rows() -> None:
    # Given a text column with missing cells (a nullable column) and three rows given twice
    lines = [f"{i},{'?' if i % 10 == 0 else ('red' if i % 3 else 'blue')},{i % 2}\n" for i in range(100)]
    data = frame("size,colour,y\n" + "".join(lines) + "".join(lines[1:4]))

    warnings = validate(data, DatasetConfig(target="y"), SOURCE)["warnings"]

    assert "column 'colour' has 10 missing value(s)" in warnings
    assert "3 duplicate row(s)" in warnings


def test_the_spaces_around_a_text_value_go_and_what_is_then_a_missing_marker_is_missing() -> None:
    from stepml.columns import trimmed_text
    from stepml.validation import read_table

    # Given text written with spaces around it: after the comma, before the closing quote, a tab
    body = b'g,x,y\n"C D ",1,2\n A ,2,3\n"A",3,4\n" NA ",4,5\nB\t,5,6\n A,6,7\n'
    frame, _ = read_table(body, "padded.csv")
    # Then each value is read as written without them, "A " and "A" are one category, and " NA " is missing
    assert frame["g"].tolist()[:3] == ["C D", "A", "A"] and pd.isna(frame["g"][3])
    assert sorted(frame["g"].cat.categories) == ["A", "B", "C D"]
    assert frame["g"].value_counts()["A"] == 3
    # And the numbers are untouched; a column of plain strings (the Spark path's) is trimmed alike
    assert frame["x"].tolist() == [1, 2, 3, 4, 5, 6]
    plain = trimmed_text(pd.Series([" a", "b ", "  ", "null ", None], dtype=object))
    assert plain[:2].tolist() == ["a", "b"] and plain[2:].isna().all()


def test_a_feature_missing_on_exactly_one_classs_rows_is_named_as_a_leak() -> None:
    # Given a cause of death recorded only for the dead, and a lab value missing on some rows of both
    rows = 200
    frame = pd.DataFrame({
        "age": [40 + i % 30 for i in range(rows)],
        "death": [i % 4 == 0 for i in range(rows)],
        "lab": [None if i % 7 == 0 else float(i) for i in range(rows)],
    })
    frame["cause"] = ["heart" if dead else None for dead in frame["death"]]
    frame["death"] = frame["death"].map({True: "yes", False: "no"})
    report = validate(frame, DatasetConfig(target="death"), "s3://b/raw/d/deaths.csv")
    # Then the cause is named as telling the class by itself, and how to leave it out
    leaks = [w for w in report["warnings"] if "missing exactly when" in w]
    assert leaks == [leaks[0]] and leaks[0].startswith("column 'cause' is missing exactly when 'death' is 'no' (150 rows)")
    assert "drop_columns" in leaks[0]
    # And a column missing on only some of that class's rows is not; nor anything for a regression
    frame.loc[frame.index[:8], "cause"] = "unknown"  # 2 of these rows are "no": no longer exact
    assert not [w for w in validate(frame, DatasetConfig(target="death"), "d.csv")["warnings"] if "missing exactly" in w]
    frame["death"] = range(rows)
    assert not [w for w in validate(frame, DatasetConfig(target="death", task="regression"), "d.csv")["warnings"]
                if "missing exactly" in w]


def test_a_target_of_many_whole_numbers_read_as_classes_says_it_may_be_counts() -> None:
    goals = [i % 13 for i in range(260)]
    frame = pd.DataFrame({"home": [f"team {i % 18}" for i in range(260)], "goals": goals})
    report = validate(frame, DatasetConfig(target="goals"), "s3://b/raw/d/matches.csv")
    assert report["task"] == "classification"
    [said] = [w for w in report["warnings"] if "whole numbers" in w]
    assert said.startswith("target 'goals' holds 13 whole numbers (0 to 12), read as 13 classes")
    assert "set task: regression" in said
    # Not when the config names the task, nor for a few classes written as numbers
    assert not [w for w in validate(frame, DatasetConfig(target="goals", task="classification"), "d.csv")["warnings"]
                if "whole numbers" in w]
    frame["goals"] = [i % 3 for i in range(260)]
    assert not [w for w in validate(frame, DatasetConfig(target="goals"), "d.csv")["warnings"] if "whole numbers" in w]
