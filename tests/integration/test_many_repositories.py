"""Many repositories: work only where something changed, the same tables in parallel.

Real repositories built with git, a real DuckDB file, the real Dagster schedule.
"""

from __future__ import annotations

import datetime as dt
import subprocess
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from gitrepo import ALICE, BOB, GitRepoBuilder, build_standard_repo

from symbiotic_assets.core.config import RepositorySpec
from symbiotic_assets.core.resources import SettingsResource, WarehouseResource
from symbiotic_assets.git.changes import (
    NOT_EXTRACTED,
    REFS_MOVED,
    current_fingerprint,
    plan_changes,
    refresh_many,
)
from symbiotic_assets.git.extract import refresh_repository

TICK = dt.datetime(2026, 1, 1, 12, tzinfo=dt.UTC)

# every git table, with the columns a run stamps with the wall clock left out
GIT_TABLES = {
    "repositories": "* EXCLUDE (extracted_at)",
    "commits": "* EXCLUDE (extracted_at, unreachable_since)",
    "commit_files": "*",
    "refs": "* EXCLUDE (extracted_at)",
    "ref_events": "*",
    "merges": "*",
}


def _commit(repo: Path, name: str, message: str) -> None:
    (repo / name).write_text(message + "\n")
    subprocess.run(["git", "-C", str(repo), "add", name], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=A", "-c", "user.email=a@example.com",
                    "commit", "-q", "-m", message], check=True)  # fmt: skip


def _repositories(root: Path) -> list[RepositorySpec]:
    """Four different histories: the standard one, a clone with more work, a bare clone
    and a repository with a rewritten branch."""
    build_standard_repo(root / "std")
    subprocess.run(["git", "clone", "-q", str(root / "std"), str(root / "more")], check=True)
    _commit(root / "more", "more.txt", "more work in the clone")
    subprocess.run(["git", "clone", "-q", "--bare", str(root / "std"), str(root / "bare.git")],
                   check=True)  # fmt: skip
    other = GitRepoBuilder(root / "other")
    other.commit("first", "2024-02-01T10:00:00+0000", ALICE, {"a.txt": "1\n"})
    other.git("checkout", "-q", "-b", "topic")
    other.commit("topic work", "2024-02-02T10:00:00+0000", BOB, {"b.txt": "2\n"})
    other.git("commit", "-q", "--amend", "-m", "topic work, amended",
              date="2024-02-02T11:00:00+0000", who=BOB)  # fmt: skip
    other.checkout("main")
    other.merge("topic", "Merge topic", "2024-02-03T10:00:00+0000", ALICE)
    return [
        RepositorySpec("std", root / "std"),
        RepositorySpec("more", root / "more"),
        RepositorySpec("bare", root / "bare.git"),
        RepositorySpec("other", root / "other"),
    ]


