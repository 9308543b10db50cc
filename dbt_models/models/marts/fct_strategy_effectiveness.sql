-- Which agent:strategy fixes which issue type, from every fix attempt (deleted ones
-- excluded) and from the feedback on recommendations of that agent:strategy.
-- One row per (agent, strategy, issue_type), plus one per agent:strategy with
-- issue_type = '(all)' (is_all_issue_types) over all issue types: sum one or the other.
--
-- success_rate = successes / attempts: failed attempts are in the denominator (a rate
-- over successful attempts only is always 1). smoothed_success_rate = (s + 1) / (n + 2).
-- Feedback: times_shown, times_followed, and success_rate_when_followed = followed
-- recommendations that succeeded / followed ones whose outcome is known.
with attempts as (
    select * from {{ ref('stg_memory__fix_attempts') }}
),

feedback as (
    select * from {{ ref('stg_memory__feedback') }}
    where agent is not null and strategy is not null
),

attempts_scoped as (
    select agent, strategy, issue_type, success, attempted_at, project from attempts
    union all
    select agent, strategy, '(all)', success, attempted_at, project from attempts
),

feedback_scoped as (
    select agent, strategy, issue_type, shown, followed, succeeded, confidence
    from feedback
    where issue_type is not null
    union all
    select agent, strategy, '(all)', shown, followed, succeeded, confidence from feedback
),

attempt_stats as (
    select
        agent,
        strategy,
        issue_type,
        count(*) as attempts,
        count(*) filter (where success) as successes,
        count(*) filter (where not success) as failures,
        count(distinct project) as projects,
        max(attempted_at) as last_attempted,
        max(attempted_at) filter (where success) as last_successful
    from attempts_scoped
    group by all
),

feedback_stats as (
    select
        agent,
        strategy,
        issue_type,
        count(*) as feedback_rows,
        count(*) filter (where shown) as times_shown,
        count(*) filter (where followed) as times_followed,
        count(*) filter (where followed and succeeded) as followed_succeeded,
        count(*) filter (where followed and succeeded = false) as followed_failed,
        avg(confidence) filter (where followed) as mean_confidence_when_followed
    from feedback_scoped
    group by all
),

joined as (
    select
        coalesce(a.agent, f.agent) as agent,
        coalesce(a.strategy, f.strategy) as strategy,
        coalesce(a.issue_type, f.issue_type) as issue_type,
        coalesce(a.attempts, 0) as attempts,
        coalesce(a.successes, 0) as successes,
        coalesce(a.failures, 0) as failures,
        coalesce(a.projects, 0) as projects,
        a.last_attempted,
        a.last_successful,
        coalesce(f.times_shown, 0) as times_shown,
        coalesce(f.times_followed, 0) as times_followed,
        coalesce(f.followed_succeeded, 0) as followed_succeeded,
        coalesce(f.followed_failed, 0) as followed_failed,
        f.mean_confidence_when_followed
    from attempt_stats as a
    full outer join feedback_stats as f
        on a.agent = f.agent and a.strategy = f.strategy and a.issue_type = f.issue_type
)

select
    agent,
    strategy,
    agent || ':' || strategy as agent_strategy,
    issue_type,
    issue_type = '(all)' as is_all_issue_types,
    attempts,
    successes,
    failures,
    case when attempts > 0 then successes / cast(attempts as double) end as success_rate,
    (successes + 1.0) / (attempts + 2.0) as smoothed_success_rate,
    projects,
    last_attempted,
    last_successful,
    times_shown,
    times_followed,
    case when times_shown > 0 then times_followed / cast(times_shown as double) end as follow_rate,
    followed_succeeded,
    followed_failed,
    case when followed_succeeded + followed_failed > 0
        then followed_succeeded / cast(followed_succeeded + followed_failed as double) end
        as success_rate_when_followed,
    mean_confidence_when_followed
from joined
