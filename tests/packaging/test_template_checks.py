"""Checks of template.yaml and the state machine that run without AWS or Docker.

`sam validate --lint` (cfn-lint: bad GetAtt, deprecated runtimes...) and SAM's own validation
(`sam validate` without lint: policy-template parameters...) each catch what the other misses;
neither looks inside the ASL file given by DefinitionUri, which statelint checks.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import stepml.errors

ASL = Path("statemachine") / "pipeline.asl.json"
# AWS's own error names: Step Functions', and Lambda's for a stopped environment.
AWS_ERROR_PREFIXES = ("States.", "Lambda.", "Sandbox.", "Runtime.")
RunTool = Callable[..., subprocess.CompletedProcess[str]]


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``: states inside Parallel branches and Map processors too."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@pytest.fixture(scope="module")
def asl(project_root: Path) -> dict[str, Any]:
    return json.loads((project_root / ASL).read_text())


@pytest.fixture(scope="module")
def template(project_root: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse  # the parser sam itself uses (!Ref, !Sub...)

    return yaml_parse((project_root / "template.yaml").read_text())


@pytest.mark.slow
def test_sam_validate_lint_passes(run_tool: RunTool, sam_exe: str) -> None:
    result = run_tool([sam_exe, "validate", "--lint"])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_sam_validate_passes_sams_own_validation(run_tool: RunTool, sam_exe: str) -> None:
    # samconfig.toml turns lint on for `sam validate`, and `--lint` has no off switch: the `nolint`
    # config environment runs SAM's own (translator) validation instead.
    result = run_tool([sam_exe, "validate", "--config-env", "nolint", "--region", "us-east-1"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "basic SAM Validation" in result.stdout, "cfn-lint ran instead of SAM's validation"


def test_statelint_accepts_the_pipeline(run_tool: RunTool) -> None:
    result = run_tool(["statelint", ASL])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_error_the_state_machine_matches_is_a_stepml_error(asl: dict[str, Any]) -> None:
    # Given every name in a Retry/Catch ErrorEquals that is not an AWS-defined error
    names = {
        name
        for node in _walk(asl)
        for name in node.get("ErrorEquals", [])
        if not name.startswith(AWS_ERROR_PREFIXES)
    }
    assert names, "the pipeline matches none of stepml's errors"
    # Then each is an exception class in stepml.errors: the handler raises it, Lambda reports its
    # class name as errorType, and that is what ErrorEquals is compared with
    for name in sorted(names):
        error = getattr(stepml.errors, name, None)
        assert isinstance(error, type) and issubclass(error, Exception), (
            f"{ASL} matches {name!r}, which stepml.errors does not define"
        )


def test_definition_substitutions_cover_the_asl(
    project_root: Path, template: dict[str, Any]
) -> None:
    # A ${Name} left unsubstituted deploys fine and fails only when the state runs.
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", (project_root / ASL).read_text()))
    machines = [
        resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::StateMachine"
        and resource["Properties"].get("DefinitionUri") == ASL.as_posix()
    ]
    assert len(machines) == 1, f"expected one state machine using {ASL}"
    substitutions = set(machines[0].get("DefinitionSubstitutions", {}))
    assert placeholders <= substitutions, f"not substituted: {sorted(placeholders - substitutions)}"


def test_the_limits_the_state_machine_reports_are_the_functions_own(template: dict[str, Any]) -> None:
    # The readable cause of a stopped function names its MemorySize and Timeout from
    # DefinitionSubstitutions: they must be the values the function is deployed with.
    defaults = template.get("Globals", {}).get("Function", {})
    machine = next(
        r["Properties"] for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::StateMachine"
    )
    substitutions = machine.get("DefinitionSubstitutions", {})
    checked = 0
    for name, value in substitutions.items():
        for limit in ("MemorySize", "Timeout"):
            if name.endswith("Function" + limit):
                function = name[: -len(limit)]
                properties = template["Resources"][function]["Properties"]
                assert str(properties.get(limit, defaults.get(limit))) == str(value), (
                    f"{name} is {value} but {function} has {limit} "
                    f"{properties.get(limit, defaults.get(limit))}"
                )
                checked += 1
    assert checked == 12, "every pipeline function's MemorySize and Timeout is substituted"
