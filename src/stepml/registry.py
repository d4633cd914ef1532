"""The model registry, in MLflow's words: registered model, version, alias.

:class:`ModelRegistry` works over any :class:`stepml.storage.Store` and is the one owner of the
layout (every key comes from :mod:`stepml.keys`). A version number is claimed with a conditional
write (``If-None-Match: *``) so two runs never share one, and a version is visible only once its
``meta.json`` exists: it is written last, after every artifact, so a crash half-way leaves nothing
that is listed or served. A run registers at most one version: a retried run finds the version it
registered before. Aliases (``champion``…) are small JSON objects updated with ``If-Match`` so that
concurrent updates are never lost; an alias object keeps its last :data:`HISTORY_KEPT` history
entries (every inference container re-reads it) and archives older ones beside it in batches.

Only the standard library is imported here (the quality gate lazily): serving imports this module
on the numpy + onnxruntime inference layer.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

from stepml import keys
from stepml.contracts import (
    AliasRecord,
    ArtifactChecksum,
    Feature,
    HistoryPage,
    ListedVersion,
    NewVersion,
    VersionMeta,
)
from stepml.errors import ConfigError, GateRefused, NotFoundError, TransientError
from stepml.storage import PreconditionFailed, Store, WriteConflict, jitter, put_json_once

CHAMPION = "champion"
#: Characters a promotion's or rollback's reason may have: it is kept in the alias object's history.
MAX_REASON_CHARS = 1000
#: History entries an alias object keeps; older ones are archived beside it (:func:`keys.alias_history_batch`).
HISTORY_KEPT = 20
#: Entries per archived batch: the alias object holds between HISTORY_KEPT - ARCHIVE_BATCH + 1 and
#: HISTORY_KEPT entries once it has archived any.
ARCHIVE_BATCH = 10
#: How many versions back a rollback can go (the alias object keeps this stack of versions).
ROLLBACK_DEPTH = 100
#: How a rollback picks its target (told by ``GET /models/{name}/history`` and the README).
ROLLBACK_RULE = (
    "a rollback points the alias back at the previous different version it named: each change "
    f"pushes its version unless that version is already current, and each rollback pops one (up to "
    f"{ROLLBACK_DEPTH} versions back)"
)
#: Whether a promotion by hand must pass the quality gate (told by the history route and the README).
PROMOTION_RULE = (
    "a promotion by hand passes the same quality gate as the pipeline's, under the config the "
    "version was trained with: against the current champion on the same test rows when the "
    "version's Evaluate scored that champion there, else the version's recorded metrics against "
    "the champion's, each from its own test split; unless it is forced with a reason; a rollback "
    "is not gated"
)
#: What a change returns: (version, reason, action, extra fields of its history entry) or None.
Change = tuple[int, str, str, dict[str, Any]]
ALIAS_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check_alias_name(alias: str) -> str:
    if not ALIAS_NAME.fullmatch(alias):
        raise ConfigError(f"{alias[:40]!r} is not a valid alias name (lowercase letters, digits, - and _)")
    return alias


def _check_reason(reason: str) -> None:
    """A person's reason is kept in the alias object: bounded before anything is read or written."""
    if len(reason) > MAX_REASON_CHARS:
        raise ConfigError(f"the reason is {len(reason)} characters; the limit is {MAX_REASON_CHARS}")


def _pushed(stack: list[int], entry: dict[str, Any]) -> list[int]:
    """The rollback stack after ``entry`` (:data:`ROLLBACK_RULE`): a change pushes its version unless
    it is already on top (promoting the champion again changes nothing a rollback should undo); a
    rollback pops the top and lands on the version under it. No two neighbours are equal."""
    stack = list(stack)
    if entry["action"] == "rollback" and stack:
        stack.pop()
    if not stack or stack[-1] != entry["to"]:
        stack.append(entry["to"])
    return stack[-ROLLBACK_DEPTH:]


