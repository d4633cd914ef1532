"""The model registry on S3, in MLflow's words: registered model, version, alias.

``models/<name>/version-<n>/`` holds a version's artifacts and ``meta.json``. A version number is
claimed with a conditional write (``If-None-Match: *``) so two runs never share one, and a version
is visible only once its ``meta.json`` exists: it is written last, after every artifact, so a crash
half-way leaves nothing that is listed or served. Aliases (``champion``…) are small JSON objects
updated with ``If-Match`` so that concurrent updates are never lost.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stepml import keys
from stepml.errors import ConfigError, GateRefused, NotFoundError, TransientError
from stepml.storage import PreconditionFailed, S3Store

CHAMPION = "champion"
#: Characters a promotion's or rollback's reason may have: it is kept in the alias object's history.
MAX_REASON_CHARS = 1000
#: How a rollback picks its target (told by ``GET /models/{name}/history`` and the README).
ROLLBACK_RULE = (
    "a rollback points the alias back at the previous different version it named: each change "
    "pushes its version unless that version is already current, and each rollback pops one"
)
#: Whether a promotion by hand must pass the quality gate (told by the history route and the README).
PROMOTION_RULE = (
    "a promotion by hand passes the same quality gate as the pipeline's (the version's recorded "
    "metrics against the current champion's, under the config it was trained with) unless it is "
    "forced with a reason; a rollback is not gated"
)
#: What a change returns: (version, reason, action, extra fields of its history entry) or None.
Change = tuple[int, str, str, dict[str, Any]]
_VERSION_PREFIX = re.compile(r"/version-(\d+)/$")
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _claimed_versions(store: S3Store, name: str) -> list[int]:
    numbers = []
    for prefix in store.list_prefixes(keys.models_prefix(name)):
        match = _VERSION_PREFIX.search(prefix)
        if match:
            numbers.append(int(match.group(1)))
    return sorted(numbers)


def claim_version(store: S3Store, name: str, run_id: str, attempts: int = 50) -> int:
    """Reserve the next free version number of ``name`` for ``run_id``."""
    claimed = _claimed_versions(store, name)
    candidate = (claimed[-1] if claimed else 0) + 1
    for _ in range(attempts):
        try:
            store.put_json(
                keys.version_prefix(name, candidate) + "claim.json",
                {"run_id": run_id, "claimed": now()},
                if_none_match=True,
            )
            return candidate
        except PreconditionFailed:
            candidate += 1
    raise TransientError(f"could not claim a version number for {name!r}: too many concurrent runs")


def register_version(
    store: S3Store, name: str, run_id: str, artifacts: dict[str, bytes], meta: dict[str, Any]
) -> dict[str, Any]:
    """Write a new version: artifacts first, then ``meta.json`` (which makes it visible)."""
    version = claim_version(store, name, run_id)
    prefix = keys.version_prefix(name, version)
    checksums = {}
    for filename, data in artifacts.items():
        store.put_bytes(prefix + filename, data)
        checksums[filename] = {"sha256": sha256(data), "bytes": len(data)}
    meta = {**meta, "name": name, "version": version, "artifacts": checksums, "registered": now()}
    store.put_json(prefix + "meta.json", meta, if_none_match=True)
    return meta


def list_versions(store: S3Store, name: str) -> list[dict[str, Any]]:
    """Every visible version of ``name`` (oldest first), each with its aliases."""
    aliases = list_aliases(store, name)
    versions = []
    for number in _claimed_versions(store, name):
        meta = store.find_json(keys.version_prefix(name, number) + "meta.json")
        if meta is None:
            continue  # claimed but unfinished (or crashed): not a version yet
        meta["aliases"] = sorted(a for a, v in aliases.items() if v == number)
        versions.append(meta)
    return versions


def list_models(store: S3Store) -> list[str]:
    return sorted(p.split("/")[1] for p in store.list_prefixes("models/"))


def get_version(store: S3Store, name: str, version: int) -> dict[str, Any]:
    meta = store.find_json(keys.version_prefix(name, version) + "meta.json")
    if meta is None:
        raise NotFoundError(f"model {name!r} has no version {version}")
    return meta


def load_artifact(store: S3Store, meta: dict[str, Any], filename: str) -> bytes:
    """An artifact's bytes, refused unless they match the SHA-256 recorded in ``meta.json``."""
    data = store.get_bytes(keys.version_prefix(meta["name"], meta["version"]) + filename)
    expected = meta["artifacts"][filename]["sha256"]
    if sha256(data) != expected:
        raise NotFoundError(
            f"model {meta['name']!r} version {meta['version']}: {filename} does not match its "
            "recorded SHA-256; refusing to serve it"
        )
    return data


def get_alias(store: S3Store, name: str, alias: str) -> int | None:
    record = store.find_json(keys.alias(name, alias))
    return None if record is None else int(record["version"])


