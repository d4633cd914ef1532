"""checkov, the static security scan, on template.yaml and on the CloudFormation SAM translates it into.

The SAM template is what we write; the translation is what CloudFormation deploys (roles, the HTTP
API's stage, Lambda permissions...), so both are scanned. Every failed check fails the test. A check
that does not apply is skipped with its reason: for the whole stack in .checkov.yaml (a comment above
each id), for one resource in its ``Metadata: checkov: skip:`` (``comment:``).

checkov runs from its own .venv-checkov (``make checkov-venv``, pinned by constraints-checkov.txt):
its dependencies' pins clash with the project's. Offline, checkov reports no severities (they come
from Prisma Cloud), so every finding counts: fixed or skipped with a reason, none left unexplained.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

CONFIG = ".checkov.yaml"
CHECKOV = Path(".venv-checkov") / "bin" / "checkov"
# A reason is a sentence, not a word: "not needed" explains nothing to the next reader.
MIN_REASON_WORDS = 8
Report = dict[str, Any]
Scan = Callable[..., Report]


@pytest.fixture(scope="module")
def scan(project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Scan:
    """Run checkov on one template with a config file; its JSON report for CloudFormation."""
    exe = project_root / CHECKOV
    if not exe.exists():
        pytest.fail(f"{CHECKOV} is missing: `make checkov-venv` installs it (pinned by constraints-checkov.txt)")
    # From an empty folder: checkov also reads a .checkov.yaml in its working directory.
    workdir = tmp_path_factory.mktemp("checkov-cwd")

    def _scan(template: Path, config: Path = project_root / CONFIG) -> Report:
        result = subprocess.run(
            [str(exe), "--file", str(template), "--config-file", str(config), "--output", "json"],
            cwd=workdir, capture_output=True, text=True, timeout=300, check=False,
        )
        # 0: nothing failed, 1: some check failed; anything else is checkov itself failing.
        assert result.returncode in (0, 1), f"checkov exited {result.returncode}:\n{result.stderr}"
        reports = json.loads(result.stdout)
        reports = reports if isinstance(reports, list) else [reports]
        found = [r for r in reports if r.get("check_type") == "cloudformation"]
        assert found, f"checkov read no CloudFormation in {template.name}:\n{result.stdout[:2000]}"
        report: Report = found[0]
        assert report["summary"]["parsing_errors"] == 0, f"checkov could not parse {template.name}"
        return report

    return _scan


def readable(findings: list[dict[str, Any]]) -> str:
    """One line per finding: check, resource, where, what it asks."""
    return "\n".join(
        f"  {f['check_id']}  {f['resource']}  ({Path(f['file_path']).name}:"
        f"{'-'.join(map(str, f['file_line_range']))})  {f['check_name']}"
        for f in sorted(findings, key=lambda f: (f["check_id"], f["resource"]))
    )


def assert_no_failed_check(report: Report, name: str) -> None:
    failed = report["results"]["failed_checks"]
    assert not failed, (
        f"checkov fails {len(failed)} check(s) on {name}: fix the resource, or skip the check "
        f"with its reason (one resource: its Metadata checkov skip; every resource: {CONFIG})\n"
        + readable(failed)
    )


@pytest.fixture(scope="module")
def sam_report(scan: Scan, project_root: Path) -> Report:
    return scan(project_root / "template.yaml")


@pytest.fixture(scope="module")
def cloudformation_report(scan: Scan, project_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Report:
    from stepml.local.template import SamTemplate

    cfn = SamTemplate(project_root / "template.yaml").to_cloudformation(
        artifact_bucket="stepml-artifacts", code_key="code.zip", region="us-east-1"
    )
    translated = tmp_path_factory.mktemp("checkov-cfn") / "template.json"
    translated.write_text(json.dumps(cfn, indent=1))
    return scan(translated)


def test_checkov_passes_the_sam_template(sam_report: Report, report: Callable[[str], None]) -> None:
    summary = sam_report["summary"]
    # Given the resources we write (functions, bucket, topic, queue, alarms, log groups)
    assert summary["resource_count"] >= 40, summary
    # Then no check fails
    assert_no_failed_check(sam_report, "template.yaml")
    report(
        f"checkov {summary['checkov_version']} on template.yaml: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped with a reason"
    )


def test_checkov_passes_the_translated_cloudformation(
    cloudformation_report: Report, report: Callable[[str], None]
) -> None:
    summary = cloudformation_report["summary"]
    results = cloudformation_report["results"]
    # Given what SAM generates beyond our own resources: roles, the HTTP API's stage...
    scanned = {c["resource"].split(".")[0] for c in results["passed_checks"] + results["failed_checks"]}
    assert {"AWS::IAM::Role", "AWS::ApiGatewayV2::Stage", "AWS::Lambda::Function"} <= scanned, scanned
    # Then no check fails there either
    assert_no_failed_check(cloudformation_report, "the CloudFormation SAM translates template.yaml into")
    report(
        f"checkov on the translated CloudFormation: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['skipped']} skipped with a reason"
    )


def test_every_skip_on_a_resource_gives_its_reason(sam_report: Report, cloudformation_report: Report) -> None:
    for name, scanned in (("template.yaml", sam_report), ("translated", cloudformation_report)):
        skipped = scanned["results"]["skipped_checks"]
        assert skipped, f"{name}: no resource skips a check (then drop this test's premise)"
        for check in skipped:
            reason = check["check_result"].get("suppress_comment") or ""
            assert len(reason.split()) >= MIN_REASON_WORDS, (
                f"{name}: {check['resource']} skips {check['check_id']} without a reason "
                f"(Metadata checkov skip needs a `comment:` of a sentence): {reason!r}"
            )


def stack_wide_skips(config_text: str) -> dict[str, str]:
    """Each id under skip-check in .checkov.yaml, with the comment lines just above it."""
    skips: dict[str, str] = {}
    comment: list[str] = []
    in_list = False
    for line in config_text.splitlines():
        stripped = line.strip()
        if re.match(r"^skip-check\s*:", line):
            in_list, comment = True, []
        elif in_list and stripped.startswith("#"):
            comment.append(stripped.lstrip("# "))
        elif in_list and stripped.startswith("- "):
            skips[stripped[2:].strip().strip("\"'")] = " ".join(comment)
            comment = []
        elif in_list and stripped and not line.startswith(" "):
            in_list = False
    return skips


def test_every_stack_wide_skip_gives_its_reason_just_above_it(project_root: Path) -> None:
    text = (project_root / CONFIG).read_text()
    skips = stack_wide_skips(text)
    # The parser above agrees with YAML's own reading of the list.
    assert sorted(skips) == sorted(yaml.safe_load(text)["skip-check"])
    for check, reason in skips.items():
        assert re.fullmatch(r"CKV_AWS_\d+", check), f"{CONFIG}: {check!r} is not a checkov check id"
        assert len(reason.split()) >= MIN_REASON_WORDS, f"{CONFIG}: {check} has no reason above it: {reason!r}"


def test_without_the_skips_checkov_fails_every_skipped_check(
    scan: Scan, project_root: Path, sam_report: Report, tmp_path: Path
) -> None:
    # Given the same scan with neither .checkov.yaml's skip-check list nor the resources' skips
    from samcli.yamlhelper import yaml_parse  # the parser sam itself uses (!Ref, !Sub...)

    config = yaml.safe_load((project_root / CONFIG).read_text())
    stack_wide = set(config.pop("skip-check"))
    (tmp_path / CONFIG).write_text(yaml.safe_dump(config))
    text = (project_root / "template.yaml").read_text()
    per_resource = {
        (name, skip["id"])
        for name, resource in yaml_parse(text)["Resources"].items()
        for skip in ((resource.get("Metadata") or {}).get("checkov") or {}).get("skip", [])
    }
    marker = "Metadata:\n      checkov:\n"
    assert text.count(marker) == len({name for name, _ in per_resource})
    (tmp_path / "template.yaml").write_text(text.replace(marker, "Metadata:\n      unskipped:\n"))

    failed = scan(tmp_path / "template.yaml", config=tmp_path / CONFIG)["results"]["failed_checks"]

    # Then the gate fails, on every check that is skipped: no skip is left over from a fixed finding
    failed_ids = {f["check_id"] for f in failed}
    assert stack_wide <= failed_ids, f"{CONFIG} skips checks that no longer fail: {sorted(stack_wide - failed_ids)}"
    failed_pairs = {(f["resource"].split(".", 1)[1], f["check_id"]) for f in failed}
    assert per_resource <= failed_pairs, f"skips that no longer fail: {sorted(per_resource - failed_pairs)}"
    assert len(failed) > sam_report["summary"]["skipped"]