def normalized(record: dict[str, Any] | None) -> AliasRecord | None:
    """An alias record in the current shape: every history entry numbered (``seq``, from 1), the
    count of archived entries and the rollback stack. Records written before history was bounded
    hold their whole history and no numbers: they are numbered and replayed here."""
    if record is None:
        return None
    archived = int(record.get("archived", 0))
    history = [{**entry, "seq": entry.get("seq", archived + i + 1)} for i, entry in enumerate(record.get("history", []))]
    stack = record.get("rollback_stack")
    if stack is None:
        stack = []
        for entry in history:
            stack = _pushed(stack, entry)
    return cast(AliasRecord, {**record, "archived": archived, "history": history, "rollback_stack": stack})


def rollback_target(record: AliasRecord | None) -> int | None:
    """Where a rollback of this alias record goes: the version under the top of its stack."""
    stack = record["rollback_stack"] if record is not None else []
    return stack[-2] if len(stack) >= 2 else None


def judge(candidate: VersionMeta, champion: VersionMeta | None) -> dict[str, Any]:
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
    return dict(decide(evaluation, DatasetConfig.from_dict(candidate.get("config") or {}), champion,
                       _same_rows(candidate)))


def _same_rows(candidate: VersionMeta) -> Any:
    """Evaluate's comparison of ``candidate`` with the champion of its time on the same rows, when
    recorded: the gate uses it while that version is still the champion (:func:`stepml.gate.decide`)."""
    gate = candidate.get("gate")
    return gate.get("same_rows") if gate is not None else None


