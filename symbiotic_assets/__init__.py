"""Symbiotic: a Dagster data platform for AI-assisted software teams."""
