"""Warehouse table definitions owned by Python assets (dbt owns ``staging`` and ``marts``).

One place to read what each schema holds. Every ``ensure_*`` is idempotent
(``CREATE ... IF NOT EXISTS``) and cheap, so each writer calls it before it writes and a
reader-facing build (dbt) can create empty sources for domains that never ran.
"""

from __future__ import annotations

from typing import Any

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
