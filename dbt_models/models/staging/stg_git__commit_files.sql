select
    repository,
    commit_hash,
    path,
    old_path,
    old_path is not null and old_path <> path as is_rename,
    is_binary,
    insertions,
    deletions
from {{ source('git', 'commit_files') }}
