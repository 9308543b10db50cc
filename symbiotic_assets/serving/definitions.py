"""Serving in Dagster: the publish asset (the daily job lives with analytics)."""

import dagster as dg

from symbiotic_assets.core.resources import settings_resource
from symbiotic_assets.serving.assets import published_warehouse

defs = dg.Definitions(assets=[published_warehouse], resources={"settings": settings_resource})