def list_aliases(store: S3Store, name: str) -> dict[str, int]:
    found = {}
    for key in store.list_keys(keys.models_prefix(name) + "aliases/"):
        if key.endswith(".json"):
            record = store.find_json(key)
            if record is not None:
                found[key.rsplit("/", 1)[1][: -len(".json")]] = int(record["version"])
    return found


def alias_record(store: S3Store, name: str, alias: str) -> dict[str, Any] | None:
    """The alias object: current version plus its append-only history of changes."""
    return store.find_json(keys.alias(name, alias))


def _update_alias(
    store: S3Store,
    name: str,
    alias: str,
    change: Callable[[dict[str, Any] | None], Change | None],
    actor: str,
) -> dict[str, Any] | None:
    """Compare-and-swap loop on the alias object; ``change`` sees the current record and returns
    (version, reason, action, extra entry fields) or None for no change; it may raise to refuse,
    and then nothing is written. The history lives inside the object, so an update and its history
    entry are written together and a concurrent update is never lost."""
    if not ALIAS_NAME.fullmatch(alias):
        raise ConfigError(f"{alias[:40]!r} is not a valid alias name (lowercase letters, digits, - and _)")
    key = keys.alias(name, alias)
    for attempt in range(30):
        current = store.find_json_with_etag(key)
        record = current[0] if current else None
        wanted = change(record)
        if wanted is None:
            return None
        version, reason, action, extra = wanted
        get_version(store, name, version)
        entry = {
            "from": record["version"] if record else None,
            "to": version,
            "action": action,
            "reason": reason,
            "actor": actor,
            "time": now(),
            **extra,
        }
        updated = {
            "alias": alias,
            "version": version,
            "previous_version": entry["from"],
            "reason": reason,
            "actor": actor,
            "updated": entry["time"],
            "history": [*(record.get("history", []) if record else []), entry],
        }
        try:
            if current is None:
                store.put_json(key, updated, if_none_match=True)
            else:
                store.put_json(key, updated, if_match=f'"{current[1]}"')
            return updated
        except PreconditionFailed:
            # Full jitter: contenders that lost together must not all retry together again.
            time.sleep(random.uniform(0.005, 0.02 * (attempt + 1)))
    raise TransientError(f"alias {alias!r} of {name!r} kept changing; try again")


def _check_reason(reason: str) -> None:
    """A person's reason is kept in the alias object: bounded before anything is read or written."""
    if len(reason) > MAX_REASON_CHARS:
        raise ConfigError(f"the reason is {len(reason)} characters; the limit is {MAX_REASON_CHARS}")


