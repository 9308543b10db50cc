select
    repository,
    repository_path,
    "timestamp" as metric_at,
    metric_type,
    value as metric_value
from {{ source('git', 'metrics') }}
