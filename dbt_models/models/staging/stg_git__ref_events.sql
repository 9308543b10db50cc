select
    repository,
    event_key,
    ref_name,
    event_type,
    from_ref,
    to_ref,
    -- a switch is a checkout that moved HEAD to a different ref (A -> A is not one)
    coalesce(is_switch, false) and ref_name = 'HEAD' as is_switch,
    old_hash,
    new_hash,
    actor_name,
    lower(actor_email) as actor_email,
    occurred_at,
    utc_offset_minutes,
    message,
    source as event_source
from {{ source('git', 'ref_events') }}
