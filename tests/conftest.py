"""Shared pytest configuration for the whole test tree (kept small on purpose).

Hypothesis runs without per-example deadlines: the CI machines are two noisy shared cores,
and speed is measured by ``benchmarks/``, never asserted by tests.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "streamnb",
    deadline=None,
    max_examples=60,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("streamnb")
