"""Where Symbiotic keeps its files and which repositories it reads.

One YAML file (``symbiotic.yaml``) lists repositories and directories to scan;
environment variables override what a deployment needs to change without
editing it. With no configuration at all, the project's own repository is the
only source, so that a fresh clone has something real to show.

The file is validated against a typed model (:class:`ConfigFile`): a misspelt
key or a value of the wrong type is an error naming the file, the key path
(``scan[0].depth``) and what was expected, instead of being ignored (a typo in
``repositories:`` used to fall back to indexing this project). Every
``SYMBIOTIC_*`` environment variable is read here and nowhere else
(:func:`read_environment`); ``docs/configuration.md`` describes them all.
"""

from __future__ import annotations

import difflib
import errno
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

PROJECT_ROOT = Path(__file__).resolve().parents[2]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCP_RE = re.compile(r"^[^/\s:@]+@[^/\s:]+:")  # git@github.com:org/repo.git

log = logging.getLogger(__name__)

# Every environment variable Symbiotic reads, with what it does; docs/configuration.md
# lists the same names (a test keeps the two and the code in step).
ENVIRONMENT_VARIABLES: dict[str, str] = {
    "SYMBIOTIC_HOME": "directory for the warehouse, memory store, published artifacts, "
    "exported models and the Dagster home (default ./.symbiotic)",
    "SYMBIOTIC_CONFIG": "path of the YAML configuration (default ./symbiotic.yaml when present)",
    "SYMBIOTIC_WAREHOUSE": "DuckDB warehouse path or md: URI (default $SYMBIOTIC_HOME/warehouse.duckdb)",
    "SYMBIOTIC_REPOSITORIES": "extra local repository paths, os.pathsep-separated",
    "SYMBIOTIC_MCP_TOKEN": "bearer token the MCP server requires over HTTP (16+ characters)",
    "SYMBIOTIC_MODEL_CACHE": "where the benchmarks cache exported embedding models",
    "SYMBIOTIC_MERGE_GIT": "absolute path of the git (2.38+) that re-merges merge commits",
}


class ConfigError(ValueError):
    """The configuration file or an environment override is not usable."""


# -- the resolved settings other code reads ------------------------------------------------


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


@dataclass(frozen=True)
class SkippedRepository:
    """A configured or discovered entry left out because another one is the same repository."""

    spec: RepositorySpec
    same_as: RepositorySpec
    reason: str


@dataclass
class Settings:
    home: Path
    warehouse: str
    config_file: Path | None
    repositories: list[RepositorySpec] = field(default_factory=list)
    scan: list[ScanSpec] = field(default_factory=list)
    stale_branch_days: int = 30
    merge_workers: int = 0  # 0 means one per core
    # configured entries dropped as repeats of another entry (kept for `repos list`)
    skipped: list[SkippedRepository] = field(default_factory=list)

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
        """Configured repositories plus those found under the scan directories, each
        repository once (by its git directory) and names unique."""
        return self.repository_listing()[0]

    def repository_listing(self) -> tuple[list[RepositorySpec], list[SkippedRepository]]:
        """What :meth:`all_repositories` returns, plus every entry it left out and why."""
        found: list[RepositorySpec] = list(self.repositories)
        for scan in self.scan:
            for repo_path in discover_repositories(scan.path, scan.depth):
                found.append(RepositorySpec(name=repo_path.name, path=repo_path))
        kept, skipped = dedupe_repositories(found)
        return kept, [*self.skipped, *skipped]


# -- the file's schema ---------------------------------------------------------------------


def _path_shorthand(value: Any) -> Any:
    """``- ~/code/x`` is short for ``- path: ~/code/x``."""
    return {"path": value} if isinstance(value, str) else value


def _reject_bool(value: Any) -> Any:
    """YAML ``yes``/``true`` is a boolean; pydantic would quietly read it as 1."""
    if isinstance(value, bool):
        raise ValueError(f"expected a whole number, got the boolean {value!r}")
    return value


Count = Annotated[int, BeforeValidator(_reject_bool), Field(ge=0)]


