"""Which run took each delivered upload: S3 -> EventBridge delivers at least once, a run trains once.

A delivery is one object version (bucket, key, version id, ETag); its claim is a small JSON object
at :func:`stepml.keys.delivery`, created with ``If-None-Match: *`` by the first run that sees it.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from stepml import keys
from stepml.storage import PreconditionFailed, Store, put_json_once

#: The fields of an upload event that name one object version.
IDENTITY_FIELDS = ("bucket", "key", "version_id", "etag")


def delivery_key(dataset: str, source: dict[str, Any]) -> str:
    identity = "|".join(str(source.get(field) or "") for field in IDENTITY_FIELDS)
    return keys.delivery(dataset, hashlib.sha256(identity.encode()).hexdigest())


def claim_delivery(store: Store, dataset: str, source: dict[str, Any], run_id: str) -> dict[str, Any] | None:
    """Record that ``run_id`` handles this exact object version. Returns None when it is this run's
    (first or again: a retried run), or the earlier claim when another run took it.

    A concurrent conditional write (S3's 409) decided nothing: it is retried, never taken for a
    duplicate; only a lost condition (412) means another run holds the claim.
    """
    key = delivery_key(dataset, source)
    claim = {"run_id": run_id, "source": source, "claimed": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        put_json_once(store, key, claim, if_none_match=True)
        return None
    except PreconditionFailed:
        earlier = store.find_json(key) or {}
        return earlier if earlier.get("run_id") != run_id else None
