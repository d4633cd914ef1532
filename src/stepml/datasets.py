"""Seed datasets by name: from a local mirror folder, a checksummed cache, or their public source.

Lookup order for ``get("adult")``: ``$STEPML_DATA_DIR/adult.csv`` (the CI mirror), the cache
(``~/.cache/stepml/datasets``), then a download from the public source, verified by SHA-256 before
it is cached. ``breast_cancer`` ships inside scikit-learn, so it is always available offline.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stepml.errors import DataError


@dataclass(frozen=True)
class Source:
    """Where a dataset comes from and what it must hash to."""

    url: str
    sha256: str
    member: str | None = None  # the CSV inside a zip archive
    target: str | None = None
    description: str = ""


SOURCES: dict[str, Source] = {
    "adult": Source(
        url="https://github.com/RASHEEDUNNISA/Adult-Income/raw/d81fc460067ebf27ce9513ba387234a562e56a62/adult.csv.zip",
        member="adult.csv",
        sha256="1f13ee2bf9d7c66098429281ab91fa1b51cbabd3b805cc365b3c6b44491ea2c0",
        target="income",
        description="UCI Adult census income (48,842 rows, classification; '?' marks missing values)",
    ),
    "california_housing": Source(
        url="https://raw.githubusercontent.com/ageron/handson-ml2/1e2115277b50f6c584cd668fa30e3af309a5b136/datasets/housing/housing.csv",
        sha256="8a3727f4cf54ac1a327f69b1d5b4db54c5834ea81c6e4efc0d163300022a685e",
        target="median_house_value",
        description="California housing, Geron's variant (20,640 rows, regression)",
    ),
}
#: Datasets a dependency ships, so they need no network at all.
BUNDLED = {"breast_cancer": "target"}


class DatasetUnavailable(DataError):
    """Neither the mirror, the cache nor the network could provide the dataset."""


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "stepml" / "datasets"


def target_of(name: str) -> str | None:
    if name in SOURCES:
        return SOURCES[name].target
    return BUNDLED.get(name)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _download(url: str, progress: Callable[[int, int | None], None] | None, timeout: float) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        total = response.length
        buffer = io.BytesIO()
        while chunk := response.read(1 << 16):
            buffer.write(chunk)
            if progress:
                progress(buffer.tell(), total)
    return buffer.getvalue()


def get(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 20.0,
    sources: dict[str, Source] | None = None,
) -> Path:
    """Path of the dataset's CSV file, fetching and verifying it if needed."""
    sources = SOURCES if sources is None else sources
    if name in BUNDLED:
        return _bundled(name, cache_dir or default_cache_dir())
    if name not in sources:
        known = ", ".join(sorted([*sources, *BUNDLED]))
        raise DataError(f"unknown dataset {name!r}; known: {known}")
    source = sources[name]
    data_dir = data_dir if data_dir is not None else os.environ.get("STEPML_DATA_DIR")
    if data_dir:
        mirrored = Path(data_dir) / f"{name}.csv"
        if mirrored.is_file():
            if _sha256(mirrored) != source.sha256:
                raise DataError(f"{mirrored} does not match the SHA-256 of the {name} dataset")
            return mirrored
    cache = (cache_dir or default_cache_dir()) / f"{name}.csv"
    if cache.is_file() and _sha256(cache) == source.sha256:
        return cache
    try:
        payload = _download(source.url, progress, timeout)
    except OSError as exc:
        raise DatasetUnavailable(
            f"dataset {name!r} is not in STEPML_DATA_DIR ({data_dir or 'unset'}) nor cached, and "
            f"downloading it failed: {exc}"
        ) from exc
    if source.member:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            payload = archive.read(source.member)
    if hashlib.sha256(payload).hexdigest() != source.sha256:
        raise DataError(f"the download of {name!r} from {source.url} does not match its SHA-256")
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so an interrupted download never leaves a half file in the cache.
    with tempfile.NamedTemporaryFile(dir=cache.parent, delete=False) as handle:
        handle.write(payload)
    shutil.move(handle.name, cache)
    return cache


def _bundled(name: str, cache_dir: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    path = cache_dir / f"{name}.csv"
    if not path.is_file():
        frame = load_breast_cancer(as_frame=True).frame
        frame["target"] = frame["target"].map({0: "malignant", 1: "benign"})
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(path, index=False)
    return path