def set_alias(
    store: S3Store, name: str, alias: str, version: int, reason: str, actor: str = "stepml", action: str = "set"
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (an explicit promotion)."""
    _check_reason(reason)
    record = _update_alias(store, name, alias, lambda _current: (version, reason, action, {}), actor)
    assert record is not None
    return record


def judge(candidate: dict[str, Any], champion: dict[str, Any] | None) -> dict[str, Any]:
    """The quality gate's verdict on a registered version against ``champion``, exactly as the
    pipeline's Promote stage runs it: the version's recorded evaluation, under the dataset config
    recorded with it."""
    from stepml.config import DatasetConfig
    from stepml.gate import decide

    evaluation = candidate.get("evaluation")
    needed = ("primary_metric", "higher_is_better", "metrics", "baseline")
    if not isinstance(evaluation, dict) or any(key not in evaluation for key in needed):
        return {"metric": None, "value": None, "baseline": None, "passed": False,
                "champion_version": champion["version"] if champion else None, "champion_value": None,
                "reason": f"version {candidate.get('version')} has no recorded evaluation to judge"}
    return dict(decide(evaluation, DatasetConfig.from_dict(candidate.get("config") or {}), champion))


def promote_by_hand(
    store: S3Store, name: str, version: int, reason: str, actor: str, force: bool = False
) -> dict[str, Any]:
    """A person's promotion (:data:`PROMOTION_RULE`): the alias record, plus the gate's decision.

    The gate runs against the champion *at the moment of the swap*, as in :func:`promote_if_better`.
    Refused and not forced: :class:`GateRefused`, and nothing is written. Forced: the version is
    promoted anyway and its history entry says ``forced: true``, with the actor and the reason
    (required). Every history entry of a promotion by hand carries the gate's decision.
    """
    _check_reason(reason)
    if force and not reason.strip():
        raise ConfigError("a forced promotion needs a reason: it is recorded in the champion history")
    candidate = get_version(store, name, version)
    decisions: list[dict[str, Any]] = []

    def change(current: dict[str, Any] | None) -> Change:
        champion = get_version(store, name, current["version"]) if current else None
        decision = judge(candidate, champion)
        decisions.append(decision)
        if not decision["passed"] and not force:
            raise GateRefused(f"the quality gate refuses version {version} of {name!r}: {decision['reason']}", decision)
        return version, reason, "promote", {"gate": decision, "forced": not decision["passed"]}

    record = _update_alias(store, name, CHAMPION, change, actor)
    assert record is not None
    return {**record, "gate": decisions[-1], "forced": not decisions[-1]["passed"]}


def promote_if_better(
    store: S3Store, name: str, version: int, config: dict[str, Any], actor: str
) -> dict[str, Any]:
    """Run the quality gate against the champion *at the moment of the swap*, then promote.

    Two runs finishing together cannot both win on stale information: if the champion changes
    between the read and the write, the conditional write fails and the gate runs again.
    """
    from stepml.config import DatasetConfig
    from stepml.gate import decide

    candidate = get_version(store, name, version)
    decisions: list[dict[str, Any]] = []

    def change(current: dict[str, Any] | None) -> Change | None:
        champion = get_version(store, name, current["version"]) if current else None
        decision = decide(candidate["evaluation"], DatasetConfig.from_dict(config), champion)
        decisions.append(dict(decision))
        return (version, decision["reason"], "promote", {"gate": dict(decision)}) if decision["passed"] else None

    record = _update_alias(store, name, CHAMPION, change, actor)
    return {**decisions[-1], "promoted": record is not None, "version": version}


def rollback(store: S3Store, name: str, reason: str, actor: str = "stepml") -> dict[str, Any]:
    """Point ``champion`` back at the previous *different* version it named (:data:`ROLLBACK_RULE`)."""
    _check_reason(reason)

    def change(current: dict[str, Any] | None) -> Change:
        target = rollback_target(current)
        if target is None:
            raise ConfigError(f"model {name!r} has no earlier champion to roll back to")
        return target, reason or "rollback", "rollback", {}

    record = _update_alias(store, name, CHAMPION, change, actor)
    assert record is not None
    return record


def rollback_target(record: dict[str, Any] | None) -> int | None:
    """Where a rollback goes: replay the history as a stack of versions (:data:`ROLLBACK_RULE`).

    A change pushes its version unless it is already on top (promoting the champion again changes
    nothing a rollback should undo); a rollback pops the top and lands on the version under it.
    So no two neighbours are equal, and the entry under the top is always a different version.
    """
    stack: list[int] = []
    for entry in (record or {}).get("history", []):
        if entry["action"] == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != entry["to"]:
            stack.append(entry["to"])
    return stack[-2] if len(stack) >= 2 else None


def claim_delivery(store: S3Store, dataset: str, source: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """Record that ``run_id`` handles this exact object version; returns the earlier claim when
    another run already did (S3 -> EventBridge delivers at least once)."""
    identity = "|".join(str(source.get(k) or "") for k in ("bucket", "key", "version_id", "etag"))
    key = f"{keys.run_prefix(dataset, 'deliveries')}{sha256(identity.encode())}.json"
    try:
        store.put_json(key, {"run_id": run_id, "source": source, "claimed": now()}, if_none_match=True)
        return None
    except PreconditionFailed:
        earlier = store.find_json(key) or {}
        return earlier if earlier.get("run_id") != run_id else None


def resolve(
    store: S3Store, name: str, version: int | None = None, alias: str | None = None
) -> dict[str, Any]:
    """The metadata of the version to serve: explicit version, else alias (default champion)."""
    if version is None:
        alias = alias or CHAMPION
        version = get_alias(store, name, alias)
        if version is None:
            if not store.list_prefixes(keys.models_prefix(name)):
                raise NotFoundError(f"no model named {name!r}")
            raise NotFoundError(f"model {name!r} has no {alias!r} alias")
    return get_version(store, name, version)


def _describe_feature(spec: dict[str, Any] | None) -> str | None:
    if spec is None:
        return None
    if spec["kind"] == "numeric":
        return f"numeric [{spec.get('min')}, {spec.get('max')}]"
    if spec["kind"] == "date":
        return f"date {spec.get('format')} as {', '.join(spec.get('parts', []))}"
    return f"categorical ({len(spec.get('categories', []))} categories)"


def diff_versions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Metrics and feature schema of two versions side by side (only differing features)."""
    metrics_a, metrics_b = a["evaluation"]["metrics"], b["evaluation"]["metrics"]
    metrics = []
    for name in dict.fromkeys([*metrics_a, *metrics_b]):
        va, vb = metrics_a.get(name), metrics_b.get(name)
        metrics.append({"metric": name, "a": va, "b": vb,
                        "change": None if va is None or vb is None else vb - va})
    features_a = {f["name"]: f for f in a["schema"]}
    features_b = {f["name"]: f for f in b["schema"]}
    schema = []
    for name in dict.fromkeys([*features_a, *features_b]):
        da, db = _describe_feature(features_a.get(name)), _describe_feature(features_b.get(name))
        if features_a.get(name) != features_b.get(name):
            schema.append({"feature": name, "a": da, "b": db})
    other = {key: {"a": a.get(key), "b": b.get(key)} for key in ("recipe", "train_rows", "test_rows")}
    return {"versions": [a["version"], b["version"]], "metrics": metrics, "schema": schema, "other": other}
