-- One row per agent session: its own figures (duration, quality, tools, fix attempts,
-- skill invocations) next to the git activity of the session's project.
--
-- Project -> repository: a session's `project` names the repository whose partition
-- name (`repository`, the name in symbiotic.yaml) is equal to it, compared
-- case-insensitively after trimming. Sessions whose project matches no repository keep
-- their row, with repository and the git figures NULL.
--
-- Git figures cover the trailing window of `session_window_days` (30) days ending when
-- the session ended (window_end; the start when no end was recorded): a session lasts
-- hours, too short for a per-day rate, and the window says how the project was moving
-- when the session ran. commits_during_session counts the commits between start and end.
{% set window_days = var('session_window_days') %}

with events as (
    select * from {{ ref('stg_memory__sessions') }}
),

sessions as (
    select
        session_id,
        min(occurred_at) filter (where phase = 'start') as start_event_at,
        max(occurred_at) filter (where phase = 'end') as ended_at,
        arg_max(duration_seconds, occurred_at) filter (
            where phase = 'end' and duration_seconds is not null
        ) as reported_duration_seconds,
        arg_max(quality_score, occurred_at) filter (
            where phase = 'end' and quality_score is not null
        ) as quality_score,
        -- the latest project and language the session stated
        arg_max(project, occurred_at) filter (where project is not null) as project,
        arg_max(language, occurred_at) filter (where language is not null) as language,
        list_sort(list_distinct(flatten(list(tools_used)))) as tools_used,
        count(*) as session_events
    from events
    group by session_id
),

timed as (
    select
        *,
        coalesce(
            start_event_at, ended_at - to_microseconds(cast(reported_duration_seconds * 1e6 as bigint))
        ) as started_at,
        coalesce(reported_duration_seconds, epoch(ended_at - start_event_at)) as duration_seconds,
        coalesce(ended_at, start_event_at) as window_end
    from sessions
),

matched as (
    select
        t.*,
        r.repository,
        r.has_reflog,
        t.window_end - to_days({{ window_days }}) as window_start
    from timed as t
    left join {{ ref('stg_git__repositories') }} as r
        on lower(trim(t.project)) = lower(r.repository)
),

commits as (
    select repository, commit_hash, authored_at, is_merge
    from {{ ref('stg_git__commits') }}
    where is_reachable
),

window_commits as (
    select
        m.session_id,
        count(c.commit_hash) as window_commits,
        count(c.commit_hash) filter (where not c.is_merge) as window_non_merge_commits
    from matched as m
    inner join commits as c
        on c.repository = m.repository
        and c.authored_at > m.window_start
        and c.authored_at <= m.window_end
    group by m.session_id
),

session_commits as (
    select m.session_id, count(*) as commits_during_session
    from matched as m
    inner join commits as c
        on c.repository = m.repository
        and c.authored_at >= m.started_at
        and c.authored_at <= m.ended_at
    group by m.session_id
),

window_switches as (
    select m.session_id, count(*) as window_branch_switches
    from matched as m
    inner join {{ ref('stg_git__ref_events') }} as e
        on e.repository = m.repository
        and e.occurred_at > m.window_start
        and e.occurred_at <= m.window_end
    where e.is_switch and e.event_source = 'reflog'
    group by m.session_id
),

window_merges as (
    select
        m.session_id,
        count(*) as window_two_parent_merges,
        count(*) filter (where g.has_conflict) as window_conflicting_merges
    from matched as m
    inner join {{ ref('stg_git__merges') }} as g
        on g.repository = m.repository
        and g.merged_at > m.window_start
        and g.merged_at <= m.window_end
    inner join commits as c on c.repository = g.repository and c.commit_hash = g.merge_hash
    where g.has_conflict is not null
    group by m.session_id
),

attempts as (
    select
        session_id,
        count(*) as fix_attempts,
        count(*) filter (where success) as fix_successes
    from {{ ref('stg_memory__fix_attempts') }}
    where session_id is not null
    group by session_id
),

skills as (
    select
        session_id,
        count(*) as skill_invocations,
        count(*) filter (where has_outcome) as skill_invocations_with_outcome,
        count(*) filter (where succeeded) as skill_successes
    from {{ ref('stg_memory__skill_invocations') }}
    where session_id is not null
    group by session_id
)

select
    m.session_id,
    m.project,
    m.repository,
    m.language,
    case when m.ended_at is null then 'open' else 'ended' end as session_status,
    m.started_at,
    m.ended_at,
    cast(date_trunc('day', coalesce(m.started_at, m.window_end)) as timestamp) as day_start,
    m.duration_seconds,
    m.quality_score,
    m.tools_used,
    len(m.tools_used) as tools_used_count,
    m.session_events,
    m.window_start,
    m.window_end,
    {{ window_days }} as window_days,
    case when m.repository is not null then coalesce(w.window_commits, 0) end as window_commits,
    case when m.repository is not null then coalesce(w.window_commits, 0) / {{ window_days }}.0 end
        as git_velocity,
    case when m.repository is not null then coalesce(w.window_non_merge_commits, 0) / {{ window_days }}.0 end
        as non_merge_velocity,
    case when m.repository is not null and m.ended_at is not null
        then coalesce(sc.commits_during_session, 0) end as commits_during_session,
    case when m.has_reflog then coalesce(s.window_branch_switches, 0) end as window_branch_switches,
    case when m.has_reflog then coalesce(s.window_branch_switches, 0) / {{ window_days }}.0 end
        as branch_switch_frequency,
    case
        when m.repository is null then null
        when m.has_reflog then 'reflog'
        else 'unknown'
    end as branch_switch_data,
    case when m.repository is not null then coalesce(g.window_two_parent_merges, 0) end
        as window_two_parent_merges,
    case when m.repository is not null then coalesce(g.window_conflicting_merges, 0) end
        as window_conflicting_merges,
    case when g.window_two_parent_merges > 0
        then g.window_conflicting_merges / cast(g.window_two_parent_merges as double) end
        as merge_conflict_rate,
    coalesce(a.fix_attempts, 0) as fix_attempts,
    coalesce(a.fix_successes, 0) as fix_successes,
    case when a.fix_attempts > 0 then a.fix_successes / cast(a.fix_attempts as double) end
        as fix_success_rate,
    coalesce(k.skill_invocations, 0) as skill_invocations,
    coalesce(k.skill_successes, 0) as skill_successes,
    case when k.skill_invocations_with_outcome > 0
        then k.skill_successes / cast(k.skill_invocations_with_outcome as double) end
        as skill_success_rate
from matched as m
left join window_commits as w using (session_id)
left join session_commits as sc using (session_id)
left join window_switches as s using (session_id)
left join window_merges as g using (session_id)
left join attempts as a using (session_id)
left join skills as k using (session_id)
