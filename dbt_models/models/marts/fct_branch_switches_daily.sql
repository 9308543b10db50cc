-- Branch switches per UTC day: HEAD reflog lines "checkout: moving from A to B" with
-- A <> B. Only local clones keep a reflog, and git expires reflog lines (90 days by
-- default), so: repositories with a reflog get every day between their first and last
-- HEAD reflog line (0 on quiet days); repositories without one get their commit days
-- with branch_switches NULL ("unknown"), never 0.
with repositories as (
    select repository, repository_path, has_reflog
    from {{ ref('stg_git__repositories') }}
),

head_events as (
    select e.*
    from {{ ref('stg_git__ref_events') }} as e
    inner join repositories as r using (repository)
    where r.has_reflog and e.ref_name = 'HEAD' and e.event_source = 'reflog'
),

per_day as (
    select
        repository,
        cast(date_trunc('day', occurred_at) as date) as switch_date,
        count(*) filter (where is_switch) as branch_switches,
        count(*) filter (where event_type = 'checkout') as checkouts
    from head_events
    group by all
),

reflog_spine as (
    select
        repository,
        cast(unnest(generate_series(
            cast(min(switch_date) as timestamp), cast(max(switch_date) as timestamp), interval 1 day
        )) as date) as switch_date
    from per_day
    group by repository
),

known as (
    select
        s.repository,
        s.switch_date,
        true as has_reflog,
        coalesce(d.branch_switches, 0) as branch_switches,
        coalesce(d.checkouts, 0) as checkouts
    from reflog_spine as s
    left join per_day as d using (repository, switch_date)
),

unknown as (
    select
        v.repository,
        v.commit_date as switch_date,
        false as has_reflog,
        cast(null as bigint) as branch_switches,
        cast(null as bigint) as checkouts
    from {{ ref('fct_commit_velocity_daily') }} as v
    inner join repositories as r using (repository)
    where not r.has_reflog
),

unioned as (
    select * from known
    union all
    select * from unknown
)

select
    u.repository,
    r.repository_path,
    u.switch_date,
    cast(u.switch_date as timestamp) as day_start,
    u.has_reflog,
    case when u.has_reflog then 'reflog' else 'unknown' end as switch_data,
    u.branch_switches,
    u.checkouts,
    avg(u.branch_switches) over (
        partition by u.repository order by u.switch_date
        range between interval 6 days preceding and current row
    ) as branch_switches_7d_avg
from unioned as u
inner join repositories as r using (repository)
