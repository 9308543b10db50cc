"""Where Symbiotic keeps its files and which repositories it reads.

One YAML file (``symbiotic.yaml``) lists repositories and directories to scan;
environment variables override what a deployment needs to change without
editing it. With no configuration at all, the project's own repository is the
only source, so that a fresh clone has something real to show.

Environment variables:

``SYMBIOTIC_HOME``
    Directory holding the warehouse, the memory store, published artifacts and
    the Dagster home. Default: ``./.symbiotic`` (relative to the working directory).
``SYMBIOTIC_CONFIG``
    Path of the YAML file. Default: ``./symbiotic.yaml`` when it exists.
``SYMBIOTIC_WAREHOUSE``
    Path (or ``md:`` URI) of the DuckDB warehouse. Default: ``$SYMBIOTIC_HOME/warehouse.duckdb``.
``SYMBIOTIC_REPOSITORIES``
    Extra repository paths, separated by ``os.pathsep``; added to the file's list.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class ConfigError(ValueError):
    """The configuration file or an environment override is not usable."""


@dataclass(frozen=True)
class RepositorySpec:
    """One repository to read: its partition name, its path, optional default branch."""

    name: str
    path: Path
    default_branch: str | None = None


@dataclass(frozen=True)
class ScanSpec:
    """A directory whose git repositories (up to ``depth`` levels down) are all read."""

    path: Path
    depth: int = 2


@dataclass
class Settings:
    home: Path
    warehouse: str
    config_file: Path | None
    repositories: list[RepositorySpec] = field(default_factory=list)
    scan: list[ScanSpec] = field(default_factory=list)
    stale_branch_days: int = 30
    merge_workers: int = 0  # 0 means one per core

    @property
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def memory_store(self) -> Path:
        return self.home / "memory.sqlite"

    @property
    def published_dir(self) -> Path:
        return self.home / "published"

    def all_repositories(self) -> list[RepositorySpec]:
        """Configured repositories plus those found under the scan directories, names unique."""
        found: list[RepositorySpec] = list(self.repositories)
        for scan in self.scan:
            for repo_path in discover_repositories(scan.path, scan.depth):
                found.append(RepositorySpec(name=repo_path.name, path=repo_path))
        return dedupe_names(found)


def slugify(name: str) -> str:
    """A partition-safe name: letters, digits, ``_``, ``.``, ``-``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "repository"
    if not slug[0].isalnum():
        slug = "r" + slug
    return slug[:100]


def dedupe_names(specs: list[RepositorySpec]) -> list[RepositorySpec]:
    """Drop repeated paths and give clashing names a numeric suffix."""
    seen_paths: set[Path] = set()
    used: set[str] = set()
    out: list[RepositorySpec] = []
    for spec in specs:
        resolved = spec.path.resolve() if spec.path.exists() else spec.path
        if resolved in seen_paths:
            continue
        seen_paths.add(resolved)
        name = spec.name
        n = 2
        while name in used:
            name = f"{spec.name}-{n}"
            n += 1
        used.add(name)
        out.append(RepositorySpec(name=name, path=spec.path, default_branch=spec.default_branch))
    return out


def discover_repositories(root: Path, depth: int = 2) -> list[Path]:
    """Directories under ``root`` (``root`` included) that are git repositories.

    A directory holding ``.git`` (work tree) or ``HEAD`` + ``objects`` + ``refs``
    (bare) counts; the search does not descend into a repository it found.
    """
    root = root.expanduser()
    if not root.is_dir():
        return []
    found: list[Path] = []

    def is_repo(p: Path) -> bool:
        return (p / ".git").exists() or (
            (p / "HEAD").is_file() and (p / "objects").is_dir() and (p / "refs").is_dir()
        )

    def walk(p: Path, level: int) -> None:
        if is_repo(p):
            found.append(p)
            return
        if level >= depth:
            return
        try:
            children = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        except OSError:
            return
        for child in children:
            walk(child, level + 1)

    walk(root, 0)
    return found