def _check_local(value: str) -> str:
    """A field validator's body: refuse remotes and a ``~user`` that does not exist."""
    problem = remote_problem(value)
    if problem:
        raise ValueError(problem)
    try:
        Path(value).expanduser()
    except RuntimeError:
        raise ValueError(f"{value!r}: cannot expand '~': no such user") from None
    return value


def remote_problem(raw: str) -> str | None:
    """Why ``raw`` is not a local path (a URL, a transport helper, an option), or None.

    Symbiotic reads local clones only: fetching is the user's decision, and git's
    transports (``ext::`` runs commands) must never be reachable from a config file.
    """
    text = raw.strip()
    if _URL_RE.match(text) or _SCP_RE.match(text):
        return (
            f"{raw!r} is a URL; URLs are refused: clone it locally first "
            "(git clone URL DIR) and configure the clone's path"
        )
    if "::" in text:
        return f"{raw!r} uses a git transport helper ('::'); refused, give a local path"
    if text.startswith("-"):
        return f"{raw!r} looks like a command-line option; refused, give a local path"
    return None


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, frozen=True)


class RepositoryEntry(_Entry):
    """One item of ``repositories:``: a local clone (work tree or bare)."""

    path: str = Field(min_length=1)
    name: str | None = None
    default_branch: str | None = None

    @field_validator("path")
    @classmethod
    def _local_only(cls, value: str) -> str:
        return _check_local(value)

    @field_validator("name")
    @classmethod
    def _partition_name(cls, value: str | None) -> str | None:
        if value is not None and not _NAME_RE.match(value):
            raise ValueError(
                f"name {value!r} must be 1-100 characters of letters, digits, '_', '.', '-'"
            )
        return value


class ScanEntry(_Entry):
    """One item of ``scan:``: a directory whose repositories are all read."""

    path: str = Field(min_length=1)
    depth: Count = 2

    @field_validator("path")
    @classmethod
    def _local_only(cls, value: str) -> str:
        return _check_local(value)


class SettingsBlock(_Entry):
    """The ``settings:`` mapping."""

    warehouse: str | None = None
    stale_branch_days: Count = 30
    merge_workers: Count = 0


def _none_is_default(value: Any) -> Any:
    return value if value is not None else {}


def _none_is_empty(value: Any) -> Any:
    return value if value is not None else []


class ConfigFile(_Entry):
    """The whole of ``symbiotic.yaml``; every key is optional, unknown keys are errors."""

    repositories: Annotated[
        list[Annotated[RepositoryEntry, BeforeValidator(_path_shorthand)]],
        BeforeValidator(_none_is_empty),
    ] = []
    scan: Annotated[
        list[Annotated[ScanEntry, BeforeValidator(_path_shorthand)]],
        BeforeValidator(_none_is_empty),
    ] = []
    settings: Annotated[SettingsBlock, BeforeValidator(_none_is_default)] = SettingsBlock()


_ENTRY_MODELS: dict[str, type[BaseModel]] = {
    "repositories": RepositoryEntry,
    "scan": ScanEntry,
    "settings": SettingsBlock,
}


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _expected_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed in the mapping that holds ``loc``'s last key."""
    parent = [p for p in loc[:-1] if isinstance(p, str)]
    model: type[BaseModel] = _ENTRY_MODELS[parent[0]] if parent else ConfigFile
    return list(model.model_fields)


def _describe(error: Mapping[str, Any]) -> str:
    """One line per problem: key path, what was expected, what was found."""
    loc = tuple(error["loc"])
    where = _key_path(loc)
    kind = error["type"]
    got = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _expected_keys(loc)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown key{hint}; expected one of: {', '.join(allowed)}"
    if kind == "missing":
        return f"{where}: required key missing"
    if kind in ("model_type", "model_attributes_type"):
        if loc and loc[0] in ("repositories", "scan") and len(loc) == 2:
            return f"{where}: expected a path or a mapping with 'path', got {got!r}"
        return f"{where}: expected a mapping, got {got!r}"
    if kind == "list_type":
        return f"{where}: expected a list, got {got!r}"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{where}: expected a whole number, got {got!r}"
    if kind == "greater_than_equal":
        return f"{where}: expected a number >= {error['ctx']['ge']}, got {got!r}"
    if kind == "string_type":
        return f"{where}: expected a string, got {got!r}"
    if kind == "string_too_short":
        return f"{where}: must not be empty"
    if kind == "value_error":
        return f"{where}: {error['ctx']['error']}"
    return f"{where}: {error['msg']}, got {got!r}"


