-- Commits per UTC day (by author date) per repository, reachable commits only, each
-- counted once. Merges are counted apart and together ("both ways"). Days without
-- commits between a repository's first and last commit are present with 0, so that
-- averages and rolling windows are right.
with commits as (
    select * from {{ ref('stg_git__commits') }}
    where is_reachable
),

per_day as (
    select
        repository,
        cast(date_trunc('day', authored_at) as date) as commit_date,
        count(*) as commits,
        count(*) filter (where not is_merge) as non_merge_commits,
        count(*) filter (where is_merge) as merge_commits,
        count(*) filter (where is_bot and not is_merge) as bot_commits,
        count(distinct author_email) filter (where not is_merge) as authors,
        coalesce(sum(insertions) filter (where not is_merge), 0) as insertions,
        coalesce(sum(deletions) filter (where not is_merge), 0) as deletions,
        -- their churn is missing from insertions/deletions above (unknown, not zero)
        count(*) filter (where not is_merge and not churn_known) as unknown_churn_commits
    from commits
    group by all
),

spine as (
    select
        repository,
        cast(unnest(generate_series(
            cast(min(commit_date) as timestamp), cast(max(commit_date) as timestamp), interval 1 day
        )) as date) as commit_date
    from per_day
    group by repository
),

filled as (
    select
        s.repository,
        s.commit_date,
        coalesce(d.commits, 0) as commits,
        coalesce(d.non_merge_commits, 0) as non_merge_commits,
        coalesce(d.merge_commits, 0) as merge_commits,
        coalesce(d.bot_commits, 0) as bot_commits,
        coalesce(d.authors, 0) as authors,
        coalesce(d.insertions, 0) as insertions,
        coalesce(d.deletions, 0) as deletions,
        coalesce(d.unknown_churn_commits, 0) as unknown_churn_commits
    from spine as s
    left join per_day as d using (repository, commit_date)
)

select
    f.repository,
    r.repository_path,
    f.commit_date,
    cast(f.commit_date as timestamp) as day_start,
    f.commits,
    f.non_merge_commits,
    f.merge_commits,
    f.bot_commits,
    f.authors,
    f.insertions,
    f.deletions,
    f.unknown_churn_commits,
    avg(f.commits) over last_7_days as commits_7d_avg,
    avg(f.non_merge_commits) over last_7_days as non_merge_commits_7d_avg
from filled as f
left join {{ ref('stg_git__repositories') }} as r using (repository)
window last_7_days as (
    partition by f.repository order by f.commit_date
    range between interval 6 days preceding and current row
)
