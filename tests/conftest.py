"""Shared test settings: deterministic hypothesis profile, one torch thread, headless matplotlib."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import pytest
import torch
from hypothesis import HealthCheck, settings

# One thread is ~18x faster than two for small models on these 2-core machines, and keeps runs deterministic.
torch.set_num_threads(1)

settings.register_profile(
    "ci", derandomize=True, max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_under_pytest_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3's ``learn()`` makes a new log folder in the system temp dir for every model unless ``SB3_LOGDIR`` is set;
    keep them in pytest's own (rotated) temp tree instead."""
    os.environ.setdefault("SB3_LOGDIR", str(tmp_path_factory.mktemp("sb3_logs")))
