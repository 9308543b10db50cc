"""Facts that depend only on commit ids, copied between repositories that share history.

Teams register forks, mirrors and several clones of one project. A merge commit's
re-merge verdict is a function of the merge commit alone (its id fixes both parents and
their trees, and ``git merge-tree`` runs in a scratch repository with our config, not the
repository's), and a commit's search vector is a function of the commit alone (its id
fixes the subject, body and touched paths) and the model. So are a commit's change terms
(its diff, read in a scratch repository too) and a PR's group (its message and the
commits between its parents). So when another repository already holds the answer for
the same id, it is copied in SQL instead of being computed again: no ``git merge-tree``,
no ``git log -p``, no model call, no round trip through Python.

Only verdicts that do not depend on the repository's object store are copied: ``clean``,
``conflict`` and ``octopus``; ``parent_missing`` (a shallow clone) and ``error`` (a damaged
clone) are left to ``detect_merge_conflicts``.
"""

from __future__ import annotations

import duckdb

from symbiotic_assets.core.warehouse import table_exists

REUSABLE_STATUSES = ("clean", "conflict", "octopus")


def reuse_merge_verdicts(con: duckdb.DuckDBPyConnection, repository: str) -> int:
    """Copy verdicts other repositories hold for this repository's unjudged merges."""
    if not table_exists(con, "git", "merges"):
        return 0
    row = con.execute(
        """
        INSERT INTO git.merges
        SELECT $repo, m.merge_hash, m.parent_count, m.first_parent, m.second_parent,
               m.merge_kind, m.unrelated_histories, m.status, m.has_conflict,
               m.conflicted_paths, m.detail, m.merged_at
        FROM (
            SELECT DISTINCT ON (merge_hash) *
            FROM git.merges
            WHERE repository <> $repo AND status IN ('clean', 'conflict', 'octopus')
              AND merge_hash IN (
                  SELECT c.hash FROM git.commits c
                  WHERE c.repository = $repo AND c.parent_count >= 2
                    AND NOT EXISTS (SELECT 1 FROM git.merges x
                                    WHERE x.repository = $repo AND x.merge_hash = c.hash))
            ORDER BY merge_hash, repository
        ) m
        """,
        {"repo": repository},
    ).fetchone()
    return int(row[0]) if row else 0


def reuse_commit_vectors(con: duckdb.DuckDBPyConnection, repository: str, model: str) -> int:
    """Copy vectors other repositories hold for this repository's commits without one."""
    if not table_exists(con, "search", "commit_embeddings"):
        return 0
    row = con.execute(
        """
        INSERT INTO search.commit_embeddings
        SELECT $repo, e.hash, e.model, e.text_sha256, e.vector, now()::TIMESTAMP
        FROM (
            SELECT DISTINCT ON (hash) *
            FROM search.commit_embeddings
            WHERE model = $model AND repository <> $repo
              AND hash IN (
                  SELECT c.hash FROM git.commits c
                  WHERE c.repository = $repo AND c.is_reachable
                    AND NOT EXISTS (SELECT 1 FROM search.commit_embeddings x
                                    WHERE x.repository = $repo AND x.hash = c.hash
                                      AND x.model = $model))
            ORDER BY hash, repository
        ) e
        ON CONFLICT DO NOTHING
        """,
        {"repo": repository, "model": model},
    ).fetchone()
    return int(row[0]) if row else 0


def _full_history(con: duckdb.DuckDBPyConnection, repository: str) -> bool:
    """Whether ``repository`` was extracted from a complete (not shallow) clone."""
    row = con.execute(
        "SELECT NOT coalesce(is_shallow, true) FROM git.repositories WHERE repository = ?",
        [repository],
    ).fetchone()
    return bool(row and row[0])


def reuse_change_terms(con: duckdb.DuckDBPyConnection, repository: str, version: int) -> int:
    """Copy change terms other repositories hold for this repository's commits without them.

    A commit's terms come from its diff to its parent, read in a scratch repository with
    our attributes only (``search.change_terms.read_changes``), so they are a function of
    the commit id. Except in a shallow clone, whose cut-off commits read as root commits
    (their whole tree as added): shallow repositories neither lend nor borrow.
    """
    if not table_exists(con, "search", "change_terms") or not _full_history(con, repository):
        return 0
    row = con.execute(
        """
        INSERT INTO search.change_terms
        SELECT $repo, t.hash, t.functions, t.identifiers, t.version
        FROM (
            SELECT DISTINCT ON (hash) *
            FROM search.change_terms
            WHERE version = $version AND repository <> $repo
              AND repository IN (SELECT repository FROM git.repositories
                                 WHERE NOT coalesce(is_shallow, true))
              AND hash IN (
                  SELECT c.hash FROM git.commits c
                  WHERE c.repository = $repo AND c.is_reachable AND NOT c.is_merge
                    AND NOT EXISTS (SELECT 1 FROM search.change_terms x
                                    WHERE x.repository = $repo AND x.hash = c.hash
                                      AND x.version = $version))
            ORDER BY hash, repository
        ) t
        ON CONFLICT DO NOTHING
        """,
        {"repo": repository, "version": version},
    ).fetchone()
    return int(row[0]) if row else 0


def reuse_change_groups(con: duckdb.DuckDBPyConnection, repository: str) -> int:
    """Copy the PR groups other repositories found for this repository's merge commits.

    A PR group is a function of its commit: the number, branch and title come from the
    message, and a merge's members are ``git rev-list --no-merges P2 ^P1``, fixed by
    the parents the merge id names (a squash commit's group is itself). Each group is
    copied whole from one repository that has it. Shallow clones are left out, as for
    change terms: a cut-off history lacks members. Returns the rows (commits) copied.
    """
    if not table_exists(con, "search", "change_groups") or not _full_history(con, repository):
        return 0
    row = con.execute(
        """
        INSERT INTO search.change_groups
        SELECT $repo, g.group_hash, g.pr_number, g.branch, g.title, g.commit_hash
        FROM search.change_groups g
        JOIN (
            SELECT group_hash, min(repository) AS source
            FROM search.change_groups
            WHERE repository <> $repo
              AND repository IN (SELECT repository FROM git.repositories
                                 WHERE NOT coalesce(is_shallow, true))
              AND group_hash IN (
                  SELECT c.hash FROM git.commits c
                  WHERE c.repository = $repo AND c.is_reachable
                    AND NOT EXISTS (SELECT 1 FROM search.change_groups x
                                    WHERE x.repository = $repo AND x.group_hash = c.hash))
            GROUP BY group_hash
        ) s ON g.repository = s.source AND g.group_hash = s.group_hash
        ON CONFLICT DO NOTHING
        """,
        {"repo": repository},
    ).fetchone()
    return int(row[0]) if row else 0
