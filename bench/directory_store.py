"""A registry store on a local folder (stdlib only): the S3Store reads serving makes, from files.

The inference benchmark uses it so that a fresh process measures importing and loading, not moto.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class DirectoryStore:
    """``find_json`` / ``get_bytes`` / ``list_prefixes`` / ``list_keys`` over ``root/<key>``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def find_json(self, key: str) -> Any | None:
        path = self.root / key
        return json.loads(path.read_text()) if path.is_file() else None

    def get_bytes(self, key: str, version_id: str | None = None) -> bytes:
        return (self.root / key).read_bytes()

    def put_bytes(self, key: str, body: bytes, **_: Any) -> str:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        return ""

    def list_prefixes(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        return sorted(f"{prefix}{p.name}/" for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []

    def list_keys(self, prefix: str) -> list[str]:
        folder = self.root / prefix
        if not folder.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in folder.rglob("*") if p.is_file())
