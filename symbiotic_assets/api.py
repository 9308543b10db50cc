"""Symbiotic's Python API in one import: what agents, notebooks and scripts call.

Every function reads published artifacts (the warehouse snapshot, the search index,
the recommender) or writes the event store, never the warehouse Dagster writes, so
they work while a run holds it. Each lives in its domain; this module only gathers them.
"""

from symbiotic_assets.analytics.api import (
    get_cross_project_patterns,
    get_git_velocity_dashboard,
    get_repository_health,
    get_session_metrics,
    get_skill_effectiveness,
    get_strategy_effectiveness,
    get_velocity,
)
from symbiotic_assets.memory.api import (
    StrategyRecommendation,
    get_fix_attempt,
    list_fix_attempts,
    recommend_strategy,
    record_feedback,
    record_fix_attempt,
)
from symbiotic_assets.search.api import record_click, record_search, semantic_search

__all__ = [
    "StrategyRecommendation",
    "get_cross_project_patterns",
    "get_fix_attempt",
    "get_git_velocity_dashboard",
    "get_repository_health",
    "get_session_metrics",
    "get_skill_effectiveness",
    "get_strategy_effectiveness",
    "get_velocity",
    "list_fix_attempts",
    "record_click",
    "record_feedback",
    "record_fix_attempt",
    "recommend_strategy",
    "record_search",
    "semantic_search",
]
