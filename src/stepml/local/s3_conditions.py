"""Make moto's S3 conditional writes atomic, as they are on AWS.

moto checks ``If-Match`` / ``If-None-Match`` and then writes, with nothing between the two held:
two threads can both pass the check and the second write silently wins. stepml's registry relies
on these conditions (distinct version numbers, no lost alias update), so the offline stack runs
every conditional put under one lock. Unconditional puts are not serialised.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_original: Any = None


def _put_object(self: Any) -> Any:
    if self.headers.get("If-Match") or self.headers.get("If-None-Match"):
        with _lock:
            return _original(self)
    return _original(self)


def install() -> None:
    """Patch moto's S3 put handler (idempotent)."""
    global _original
    from moto.s3.responses import S3Response

    if _original is None:
        _original = S3Response.put_object
        S3Response.put_object = _put_object  # type: ignore[method-assign]


def uninstall() -> None:
    global _original
    from moto.s3.responses import S3Response

    if _original is not None:
        S3Response.put_object = _original  # type: ignore[method-assign]
        _original = None
