"""Untrusted repositories are read, never executed.

Each test arms a trap in a real repository: a config key (merge driver, filters, textconv,
external diff, fsmonitor, hooks, gpg, ssh, credential helper, promisor remote) whose
program writes a marker file. The product's extraction, merges and the Dagster refresh
job run on it and no marker may appear. Then plain git runs a command that does
trigger the trap, and the marker must appear: a trap that never fires proves nothing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.git.extract import refresh_repository
from symbiotic_assets.git.merges import detect_merge_conflicts
from symbiotic_assets.git.repository import GitRepository, RepositoryError


def build_history(path: Path) -> GitRepoBuilder:
    """main and side both change f.txt (a conflicting merge) and side adds g.txt (a clean one).

    Attributes select the ``evil`` drivers for every path: in the tree (so in the work
    tree), and in ``info/attributes``. On main: main~4 base, main~3 "main f", main~2 the
    conflicting merge of side, main~1 "main h", main the clean merge of side2.
    """
    b = GitRepoBuilder(path)
    attrs = "* merge=evil diff=evil filter=evil\n"
    b.commit("base", "2024-05-01T10:00:00+0000", ALICE,
             {".gitattributes": attrs, "f.txt": "a\nb\nc\n"})  # fmt: skip
    b.git("branch", "side")
    b.checkout("side", date="2024-05-01T11:00:00+0000")
    b.commit("side f", "2024-05-01T12:00:00+0000", BOB, {"f.txt": "side\nb\nc\n"})
    b.checkout("main", date="2024-05-01T13:00:00+0000")
    b.commit("main f", "2024-05-01T14:00:00+0000", ALICE, {"f.txt": "main\nb\nc\n"})
    assert b.merge("side", "Merge side", "2024-05-01T15:00:00+0000", ALICE) is True
    b.git("branch", "side2")
    b.checkout("side2", date="2024-05-02T09:00:00+0000")
    b.commit("side2 g", "2024-05-02T10:00:00+0000", BOB, {"g.txt": "g\n"})
    b.checkout("main", date="2024-05-02T11:00:00+0000")
    b.commit("main h", "2024-05-02T12:00:00+0000", ALICE, {"h.txt": "h\n"})
    assert b.merge("side2", "Merge side2", "2024-05-02T13:00:00+0000", ALICE) is False
    # a commit with a (fake) signature: showing signatures runs gpg.program on it
    raw = b.git("cat-file", "commit", "main~1")
    header, _, message = raw.partition("\n\n")
    sig = "gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQ==\n -----END PGP SIGNATURE-----"
    signed = b.git("hash-object", "-t", "commit", "-w", "--stdin",
                   input=f"{header}\n{sig}\n\n{message}".encode()).strip()  # fmt: skip
    b.git("branch", "signed", signed)
    (path / ".git" / "info").mkdir(exist_ok=True)
    (path / ".git" / "info" / "attributes").write_text(attrs)
    return b


def touch(marker: Path, then: str = "") -> str:
    """A shell command that writes ``marker`` (and then runs ``then``)."""
    return f"touch {shlex.quote(str(marker))}" + (f"; {then}" if then else "")


def script(marker: Path) -> str:
    """An executable that writes ``marker`` and fails, for keys git runs without a shell."""
    path = marker.parent / f"{marker.name}.sh"
    path.write_text(f"#!/bin/sh\n{touch(marker)}\nexit 1\n")
    path.chmod(0o755)
    return str(path)


@dataclass(frozen=True)
class Trap:
    """Config keys naming a program, and a plain git command that makes git run it."""

    name: str
    config: Callable[[Path], dict[str, str]]  # marker -> {key: value}
    trigger: list[str]
    trigger_input: bytes | None = None


def _hook_dir(marker: Path) -> str:
    hooks = marker.parent / "hook-scripts"
    hooks.mkdir(exist_ok=True)
    for hook in ("pre-commit", "post-commit", "post-checkout", "reference-transaction",
                 "post-index-change", "pre-auto-gc", "post-rewrite", "post-merge"):  # fmt: skip
        script = hooks / hook
        script.write_text(f"#!/bin/sh\n{touch(marker)}\n")
        script.chmod(0o755)
    return str(hooks)


TRAPS = [
    Trap(
        "merge_driver",
        lambda m: {"merge.evil.driver": touch(m, "false")},
        ["merge-tree", "--write-tree", "main~3", "side"],
    ),  # fmt: skip
    Trap(
        "filter_clean",
        lambda m: {"filter.evil.clean": touch(m, "cat"), "merge.renormalize": "true"},
        ["merge-tree", "--write-tree", "main~3", "side"],
    ),  # fmt: skip
    Trap(
        "filter_smudge",
        lambda m: {"filter.evil.smudge": touch(m, "cat")},
        ["checkout", "-q", "side2", "--", "g.txt"],
    ),  # fmt: skip
    Trap(
        "filter_process",
        lambda m: {"filter.evil.process": touch(m, "exit 1"), "merge.renormalize": "true"},
        ["merge-tree", "--write-tree", "main~3", "side"],
    ),  # fmt: skip
    Trap(
        "textconv", lambda m: {"diff.evil.textconv": touch(m, "cat")}, ["log", "-p", "-1", "main~3"]
    ),  # fmt: skip
    Trap(
        "diff_command",
        lambda m: {"diff.evil.command": touch(m)},
        ["log", "-p", "--ext-diff", "-1", "main~3"],
    ),  # fmt: skip
    Trap(
        "diff_external", lambda m: {"diff.external": touch(m)}, ["diff", "main~4", "main~3"]
    ),  # fmt: skip
    Trap("fsmonitor", lambda m: {"core.fsmonitor": touch(m)}, ["status"]),
    Trap(
        "hooks",
        lambda m: {"core.hooksPath": _hook_dir(m)},
        ["commit", "-q", "--allow-empty", "-m", "x"],
    ),  # fmt: skip
    Trap(
        "gpg",
        lambda m: {"gpg.program": script(m), "log.showSignature": "true"},
        ["log", "-1", "signed"],
    ),  # fmt: skip
    Trap(
        "ssh_command",
        lambda m: {"core.sshCommand": touch(m, "false")},
        ["ls-remote", "ssh://example.invalid/repo.git"],
    ),  # fmt: skip
    Trap(
        "credential_helper",
        lambda m: {"credential.helper": "!" + touch(m, "true #")},
        ["credential", "fill"],
        b"protocol=https\nhost=example.invalid\n\n",
    ),  # fmt: skip
    Trap(
        "ext_transport",
        lambda m: {
            "remote.origin.url": "ext::sh -c " + touch(m).replace(" ", "% "),
            "protocol.allow": "always",
        },
        ["ls-remote", "origin"],
    ),  # fmt: skip
]


def plain_git(repo: Path, builder: GitRepoBuilder, args: list[str],
              stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """git as a person runs it in their clone: the repository's config applies."""
    return subprocess.run(["git", *args], cwd=repo, env=builder.env, input=stdin,
                          capture_output=True, check=False, timeout=60)  # fmt: skip


