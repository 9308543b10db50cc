-- Fix attempts as the marts count them: deleted attempts (corrections that withdrew a
-- report) are left out here, once, so no mart can count them by accident.
select
    id as fix_attempt_id,
    idempotency_key,
    issue_type,
    message,
    file_path,
    line_number,
    stage,
    agent,
    strategy,
    agent || ':' || strategy as agent_strategy,
    success,
    session_id,
    "timestamp" as attempted_at,
    project,
    language,
    recorded_at,
    updated_at
from {{ source('memory', 'fix_attempts') }}
where not deleted
