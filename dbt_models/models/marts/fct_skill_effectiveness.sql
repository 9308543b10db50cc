-- How well each skill works, overall and per context (project, language, complexity).
-- context_type = 'overall' has one context ('(all)'); the others have one context per
-- value, '(unknown)' where the invocation did not say. Sum over one context_type only.
--
-- Success rate = successes / invocations with a known outcome. An invocation that did not
-- complete is a failure; one that completed without a reported outcome is left out of the
-- rate (counted in invocations). smoothed_success_rate = (s + 1) / (n + 2) (Laplace, a
-- uniform prior): 1 of 1 is 2/3, not 100%, and ranks below 9 of 10 (10/12).
with invocations as (
    select * from {{ ref('stg_memory__skill_invocations') }}
),

contexts as (
    select 'overall' as context_type, '(all)' as context_value, * from invocations
    union all
    select 'project', coalesce(project, '(unknown)'), * from invocations
    union all
    select 'language', coalesce(language, '(unknown)'), * from invocations
    union all
    select 'complexity', coalesce(complexity, '(unknown)'), * from invocations
),

per_skill as (
    select
        context_type,
        context_value,
        skill,
        count(*) as invocations,
        count(*) filter (where completed) as completed_invocations,
        count(*) filter (where has_outcome) as invocations_with_outcome,
        count(*) filter (where succeeded) as successes,
        count(*) filter (where succeeded = false) as failures,
        count(distinct session_id) as sessions,
        max(invoked_at) as last_attempted,
        max(invoked_at) filter (where succeeded) as last_succeeded,
        avg(duration_seconds) as mean_duration_seconds,
        list(distinct error_type order by error_type) filter (where error_type is not null)
            as error_types
    from contexts
    group by context_type, context_value, skill
),

rated as (
    select
        *,
        case when invocations_with_outcome > 0
            then successes / cast(invocations_with_outcome as double) end as skill_success_rate,
        (successes + 1.0) / (invocations_with_outcome + 2.0) as smoothed_success_rate,
        completed_invocations / cast(invocations as double) as completion_rate
    from per_skill
),

ranked as (
    select
        *,
        row_number() over (
            partition by context_type, context_value
            order by smoothed_success_rate desc, invocations_with_outcome desc, skill
        ) as effectiveness_rank
    from rated
)

select
    context_type,
    context_value,
    skill,
    invocations,
    completed_invocations,
    invocations_with_outcome,
    successes,
    failures,
    sessions,
    skill_success_rate,
    smoothed_success_rate,
    completion_rate,
    mean_duration_seconds,
    coalesce(error_types, []) as error_types,
    last_attempted,
    last_succeeded,
    effectiveness_rank,
    effectiveness_rank = 1 as is_most_effective,
    -- the context's three best skills by smoothed success rate (same list on its rows)
    list(skill order by effectiveness_rank) filter (where effectiveness_rank <= 3) over (
        partition by context_type, context_value
    ) as most_effective_skills
from ranked