def parse_config(data: Any, source: str) -> ConfigFile:
    """Validate a loaded YAML document; ``source`` (the file) starts every error message."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {data!r}")
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as exc:
        problems = [_describe(e) for e in exc.errors(include_url=False)]
        if len(problems) == 1:
            raise ConfigError(f"{source}: {problems[0]}") from None
        lines = "\n  ".join(problems)
        raise ConfigError(f"{source}: {len(problems)} problems:\n  {lines}") from None


# -- the environment -----------------------------------------------------------------------


class Environment(BaseModel):
    """The ``SYMBIOTIC_*`` variables, read once (see :data:`ENVIRONMENT_VARIABLES`)."""

    model_config = ConfigDict(frozen=True)

    home: Path
    config: str | None = None
    warehouse: str | None = None
    repositories_text: str = ""  # as set, before splitting on os.pathsep
    repositories: list[str] = []
    mcp_token: str = ""
    model_cache: str | None = None
    merge_git: str | None = None


def _expand(raw: str) -> Path:
    """``~`` expanded; left as written when it cannot be (``~nosuchuser``)."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        return Path(raw)


def read_environment(environ: Mapping[str, str] | None = None) -> Environment:
    """The environment overrides, from ``environ`` (default ``os.environ``).

    Never raises: a process that only needs its home or the MCP token must not fail on
    an unrelated variable; :func:`load_settings` validates the repository list.
    """
    env = os.environ if environ is None else environ

    def value(name: str) -> str | None:
        raw = env.get(name)
        return raw if raw and raw.strip() else None

    extra = env.get("SYMBIOTIC_REPOSITORIES", "")
    return Environment(
        home=_expand(value("SYMBIOTIC_HOME") or ".symbiotic").resolve(),
        config=value("SYMBIOTIC_CONFIG"),
        warehouse=value("SYMBIOTIC_WAREHOUSE"),
        repositories_text=extra,
        repositories=[p for p in extra.split(os.pathsep) if p.strip()],
        mcp_token=env.get("SYMBIOTIC_MCP_TOKEN", ""),
        model_cache=value("SYMBIOTIC_MODEL_CACHE"),
        merge_git=value("SYMBIOTIC_MERGE_GIT"),
    )


def symbiotic_home() -> Path:
    """``$SYMBIOTIC_HOME`` (default ``./.symbiotic``), absolute."""
    return read_environment().home


@contextmanager
def warehouse_for_subprocesses(database: str) -> Iterator[None]:
    """``SYMBIOTIC_WAREHOUSE=database`` for processes started inside (dbt), restored after.

    Children inherit this process's environment; leaving the variable set would make it
    override the settings of every later run in the same process.
    """
    before = os.environ.get("SYMBIOTIC_WAREHOUSE")
    os.environ["SYMBIOTIC_WAREHOUSE"] = database
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SYMBIOTIC_WAREHOUSE", None)
        else:
            os.environ["SYMBIOTIC_WAREHOUSE"] = before


def mcp_token() -> str:
    """``$SYMBIOTIC_MCP_TOKEN``: the bearer token the MCP server requires over HTTP."""
    return read_environment().mcp_token


# -- paths and repository identity ---------------------------------------------------------


