"""Seed datasets come from the mirror, the cache or a verified download - never a corrupt file."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import pytest

from stepml import datasets
from stepml.errors import DataError

CSV = b"a,b,y\n1,2,x\n3,4,z\n"


@pytest.fixture
def server(tmp_path: Path):
    """A local HTTP server standing in for the public source."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("demo.csv", CSV)
    (tmp_path / "demo.csv.zip").write_bytes(archive.getvalue())
    (tmp_path / "plain.csv").write_bytes(CSV)
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def sources(base: str, digest: str) -> dict[str, datasets.Source]:
    return {
        "zipped": datasets.Source(url=f"{base}/demo.csv.zip", member="demo.csv", sha256=digest),
        "plain": datasets.Source(url=f"{base}/plain.csv", sha256=digest),
    }


def test_download_is_verified_and_cached(server: str, tmp_path: Path) -> None:
    digest = hashlib.sha256(CSV).hexdigest()
    seen: list[int] = []
    path = datasets.get("zipped", data_dir="", cache_dir=tmp_path / "cache", sources=sources(server, digest),
                        progress=lambda done, total: seen.append(done))
    assert path.read_bytes() == CSV and seen
    again = datasets.get("zipped", data_dir="", cache_dir=tmp_path / "cache", sources=sources("http://127.0.0.1:9", digest))
    assert again == path  # served from the cache, the (dead) source is not asked


def test_a_download_with_the_wrong_checksum_is_refused(server: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not match its SHA-256"):
        datasets.get("plain", data_dir="", cache_dir=tmp_path / "cache", sources=sources(server, "0" * 64))
    assert not (tmp_path / "cache" / "plain.csv").exists()


def test_mirror_folder_wins_and_is_checked(tmp_path: Path) -> None:
    digest = hashlib.sha256(CSV).hexdigest()
    (tmp_path / "plain.csv").write_bytes(CSV)
    assert datasets.get("plain", data_dir=tmp_path, cache_dir=tmp_path / "c", sources=sources("http://127.0.0.1:9", digest)) == tmp_path / "plain.csv"
    (tmp_path / "plain.csv").write_bytes(CSV + b"5,6,x\n")
    with pytest.raises(DataError, match="does not match"):
        datasets.get("plain", data_dir=tmp_path, cache_dir=tmp_path / "c", sources=sources("http://127.0.0.1:9", digest))


def test_unreachable_source_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(datasets.DatasetUnavailable, match="STEPML_DATA_DIR"):
        datasets.get("plain", data_dir="", cache_dir=tmp_path, sources=sources("http://127.0.0.1:9", "0" * 64), timeout=2)


def test_bundled_dataset_needs_no_network(tmp_path: Path) -> None:
    path = datasets.get("breast_cancer", cache_dir=tmp_path)
    header = path.read_text().splitlines()[0].split(",")
    assert header[-1] == "target" and len(header) == 31
