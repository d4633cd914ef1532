"""`make test`'s two workers: files sharing an expensive session fixture stay one unit of work, and
in-process moto starts as fast after a LocalStack as before one."""

from __future__ import annotations

import re

from tests.conftest import ROOT, SHARED_UNITS, xdist_unit


def test_every_e2e_file_using_local_stack_runs_in_the_local_stack_unit() -> None:
    # Given the e2e files that ask for the session-scoped offline stack
    users = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests" / "e2e").glob("test_*.py")
        if re.search(r"\blocal_stack\b", path.read_text())
    )
    assert users, "no e2e test uses local_stack any more: drop its SHARED_UNITS entries"
    # Then each of them is in that one unit (a new one left out would start a second stack)
    assert {path: xdist_unit(f"{path}::test") for path in users} == dict.fromkeys(users, "local_stack")
    assert sorted(p for p, unit in SHARED_UNITS.items() if unit == "local_stack") == users


def test_other_files_are_units_of_their_own_and_the_browser_tier_is_one() -> None:
    assert xdist_unit("tests/browser/test_ui.py::test_x") == xdist_unit("tests/browser/test_monitor.py::test_y")
    assert xdist_unit("tests/e2e/test_engines.py::test_x[a]") == "tests/e2e/test_engines.py"
    assert xdist_unit("tests/unit/test_gate.py::test_x") != xdist_unit("tests/unit/test_emf.py::test_x")


def test_in_process_moto_is_entered_through_fresh_mock_aws() -> None:
    # Given the test files (tests/conftest.py holds fresh_mock_aws itself)
    direct = sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "tests").rglob("*.py")
        if path != ROOT / "tests" / "conftest.py"
        and re.search(r"^\s*from moto import .*\bmock_aws\b|\bmoto\.mock_aws\b", path.read_text(), re.MULTILINE)
    )
    # Then none enters moto's mock_aws() directly: on a worker where a LocalStack ran before, each
    # would load moto's ~1,000 AWS managed policies again (seconds per test; minutes per run)
    assert direct == []
