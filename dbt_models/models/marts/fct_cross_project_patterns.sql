-- When work happens, across repositories: non-merge reachable commits by the author's
-- local weekday and hour (their own clock, from the stored UTC offset), kept per UTC
-- day so that dashboards and the API can restrict the period. Sum over days and
-- repositories for a weekday x hour heatmap; compare repositories by their shares.
with commits as (
    select * from {{ ref('stg_git__commits') }}
    where is_reachable and not is_merge
)

select
    c.repository,
    r.repository_path,
    cast(date_trunc('day', c.authored_at) as date) as activity_date,
    cast(date_trunc('day', c.authored_at) as timestamp) as day_start,
    cast(isodow(c.authored_at_local) as integer) as weekday_local,
    dayname(c.authored_at_local) as weekday_name,
    cast(hour(c.authored_at_local) as integer) as hour_local,
    count(*) as commits,
    count(*) filter (where c.is_bot) as bot_commits,
    count(distinct c.author_email) as authors
from commits as c
left join {{ ref('stg_git__repositories') }} as r using (repository)
group by all
