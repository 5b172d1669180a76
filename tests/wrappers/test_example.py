"""Smoke test of examples/wrap_any_env.py: it runs, its numbers add up, and a seed reproduces them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "wrap_any_env.py"


def _run(seed: int) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--episodes", "2", "--seed", str(seed)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SCRIPT.parent,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_wrap_any_env_example() -> None:
    out = _run(0)
    rows = [line.split() for line in out.splitlines()[1:] if "skipped" not in line]
    er_rows = [r for r in rows if r[0] == "escape_room(5,"]
    assert len(er_rows) == 2
    for row in rows:
        welfare, paid, net, steps = (float(v) for v in row[-4:])
        assert net == pytest.approx(welfare - paid, abs=0.01) and steps >= 1
    assert all(0 <= float(r[-3]) <= 20.0 for r in er_rows)  # the per-episode budget holds
    assert out == _run(0)  # seeded: identical output
