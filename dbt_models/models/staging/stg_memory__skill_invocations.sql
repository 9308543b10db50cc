-- Skill invocations (event_type = 'skill_invocation') with their JSON payload parsed.
-- `succeeded` is NULL when the client did not know the outcome; an invocation that did
-- not complete is a failure (the model refuses "succeeded" without "completed").
with parsed as (
    select
        id as event_id,
        idempotency_key,
        payload ->> 'skill' as skill,
        payload ->> 'session_id' as session_id,
        nullif(trim(payload ->> 'project'), '') as project,
        lower(nullif(trim(payload ->> 'language'), '')) as language,
        lower(nullif(trim(payload ->> 'complexity'), '')) as complexity,
        cast(payload ->> 'completed' as boolean) as completed,
        cast(payload ->> 'succeeded' as boolean) as reported_succeeded,
        cast(payload ->> 'duration_seconds' as double) as duration_seconds,
        payload ->> 'error_type' as error_type,
        "timestamp" as invoked_at,
        recorded_at
    from {{ source('memory', 'events') }}
    where event_type = 'skill_invocation'
)

select
    *,
    case when not completed then false else reported_succeeded end as succeeded,
    not completed or reported_succeeded is not null as has_outcome
from parsed