class ModelRegistry:
    """Registered models, their versions and aliases, over one :class:`~stepml.storage.Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- models and versions -----------------------------------------------------------------

    def list_models(self) -> list[str]:
        return sorted(keys.model_from_prefix(p) for p in self.store.list_prefixes(keys.MODELS_PREFIX))

    def has_model(self, name: str) -> bool:
        return bool(self.store.list_prefixes(keys.models_prefix(name)))

    def _claimed_versions(self, name: str) -> list[int]:
        found = (keys.version_from_prefix(p) for p in self.store.list_prefixes(keys.models_prefix(name)))
        return sorted(n for n in found if n is not None)

    def claim_version(self, name: str, run_id: str, attempts: int = 50) -> int:
        """Reserve the next free version number of ``name`` for ``run_id``."""
        claimed = self._claimed_versions(name)
        candidate = (claimed[-1] if claimed else 0) + 1
        for _ in range(attempts):
            try:
                put_json_once(self.store, keys.version_file(name, candidate, keys.VERSION_CLAIM),
                              {"run_id": run_id, "claimed": now()}, if_none_match=True)
                return candidate
            except PreconditionFailed:
                candidate += 1
        raise TransientError(f"could not claim a version number for {name!r}: too many concurrent runs")

    def registered_by(self, name: str, run_id: str) -> VersionMeta | None:
        """The version ``run_id`` registered, when it finished registering one."""
        marker = self.store.find_json(keys.run_registration(name, run_id))
        if marker is None:
            return None
        return cast("VersionMeta | None", self.store.find_json(keys.version_file(name, int(marker["version"]), keys.VERSION_META)))

    def register_version(
        self, name: str, run_id: str, artifacts: dict[str, bytes], meta: NewVersion
    ) -> VersionMeta:
        """Write a new version: artifacts first, then ``meta.json`` (which makes it visible).

        Idempotent per run: a retried run (same ``run_id``) gets the version it registered before,
        or finishes the one it had claimed, and never a second one.
        """
        marker_key = keys.run_registration(name, run_id)
        marker = self.store.find_json(marker_key)
        if marker is None:
            version = self.claim_version(name, run_id)
            try:
                put_json_once(self.store, marker_key, {"run_id": run_id, "version": version}, if_none_match=True)
            except PreconditionFailed:
                # The same run, retried while it was still running, got there first: use its
                # version (the number claimed here stays an invisible claim without meta.json).
                version = int(self.store.get_json(marker_key)["version"])
        else:
            version = int(marker["version"])
        meta_key = keys.version_file(name, version, keys.VERSION_META)
        existing = self.store.find_json(meta_key)
        if existing is not None:
            return cast(VersionMeta, existing)
        checksums: dict[str, ArtifactChecksum] = {}
        for filename, data in artifacts.items():
            self.store.put_bytes(keys.version_file(name, version, filename), data)
            checksums[filename] = {"sha256": sha256(data), "bytes": len(data)}
        registered: VersionMeta = {**meta, "name": name, "version": version, "artifacts": checksums, "registered": now()}
        try:
            put_json_once(self.store, meta_key, registered, if_none_match=True)
        except PreconditionFailed:
            return cast(VersionMeta, self.store.get_json(meta_key))  # a concurrent retry of this run finished first
        return registered

    def get_version(self, name: str, version: int) -> VersionMeta:
        meta = self.store.find_json(keys.version_file(name, version, keys.VERSION_META))
        if meta is None:
            raise NotFoundError(f"model {name!r} has no version {version}")
        return cast(VersionMeta, meta)

    def list_versions(self, name: str) -> list[ListedVersion]:
        """Every visible version of ``name`` (oldest first), each with its ``aliases``."""
        aliases = self._aliases_by_version(name)
        versions: list[ListedVersion] = []
        for number in self._claimed_versions(name):
            meta = self.store.find_json(keys.version_file(name, number, keys.VERSION_META))
            if meta is None:
                continue  # claimed but unfinished (or crashed): not a version yet
            versions.append({**cast(VersionMeta, meta), "aliases": aliases.get(number, [])})
        return versions

    def get_version_with_aliases(self, name: str, version: int) -> ListedVersion:
        return {**self.get_version(name, version), "aliases": self.aliases_of(name, version)}

    def load_artifact(self, meta: VersionMeta, filename: str) -> bytes:
        """An artifact's bytes, refused unless they match the SHA-256 recorded in ``meta.json``."""
        data = self.store.get_bytes(keys.version_file(meta["name"], meta["version"], filename))
        if sha256(data) != meta["artifacts"][filename]["sha256"]:
            raise NotFoundError(
                f"model {meta['name']!r} version {meta['version']}: {filename} does not match its "
                "recorded SHA-256; refusing to serve it"
            )
        return data

    # -- aliases -----------------------------------------------------------------------------

    def alias_version(self, name: str, alias: str) -> int | None:
        """The version ``alias`` names, or None when it does not exist."""
        record = self.store.find_json(keys.alias(name, alias))
        return None if record is None else int(record["version"])

    def resolve_alias(self, name: str, alias: str = CHAMPION) -> int:
        """The version ``alias`` names; a missing model or alias is a :class:`NotFoundError`."""
        version = self.alias_version(name, alias)
        if version is None:
            if not self.has_model(name):
                raise NotFoundError(f"no model named {name!r}")
            raise NotFoundError(f"model {name!r} has no {alias!r} alias")
        return version

    def get_version_by_alias(self, name: str, alias: str = CHAMPION) -> VersionMeta:
        return self.get_version(name, self.resolve_alias(name, alias))

    def list_aliases(self, name: str) -> dict[str, int]:
        """Every alias of ``name`` and the version it names."""
        found = {}
        for key in self.store.list_keys(keys.aliases_prefix(name)):
            alias = keys.alias_from_key(name, key)
            record = self.store.find_json(key) if alias is not None else None
            if alias is not None and record is not None:
                found[alias] = int(record["version"])
        return found

    def _aliases_by_version(self, name: str) -> dict[int, list[str]]:
        by_version: dict[int, list[str]] = {}
        for alias, version in sorted(self.list_aliases(name).items()):
            by_version.setdefault(version, []).append(alias)
        return by_version

    def aliases_of(self, name: str, version: int) -> list[str]:
        """The aliases that name ``version`` (sorted): the one place a version's aliases are computed."""
        return self._aliases_by_version(name).get(version, [])

    def alias_record(self, name: str, alias: str) -> AliasRecord | None:
        """The alias object: current version, its recent history (numbered) and rollback stack."""
        return normalized(self.store.find_json(keys.alias(name, alias)))

    def history(
        self, name: str, alias: str = CHAMPION, limit: int | None = None, before: int | None = None
    ) -> HistoryPage:
        """A page of the alias's history, newest first: ``entries`` (at most ``limit``, those numbered
        below ``before``), ``total`` (every entry ever) and ``next_before`` (the ``before`` of the next
        page, None on the last). Reads the archived batches the page reaches, no others."""
        record = self.alias_record(name, alias)
        if record is None:
            return {"entries": [], "total": 0, "next_before": None}
        entries: list[dict[str, Any]] = []
        iterator = self._entries_newest_first(name, alias, record, before)
        for entry in iterator:
            if limit is not None and len(entries) == limit:
                return {"entries": entries, "total": self._total(record), "next_before": entries[-1]["seq"]}
            entries.append(entry)
        return {"entries": entries, "total": self._total(record), "next_before": None}

    @staticmethod
    def _total(record: AliasRecord) -> int:
        return int(record["archived"]) + len(record["history"])

    def _entries_newest_first(
        self, name: str, alias: str, record: AliasRecord, before: int | None
    ) -> Iterator[dict[str, Any]]:
        for entry in reversed(record["history"]):
            if before is None or entry["seq"] < before:
                yield entry
        for batch in reversed(range(int(record["archived"]) // ARCHIVE_BATCH)):
            if before is not None and batch * ARCHIVE_BATCH + 1 >= before:
                continue
            archived = self.store.find_json(keys.alias_history_batch(name, alias, batch))
            if archived is None:
                raise NotFoundError(f"the archived history of alias {alias!r} of {name!r} lacks batch {batch}")
            for entry in reversed(archived["entries"]):
                if before is None or entry["seq"] < before:
                    yield entry

    def _archived_batches(self, name: str, alias: str) -> int:
        """How many history batches an alias left behind (when it is created again after a delete)."""
        prefix = keys.alias_history_batch(name, alias, 0).rsplit("/", 1)[0] + "/"
        return sum(1 for _ in self.store.list_keys(prefix))

    def _archive(self, name: str, alias: str, batch: int, entries: list[dict[str, Any]]) -> None:
        """Write one full batch of committed entries; a batch already there must hold the same ones
        (they were committed in the alias object, so every writer archives the same)."""
        key = keys.alias_history_batch(name, alias, batch)
        value = {"alias": alias, "batch": batch, "entries": entries}
        try:
            put_json_once(self.store, key, value, if_none_match=True)
        except PreconditionFailed:
            stored = self.store.find_json(key)
            if stored is None or [e["seq"] for e in stored["entries"]] != [e["seq"] for e in entries]:
                raise TransientError(f"alias {alias!r} of {name!r}: archived history {key} changed; try again") from None

    def _update_alias(
        self, name: str, alias: str, change: Callable[[AliasRecord | None], Change | None], actor: str
    ) -> AliasRecord | None:
        """Compare-and-swap loop on the alias object; ``change`` sees the current record and returns
        (version, reason, action, extra entry fields) or None for no change; it may raise to refuse,
        and then nothing is written. The recent history lives inside the object, so an update and
        its history entry are written together and a concurrent update is never lost; entries that
        overflow it are archived (If-None-Match) before the swap that drops them."""
        check_alias_name(alias)
        key = keys.alias(name, alias)
        for attempt in range(30):
            current = self.store.find_json_with_etag(key)
            record = normalized(current[0]) if current else None
            wanted = change(record)
            if wanted is None:
                return None
            version, reason, action, extra = wanted
            self.get_version(name, version)
            if record is None:
                # Created (again, if it was deleted): continue after any history it left behind.
                archived, history, stack = self._archived_batches(name, alias) * ARCHIVE_BATCH, [], []
            else:
                archived, history, stack = record["archived"], record["history"], record["rollback_stack"]
            entry = {"seq": archived + len(history) + 1, "from": record["version"] if record else None,
                     "to": version, "action": action, "reason": reason, "actor": actor, "time": now(), **extra}
            history = [*history, entry]
            while len(history) > HISTORY_KEPT:
                self._archive(name, alias, archived // ARCHIVE_BATCH, history[:ARCHIVE_BATCH])
                history, archived = history[ARCHIVE_BATCH:], archived + ARCHIVE_BATCH
            updated: AliasRecord = {
                "alias": alias,
                "version": version,
                "previous_version": entry["from"],
                "reason": reason,
                "actor": actor,
                "updated": entry["time"],
                "archived": archived,
                "history": history,
                "rollback_stack": _pushed(stack, entry),
            }
            try:
                if current is None:
                    self.store.put_json(key, updated, if_none_match=True)
                else:
                    # Gone meanwhile (deleted): S3 answers 404, the store PreconditionFailed, and
                    # the next round sees no alias and creates it.
                    self.store.put_json(key, updated, if_match=f'"{current[1]}"')
                return updated
            except (PreconditionFailed, WriteConflict):
                jitter(attempt)
        raise TransientError(f"alias {alias!r} of {name!r} kept changing; try again")

    def set_alias(
        self, name: str, alias: str, version: int, reason: str, actor: str = "stepml", action: str = "set"
    ) -> AliasRecord:
        """Point ``alias`` at ``version`` (an explicit promotion)."""
        _check_reason(reason)
        record = self._update_alias(name, alias, lambda _current: (version, reason, action, {}), actor)
        assert record is not None
        return record

    def promote_by_hand(
        self, name: str, version: int, reason: str, actor: str, force: bool = False
    ) -> dict[str, Any]:
        """A person's promotion (:data:`PROMOTION_RULE`): the alias record, plus the gate's decision.

        The gate runs against the champion *at the moment of the swap*, as in
        :meth:`promote_if_better`. Refused and not forced: :class:`GateRefused`, and nothing is
        written. Forced: the version is promoted anyway and its history entry says ``forced: true``,
        with the actor and the reason (required). Every history entry of a promotion by hand
        carries the gate's decision.
        """
        _check_reason(reason)
        if force and not reason.strip():
            raise ConfigError("a forced promotion needs a reason: it is recorded in the champion history")
        candidate = self.get_version(name, version)
        decisions: list[dict[str, Any]] = []

        def change(current: AliasRecord | None) -> Change:
            champion = self.get_version(name, current["version"]) if current else None
            decision = judge(candidate, champion)
            decisions.append(decision)
            if not decision["passed"] and not force:
                raise GateRefused(f"the quality gate refuses version {version} of {name!r}: {decision['reason']}",
                                  decision)
            return version, reason, "promote", {"gate": decision, "forced": not decision["passed"]}

        record = self._update_alias(name, CHAMPION, change, actor)
        assert record is not None
        return {**record, "gate": decisions[-1], "forced": not decisions[-1]["passed"]}

    def promote_if_better(self, name: str, version: int, config: dict[str, Any], actor: str) -> dict[str, Any]:
        """Run the quality gate against the champion *at the moment of the swap*, then promote.

        Two runs finishing together cannot both win on stale information: if the champion changes
        between the read and the write, the conditional write fails and the gate runs again. While
        the champion is the version Evaluate scored on the candidate's test rows, that comparison
        decides; a champion that changed since is compared by its registered value (the reason
        says so).
        """
        from stepml.config import DatasetConfig
        from stepml.gate import decide

        candidate = self.get_version(name, version)
        decisions: list[dict[str, Any]] = []

        def change(current: AliasRecord | None) -> Change | None:
            champion = self.get_version(name, current["version"]) if current else None
            decision = decide(candidate["evaluation"], DatasetConfig.from_dict(config), champion,
                              _same_rows(candidate))
            decisions.append(dict(decision))
            return (version, decision["reason"], "promote", {"gate": dict(decision)}) if decision["passed"] else None

        record = self._update_alias(name, CHAMPION, change, actor)
        return {**decisions[-1], "promoted": record is not None, "version": version}

    def rollback(self, name: str, reason: str, actor: str = "stepml") -> AliasRecord:
        """Point ``champion`` back at the previous *different* version it named (:data:`ROLLBACK_RULE`)."""
        _check_reason(reason)

        def change(current: AliasRecord | None) -> Change:
            target = rollback_target(current)
            if target is None:
                raise ConfigError(f"model {name!r} has no earlier champion to roll back to")
            return target, reason or "rollback", "rollback", {}

        record = self._update_alias(name, CHAMPION, change, actor)
        assert record is not None
        return record


def _describe_feature(spec: Feature | None) -> str | None:
    if spec is None:
        return None
    if spec["kind"] == "numeric":
        return f"numeric [{spec.get('min')}, {spec.get('max')}]"
    if spec["kind"] == "date":
        return f"date {spec.get('format')} as {', '.join(spec.get('parts', []))}"
    return f"categorical ({len(spec.get('categories', []))} categories)"


def diff_versions(a: VersionMeta, b: VersionMeta) -> dict[str, Any]:
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
