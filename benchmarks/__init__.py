"""Benchmarks: one ``bench_*.py`` module per figure; ``python -m benchmarks`` runs them all.

Each module has ``run(quick: bool = False) -> list[dict]`` returning figures as
``{"name": ..., "value": ..., "unit": ..., "note": ...}``.
"""
