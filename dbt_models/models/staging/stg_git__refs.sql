select
    repository,
    ref_name,
    short_name,
    ref_type,
    tip_hash,
    tip_committed_at,
    coalesce(is_default, false) as is_default,
    is_merged_into_default
from {{ source('git', 'refs') }}
