select
    repository,
    merge_hash,
    parent_count,
    first_parent,
    second_parent,
    merge_kind,
    coalesce(unrelated_histories, false) as is_unrelated_histories,
    status as merge_status,
    -- only two-parent merges that were re-run have a verdict; the rest stay NULL
    case
        when merge_kind = 'two_parent' and status = 'conflict' then true
        when merge_kind = 'two_parent' and status = 'clean' then false
    end as has_conflict,
    coalesce(len(conflicted_paths), 0) as conflicted_path_count,
    detail,
    merged_at
from {{ source('git', 'merges') }}
