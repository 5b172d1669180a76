"""Smoke runs of the example scripts with tiny budgets: they run, print their results and save their plots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_train_metagrad_er_example(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "train_metagrad_er.py"), "--n-agents", "2", "--min-at-lever", "1",
         "--episodes", "30", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "metagrad  welfare" in out.stdout and "none      welfare" in out.stdout
    assert (tmp_path / "learning_curves.png").stat().st_size > 10_000
    assert (tmp_path / "metagrad" / "log.csv").exists()


def test_cleanup_metagrad_example(tmp_path: Path):
    def example(*extra: str) -> dict:
        out = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "cleanup_metagrad.py"), "--episodes", "16", "--eval-period", "8",
             "--out", str(tmp_path), *extra], capture_output=True, text=True, timeout=300,
        )
        assert out.returncode == 0, out.stderr
        assert "| MetaGrad |" in out.stdout and "plot saved to" in out.stdout
        return json.loads((tmp_path / "summary.json").read_text())

    first = example("--methods", "metagrad", "hand_designed", "--seeds", "0", "1", "--jobs", "2")
    assert len(first["table"]["metagrad"]["apples"]["per_seed"]) == 2
    assert (tmp_path / "cleanup_training.png").stat().st_size > 10_000
    assert (tmp_path / "hand_designed" / "seed1" / "log.csv").exists()
    # adding a seed trains only the new run; the finished ones are read back unchanged
    second = example("--methods", "metagrad", "--seeds", "0", "1", "2")
    assert [(r["seed"], r["reused"]) for r in second["runs"]] == [(0, True), (1, True), (2, False)]
    assert second["table"]["metagrad"]["apples"]["per_seed"][:2] == first["table"]["metagrad"]["apples"]["per_seed"]


def test_gtb_taxes_example(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gtb_taxes.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    for name in ("schedules.png", "income_by_skill.png", "rates_by_period.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    assert "free market" in out.stdout.lower() or "free_market" in out.stdout


def test_cleanup_gif_example(tmp_path: Path):
    gif = tmp_path / "episode.gif"
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "cleanup_gif.py"), "--out", str(gif)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from PIL import Image

    with Image.open(gif) as img:
        assert img.n_frames > 10
