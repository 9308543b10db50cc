{#- Window-parameterised marts, stored in the warehouse as DuckDB table macros so that
    the dbt mart (whole history) and the Python API (any window the caller asks for)
    run the same definition: the mart is `select * from <macro>(min date, max date)`.
    Names are catalog-qualified (`warehouse.`): dbt attaches the file under that alias and
    readers open the published snapshot, whose catalog is also `warehouse`. -#}

{% macro create_conflict_velocity_between() -%}
create or replace macro warehouse.marts.conflict_velocity_between(since, until) as table
with velocity as (
    select
        repository,
        commit_date,
        sum(non_merge_commits) over (
            partition by repository order by commit_date
            range between interval 6 days preceding and current row
        ) as commits_7d
    from warehouse.marts.fct_commit_velocity_daily
),

merge_days as (
    select
        m.repository,
        m.merge_date,
        m.conflict_rate,
        coalesce(v.commits_7d, 0) as commits_7d
    from warehouse.marts.fct_merge_conflicts_daily as m
    left join velocity as v on v.repository = m.repository and v.commit_date = m.merge_date
    where m.two_parent_merges > 0 and m.merge_date between since and until
),

scoped as (
    select repository, merge_date, conflict_rate, commits_7d from merge_days
    union all
    select '(all repositories)', merge_date, conflict_rate, commits_7d from merge_days
)

select
    repository,
    repository = '(all repositories)' as is_pooled,
    count(*) as merge_days,
    min(merge_date) as first_merge_date,
    max(merge_date) as last_merge_date,
    avg(commits_7d) as mean_commits_7d,
    avg(conflict_rate) as mean_daily_conflict_rate,
    case
        when count(*) >= 3 and stddev_pop(commits_7d) > 0 and stddev_pop(conflict_rate) > 0
            then corr(conflict_rate, commits_7d)
    end as conflict_velocity_correlation
from scoped
group by repository
{%- endmacro %}

{% macro create_issue_patterns_between() -%}
create or replace macro warehouse.marts.issue_patterns_between(since, until) as table
with attempts as (
    select * from warehouse.staging.stg_memory__fix_attempts
    where cast(attempted_at as date) between since and until
),

per_issue as (
    select
        issue_type,
        count(*) as issue_attempts,
        count(*) filter (where not success) as issue_failures,
        count(distinct project) as issue_projects,
        list(distinct project order by project) filter (where project is not null)
            as issue_project_names
    from attempts
    group by issue_type
),

per_strategy as (
    select
        issue_type,
        agent,
        strategy,
        any_value(agent_strategy) as agent_strategy,
        count(*) as attempts,
        count(*) filter (where success) as successes,
        count(*) filter (where not success) as failures,
        count(distinct project) as projects,
        count(distinct project) filter (where not success) as failing_projects,
        list(distinct project order by project) filter (where not success and project is not null)
            as failing_project_names,
        max(attempted_at) as last_attempted,
        max(attempted_at) filter (where not success) as last_failed
    from attempts
    group by issue_type, agent, strategy
)

select
    s.issue_type,
    s.agent,
    s.strategy,
    s.agent_strategy,
    i.issue_attempts,
    i.issue_failures,
    i.issue_projects,
    coalesce(i.issue_project_names, []) as issue_project_names,
    dense_rank() over (order by i.issue_projects desc, i.issue_attempts desc) as issue_type_rank,
    s.attempts,
    s.successes,
    s.failures,
    s.failures / cast(s.attempts as double) as failure_rate,
    (s.failures + 1.0) / (s.attempts + 2.0) as smoothed_failure_rate,
    s.projects,
    s.failing_projects,
    coalesce(s.failing_project_names, []) as failing_project_names,
    row_number() over (
        partition by s.issue_type
        order by s.failures desc, (s.failures + 1.0) / (s.attempts + 2.0) desc, s.agent_strategy
    ) as failing_rank,
    s.last_attempted,
    s.last_failed
from per_strategy as s
inner join per_issue as i using (issue_type)
{%- endmacro %}
