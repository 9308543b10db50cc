"""Warehouse table definitions owned by Python assets (dbt owns ``staging`` and ``marts``).

One place to read what each schema holds. Every ``ensure_*`` is idempotent
(``CREATE ... IF NOT EXISTS``) and cheap, so each writer calls it before it writes and a
reader-facing build (dbt) can create empty sources for domains that never ran.
"""

from __future__ import annotations

from typing import Any

GIT_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS git;

CREATE TABLE IF NOT EXISTS git.repositories (
    repository VARCHAR NOT NULL,           -- partition key (a short name)
    repository_path VARCHAR NOT NULL,      -- absolute path of the work tree or bare repository
    default_branch VARCHAR,                -- branch that 'merged' refers to
    is_bare BOOLEAN,
    is_shallow BOOLEAN,
    has_reflog BOOLEAN,                    -- false: branch switches are unknown, not zero
    head_ref VARCHAR,                      -- symbolic HEAD, NULL when detached
    head_hash VARCHAR,
    refs_fingerprint VARCHAR,              -- hash of all history tips; unchanged = nothing to do
    commit_count BIGINT,
    last_commit_at TIMESTAMP,
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.commits (
    repository VARCHAR NOT NULL,
    hash VARCHAR NOT NULL,
    author_name VARCHAR,
    author_email VARCHAR,
    committer_name VARCHAR,
    committer_email VARCHAR,
    authored_at TIMESTAMP,                 -- UTC
    author_utc_offset_minutes INTEGER,     -- the author's offset, e.g. -300 for -0500
    committed_at TIMESTAMP,                -- UTC
    committer_utc_offset_minutes INTEGER,
    parent_hashes VARCHAR[],
    parent_count INTEGER,
    is_merge BOOLEAN,                      -- two or more parents
    subject VARCHAR,
    body VARCHAR,
    files_changed INTEGER,                 -- from the diff to the first parent; 0 for merges
    insertions BIGINT,                     -- text lines only; binary files are counted apart
    deletions BIGINT,
    binary_files INTEGER,
    is_bot BOOLEAN,
    is_reachable BOOLEAN NOT NULL,         -- false once a rewrite left it behind
    unreachable_since TIMESTAMP,
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.commit_files (
    repository VARCHAR NOT NULL,
    commit_hash VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    old_path VARCHAR,                      -- set for renames and copies
    is_binary BOOLEAN NOT NULL,
    insertions BIGINT,                     -- NULL for binary files
    deletions BIGINT
);

CREATE TABLE IF NOT EXISTS git.refs (
    repository VARCHAR NOT NULL,
    ref_name VARCHAR NOT NULL,             -- full name, refs/heads/main
    short_name VARCHAR NOT NULL,
    ref_type VARCHAR NOT NULL,             -- branch | remote_branch | tag
    tip_hash VARCHAR,                      -- the commit (annotated tags peeled)
    tip_committed_at TIMESTAMP,
    is_default BOOLEAN,
    is_merged_into_default BOOLEAN,        -- NULL when the repository has no default branch
    extracted_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS git.ref_events (
    repository VARCHAR NOT NULL,
    event_key VARCHAR NOT NULL,            -- stable identity of the reflog line
    ref_name VARCHAR NOT NULL,             -- HEAD or the ref whose log holds the line
    event_type VARCHAR NOT NULL,           -- checkout | branch_created | branch_deleted | branch_renamed
                                           -- | commit | merge | rebase | reset | pull | cherry_pick
                                           -- | clone | fetch | push | other
    from_ref VARCHAR,
    to_ref VARCHAR,
    is_switch BOOLEAN,                     -- checkout with from_ref <> to_ref
    old_hash VARCHAR,
    new_hash VARCHAR,
    actor_name VARCHAR,
    actor_email VARCHAR,
    occurred_at TIMESTAMP,                 -- UTC
    utc_offset_minutes INTEGER,
    message VARCHAR,
    source VARCHAR NOT NULL                -- reflog | refs_snapshot
);

CREATE TABLE IF NOT EXISTS git.merges (
    repository VARCHAR NOT NULL,
    merge_hash VARCHAR NOT NULL,
    parent_count INTEGER NOT NULL,
    first_parent VARCHAR,
    second_parent VARCHAR,
    merge_kind VARCHAR NOT NULL,           -- two_parent | octopus
    unrelated_histories BOOLEAN,           -- the parents share no ancestor
    status VARCHAR NOT NULL,               -- clean | conflict | octopus | parent_missing | error
    has_conflict BOOLEAN,                  -- NULL unless the merge was re-run
    conflicted_paths VARCHAR[],
    detail VARCHAR,
    merged_at TIMESTAMP                    -- committer date, UTC
);

-- git.metrics (a long table of per-day counts) is gone: the dbt marts
-- (fct_commit_velocity_daily and friends) are the one definition of each figure.
DROP VIEW IF EXISTS staging.stg_git__metrics;
DROP TABLE IF EXISTS git.metrics;
"""

#: Vector width of all-MiniLM-L6-v2, the default embedding model.
DIMENSION = 384

MEMORY_SCHEMA_SQL = """
CREATE SCHEMA IF NOT EXISTS memory;

CREATE TABLE IF NOT EXISTS memory.fix_attempts (
    id BIGINT NOT NULL,                    -- id in the memory store
    idempotency_key VARCHAR NOT NULL,
    issue_type VARCHAR NOT NULL,
    message VARCHAR NOT NULL,
    file_path VARCHAR,
    line_number INTEGER,
    stage VARCHAR NOT NULL,
    agent VARCHAR NOT NULL,
    strategy VARCHAR NOT NULL,
    success BOOLEAN NOT NULL,
    session_id VARCHAR,
    timestamp TIMESTAMP NOT NULL,          -- UTC
    project VARCHAR,
    language VARCHAR,
    recorded_at TIMESTAMP,
    updated_at TIMESTAMP,
    deleted BOOLEAN NOT NULL
);

CREATE TABLE IF NOT EXISTS memory.recommendation_feedback (
    id BIGINT NOT NULL,
    idempotency_key VARCHAR NOT NULL,
    recommendation_id VARCHAR NOT NULL,
    fix_attempt_id BIGINT,
    issue_type VARCHAR,
    agent VARCHAR,
    strategy VARCHAR,
    shown BOOLEAN NOT NULL,
    followed BOOLEAN NOT NULL,
    outcome VARCHAR NOT NULL,              -- succeeded | failed | unknown
    confidence DOUBLE,
    session_id VARCHAR,
    project VARCHAR,
    timestamp TIMESTAMP NOT NULL,
    recorded_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS memory.events (
    id BIGINT NOT NULL,
    idempotency_key VARCHAR NOT NULL,
    event_type VARCHAR NOT NULL,           -- session | skill_invocation | search | search_click | ...
    payload JSON NOT NULL,
    timestamp TIMESTAMP NOT NULL,
    recorded_at TIMESTAMP
);

CREATE TABLE IF NOT EXISTS memory.load_state (
    source_table VARCHAR NOT NULL,
    last_id BIGINT NOT NULL,
    loaded_at TIMESTAMP
);
"""

LEARNING_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS memory.fix_attempt_embeddings (
    attempt_id BIGINT NOT NULL,            -- memory.fix_attempts.id
    model VARCHAR NOT NULL,                -- IssueEmbedder.model_id: vectors of models never mix
    text_sha256 VARCHAR NOT NULL,          -- cache key of the embedded issue text
    vector FLOAT[{DIMENSION}] NOT NULL,    -- unit length
    embedded_at TIMESTAMP NOT NULL,
    PRIMARY KEY (attempt_id, model)
);

CREATE TABLE IF NOT EXISTS memory.recommender_state (
    version BIGINT NOT NULL,               -- increases by one per training run
    trained_at TIMESTAMP NOT NULL,
    model VARCHAR NOT NULL,
    last_attempt_id BIGINT NOT NULL,       -- outcomes up to here are in the pattern weights
    patterns INTEGER NOT NULL,
    state_json VARCHAR NOT NULL            -- learning.LearnedState.to_json()
);
"""


def ensure_memory_schema(con: Any) -> None:
    """``memory``: the copy of the event store that marts and learning read."""
    con.execute(MEMORY_SCHEMA_SQL)


def ensure_learning_schema(con: Any) -> None:
    """``memory``'s learned tables: attempt embeddings and recommender states."""
    ensure_memory_schema(con)
    con.execute(LEARNING_SCHEMA_SQL)


def ensure_git_schema(con: Any) -> None:
    """``git``: what the extraction reads from each repository (facts only, no metrics)."""
    con.execute(GIT_SCHEMA_SQL)
