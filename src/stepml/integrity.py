"""Artifacts checked by digest between the stages that write and read them.

Train stages its artifacts in S3 and hands their SHA-256 digests to the next stages in the state;
Evaluate recomputes them before it loads anything. ``model.joblib`` is a pickle, and loading a
pickle runs code: an object changed in the bucket between the two stages (by hand, by another
writer, by a bug) must never be loaded, let alone registered as a version.

The Parquet tables the stages hand on (Validate's parsed upload, Preprocess's splits) are checked
the same way (:data:`TABLES_KEY`) before they are parsed: fastparquet's compiled footer parser
trusts the bytes it is given, and a damaged footer could crash the function's process instead of
failing the run with a message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from stepml.errors import ArtifactIntegrityError

#: The state's key for the digests Train hands over: artifact name -> hex SHA-256.
STATE_KEY = "artifact_sha256"
#: The state's key for the digests of the Parquet tables Validate and Preprocess write: file name
#: (``upload.parquet``, ``train.parquet``, ``test.parquet``) -> hex SHA-256.
TABLES_KEY = "table_sha256"


def digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """The hex SHA-256 of each file, by name."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def verify(
    files: Mapping[str, bytes], locations: Mapping[str, str], expected: Mapping[str, str] | None,
    writer: str = "Train", state_key: str = STATE_KEY,
) -> None:
    """Raise :class:`ArtifactIntegrityError` unless every file's SHA-256 is the one expected.

    ``locations`` (name -> S3 key) only makes the message name where each file was read from;
    ``writer``: the stage that wrote the files, ``state_key``: the state's key for their digests.
    """
    if not expected:
        raise ArtifactIntegrityError(
            f"the state carries no {state_key}: the staged files "
            f"({', '.join(sorted(locations.values()))}) cannot be checked, so none is loaded. "
            f"{writer} hands their digests over; start the run again from the upload."
        )
    found = digests(files)
    for name in sorted(files):
        where = locations.get(name, name)
        if name not in expected:
            raise ArtifactIntegrityError(
                f"{where}: the state has no SHA-256 for {name!r} (it has {', '.join(sorted(expected))}); "
                "nothing was loaded or registered"
            )
        if found[name] != expected[name]:
            raise ArtifactIntegrityError(
                f"{where} changed after {writer} wrote it: SHA-256 {found[name]}, {writer} wrote "
                f"{expected[name]}. Nothing was loaded or registered; upload the CSV again to "
                "train a fresh model."
            )


def table_digest(key: str, data: bytes) -> dict[str, str]:
    """The :data:`TABLES_KEY` entry of the Parquet table ``data`` written to ``key``: its file name
    -> hex SHA-256."""
    return digests({_file_name(key): data})


def verified_table(data: bytes, key: str, expected: Mapping[str, str] | None, writer: str) -> bytes:
    """``data`` (the Parquet table read from ``key``) once its SHA-256 is the one ``writer`` handed
    over in the state's :data:`TABLES_KEY`; raises :class:`ArtifactIntegrityError` otherwise."""
    name = _file_name(key)
    verify({name: data}, {name: key}, expected, writer=writer, state_key=TABLES_KEY)
    return data


def _file_name(key: str) -> str:
    return key.rsplit("/", 1)[-1]
