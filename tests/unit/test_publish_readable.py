"""Versioned publishes (search index, recommender) are readable by other users."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from symbiotic_assets.core.publish import POINTER, publish_version


def test_versions_are_world_readable_under_a_strict_umask(tmp_path: Path) -> None:
    def write(folder: Path, version: str) -> None:
        (folder / "sub").mkdir(parents=True)
        (folder / "vectors.npy").write_bytes(b"x")
        fd = os.open(folder / "sub" / "meta.json", os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)

    old = os.umask(0o077)
    try:
        version = publish_version(tmp_path / "root", write)
    finally:
        os.umask(old)
    root = tmp_path / "root"
    published = root / "versions" / version
    for path in [root, root / "versions", published, published / "sub"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o755 == 0o755, path
    for path in [root / POINTER, published / "vectors.npy", published / "sub" / "meta.json"]:
        assert stat.S_IMODE(path.stat().st_mode) & 0o644 == 0o644, path
