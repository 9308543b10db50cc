-- What goes wrong across projects: per issue type, how many projects meet it and how
-- often; per agent:strategy on that issue type, how often and where it fails.
-- One row per (issue_type, agent, strategy); issue_* columns repeat the issue type's
-- totals on each of its rows. Deleted attempts are excluded; attempts without a project
-- count as attempts but not as a project.
with attempts as (
    select * from {{ ref('stg_memory__fix_attempts') }}
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