def _dump(warehouse: Path) -> dict[str, list[tuple]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {
            t: sorted(
                con.execute(f"SELECT {cols} FROM git.{t}").fetchall(),
                key=lambda r: tuple(str(x) for x in r),
            )
            for t, cols in GIT_TABLES.items()
        }


def test_parallel_refresh_gives_the_tables_of_a_sequential_one(tmp_path: Path):
    specs = _repositories(tmp_path / "repos")
    seq = refresh_many(tmp_path / "seq.duckdb", specs, workers=1)
    par = refresh_many(tmp_path / "par.duckdb", specs, workers=4)
    assert [o.error for o in seq] == [o.error for o in par] == ["", "", "", ""]
    assert [o.spec.name for o in par] == ["std", "more", "bare", "other"]  # input order
    a, b = _dump(tmp_path / "seq.duckdb"), _dump(tmp_path / "par.duckdb")
    assert {t: len(rows) for t, rows in a.items()} == {t: len(rows) for t, rows in b.items()}
    assert a["commits"] and a["merges"] and a["ref_events"]
    for table in GIT_TABLES:
        assert a[table] == b[table], table
    # verdicts copied between repositories sharing history equal verdicts computed alone
    alone: list[tuple] = []
    for spec in specs:
        own = tmp_path / f"alone-{spec.name}.duckdb"
        refresh_many(own, [spec], workers=1)
        alone += _dump(own)["merges"]
    assert sorted(alone, key=lambda r: tuple(str(x) for x in r)) == a["merges"]
    assert sum(o.extra.get("reused_verdicts", 0) for o in seq) == 4  # more, bare: 2 each
    # and nothing was written twice
    with duckdb.connect(str(tmp_path / "par.duckdb"), read_only=True) as con:
        assert con.execute(
            "SELECT count(*) FROM (SELECT repository, hash FROM git.commits GROUP BY ALL "
            "HAVING count(*) > 1)"
        ).fetchone() == (0,)


def test_plan_reports_only_what_changed(tmp_path: Path):
    specs = _repositories(tmp_path / "repos")
    warehouse = tmp_path / "w.duckdb"
    first = plan_changes(warehouse, specs)
    assert [c.reasons for c in first.changes] == [(NOT_EXTRACTED,)] * 4
    refresh_many(warehouse, specs, workers=2)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = dict(
            con.execute("SELECT repository, refs_fingerprint FROM git.repositories").fetchall()
        )
    assert stored == {s.name: current_fingerprint(s) for s in specs}
    assert plan_changes(warehouse, specs).changed == []

    # a new commit in one repository, a new branch (no new commit) in another
    subprocess.run(["git", "-C", str(specs[1].path), "branch", "idea"], check=True)
    _commit(specs[3].path, "c.txt", "more")
    plan = plan_changes(warehouse, specs)
    assert {c.spec.name: c.reasons for c in plan.changed} == {
        "more": (REFS_MOVED,),
        "other": (REFS_MOVED,),
    }
    # unfinished work counts too: a merge whose verdict is missing
    refresh_repository(warehouse, specs[1])
    refresh_repository(warehouse, specs[3])
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM git.merges WHERE repository = 'std'")
    plan = plan_changes(warehouse, specs)
    assert {c.spec.name: c.reasons for c in plan.changed} == {
        "std": ("2 merges without a verdict",)
    }
    # a repository that disappeared is reported, with the reason, not skipped
    gone = plan_changes(warehouse, [RepositorySpec("gone", tmp_path / "nowhere")])
    assert gone.changed[0].reasons[0].startswith("unreadable:")
    assert "does not exist" in gone.changed[0].reasons[0]


def test_hourly_schedule_requests_runs_only_for_changed_partitions(
    symbiotic_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    specs = _repositories(tmp_path / "repos")
    cfg = tmp_path / "symbiotic.yaml"
    cfg.write_text(
        "repositories:\n" + "".join(f"  - path: {s.path}\n    name: {s.name}\n" for s in specs)
    )
    monkeypatch.setenv("SYMBIOTIC_CONFIG", str(cfg))
    from symbiotic_assets.definitions import build_definitions

    schedule = build_definitions().resolve_schedule_def("hourly_git_refresh")

    def tick(instance: dg.DagsterInstance) -> list[str] | str:
        """Partitions requested, or the skip reason."""
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=TICK,
            # called directly, the schedule needs its resources (the defaults: SYMBIOTIC_*)
            resources={"settings": SettingsResource(), "warehouse": WarehouseResource()},
        ) as context:
            out = schedule(context)
        if isinstance(out, dg.SkipReason):
            return out.skip_message or ""
        return sorted(r.partition_key for r in out)

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("repositories", [s.name for s in specs])
        assert tick(instance) == ["bare", "more", "other", "std"]  # nothing extracted yet

        refresh_many(symbiotic_home / "warehouse.duckdb", specs, workers=2)
        idle = tick(instance)
        assert isinstance(idle, str) and "4 repositories checked" in idle and "none changed" in idle

        subprocess.run(["git", "-C", str(specs[0].path), "tag", "v9"], check=True)
        assert tick(instance) == ["std"]


def test_vectors_of_shared_commits_are_copied_not_embedded(tmp_path: Path):
    """A clone's commits get the vectors the model gives them, without calling the model."""
    from symbiotic_assets.core.resources import EmbedderResource
    from symbiotic_assets.git.shared_history import reuse_commit_vectors
    from symbiotic_assets.search.commit_embeddings import embed_repository, model_key

    specs = _repositories(tmp_path / "repos")[:2]  # std, and a clone with one more commit
    embedder = EmbedderResource().get_embedder()
    key = model_key(embedder)
    shared = tmp_path / "shared.duckdb"
    refresh_many(shared, specs, workers=1)
    with duckdb.connect(str(shared)) as con:
        embed_repository(con, "std", embedder)
        calls = embedder.model_calls
        copied = reuse_commit_vectors(con, "more", key)
        rest = embed_repository(con, "more", embedder)
        got = con.execute(
            "SELECT hash, text_sha256, vector FROM search.commit_embeddings "
            "WHERE repository = 'more' ORDER BY hash"
        ).fetchall()
        again = reuse_commit_vectors(con, "more", key)
    assert copied == 10 and rest.pending == 1 and again == 0
    assert embedder.model_calls - calls <= 1  # only the clone's own commit
    fresh = tmp_path / "fresh.duckdb"
    refresh_many(fresh, specs[1:], workers=1)
    with duckdb.connect(str(fresh)) as con:
        embed_repository(con, "more", embedder)
        want = con.execute(
            "SELECT hash, text_sha256, vector FROM search.commit_embeddings ORDER BY hash"
        ).fetchall()
    assert [(h, t) for h, t, _ in got] == [(h, t) for h, t, _ in want]
    for (_, _, v1), (_, _, v2) in zip(got, want, strict=True):
        assert max(abs(x - y) for x, y in zip(v1, v2, strict=True)) < 1e-5
