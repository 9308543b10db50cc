select
    repository,
    hash as commit_hash,
    author_name,
    lower(author_email) as author_email,
    committer_name,
    lower(committer_email) as committer_email,
    authored_at,
    author_utc_offset_minutes,
    -- the author's own wall clock: what "working hours" means for that person
    authored_at + to_minutes(coalesce(author_utc_offset_minutes, 0)) as authored_at_local,
    committed_at,
    committer_utc_offset_minutes,
    parent_count,
    coalesce(is_merge, parent_count >= 2) as is_merge,
    coalesce(is_bot, false) as is_bot,
    is_reachable,
    unreachable_since,
    subject,
    -- NULL churn means unknown (git could not compute the diff: the clone lacks objects),
    -- never zero; sums then cover the commits whose churn is known, churn_known says which
    files_changed is not null as churn_known,
    files_changed,
    insertions,
    deletions,
    binary_files
from {{ source('git', 'commits') }}
