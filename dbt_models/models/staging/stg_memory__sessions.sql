-- Session events (event_type = 'session') with their JSON payload parsed: one row per
-- start or end event. fct_session_metrics folds them into one row per session.
select
    id as event_id,
    idempotency_key,
    payload ->> 'session_id' as session_id,
    payload ->> 'phase' as phase,
    nullif(trim(payload ->> 'project'), '') as project,
    lower(nullif(trim(payload ->> 'language'), '')) as language,
    cast(payload ->> 'duration_seconds' as double) as duration_seconds,
    cast(payload ->> 'quality_score' as double) as quality_score,
    coalesce(from_json(payload -> 'tools_used', '["VARCHAR"]'), []) as tools_used,
    "timestamp" as occurred_at,
    recorded_at
from {{ source('memory', 'events') }}
where event_type = 'session'
