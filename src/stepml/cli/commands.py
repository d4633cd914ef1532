"""The ``stepml`` command: the same commands against AWS or the offline endpoint.

``stepml --local …`` (or ``--endpoint-url``) talks to the offline stack started by
``stepml local up``; without it, to the stack deployed on AWS (named by ``--stack-name``).
Every listing command takes ``--json`` for scripts.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from stepml import keys, recipes
from stepml.cli.browser import browser_url, open_when_serving, streamlit_command
from stepml.cli.prediction_body import read_prediction_body
from stepml.cli.render import (
    STATUS_STYLE,
    console,
    emit_json,
    follow,
    may_be_missing,
    metric,
    print_history,
    print_monitor_report,
    print_run,
    print_validation,
    print_versions,
)
from stepml.config import TASKS, DatasetConfig, dump_config
from stepml.dateparts import describe as describe_date_format
from stepml.describe import describe_auto_choice, describe_tuning
from stepml.errors import GateRefused, StepmlError
from stepml.runs import validation_findings
from stepml.stack import LOCAL_ENDPOINT, Stack, local_endpoint


def project_root() -> Path:
    """The checkout holding template.yaml: the current folder or a parent, else the source tree."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "template.yaml").is_file() and (folder / "statemachine").is_dir():
            return folder
    return Path(__file__).resolve().parents[3]


class StepmlGroup(click.Group):
    """Shows stepml's own errors as one readable line instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (StepmlError, TimeoutError) as exc:
            console.print(f"[red]error:[/red] {exc}")
            sys.exit(1)


@click.group(cls=StepmlGroup)
@click.option("--local", "use_local", is_flag=True,
              help=f"Use the offline stack that `stepml local up` serves (on its --port; else {LOCAL_ENDPOINT}).")
@click.option("--endpoint-url", envvar="STEPML_ENDPOINT_URL", help="AWS-compatible endpoint (offline stack).")
@click.option("--stack-name", default="stepml", envvar="STEPML_STACK", show_default=True)
@click.option("--region", default=lambda: os.environ.get("AWS_REGION", "us-east-1"), show_default="us-east-1")
@click.pass_context
def main(ctx: click.Context, use_local: bool, endpoint_url: str | None, stack_name: str, region: str) -> None:
    """stepml: drop a CSV into S3, get a validated, versioned model and a prediction API."""
    if use_local and not endpoint_url:
        endpoint_url = local_endpoint(stack_name)
    ctx.obj = Stack(stack_name=stack_name, region=region, endpoint_url=endpoint_url)


@main.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def info(stack: Stack, as_json: bool) -> None:
    """Endpoint, bucket, state machine and API URL of the stack."""
    details = stack.info()
    if as_json:
        emit_json(details)
        return
    table = Table(show_header=False)
    for key, value in details.items():
        table.add_row(key, str(value))
    console.print(table)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dataset", required=True, help="Dataset (and model) name: a lowercase slug.")
@click.option("--target", help="Target column (default: the config's, else the last column).")
@click.option("--task", type=click.Choice(TASKS), help="Default: inferred from the target.")
@click.option("--recipe", type=click.Choice(recipes.names()),
              help=f"Default: the config's, else {recipes.DEFAULT_RECIPE}. "
                   + "; ".join(f"{name}: {recipe.summary}" for name, recipe in recipes.RECIPES.items()))
@click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the run to its end.")
@click.option("--timeout", default=900.0, show_default=True)
@click.pass_obj
def upload(
    stack: Stack, file: Path, dataset: str, target: str | None, task: str | None, recipe: str | None,
    wait: bool, timeout: float,
) -> None:
    """Upload FILE to raw/<dataset>/ (which starts a run) and follow the run."""
    # Every check this machine can make comes before the first write: a refusal leaves nothing behind.
    problem = keys.upload_problem(file.name)
    if problem:
        raise click.BadParameter(f"{file} {problem}", param_hint="FILE")
    try:
        keys.check_dataset_name(dataset)
    except StepmlError as exc:
        raise click.BadParameter(str(exc), param_hint="--dataset") from exc
    try:
        with file.open("rb") as handle:
            empty = not handle.read(1)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {file}: {exc.strerror}", param_hint="FILE") from exc
    if empty:
        raise click.BadParameter(f"{file} is empty: nothing to train on", param_hint="FILE")
    changes = {k: v for k, v in (("target", target), ("task", task), ("recipe", recipe)) if v}
    if changes:
        current = stack.read_config(dataset)
        config = DatasetConfig.from_dict({**current.to_dict(), **changes}, f"config for {dataset}")
        console.print(f"config: s3://{stack.bucket}/{stack.write_config(dataset, config)}")
    since = datetime.now(UTC) - timedelta(seconds=5)
    uploaded = stack.upload(file, dataset)
    console.print(f"uploaded s3://{uploaded['bucket']}/{uploaded['key']}")
    if wait:
        run = follow(stack, uploaded["key"], since, timeout)
        sys.exit(0 if run["status"] == "SUCCEEDED" else 1)


@main.group()
def config() -> None:
    """Per-dataset configuration (config/<dataset>.yaml in the bucket)."""


@config.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def config_show(stack: Stack, name: str, as_json: bool) -> None:
    """The effective config of dataset NAME: the file's values over the defaults."""
    effective = stack.read_config(name)
    if as_json:
        emit_json(effective.to_dict())
    else:
        click.echo(f"# s3://{stack.bucket}/config/{name}.yaml, with defaults filled in")
        click.echo(dump_config(effective), nl=False)


