-- Do merges conflict more when a repository moves faster? For every day with at least
-- one judged two-parent merge: the day's conflict rate against the repository's
-- non-merge commits in the 7 days up to and including that day. Pearson correlation per
-- repository and pooled over all repositories (repository = '(all repositories)');
-- NULL when fewer than 3 such days or when either side does not vary.
-- The definition is the table macro marts.conflict_velocity_between (macros/
-- windowed_marts.sql), which the API calls for other windows; this mart is all history.
-- depends_on: {{ ref('fct_commit_velocity_daily') }}
-- depends_on: {{ ref('fct_merge_conflicts_daily') }}
{{ config(pre_hook=create_conflict_velocity_between()) }}

select *
from warehouse.marts.conflict_velocity_between(date '0001-01-01', date '9999-12-31')
