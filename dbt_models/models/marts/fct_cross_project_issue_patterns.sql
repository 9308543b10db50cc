-- What goes wrong across projects: per issue type, how many projects meet it and how
-- often; per agent:strategy on that issue type, how often and where it fails.
-- One row per (issue_type, agent, strategy); issue_* columns repeat the issue type's
-- totals on each of its rows. Deleted attempts are excluded; attempts without a project
-- count as attempts but not as a project.
-- The definition is the table macro marts.issue_patterns_between (macros/
-- windowed_marts.sql), which the API calls for other windows; this mart is all history.
-- depends_on: {{ ref('stg_memory__fix_attempts') }}
{{ config(pre_hook=create_issue_patterns_between()) }}

select *
from warehouse.marts.issue_patterns_between(date '0001-01-01', date '9999-12-31')
