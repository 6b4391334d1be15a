"""Benchmarks of the running stack against a raw-PostgreSQL baseline: `python -m bench` (see __main__.py)."""
