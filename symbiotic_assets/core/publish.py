"""Versioned directories behind an atomically replaced pointer.

The search index and the recommender are published the same way: a new
version is written to a staging folder, fsynced and renamed into
``root/versions/<version>``; then a small ``CURRENT`` file naming it replaces
the old one with ``os.replace``. A reader reads the pointer, then the folder,
and never sees a half-written version. Old versions are kept for a while, so
a reader that read the pointer a moment before a switch still finds its files.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import numpy as np

POINTER = "CURRENT"
KEEP_VERSIONS = 3
# Readers may run as other users (a Grafana or MCP container): published files must be
# readable and folders listable by everyone, whatever the publisher's umask.
READABLE_FILE = 0o644
LISTABLE_FOLDER = 0o755


class NotPublishedError(FileNotFoundError):
    """Nothing was published under a root yet, or the pointer names a missing version."""


def new_version() -> str:
    """Sorts in publish order and never collides."""
    return f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}-{uuid.uuid4().hex[:8]}"


def publish_version(
    root: Path,
    write: Callable[[Path, str], object],
    *,
    keep: int = KEEP_VERSIONS,
    min_age_seconds: float = 300.0,
) -> str:
    """Call ``write(folder, version)`` into a staging folder, then switch the pointer to it."""
    versions = root / "versions"
    versions.mkdir(parents=True, exist_ok=True)
    open_to_readers(root)
    open_to_readers(versions)
    version = new_version()
    staging = versions / f".staging-{version}"
    try:
        write(staging, version)
        for child in [staging, *staging.rglob("*")]:
            open_to_readers(child)
        fsync_tree(staging)
        os.rename(staging, versions / version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer_tmp = root / f".{POINTER}.{uuid.uuid4().hex[:8]}"
    pointer_tmp.write_text(json.dumps({"version": version}), encoding="utf-8")
    open_to_readers(pointer_tmp)
    with open(pointer_tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(pointer_tmp, root / POINTER)
    prune_versions(versions, keep=keep, current=version, min_age_seconds=min_age_seconds)
    return version


def open_to_readers(path: Path) -> None:
    """Add read (and, for folders, list) permission for everyone; never removes a bit."""
    mode = path.stat().st_mode
    wanted = LISTABLE_FOLDER if path.is_dir() else READABLE_FILE
    if mode & wanted != wanted:
        os.chmod(path, (mode & 0o7777) | wanted)


def map_array(path: Path) -> np.ndarray:
    """A published ``.npy`` memory-mapped read-only, as a plain ndarray view of the map.

    ``np.memmap``'s subclass hooks run on every slice (about 5 µs each; a search query at
    1M commits slices postings and columns over a hundred times); the view keeps the map
    alive through its base without them.
    """
    return np.asarray(np.load(path, mmap_mode="r"))


def fsync_tree(folder: Path) -> None:
    for child in folder.rglob("*"):
        if child.is_file():
            with open(child, "rb") as fh:
                os.fsync(fh.fileno())


def prune_versions(versions: Path, *, keep: int, current: str, min_age_seconds: float) -> None:
    done = sorted(p for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    cutoff = time.time() - min_age_seconds
    for old in done[:-keep] if keep > 0 else []:
        if old.name != current and old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)


def current_version(
    root: Path, *, what: str, hint: str, error: type[Exception] = NotPublishedError
) -> str:
    """The version the pointer names; ``error`` (naming ``what`` and ``hint``) if none."""
    pointer = root / POINTER
    try:
        data = json.loads(pointer.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{root}: no {what} published yet (no {POINTER} file); {hint}") from None
    version = str(data.get("version") or "")
    if not version or not (root / "versions" / version).is_dir():
        raise error(f"{pointer}: names version {version!r}, which is missing")
    return version


class _Versioned(Protocol):
    version: str


T = TypeVar("T", bound=_Versioned)


class PublishedCache(Generic[T]):
    """Loaded published versions, one per root, kept per process.

    Loading a version is costly (matrices, metadata); reading the pointer is
    not. ``get`` reloads only when the pointer names a different version.
    """

    def __init__(self, current_version: Callable[[Path], str], load: Callable[[Path], T]):
        self._current_version = current_version
        self._load = load
        self._lock = threading.Lock()
        self._loaded: dict[Path, T] = {}

    def get(self, root: Path) -> T:
        root = root.resolve()
        version = self._current_version(root)
        with self._lock:
            cached = self._loaded.get(root)
        if cached is not None and cached.version == version:
            return cached
        loaded = self._load(root)
        with self._lock:
            self._loaded[root] = loaded
        return loaded

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
