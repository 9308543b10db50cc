"""Benchmarks and offline evaluations (run as ``python -m benchmarks.<name>``)."""