def slugify(name: str) -> str:
    """A partition-safe name: letters, digits, ``_``, ``.``, ``-``."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "repository"
    if not slug[0].isalnum():
        slug = "r" + slug
    return slug[:100]


def absolute_path(raw: str | Path, base: Path) -> Path:
    """``raw`` made absolute against ``base``, symlinks resolved where they can be.

    A symlink loop cannot be resolved (``Path.resolve`` raises); the normalised absolute
    path is kept so the entry can be listed with its problem instead of crashing the load.
    """
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path
    joined = base / path
    try:
        return joined.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.normpath(joined))


def path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be a repository directory (missing, a symlink loop, a file), or None."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"path {path} is a symlink loop"
        if exc.errno == errno.ENOENT:
            return f"path {path} does not exist"
        return f"path {path} cannot be read: {exc.strerror}"
    if not path.is_dir():
        return f"path {path} is not a directory"
    return None


def _read_pointer(file: Path, prefix: str = "") -> Path:
    text = file.read_text(encoding="utf-8").strip()
    if prefix:
        if not text.startswith(prefix):
            raise ValueError(f"{file}: not a {prefix!r} file")
        text = text[len(prefix) :].strip()
    target = Path(text)
    return target if target.is_absolute() else file.parent / target


def repository_identity(path: Path) -> Path | None:
    """The resolved common git directory of the repository at ``path``, or None.

    A work tree, its ``.git`` directory and its linked worktrees all share one common
    directory, so they are one repository: reading two of them would count every commit
    twice in cross-repository totals. Read from the files git writes (``.git`` file,
    ``commondir``), without starting git.
    """
    try:
        dotgit = path / ".git"
        if dotgit.is_dir():
            git_dir = dotgit
        elif dotgit.is_file():
            git_dir = _read_pointer(dotgit, "gitdir:")  # linked worktree or submodule
        elif (path / "HEAD").is_file() and (
            (path / "objects").is_dir() or (path / "commondir").is_file()
        ):
            git_dir = path  # a bare repository, a .git directory, or a worktree's git dir
        else:
            return None
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = _read_pointer(git_dir / "commondir")
        return common.resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def dedupe_repositories(
    specs: list[RepositorySpec],
) -> tuple[list[RepositorySpec], list[SkippedRepository]]:
    """Each repository once (first entry wins), clashing names given a numeric suffix.

    Two entries are the same repository when their paths resolve to the same directory
    or share a git common directory (a work tree and its ``.git``, linked worktrees).
    """
    seen_paths: dict[Path, RepositorySpec] = {}
    seen_repos: dict[Path, RepositorySpec] = {}
    used: set[str] = set()
    out: list[RepositorySpec] = []
    skipped: list[SkippedRepository] = []
    for spec in specs:
        try:
            resolved = spec.path.resolve() if spec.path.exists() else spec.path
        except (OSError, RuntimeError):
            resolved = spec.path
        if resolved in seen_paths:
            continue  # the same directory listed again (or found again by a scan)
        identity = repository_identity(spec.path)
        first = seen_repos.get(identity) if identity is not None else None
        if first is not None:
            reason = (
                f"{spec.path} is the same repository as {first.name!r} ({first.path}; "
                f"git directory {identity}); read once"
            )
            log.info(reason)
            skipped.append(SkippedRepository(spec=spec, same_as=first, reason=reason))
            continue
        name = spec.name
        n = 2
        while name in used:
            name = f"{spec.name}-{n}"
            n += 1
        used.add(name)
        kept = RepositorySpec(name=name, path=spec.path, default_branch=spec.default_branch)
        seen_paths[resolved] = kept
        if identity is not None:
            seen_repos[identity] = kept
        out.append(kept)
    return out, skipped


def dedupe_names(specs: list[RepositorySpec]) -> list[RepositorySpec]:
    """Drop repeats of a repository and give clashing names a numeric suffix."""
    return dedupe_repositories(specs)[0]


def discover_repositories(root: Path, depth: int = 2) -> list[Path]:
    """Directories under ``root`` (``root`` included) that are git repositories.

    A directory holding ``.git`` (work tree) or ``HEAD`` + ``objects`` + ``refs``
    (bare) counts; the search does not descend into a repository it found. Symlink
    loops and unreadable directories are skipped; ``depth`` bounds symlink cycles.
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


# -- loading -------------------------------------------------------------------------------


def _spec(entry: RepositoryEntry, base: Path) -> RepositorySpec:
    path = absolute_path(entry.path, base)
    return RepositorySpec(
        name=entry.name or slugify(path.name),
        path=path,
        default_branch=entry.default_branch or None,
    )


