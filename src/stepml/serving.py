"""Serve predictions from the registry's ONNX models: resolve an alias, load a version once, predict.

Loaded models (an onnxruntime session per (name, version)) are cached for the life of the process;
an alias lookup is cached for ``alias_ttl`` seconds, so a promotion or rollback is picked up within
that bound without a redeploy, and a warm request reads nothing from S3. An artifact is loaded only
if its SHA-256 matches the one recorded in ``meta.json``.

Only numpy and onnxruntime are imported here (no pandas, scikit-learn or joblib): the inference
function ships without them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stepml.contracts import VersionMeta
from stepml.errors import NotFoundError, RequestError
from stepml.inputs import (
    UNSEEN_CATEGORY,
    InputContract,
    check_records,
    parse_version,
    quoted,
    records_from,
)
from stepml.onnx_model import (
    PREDICTION,
    PROBABILITIES,
    Feeds,
    imputed_features,
    input_builder,
    missing_refusal,
    model_classes,
    serving_schema,
)
from stepml.registry import ALIAS_NAME, CHAMPION, ModelRegistry
from stepml.storage import Store

ARTIFACT = "model.onnx"
#: Upper bound on how long a moved alias may keep serving its previous version (issue: <= 30 s).
DEFAULT_ALIAS_TTL = 15.0


@dataclass
class LoadedModel:
    """One registered version, ready to predict."""

    meta: VersionMeta
    session: Any
    classes: list[Any] | None
    #: The feature schema as served: which features may be missing (``nullable``).
    schema: list[dict[str, Any]]
    #: Builds the session's inputs from checked rows (the graph's input layout).
    inputs: Callable[[list[dict[str, Any]], list[dict[str, Any]]], Feeds]
    #: What a request may carry (prepared once: the check runs on every request).
    contract: InputContract
    #: ``(output names, feeds) -> outputs``: the session's run (see :func:`_runner`).
    run: Callable[[list[str], Feeds], list[Any]]


def _session(model_bytes: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    # One request is a few rows: a single thread avoids waking a pool (and Lambda bills by CPU).
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _runner(session: Any) -> Callable[[list[str], Feeds], list[Any]]:
    """``session.run`` without the Python wrapper's per-call checks of the feeds' names (~10 us of a
    ~70 us single-row run, measured on Adult): the feeds come from the model's own input builder,
    made from the session's input names, and onnxruntime's C++ checks names, types and shapes again.
    The public ``run`` where onnxruntime has no such binding."""
    inner = getattr(session, "_sess", None)
    if inner is None or not callable(getattr(inner, "run", None)):
        return session.run  # type: ignore[no-any-return]
    run = inner.run
    return lambda outputs, feeds: run(outputs, feeds, None)  # type: ignore[no-any-return]


@dataclass
class ModelServer:
    """Resolves (through :class:`~stepml.registry.ModelRegistry`), loads and caches the models of
    one registry for the prediction API.

    ``on_unseen_categories(model, version, count)`` is called when a request carried categories
    the model never saw in training, ``on_predicted(model, version, rows)`` after each prediction
    (the prediction function turns both into metrics).
    """

    store: Store
    alias_ttl: float = DEFAULT_ALIAS_TTL
    on_unseen_categories: Callable[[str, int, int], None] | None = None
    on_predicted: Callable[[str, int, int], None] | None = None
    clock: Callable[[], float] = time.monotonic
    _models: dict[tuple[str, int], LoadedModel] = field(default_factory=dict)
    _aliases: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    registry: ModelRegistry = field(init=False)

    def __post_init__(self) -> None:
        self.registry = ModelRegistry(self.store)

    def _alias_version(self, name: str, alias: str) -> int:
        cached = self._aliases.get((name, alias))
        now = self.clock()
        if cached and now - cached[0] < self.alias_ttl:
            return cached[1]
        version = self.registry.resolve_alias(name, alias)
        self._aliases[(name, alias)] = (now, version)
        return version

    def model(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel:
        """The loaded version: ``version``, else the version ``alias`` (default champion) names."""
        if version is not None and alias is not None:
            raise RequestError("give either version or alias, not both")
        if alias is not None and not ALIAS_NAME.fullmatch(alias):
            raise RequestError(
                f"alias {quoted(alias)} is not a valid alias name: a lowercase letter, then up to 31 "
                "lowercase letters, digits, - or _"
            )
        if version is None:
            version = self._alias_version(name, alias or CHAMPION)
        key = (name, version)
        with self._lock:
            loaded = self._models.get(key)
        if loaded is None:
            meta = self.registry.get_version(name, version)
            if ARTIFACT not in meta.get("artifacts", {}):
                raise NotFoundError(
                    f"model {name!r} version {version} has no {ARTIFACT} (it was trained before "
                    "the API served ONNX): train it again or serve a newer version"
                )
            session = _session(self.registry.load_artifact(meta, ARTIFACT))
            metadata = session.get_modelmeta().custom_metadata_map
            recipe = meta.get("recipe")
            schema = serving_schema(meta["schema"], imputed_features(metadata), recipe)
            # Columns of the training CSV that are not model inputs (not recorded before: none).
            ignored = [column["name"] for column in meta.get("ignored_columns") or []]
            loaded = LoadedModel(
                meta=meta, session=session, classes=model_classes(metadata), schema=schema,
                inputs=input_builder([i.name for i in session.get_inputs()]),
                contract=InputContract.build(schema, ignored, missing_refusal(recipe)), run=_runner(session),
            )
            with self._lock:
                self._models[key] = loaded
        return loaded

    def describe(self, name: str, version: int | None = None, alias: str | None = None) -> dict[str, Any]:
        """What a client needs to build a request: version, metrics and the feature schema."""
        loaded = self.model(name, version, alias)
        meta = loaded.meta
        evaluation = meta.get("evaluation", {})
        return {
            "name": name,
            "version": meta["version"],
            "task": meta["task"],
            "target": meta["target"],
            "recipe": meta.get("recipe"),
            "metrics": evaluation.get("metrics"),
            "baseline": evaluation.get("baseline"),
            "primary_metric": evaluation.get("primary_metric"),
            "labels": evaluation.get("labels"),
            "features": loaded.schema,
            "ignored_columns": meta.get("ignored_columns"),
            "registered": meta.get("registered"),
        }

    def list_models(self) -> list[dict[str, Any]]:
        """Every registered model with its champion version (None before one is promoted)."""
        return [
            {"name": name, "champion": self.registry.alias_version(name, CHAMPION)}
            for name in self.registry.list_models()
        ]

    def predict(
        self, name: str, payload: Any, version: int | None = None, alias: str | None = None
    ) -> dict[str, Any]:
        """Predictions (original labels), class probabilities and per-row warnings."""
        return self.serve(name, payload, version, alias)[1]

    def serve(
        self, name: str, payload: Any, version: int | None = None, alias: str | None = None
    ) -> tuple[LoadedModel, dict[str, Any]]:
        """:meth:`predict`, with the loaded version that answered (its meta, for the capture record)."""
        loaded = self.model(name, version, alias)
        schema = loaded.schema
        rows, warnings = check_records(records_from(payload), loaded.contract)
        unseen = sum(1 for row in warnings for warning in row if warning.endswith(UNSEEN_CATEGORY))
        if unseen and self.on_unseen_categories is not None:
            self.on_unseen_categories(name, int(loaded.meta["version"]), unseen)
        inputs = loaded.inputs(rows, schema)
        result: dict[str, Any] = {"model": name, "version": loaded.meta["version"]}
        if loaded.classes is not None:
            probabilities = loaded.run([PROBABILITIES], inputs)[0]
            classes = loaded.classes
            result["predictions"] = [classes[i] for i in probabilities.argmax(axis=1).tolist()]
            result["probabilities"] = [
                dict(zip(map(str, classes), row, strict=True))
                for row in np.round(probabilities.astype(np.float64), 6).tolist()
            ]
        else:
            values = loaded.run([PREDICTION], inputs)[0].reshape(-1)
            result["predictions"] = values.astype(np.float64).tolist()
        result["warnings"] = warnings
        if self.on_predicted is not None:
            self.on_predicted(name, int(loaded.meta["version"]), len(result["predictions"]))
        return loaded, result


__all__ = ["LoadedModel", "ModelServer", "NotFoundError", "parse_version"]
