select
    repository,
    repository_path,
    default_branch,
    coalesce(is_bare, false) as is_bare,
    coalesce(is_shallow, false) as is_shallow,
    coalesce(has_reflog, false) as has_reflog,
    head_ref,
    head_hash,
    commit_count as reachable_commit_count,
    last_commit_at,
    extracted_at
from {{ source('git', 'repositories') }}
