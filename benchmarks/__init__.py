"""Benchmarks: `python -m benchmarks [--quick] [NAME ...]` from the repository root."""