def arm(builder: GitRepoBuilder, settings: dict[str, str]) -> None:
    for key, value in settings.items():
        builder.git("config", key, value)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("trust") / "history"
    build_history(path)
    return path


def _copy(history: Path, target: Path) -> GitRepoBuilder:
    """A copy of the built history, with a builder (and its isolated home) of its own."""
    shutil.copytree(history, target, symlinks=True)
    return GitRepoBuilder(target)  # re-initialising an existing repository changes nothing


def run_product(repo: Path, warehouse: Path) -> tuple[int, list[tuple]]:
    """Extraction then conflict detection, as the git_refresh job runs them."""
    spec = RepositorySpec(name="hostile", path=repo)
    refresh = refresh_repository(str(warehouse), spec)
    merges = detect_merge_conflicts(str(warehouse), spec)
    assert merges.examined == 2
    with duckdb.connect(str(warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT status, has_conflict, conflicted_paths FROM git.merges ORDER BY merged_at"
        ).fetchall()
    return refresh.new_commits, rows


@pytest.mark.parametrize("trap", TRAPS, ids=[t.name for t in TRAPS])
def test_no_configured_program_runs(trap: Trap, history: Path, tmp_path: Path):
    builder = _copy(history, tmp_path / "repo")
    marker = tmp_path / "markers" / trap.name
    marker.parent.mkdir()
    arm(builder, trap.config(marker))

    commits, merges = run_product(builder.path, tmp_path / "w.duckdb")
    assert commits == 8  # seven on main and side branches, and the signed one
    # verdicts of git's own merge, whatever the repository's drivers would say
    assert merges == [("conflict", True, ["f.txt"]), ("clean", False, [])]
    repo = GitRepository.open("hostile", builder.path)
    repo.text(["log", "-p", "--ext-diff", "--textconv", "-2", "main"])  # even if asked for
    repo.text(["log", "--show-signature", "-1", "signed"])
    assert not marker.exists(), f"{trap.name}: the repository's command ran in our git calls"

    # the trap is armed: plain git in the same repository does run it
    plain_git(builder.path, builder, trap.trigger, trap.trigger_input)
    assert marker.exists(), f"{trap.name}: the trap never fires, so the test proves nothing"


def test_all_traps_at_once_through_the_refresh_job(
    history: Path, tmp_path: Path, symbiotic_home: Path, monkeypatch: pytest.MonkeyPatch
):
    """Every trap armed in one repository, run by the Dagster job the schedule and the MCP
    ``refresh`` tool run."""
    builder = _copy(history, tmp_path / "hostile")
    markers = tmp_path / "markers"
    markers.mkdir()
    for trap in TRAPS:
        if trap.name not in ("filter_process", "diff_command"):  # they displace clean and textconv
            arm(builder, trap.config(markers / trap.name))
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text("repositories:\n  - path: hostile\n    name: hostile\n")
    monkeypatch.setenv("SYMBIOTIC_CONFIG", str(cfg))
    from symbiotic_assets.definitions import build_definitions

    job = build_definitions().resolve_job_def("git_refresh")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", ["hostile"])
        assert job.execute_in_process(partition_key="hostile", instance=instance).success
    assert sorted(p.name for p in markers.iterdir() if p.is_file() and p.suffix != ".sh") == []
    with duckdb.connect(str(symbiotic_home / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT status, count(*) FROM git.merges GROUP BY 1 ORDER BY 1"
        ).fetchall() == [("clean", 1), ("conflict", 1)]


def test_partial_clone_missing_object_is_not_fetched(history: Path, tmp_path: Path):
    """A promisor remote is fetched as soon as an object is missing, through any transport
    its URL names (``ext::`` runs a shell command), even by ``git log --numstat``."""
    builder = _copy(history, tmp_path / "partial")
    marker = tmp_path / "lazy_fetch"
    arm(builder, {"core.repositoryformatversion": "1", "extensions.partialClone": "origin",
                  "remote.origin.promisor": "true", "protocol.allow": "always",
                  "remote.origin.url": "ext::sh -c " + touch(marker).replace(" ", "% ")})  # fmt: skip
    blob = builder.git("rev-parse", "main~1:h.txt").strip()
    (builder.path / ".git" / "objects" / blob[:2] / blob[2:]).unlink()

    spec = RepositorySpec(name="partial", path=builder.path)
    try:
        refresh_repository(str(tmp_path / "w.duckdb"), spec)
        detect_merge_conflicts(str(tmp_path / "w.duckdb"), spec)
    except RepositoryError as exc:
        assert "partial" in str(exc)  # a damaged clone may fail; it must not fetch
    assert not marker.exists()

    plain_git(builder.path, builder, ["log", "--numstat", "-1", "main~1"])
    assert marker.exists(), "plain git log did not try the promisor remote: the trap is not armed"


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_safe_directory_of_the_operator_still_applies(
    history: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """git sees no global config of the operator but their ``safe.directory`` entries: a
    clone owned by someone else is refused, unless the operator allowed it."""
    from symbiotic_assets.git import repository

    target = tmp_path / "theirs"
    shutil.copytree(history, target, symlinks=True)
    subprocess.run(["chown", "-R", "65534:65534", str(target)], check=True)
    operator = tmp_path / "operator.gitconfig"
    operator.write_text("[user]\n\tname = Operator\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(operator))
    repository._global_config.cache_clear()
    try:
        with pytest.raises(RepositoryError, match="dubious ownership"):
            GitRepository.open("theirs", target)
        operator.write_text(f"[safe]\n\tdirectory = {target}\n[core]\n\tfsmonitor = true\n")
        repository._global_config.cache_clear()
        repo = GitRepository.open("theirs", target)
        assert repo.text(["rev-list", "--count", "main"]).strip() == "7"
        carried = Path(repository._global_config()).read_text()
        assert str(target) in carried and "fsmonitor" not in carried
    finally:
        repository._global_config.cache_clear()
