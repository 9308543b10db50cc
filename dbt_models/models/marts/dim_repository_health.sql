-- One row per repository: branch hygiene, activity, bus factor, trends and a 0-100
-- health score. Every term of the score is a smooth, strictly monotone function of its
-- input (x/(x+k), exponential decay, a logistic of a log ratio), so two repositories
-- that differ in any input never tie at a cap; see docs/metrics.md for the formula.
-- Terms whose input is unknown (no default branch, no human commits) drop out and the
-- remaining weights are renormalised.
{% set velocity_days = var('velocity_window_days') %}
{% set conflict_days = var('conflict_window_days') %}
{% set stale_days = var('stale_branch_days') %}
{% set bus_days = var('bus_factor_days') %}

with params as (
    select {{ as_of() }} as as_of
),

repositories as (
    select * from {{ ref('stg_git__repositories') }}
),

commits as (
    select c.*
    from {{ ref('stg_git__commits') }} as c
    where c.is_reachable
),

activity as (
    select
        c.repository,
        count(*) as reachable_commits,
        count(*) filter (where c.is_merge) as merge_commits,
        max(c.committed_at) as last_commit_at,
        count(*) filter (
            where not c.is_merge
              and c.authored_at > p.as_of - to_days({{ velocity_days }})
              and c.authored_at <= p.as_of
        ) as commits_last_window,
        count(*) filter (
            where not c.is_merge
              and c.authored_at > p.as_of - to_days({{ 2 * velocity_days }})
              and c.authored_at <= p.as_of - to_days({{ velocity_days }})
        ) as commits_previous_window
    from commits as c
    cross join params as p
    group by c.repository
),

human_commits as (
    select
        c.repository,
        c.author_email,
        c.authored_at > p.as_of - to_days({{ bus_days }}) and c.authored_at <= p.as_of as in_window
    from commits as c
    cross join params as p
    where not c.is_merge and not c.is_bot
),

bus_window as (
    select repository, bool_or(in_window) as has_recent
    from human_commits
    group by repository
),

author_commits as (
    select h.repository, h.author_email, count(*) as author_commit_count
    from human_commits as h
    inner join bus_window as w using (repository)
    where h.in_window or not w.has_recent
    group by all
),

author_cumulative as (
    select
        repository,
        author_commit_count,
        sum(author_commit_count) over (
            partition by repository order by author_commit_count desc, author_email
            rows between unbounded preceding and current row
        ) - author_commit_count as commits_before,
        sum(author_commit_count) over (partition by repository) as total_commits
    from author_commits
),

bus as (
    -- fewest authors who together wrote more than half of the human, non-merge commits
    select
        a.repository,
        count(*) filter (where a.commits_before <= 0.5 * a.total_commits) as bus_factor,
        count(*) as authors_in_window,
        case when any_value(w.has_recent) then 'last_{{ bus_days }}_days' else 'all_history' end
            as bus_factor_window
    from author_cumulative as a
    inner join bus_window as w using (repository)
    group by a.repository
),

branches as (
    select
        b.repository,
        count(*) filter (where not b.is_default) as branches,
        count(*) filter (where not b.is_default and b.is_merged_into_default = false)
            as unmerged_branches,
        count(*) filter (
            where not b.is_default
              and b.is_merged_into_default = false
              and b.tip_committed_at < p.as_of - to_days({{ stale_days }})
        ) as stale_branches,
        list(b.short_name order by b.short_name) filter (
            where not b.is_default
              and b.is_merged_into_default = false
              and b.tip_committed_at < p.as_of - to_days({{ stale_days }})
        ) as stale_branch_names
    from {{ ref('stg_git__refs') }} as b
    cross join params as p
    where b.ref_type = 'branch'
    group by b.repository
),

judged_merges as (
    select m.repository, m.has_conflict, m.merged_at
    from {{ ref('stg_git__merges') }} as m
    inner join commits as c on c.repository = m.repository and c.commit_hash = m.merge_hash
    where m.has_conflict is not null
),

conflicts as (
    select
        m.repository,
        count(*) as two_parent_merges,
        count(*) filter (where m.has_conflict) as conflicting_merges,
        count(*) filter (
            where m.merged_at > p.as_of - to_days({{ conflict_days }}) and m.merged_at <= p.as_of
        ) as merges_last_window,
        count(*) filter (
            where m.has_conflict
              and m.merged_at > p.as_of - to_days({{ conflict_days }}) and m.merged_at <= p.as_of
        ) as conflicts_last_window,
        count(*) filter (
            where m.merged_at > p.as_of - to_days({{ 2 * conflict_days }})
              and m.merged_at <= p.as_of - to_days({{ conflict_days }})
        ) as merges_previous_window,
        count(*) filter (
            where m.has_conflict
              and m.merged_at > p.as_of - to_days({{ 2 * conflict_days }})
              and m.merged_at <= p.as_of - to_days({{ conflict_days }})
        ) as conflicts_previous_window
    from judged_merges as m
    cross join params as p
    group by m.repository
),