@main.group(invoke_without_command=True)
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def runs(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Recent pipeline runs (`runs show ID` for one run's states)."""
    if ctx.invoked_subcommand:
        return
    stack: Stack = ctx.obj
    executions = stack.executions(limit)
    if as_json:
        emit_json([{k: e.get(k) for k in ("name", "status", "startDate", "stopDate", "executionArn")} for e in executions])
        return
    table = Table("run", "status", "started", "seconds")
    for e in executions:
        stop = e.get("stopDate")
        seconds = f"{(stop - e['startDate']).total_seconds():.1f}" if stop else ""
        style = STATUS_STYLE.get(e["status"], "white")
        table.add_row(e["name"], f"[{style}]{e['status']}[/{style}]", e["startDate"].isoformat(timespec="seconds"), seconds)
    console.print(table)


@runs.command("show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def runs_show(stack: Stack, run_id: str, as_json: bool) -> None:
    """One run state by state: status, duration, error; its validation warnings; how it ended."""
    run = stack.run(run_id)
    report = stack.validation_report(run)
    if as_json:
        emit_json({**run, "validation": validation_findings(report)})
    else:
        print_run(run, report)


class ModelsGroup(click.Group):
    """`stepml models NAME` lists versions; `stepml models show|promote|… NAME …` act on them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@main.group(cls=ModelsGroup)
def models() -> None:
    """Registered models: versions, metrics, aliases, promotion and rollback."""


def _actor() -> str:
    return os.environ.get("USER") or os.environ.get("USERNAME") or "cli"


@models.command("list")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_list(stack: Stack, name: str, as_json: bool) -> None:
    """Versions of model NAME with their metrics and aliases."""
    versions = stack.models(name)
    if as_json:
        emit_json([{k: v for k, v in m.items() if k != "schema"} for m in versions])
        return
    print_versions(name, versions)


@models.command("show")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_show(stack: Stack, name: str, version: int, as_json: bool) -> None:
    """One version: metrics, baseline, schema, lineage, artifacts."""
    meta = stack.version(name, version)
    if as_json:
        emit_json(meta)
        return
    evaluation = meta["evaluation"]
    console.print(f"[bold]{name}[/bold] version {version}  aliases: {', '.join(meta['aliases']) or '-'}  "
                  f"task: {meta['task']}  target: {meta['target']}  recipe: {meta.get('recipe')}")
    metrics = Table("metric", "model", "baseline", title="hold-out metrics")
    for key, value in evaluation["metrics"].items():
        metrics.add_row(key, metric(value), metric(evaluation["baseline"].get(key)))
    console.print(metrics)
    features = Table("feature", "kind", "range / categories", "may be missing", title="feature schema")
    for spec in meta["schema"]:
        if spec["kind"] == "numeric":
            detail = f"{spec.get('min')} … {spec.get('max')}"
        elif spec["kind"] == "date":  # read with one format; the model takes the parts
            detail = (f"{describe_date_format(spec['format'])}: {spec.get('earliest')} … {spec.get('latest')}; "
                      f"as {', '.join(spec['parts'])}")
        else:
            categories = spec.get("categories", [])
            detail = ", ".join(categories[:8]) + (" …" if len(categories) > 8 else "")
        features.add_row(spec["name"], spec["kind"], detail, may_be_missing(spec))
    console.print(features)
    ignored = meta.get("ignored_columns")
    if ignored:
        console.print("accepted and ignored in requests: "
                      + ", ".join(f"{column['name']} ({column['reason']})" for column in ignored))
    lineage = meta.get("lineage", {})
    console.print(f"lineage: s3://{lineage.get('bucket')}/{lineage.get('key')} (version {lineage.get('version_id')}, "
                  f"sha256 {str(lineage.get('sha256'))[:12]}…), run {lineage.get('run_id')}")
    console.print(f"rows: train {meta['train_rows']:,} / test {meta['test_rows']:,}; trained in {meta['train_seconds']} s; "
                  f"registered {meta.get('registered')}")
    choice = meta.get("auto_choice")
    if choice:  # the auto recipe's validation choices (versions of other recipes, or older ones, have none)
        console.print(describe_auto_choice(choice, evaluation.get("primary_metric")), markup=False)
    tuning = meta.get("tuning")
    if tuning:  # what tune searched and kept (recorded with versions registered since tune's folds)
        console.print(describe_tuning(tuning), markup=False)
    gate = meta.get("gate")
    if gate:  # versions registered before the gate's verdict was recorded have none
        verdict = "passed" if gate.get("passed") else "not passed (kept as a candidate)"
        console.print(f"quality gate at registration: {verdict}: {gate.get('reason')}", markup=False)
    if lineage.get("run_id") and lineage.get("key"):
        # what validation warned of in the run that trained it (a leak, a count read as classes)
        print_validation(str(lineage["run_id"]), stack.validation_report({"key": lineage["key"], "name": lineage["run_id"]}))


@models.command("promote")
@click.argument("name")
@click.argument("version", type=int)
@click.option("--reason", help="Why (kept in the champion history). Required with --force.  [default: promoted by hand]")
@click.option("--force", is_flag=True, help="Promote even if the quality gate refuses (recorded as forced, with who and why).")
@click.pass_obj
def models_promote(stack: Stack, name: str, version: int, reason: str | None, force: bool) -> None:
    """Make VERSION the champion of NAME if it passes the quality gate, as the pipeline's promotion does."""
    if force and not (reason or "").strip():
        raise click.UsageError("--force needs --reason: say why the quality gate is overridden (it is recorded)")
    try:
        record = stack.promote(name, version, reason or "promoted by hand", _actor(), force=force)
    except GateRefused as exc:
        raise click.ClickException(f"{exc}\nto promote it anyway: stepml models promote {name} {version} "
                                   "--force --reason '...'") from exc
    gate = record["gate"]
    verdict = "forced past the quality gate" if record["forced"] else "quality gate passed"
    console.print(f"champion of {name}: v{record['previous_version']} → [bold]v{record['version']}[/bold] "
                  f"({record['reason']})")
    console.print(f"{verdict}: {gate['reason']}", markup=False)


@models.command("rollback")
@click.argument("name")
@click.option("--reason", default="rollback", show_default=True)
@click.pass_obj
def models_rollback(stack: Stack, name: str, reason: str) -> None:
    """Point champion back at the version before the current one."""
    record = stack.rollback(name, reason, _actor())
    console.print(f"champion of {name}: v{record['previous_version']} → [bold]v{record['version']}[/bold] ({reason})")


@models.command("history")
@click.argument("name")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many entries, newest first.")
@click.option("--before", type=click.IntRange(min=1), help="Only entries numbered (#) below this one: the next page.")
@click.option("--json", "as_json", is_flag=True, help="The page as GET /models/{name}/history answers it.")
@click.pass_obj
def models_history(stack: Stack, name: str, limit: int, before: int | None, as_json: bool) -> None:
    """Changes of the champion alias, newest first: when, who, from → to, the gate, why."""
    page = stack.history(name, limit=limit, before=before)
    if as_json:
        emit_json({"name": name, "total": page["total"], "next_before": page["next_before"], "history": page["entries"]})
        return
    print_history(name, page)


@models.command("diff")
@click.argument("name")
@click.argument("first", type=int)
@click.argument("second", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def models_diff(stack: Stack, name: str, first: int, second: int, as_json: bool) -> None:
    """Metrics and feature schema of two versions side by side."""
    from stepml.registry import diff_versions

    a, b = stack.version(name, first), stack.version(name, second)
    diff = diff_versions(a, b)
    if as_json:
        emit_json(diff)
        return
    table = Table("metric", f"v{first}", f"v{second}", "change", title=f"{name}: v{first} vs v{second}")
    for row in diff["metrics"]:
        change = "" if row["change"] is None else f"{row['change']:+.4g}"
        table.add_row(row["metric"], metric(row["a"]), metric(row["b"]), change)
    console.print(table)
    schema = Table("feature", f"v{first}", f"v{second}", title="schema changes")
    for row in diff["schema"]:
        schema.add_row(row["feature"], row["a"] or "-", row["b"] or "-")
    console.print(schema if diff["schema"] else "schema: identical")
    for key in ("recipe", "train_rows", "test_rows"):
        if diff["other"][key]["a"] != diff["other"][key]["b"]:
            console.print(f"{key}: {diff['other'][key]['a']} → {diff['other'][key]['b']}")


@main.command()
@click.argument("name")
@click.option("--since", help="The window: a duration back from now (90m, 24h, 7d) or an ISO time.  [default: 24h]")
@click.option("--json", "as_json", is_flag=True, help="The report as monitoring/<name>/latest.json holds it.")
@click.pass_obj
def monitor(stack: Stack, name: str, since: str | None, as_json: bool) -> None:
    """Run the monitor for model NAME now: drift, volume, latency, estimated vs true performance."""
    report = stack.monitor(name, since)
    if as_json:
        emit_json(report)
    else:
        print_monitor_report(report)


@main.command()
@click.argument("name")
@click.option("--json", "body", help="A record {feature: value} or {\"instances\": [...]}.")
@click.option("--file", "body_file", metavar="PATH",
              help="The body from a file ('-': stdin): JSON (a record, a list of records or {\"instances\": "
                   "[...]}) or a CSV whose rows are the records, values as written, empty cells null.")
@click.option("--version", type=int)
@click.option("--alias")
@click.pass_obj
def predict(stack: Stack, name: str, body: str | None, body_file: str | None, version: int | None,
            alias: str | None) -> None:
    """Predict with model NAME through the HTTP API."""
    if (body is None) == (body_file is None):
        raise click.UsageError("give the body with --json '{...}' or --file PATH (a JSON or CSV file, '-' for stdin)")
    if body_file is not None:
        payload = read_prediction_body(body_file)
    else:
        try:
            payload = json.loads(str(body))
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from exc
    answer = stack.predict_request(name, payload, version, alias)
    emit_json(answer.body)
    if answer.request_id and sys.stderr.isatty():
        # For a person at a terminal, on stderr (stdout stays the response's JSON, for scripts):
        # the id `stepml feedback --request-id` names.
        click.echo(f"request id: {answer.request_id}", err=True)
    if answer.status >= 400:
        sys.exit(1)


@main.command()
@click.argument("name")
@click.option("--request-id", help="The prediction's request id (its response's apigw-requestid header).")
@click.option("--row", type=click.IntRange(min=0), default=0, show_default=True,
              help="The record's position in that request.")
@click.option("--actual", help="The true value: a class label, or a number for a regression.")
@click.option("--file", "labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CSV of labels (header request_id,row,actual; row optional), uploaded under feedback/NAME/.")
@click.pass_obj
def feedback(stack: Stack, name: str, request_id: str | None, row: int, actual: str | None,
             labels: Path | None) -> None:
    """Send the true value of a served prediction of model NAME (one label, or a CSV of them)."""
    if labels is not None:
        if request_id or actual:
            raise click.UsageError("give --file, or --request-id with --actual, not both")
        key, count = stack.upload_feedback(name, labels)
        console.print(f"{count} label(s) of {name} uploaded to s3://{stack.bucket}/{key}")
        return
    if not request_id or actual is None:
        raise click.UsageError("give --request-id and --actual (or --file labels.csv)")
    value: Any = actual
    try:
        number = float(actual)
        value = int(number) if number.is_integer() and "." not in actual and "e" not in actual.lower() else number
    except ValueError:
        pass
    status, response = stack.feedback(name, {"request_id": request_id, "row": row, "actual": value})
    emit_json(response)
    if status >= 400:
        sys.exit(1)


@main.command()
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait for each pipeline run.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of a live list.")
@click.pass_obj
def smoke(stack: Stack, timeout: float, as_json: bool) -> None:
    """Check the stack end to end: upload, train, predict, promote, roll back, clean up."""
    from stepml.smoke import SmokeCheck, StepResult

    where = stack.endpoint_url or f"AWS {stack.region}"
    status = console.status("")
    current = {"step": ""}

    def started(name: str) -> None:
        current["step"] = name
        status.update(f"{name}…")
        status.start()

    def progress(text: str) -> None:
        status.update(f"{current['step']}… {text}")

    def ended(result: StepResult) -> None:
        status.stop()
        verdict = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
        console.print(f"{verdict}  {result.name:<31} {result.seconds:7.1f} s  {result.detail}", highlight=False,
                      soft_wrap=True)

    live = not as_json
    check = SmokeCheck(stack, run_timeout=timeout, on_step_start=started if live else None,
                       on_step_end=ended if live else None, on_progress=progress if live else None)
    if live:
        console.print(f"smoke check of stack [bold]{stack.stack_name}[/bold] at {where} (dataset {check.dataset})")
    try:
        report = check.run()
    except KeyboardInterrupt:
        status.stop()
        report = check.report
        console.print(f"[red]smoke check INTERRUPTED[/red] after {len(report.steps)} steps")
        if as_json:
            emit_json(report.to_dict())
        sys.exit(130)
    if as_json:
        emit_json(report.to_dict())
    elif report.passed:
        console.print(f"[green]smoke check PASSED[/green]: {len(report.steps)} steps in {report.seconds:.1f} s")
    else:
        reasons = "; ".join(f"{step.name}: {step.detail}" for step in report.failures)
        console.print(f"[red]smoke check FAILED[/red] - {reasons}", highlight=False, soft_wrap=True)
    sys.exit(0 if report.passed else 1)


@main.group()
def local() -> None:
    """The offline stack: moto + the real handlers, no AWS account, no Docker."""


@local.command("up")
@click.option("--port", default=4566, show_default=True)
@click.option("--api-port", default=3000, show_default=True)
@click.option(
    "--strict/--no-strict",
    default=True,
    show_default=True,
    help="As strict as AWS: IAM on every request, each function inside its role and limits.",
)
@click.option(
    "--write-profile/--no-write-profile",
    default=True,
    show_default=True,
    help="Write the administrator's keys as the AWS profile 'stepml-local'.",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="STEPML_LOCAL_DATA_DIR",
    help="Where the stack keeps its buckets and runs across restarts "
    "[default: the user's state directory, e.g. ~/.local/state/stepml/STACK].",
)
@click.option("--fresh", is_flag=True, help="Start empty: forget every model, dataset and run kept in the data dir.")
@click.pass_obj
def local_up(
    stack: Stack, port: int, api_port: int, strict: bool, write_profile: bool, data_dir: Path | None, fresh: bool
) -> None:
    """Start the offline stack and serve until Ctrl-C; its state survives a restart."""
    from stepml.local import iam, persistence
    from stepml.local.endpoint import LocalStack

    data_dir = data_dir or persistence.default_data_dir(stack.stack_name)
    try:
        running_stack = LocalStack(
            project_root(), port=port, api_port=api_port, stack_name=stack.stack_name, strict=strict,
            data_dir=data_dir, fresh=fresh,
        ).start()
    except persistence.DataDirError as exc:
        raise click.ClickException(str(exc)) from exc
    with running_stack as running:
        admin = running.admin_credentials
        assert admin is not None
        console.print(f"offline stack [bold]{stack.stack_name}[/bold] is up"
                      + ("" if strict else "  [yellow](not strict: any credentials, no limits)[/yellow]"))
        console.print(f"  AWS endpoint  {running.endpoint_url}")
        console.print(f"  bucket        {running.bucket}")
        console.print(f"  HTTP API      {running.api_url}")
        kept = running.restored
        console.print(f"  data dir      {data_dir}  ("
                      + ("emptied: --fresh" if fresh else f"kept: {kept['objects']} objects, {kept['runs']} runs")
                      + ")", highlight=False)
        console.print(f"  identity      {admin.arn}  (AdministratorAccess"
                      + (", the HTTP API's operator policy)" if running.operator_policy_arn else ")"))
        console.print(f"  access key    {admin.access_key_id}")
        console.print(f"  secret key    {admin.secret_access_key}")
        if write_profile:
            credentials_file, _ = iam.write_profile(
                admin, endpoint_url=running.endpoint_url, region=running.region
            )
            console.print(f"  profile       {iam.PROFILE}  (written to {credentials_file})")
            console.print(
                f"    aws --profile {iam.PROFILE} --endpoint-url {running.endpoint_url} "
                f"s3 ls s3://{running.bucket}/"
            )
        console.print(f"use `{_local_command(stack.stack_name, running.endpoint_url)} …` in another shell; "
                      "Ctrl-C stops", highlight=False)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopping")


def _local_command(stack_name: str, endpoint_url: str) -> str:
    """How another shell reaches the stack just started: ``--local`` when it resolves to this
    endpoint (recorded in the data dir, or the profile), else the endpoint itself."""
    named = "" if stack_name == "stepml" else f" --stack-name {stack_name}"
    if local_endpoint(stack_name) == endpoint_url:
        return f"stepml{named} --local"
    return f"stepml{named} --endpoint-url {endpoint_url}"


@local.command("invoke")
@click.argument("function")
@click.option("-e", "--event", "event_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True)
@click.option("--seed/--no-seed", default=True, show_default=True,
              help="Without --endpoint-url: seed the fresh stack with what the event refers to (the sample "
                   "upload, and the earlier stages run for real). A running stack is never seeded.")
@click.pass_obj
def local_invoke(stack: Stack, function: str, event_file: Path, seed: bool) -> None:
    """Run FUNCTION (logical id, e.g. ValidateFunction) on an event file, as `sam local invoke` does.

    Without --endpoint-url it runs on a fresh offline stack, seeded first with what the event refers
    to; with --endpoint-url (or --local), on that running stack as it is. The handler's return value
    is printed on stdout as JSON; what was seeded, and the call, on stderr.
    """
    from stepml.local.endpoint import invoke_function
    from stepml.local.seed import Seeding

    try:
        event = json.loads(event_file.read_text())
    except ValueError as exc:
        raise click.BadParameter(f"{event_file} is not valid JSON: {exc}", param_hint="--event") from exc
    seeding = Seeding()
    # Like `sam local invoke`: only the payload on stdout (it pipes into jq); the function's own log
    # lines (in-process handlers log to stdout, as on Lambda), what was seeded and the call on stderr.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            invocation = invoke_function(project_root(), function, event, endpoint_url=stack.endpoint_url,
                                         stack_name=stack.stack_name, region=stack.region, seed=seed,
                                         seeding=seeding)
    except KeyError as exc:
        raise click.BadParameter(str(exc.args[0]), param_hint="FUNCTION") from exc
    notes = Console(stderr=True, width=console.width)
    if stack.endpoint_url is None and seed:
        for line in seeding.describe():
            notes.print(f"[dim]{line}[/dim]", highlight=False)
    notes.print(f"[dim]{invocation.function_name} · {invocation.duration_ms:.0f} ms · request {invocation.request_id}[/dim]",
                highlight=False)
    emit_json(invocation.payload)
    if invocation.errored:
        sys.exit(1)


@main.command("ui")
@click.option("--port", default=8501, show_default=True, help="Where the web UI listens.")
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--open/--no-open", "open_browser", default=True, show_default=True, help="Open a browser tab.")
@click.option("--api-url", help="The HTTP API's base URL (default: the stack's ApiUrl output).")
@click.pass_obj
def ui(stack: Stack, port: int, address: str, open_browser: bool, api_url: str | None) -> None:
    """Start the web UI (Streamlit) on the stack: `stepml --local ui` for the offline one."""
    app = project_root() / "ui" / "app.py"
    if not app.is_file():
        raise click.ClickException(f"{app} not found: run `stepml ui` from a stepml checkout")
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        raise click.ClickException("the web UI needs its extra: pip install -e '.[ui]'") from exc
    console.print(f"stack [bold]{stack.stack_name}[/bold] at {stack.endpoint_url or 'AWS ' + stack.region}: "
                  f"{stack.info()['api_url']}")
    env = {**os.environ, "STEPML_STACK": stack.stack_name, "AWS_REGION": stack.region}
    if stack.endpoint_url:
        # The offline endpoint takes any credentials; AWS uses the caller's own.
        env.update({"STEPML_ENDPOINT_URL": stack.endpoint_url, "AWS_ACCESS_KEY_ID": env.get("AWS_ACCESS_KEY_ID", "testing"),
                    "AWS_SECRET_ACCESS_KEY": env.get("AWS_SECRET_ACCESS_KEY", "testing")})
    if api_url:
        env["STEPML_API_URL"] = api_url
    command = streamlit_command(app, port, address)
    if open_browser:
        open_when_serving(browser_url(address, port), env)
    sys.stdout.flush()
    # Become streamlit (no child process left behind when this one is stopped).
    os.execve(sys.executable, command, env)


@main.command()
@click.option("--dataset", default="adult", show_default=True)
@click.option("--port", default=0, help="Offline endpoint port (0: a free one).")
@click.option("--api-port", default=0, help="HTTP API port (0: a free one).")
def demo(dataset: str, port: int, api_port: int) -> None:
    """Offline, end to end: start the stack, upload a dataset, follow the run, predict."""
    from stepml import datasets
    from stepml.cli.demo import run_demo

    run_demo(console, project_root(), dataset, port=port, api_port=api_port, datasets=datasets)
