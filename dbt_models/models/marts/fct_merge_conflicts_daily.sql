-- Merge conflict rate per UTC day (committer date of the merge), reachable merges only:
-- conflicting two-parent merges / two-parent merges that were re-merged (clean or
-- conflict). Octopus merges, unrelated histories and merges that could not be judged
-- (parent missing in a shallow clone, git error) are counted in their own columns and
-- never enter the rate. Only days with at least one merge are present: on other days
-- the rate is undefined, not 0.
with reachable as (
    select repository, commit_hash
    from {{ ref('stg_git__commits') }}
    where is_reachable
),

merges as (
    select m.*
    from {{ ref('stg_git__merges') }} as m
    inner join reachable as c on c.repository = m.repository and c.commit_hash = m.merge_hash
),

per_day as (
    select
        repository,
        cast(date_trunc('day', merged_at) as date) as merge_date,
        count(*) as merges,
        count(*) filter (where has_conflict is not null) as two_parent_merges,
        count(*) filter (where has_conflict) as conflicting_merges,
        count(*) filter (where has_conflict = false) as clean_merges,
        count(*) filter (where merge_kind = 'octopus') as octopus_merges,
        count(*) filter (where is_unrelated_histories) as unrelated_history_merges,
        count(*) filter (where merge_kind = 'two_parent' and has_conflict is null) as undetermined_merges,
        coalesce(sum(conflicted_path_count), 0) as conflicted_paths
    from merges
    group by all
)

select
    d.repository,
    r.repository_path,
    d.merge_date,
    cast(d.merge_date as timestamp) as day_start,
    d.merges,
    d.two_parent_merges,
    d.conflicting_merges,
    d.clean_merges,
    case
        when d.two_parent_merges > 0
            then cast(d.conflicting_merges as double) / d.two_parent_merges
    end as conflict_rate,
    d.octopus_merges,
    d.unrelated_history_merges,
    d.undetermined_merges,
    d.conflicted_paths
from per_day as d
left join {{ ref('stg_git__repositories') }} as r using (repository)
