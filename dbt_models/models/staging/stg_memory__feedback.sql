-- Recommendation feedback. Agent, strategy and issue type may be left out by the client
-- when it names the fix attempt that followed; they are then taken from that attempt
-- (deleted attempts included: the feedback happened even if the report was withdrawn).
with feedback as (
    select * from {{ source('memory', 'recommendation_feedback') }}
),

attempts as (
    select id, issue_type, agent, strategy, project
    from {{ source('memory', 'fix_attempts') }}
)

select
    f.id as feedback_id,
    f.idempotency_key,
    f.recommendation_id,
    f.fix_attempt_id,
    coalesce(f.issue_type, a.issue_type) as issue_type,
    coalesce(f.agent, a.agent) as agent,
    coalesce(f.strategy, a.strategy) as strategy,
    coalesce(f.agent, a.agent) || ':' || coalesce(f.strategy, a.strategy) as agent_strategy,
    f.shown,
    f.followed,
    f.outcome,
    -- outcome known: succeeded or failed; 'unknown' counts for neither
    case f.outcome when 'succeeded' then true when 'failed' then false end as succeeded,
    f.confidence,
    f.session_id,
    coalesce(f.project, a.project) as project,
    f."timestamp" as feedback_at,
    f.recorded_at
from feedback as f
left join attempts as a on a.id = f.fix_attempt_id