measures as (
    select
        r.repository,
        r.repository_path,
        r.default_branch,
        r.has_reflog,
        r.is_shallow,
        p.as_of,
        coalesce(a.reachable_commits, 0) as reachable_commits,
        coalesce(a.merge_commits, 0) as merge_commits,
        a.last_commit_at,
        greatest(epoch(p.as_of - a.last_commit_at) / 86400.0, 0.0) as days_since_last_commit,
        coalesce(b.branches, 0) as branches,
        case when r.default_branch is not null then coalesce(b.unmerged_branches, 0) end
            as unmerged_branches,
        case when r.default_branch is not null then coalesce(b.stale_branches, 0) end
            as stale_branches,
        coalesce(b.stale_branch_names, []) as stale_branch_names,
        {{ stale_days }} as stale_after_days,
        {{ velocity_days }} as velocity_window_days,
        {{ conflict_days }} as conflict_window_days,
        bus.bus_factor,
        coalesce(bus.authors_in_window, 0) as active_authors,
        bus.bus_factor_window,
        coalesce(a.commits_last_window, 0) as commits_last_window,
        coalesce(a.commits_previous_window, 0) as commits_previous_window,
        -- ln((last + 1) / (previous + 1)): 0 = flat, > 0 = speeding up; no cap
        ln((coalesce(a.commits_last_window, 0) + 1.0) / (coalesce(a.commits_previous_window, 0) + 1.0))
            as velocity_trend,
        coalesce(c.two_parent_merges, 0) as two_parent_merges,
        coalesce(c.conflicting_merges, 0) as conflicting_merges,
        case when c.two_parent_merges > 0
            then cast(c.conflicting_merges as double) / c.two_parent_merges end as conflict_rate,
        coalesce(c.merges_last_window, 0) as merges_last_window,
        coalesce(c.conflicts_last_window, 0) as conflicts_last_window,
        -- Beta(0.2, 1.8) prior (mean 0.1, weight 2): few merges cannot swing the estimate to 0 or 1
        (coalesce(c.conflicts_last_window, 0) + 0.2) / (coalesce(c.merges_last_window, 0) + 2.0)
            as conflict_rate_smoothed_window,
        (coalesce(c.conflicts_last_window, 0) + 0.2) / (coalesce(c.merges_last_window, 0) + 2.0)
        - (coalesce(c.conflicts_previous_window, 0) + 0.2) / (coalesce(c.merges_previous_window, 0) + 2.0)
            as conflict_trend
    from repositories as r
    cross join params as p
    left join activity as a using (repository)
    left join branches as b using (repository)
    left join bus using (repository)
    left join conflicts as c using (repository)
),

terms as (
    select
        *,
        -- each term lies strictly between 0 and 1 and keeps moving with its input
        case when last_commit_at is not null
            then exp(-ln(2.0) * days_since_last_commit / 30.0) end as recency_term,
        commits_last_window / (commits_last_window + 10.0) as velocity_term,
        (commits_last_window + 1.0) / (commits_last_window + commits_previous_window + 2.0) as trend_term,
        3.0 / (3.0 + stale_branches) as stale_term,
        10.0 / (10.0 + unmerged_branches) as unmerged_term,
        bus_factor / (bus_factor + 1.0) as bus_term,
        1.0 - conflict_rate_smoothed_window as conflict_term
    from measures
)

select
    *,
    round(100.0 * (
        coalesce(0.20 * recency_term, 0) + coalesce(0.15 * velocity_term, 0)
        + coalesce(0.10 * trend_term, 0) + coalesce(0.15 * stale_term, 0)
        + coalesce(0.10 * unmerged_term, 0) + coalesce(0.15 * bus_term, 0)
        + coalesce(0.15 * conflict_term, 0)
    ) / (
        case when recency_term is null then 0 else 0.20 end + 0.15 + 0.10
        + case when stale_term is null then 0 else 0.15 end
        + case when unmerged_term is null then 0 else 0.10 end
        + case when bus_term is null then 0 else 0.15 end
        + 0.15
    ), 2) as health_score
from terms
