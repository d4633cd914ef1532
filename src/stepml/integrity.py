"""Artifacts checked by digest between the stages that write and read them.

Train stages its artifacts in S3 and hands their SHA-256 digests to the next stages in the state;
Evaluate recomputes them before it loads anything. ``model.joblib`` is a pickle, and loading a
pickle runs code: an object changed in the bucket between the two stages (by hand, by another
writer, by a bug) must never be loaded, let alone registered as a version.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from stepml.errors import ArtifactIntegrityError

#: The state's key for the digests Train hands over: artifact name -> hex SHA-256.
STATE_KEY = "artifact_sha256"


def digests(files: Mapping[str, bytes]) -> dict[str, str]:
    """The hex SHA-256 of each file, by name."""
    return {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}


def verify(
    files: Mapping[str, bytes], locations: Mapping[str, str], expected: Mapping[str, str] | None
) -> None:
    """Raise :class:`ArtifactIntegrityError` unless every file's SHA-256 is the one expected.

    ``locations`` (name -> S3 key) only makes the message name where each file was read from.
    """
    if not expected:
        raise ArtifactIntegrityError(
            f"the state carries no {STATE_KEY}: the staged artifacts "
            f"({', '.join(sorted(locations.values()))}) cannot be checked, so none is loaded. "
            "Train hands their digests over; start the run again from the upload."
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
                f"{where} changed after Train wrote it: SHA-256 {found[name]}, Train wrote "
                f"{expected[name]}. Nothing was loaded or registered; upload the CSV again to "
                "train a fresh model."
            )
