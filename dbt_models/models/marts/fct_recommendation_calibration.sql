-- Is the confidence we give with a recommendation honest? Feedback that carries a
-- confidence, in bins of 0.1 ([0, 0.1), ..., [0.9, 1.0], 1.0 falling in the last bin).
-- On the followed recommendations whose outcome is known, mean_confidence is compared
-- with observed_success_rate: calibrated means they are close (about 80% success among
-- recommendations given at about 0.8). Only bins holding feedback are present.
with feedback as (
    select
        *,
        -- the epsilon keeps 0.3 (0.30000000000000004 * 10 = 3.0000...) in bin 3, not 2
        cast(least(floor(confidence * 10 + 1e-9), 9) as integer) as confidence_bin
    from {{ ref('stg_memory__feedback') }}
    where confidence is not null
)

select
    confidence_bin,
    confidence_bin / 10.0 as bin_lower,
    (confidence_bin + 1) / 10.0 as bin_upper,
    format('{:.1f}-{:.1f}', confidence_bin / 10.0, (confidence_bin + 1) / 10.0) as bin_label,
    count(*) as recommendations,
    count(*) filter (where shown) as shown,
    count(*) filter (where followed) as followed,
    count(*) filter (where followed and succeeded is not null) as followed_with_outcome,
    count(*) filter (where followed and succeeded) as followed_succeeded,
    avg(confidence) as mean_confidence_all,
    avg(confidence) filter (where followed and succeeded is not null) as mean_confidence,
    avg(case when succeeded then 1.0 else 0.0 end) filter (where followed and succeeded is not null)
        as observed_success_rate,
    avg(case when succeeded then 1.0 else 0.0 end) filter (where followed and succeeded is not null)
    - avg(confidence) filter (where followed and succeeded is not null) as calibration_gap
from feedback
group by confidence_bin
