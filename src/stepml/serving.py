"""Serve predictions from the registry: resolve an alias, load the version once, predict.

Loaded models are cached per (name, version); an alias lookup is cached for ``alias_ttl`` seconds,
so a promotion or rollback is picked up within that bound without a redeploy, and a warm request
reads nothing from S3.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from stepml import registry
from stepml.errors import NotFoundError, RequestError
from stepml.inputs import check_records, records_from
from stepml.storage import S3Store

ARTIFACT = "model.joblib"


@dataclass
class LoadedModel:
    meta: dict[str, Any]
    pipeline: Any


@dataclass
class ModelServer:
    """Resolves and caches models of one registry for the prediction API."""

    store: S3Store
    alias_ttl: float = 15.0
    _models: dict[tuple[str, int], LoadedModel] = field(default_factory=dict)
    _aliases: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _alias_version(self, name: str, alias: str) -> int:
        cached = self._aliases.get((name, alias))
        if cached and time.monotonic() - cached[0] < self.alias_ttl:
            return cached[1]
        meta = registry.resolve(self.store, name, alias=alias)
        self._aliases[(name, alias)] = (time.monotonic(), int(meta["version"]))
        return int(meta["version"])

    def model(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel:
        if version is None:
            version = self._alias_version(name, alias or registry.CHAMPION)
        key = (name, version)
        with self._lock:
            loaded = self._models.get(key)
        if loaded is None:
            import joblib

            meta = registry.get_version(self.store, name, version)
            data = registry.load_artifact(self.store, meta, ARTIFACT)
            loaded = LoadedModel(meta=meta, pipeline=joblib.load(io.BytesIO(data)))
            with self._lock:
                self._models[key] = loaded
        return loaded

    def describe(self, name: str, version: int | None = None, alias: str | None = None) -> dict[str, Any]:
        meta = self.model(name, version, alias).meta
        evaluation = meta.get("evaluation", {})
        return {
            "name": name,
            "version": meta["version"],
            "task": meta["task"],
            "target": meta["target"],
            "recipe": meta.get("recipe"),
            "metrics": evaluation.get("metrics"),
            "baseline": evaluation.get("baseline"),
            "labels": evaluation.get("labels"),
            "features": meta["schema"],
            "registered": meta.get("registered"),
        }

    def predict(
        self, name: str, payload: Any, version: int | None = None, alias: str | None = None
    ) -> dict[str, Any]:
        loaded = self.model(name, version, alias)
        schema = loaded.meta["schema"]
        rows, warnings = check_records(records_from(payload), schema)
        import pandas as pd

        frame = pd.DataFrame(rows, columns=[f["name"] for f in schema])
        for spec in schema:
            if spec["kind"] == "numeric":
                frame[spec["name"]] = frame[spec["name"]].astype("float64")
        predictions = loaded.pipeline.predict(frame)
        result: dict[str, Any] = {
            "model": name,
            "version": loaded.meta["version"],
            "predictions": [_plain(p) for p in predictions],
            "warnings": warnings,
        }
        if loaded.meta["task"] == "classification":
            classes = [_plain(c) for c in loaded.pipeline.classes_]
            result["probabilities"] = [
                {str(c): round(float(p), 6) for c, p in zip(classes, row, strict=True)}
                for row in loaded.pipeline.predict_proba(frame)
            ]
        return result


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def parse_version(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise RequestError(f"version must be a positive whole number, got {value!r}")
    return int(value)


__all__ = ["ModelServer", "NotFoundError", "parse_version"]
