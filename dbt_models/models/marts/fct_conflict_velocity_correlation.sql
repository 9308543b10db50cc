-- Do merges conflict more when a repository moves faster? For every day with at least
-- one judged two-parent merge: the day's conflict rate against the repository's
-- non-merge commits in the 7 days up to and including that day. Pearson correlation per
-- repository and pooled over all repositories (repository = '(all repositories)');
-- NULL when fewer than 3 such days or when either side does not vary.
with velocity as (
    select
        repository,
        commit_date,
        sum(non_merge_commits) over (
            partition by repository order by commit_date
            range between interval 6 days preceding and current row
        ) as commits_7d
    from {{ ref('fct_commit_velocity_daily') }}
),

merge_days as (
    select
        m.repository,
        m.merge_date,
        m.conflict_rate,
        coalesce(v.commits_7d, 0) as commits_7d
    from {{ ref('fct_merge_conflicts_daily') }} as m
    left join velocity as v on v.repository = m.repository and v.commit_date = m.merge_date
    where m.two_parent_merges > 0
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