def _read_file(cfg_path: Path) -> ConfigFile:
    try:
        loaded = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: cannot read configuration: {exc}") from exc
    return parse_config(loaded, str(cfg_path))


def load_settings(
    config_file: str | Path | None = None, *, home: str | Path | None = None
) -> Settings:
    """Read settings from the YAML file and the environment (environment wins).

    ``home``, when given, stands in for ``$SYMBIOTIC_HOME``: the Dagster settings
    resource passes the run's own, so one process can serve two homes.
    """
    env = read_environment()
    if home is not None:
        env = env.model_copy(update={"home": Path(home).expanduser().resolve()})
    if config_file is None:
        if env.config:
            config_file = _expand(env.config)
            if not config_file.is_file():
                raise ConfigError(f"SYMBIOTIC_CONFIG={env.config!r}: no such file")
        elif Path("symbiotic.yaml").is_file():
            config_file = Path("symbiotic.yaml")
    cfg_path = Path(config_file).resolve() if config_file else None

    config = _read_file(cfg_path) if cfg_path is not None else ConfigFile()
    base = cfg_path.parent if cfg_path else Path.cwd()

    repos = [_spec(entry, base) for entry in config.repositories]
    remote = re.search(r"[A-Za-z][A-Za-z0-9+.-]*://\S*", env.repositories_text)
    if remote:
        # splitting on ':' would cut a URL into two "missing paths"; say what it is
        raise ConfigError(f"SYMBIOTIC_REPOSITORIES: {remote_problem(remote.group(0))}")
    for j, raw in enumerate(env.repositories):
        try:
            entry = RepositoryEntry(path=raw)
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0].get("ctx", {}).get("error", exc)
            raise ConfigError(f"SYMBIOTIC_REPOSITORIES entry {j} ({raw!r}): {problem}") from None
        repos.append(_spec(entry, Path.cwd()))
    scans = [
        ScanSpec(path=absolute_path(entry.path, base), depth=entry.depth) for entry in config.scan
    ]

    if not repos and not scans:
        repos = [RepositorySpec(name="symbiotic", path=PROJECT_ROOT)]

    warehouse = env.warehouse or str(config.settings.warehouse or env.home / "warehouse.duckdb")
    kept, skipped = dedupe_repositories(repos)
    return Settings(
        home=env.home,
        warehouse=warehouse,
        config_file=cfg_path,
        repositories=kept,
        scan=scans,
        stale_branch_days=config.settings.stale_branch_days,
        merge_workers=config.settings.merge_workers,
        skipped=skipped,
    )


def add_repository_to_config(
    config_file: Path, path: Path | str, name: str | None = None
) -> RepositorySpec:
    """Append a repository to the YAML file (created if missing).

    Refuses URLs, a path already configured, a name already used, and another path to a
    repository already configured (its ``.git``, a linked worktree): each would be read
    twice. The rest of the file is validated first, so a broken file is not rewritten.
    """
    base = config_file.parent.resolve()
    data: dict[str, Any] = {}
    if config_file.is_file():
        try:
            loaded = yaml.safe_load(config_file.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: cannot read configuration: {exc}") from exc
        config = parse_config(loaded, str(config_file))
        data = loaded or {}
    else:
        config = ConfigFile()
    try:
        new = RepositoryEntry(path=str(path), name=name)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc.errors(include_url=False)[0])}") from None
    spec = _spec(new, base)
    existing = [_spec(entry, base) for entry in config.repositories]
    for other in existing:
        if other.path == spec.path:
            raise ConfigError(f"{spec.path} is already configured as {other.name!r}")
        if other.name == spec.name:
            raise ConfigError(f"the name {spec.name!r} is already used by {other.path}")
    _, skipped = dedupe_repositories([*existing, spec])
    for item in skipped:
        if item.spec == spec:
            raise ConfigError(
                f"{spec.path} is the same repository as {item.same_as.name!r} "
                f"({item.same_as.path}); not added, it would be read twice"
            )
    entry: dict[str, Any] = {"path": str(spec.path), "name": spec.name}
    data["repositories"] = [*(data.get("repositories") or []), entry]
    config_file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return spec
