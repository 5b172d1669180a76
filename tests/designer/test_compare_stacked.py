"""``compare``/``train`` with several seeds: stacked by default, one by one with --no-stack or when the designer
cannot stack, and spread over processes with --workers: the same runs every way."""

from __future__ import annotations

from pathlib import Path

import pytest

from designer.experiments.cli import build_parser, run_compare

ARGS = ["compare", "--task", "escape_room", "--n-agents", "3", "--min-at-lever", "1", "--episodes", "40",
        "--eval-period", "20", "--eval-episodes", "4", "--seeds", "0", "1", "--no-progress"]


def _welfare(tmp: Path, *extra: str, algorithms: tuple[str, ...] = ("metagrad",)) -> dict[str, list[list[float]]]:
    args = build_parser().parse_args([*ARGS, "--out", str(tmp), "--algorithms", *algorithms, *extra])
    results = run_compare(args, args.algorithms)
    return {algo: [[h.welfare for h in t.progress.history] for t in trainers] for algo, trainers in results.items()}


def test_stacked_seeds_equal_one_by_one_and_across_processes(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    stacked = _welfare(tmp_path / "stacked")
    assert _welfare(tmp_path / "alone", "--stack", "off") == stacked
    assert _welfare(tmp_path / "workers", "--workers", "2") == stacked
    assert (tmp_path / "stacked" / "er_n3_m1" / "metagrad" / "seed1" / "checkpoint.pt").exists()
    assert "train one by one" not in capsys.readouterr().out


def test_designers_that_cannot_stack_train_one_by_one_and_say_why(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    results = _welfare(tmp_path, algorithms=("dual_rl",))
    assert len(results["dual_rl"]) == 2
    assert "dual_rl: seeds [0, 1] train one by one" in capsys.readouterr().out