def _repository_from_yaml(item: Any, base: Path, index: int) -> RepositorySpec:
    where = f"repositories[{index}]"
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict) or "path" not in item:
        raise ConfigError(f"{where}: expected a path or a mapping with 'path', got {item!r}")
    raw_path = str(item["path"])
    if "://" in raw_path or raw_path.startswith(("ext::", "-")) or "::" in raw_path:
        raise ConfigError(
            f"{where}: {raw_path!r} is not a local path; remote URLs, transport helpers "
            "such as 'ext::' and option-like arguments are refused"
        )
    path = Path(raw_path).expanduser()
    if not path.is_absolute():
        path = (base / path).resolve()
    name = item.get("name") or slugify(path.name)
    if not _NAME_RE.match(str(name)):
        raise ConfigError(
            f"{where}: name {name!r} must be 1-100 characters of letters, digits, '_', '.', '-'"
        )
    branch = item.get("default_branch")
    return RepositorySpec(name=str(name), path=path, default_branch=str(branch) if branch else None)


def load_settings(config_file: str | Path | None = None) -> Settings:
    """Read settings from the YAML file and the environment (environment wins)."""
    home = Path(os.environ.get("SYMBIOTIC_HOME", ".symbiotic")).expanduser().resolve()
    if config_file is None:
        env_cfg = os.environ.get("SYMBIOTIC_CONFIG")
        if env_cfg:
            config_file = Path(env_cfg).expanduser()
            if not config_file.is_file():
                raise ConfigError(f"SYMBIOTIC_CONFIG={env_cfg!r}: no such file")
        elif Path("symbiotic.yaml").is_file():
            config_file = Path("symbiotic.yaml")
    cfg_path = Path(config_file).resolve() if config_file else None

    data: dict[str, Any] = {}
    if cfg_path is not None:
        try:
            loaded = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{cfg_path}: cannot read configuration: {exc}") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{cfg_path}: expected a mapping at the top level")
        data = loaded
    base = cfg_path.parent if cfg_path else Path.cwd()

    repos = [
        _repository_from_yaml(item, base, i)
        for i, item in enumerate(data.get("repositories") or [])
    ]
    scans: list[ScanSpec] = []
    for i, item in enumerate(data.get("scan") or []):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, dict) or "path" not in item:
            raise ConfigError(f"scan[{i}]: expected a path or a mapping with 'path', got {item!r}")
        scan_path = Path(str(item["path"])).expanduser()
        if not scan_path.is_absolute():
            scan_path = (base / scan_path).resolve()
        scans.append(ScanSpec(path=scan_path, depth=int(item.get("depth", 2))))

    extra = os.environ.get("SYMBIOTIC_REPOSITORIES", "")
    for j, raw in enumerate(p for p in extra.split(os.pathsep) if p.strip()):
        repos.append(_repository_from_yaml({"path": raw}, Path.cwd(), j))

    if not repos and not scans:
        repos = [RepositorySpec(name="symbiotic", path=PROJECT_ROOT)]

    settings_block = data.get("settings") or {}
    warehouse = os.environ.get("SYMBIOTIC_WAREHOUSE") or str(
        settings_block.get("warehouse") or home / "warehouse.duckdb"
    )
    return Settings(
        home=home,
        warehouse=warehouse,
        config_file=cfg_path,
        repositories=dedupe_names(repos),
        scan=scans,
        stale_branch_days=int(settings_block.get("stale_branch_days", 30)),
        merge_workers=int(settings_block.get("merge_workers", 0)),
    )


def add_repository_to_config(
    config_file: Path, path: Path, name: str | None = None
) -> RepositorySpec:
    """Append a repository to the YAML file (created if missing); refuses duplicates."""
    data: dict[str, Any] = {}
    if config_file.is_file():
        data = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    repos = list(data.get("repositories") or [])
    spec = _repository_from_yaml(
        {"path": str(path), **({"name": name} if name else {})},
        config_file.parent.resolve(),
        len(repos),
    )
    existing = [
        _repository_from_yaml(item, config_file.parent.resolve(), i) for i, item in enumerate(repos)
    ]
    for other in existing:
        if other.path == spec.path:
            raise ConfigError(f"{spec.path} is already configured as {other.name!r}")
        if other.name == spec.name:
            raise ConfigError(f"the name {spec.name!r} is already used by {other.path}")
    entry: dict[str, Any] = {"path": str(spec.path), "name": spec.name}
    repos.append(entry)
    data["repositories"] = repos
    config_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return spec
