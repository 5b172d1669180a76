"""Smoke runs of the example scripts with tiny budgets: they run, print their results and save their plots."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

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
    assert set(first) == {"args", "wall_minutes", "table", "runs", "machine"}
    assert list(first["table"]) == ["metagrad", "hand_designed"]
    metrics = ("apples", "incentives", "cleaning_rate", "waste_cleared")
    for row in first["table"].values():
        assert set(row) == {*metrics, "percent_of_scripted", "seeds_at_90_percent", "best_evaluation"}
        for key in metrics:
            assert set(row[key]) == {"mean", "std", "per_seed"} and len(row[key]["per_seed"]) == 2
            assert row[key]["mean"] == pytest.approx(sum(row[key]["per_seed"]) / 2)
        assert 0 <= row["cleaning_rate"]["mean"] <= 1 and row["seeds_at_90_percent"] in (0, 1, 2)
        assert row["percent_of_scripted"] == pytest.approx(100 * row["apples"]["mean"] / 38.99)
        assert len(row["best_evaluation"]) == 2 and min(row["best_evaluation"]) >= min(row["apples"]["per_seed"])
    assert first["table"]["hand_designed"]["incentives"]["mean"] < first["table"]["metagrad"]["incentives"]["mean"]
    assert first["args"]["eval_period"] == 8 and first["args"]["jobs"] == 2
    assert (tmp_path / "cleanup_training.png").stat().st_size > 10_000
    results_md = (tmp_path / "results.md").read_text().splitlines()
    assert results_md[0].startswith("| designer | apples / episode | % of scripted (38.99) | seeds ≥ 90% |")
    assert [line.split(" | ")[0] for line in results_md[2:]] == ["| MetaGrad", "| hand-designed"]
    with (tmp_path / "trials" / "cleanup__hand_designed__cpu__seed1" / "log.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["episode"] for r in rows] == ["0", "8", "16"] and "info/cleaned" in rows[0]
    # adding a seed trains only the new run; the finished ones are read back unchanged, other methods left out
    second = example("--methods", "metagrad", "--seeds", "0", "1", "2")
    assert [(r["method"], r["seed"], r["reused"]) for r in second["runs"]] == [
        ("metagrad", 0, True), ("metagrad", 1, True), ("metagrad", 2, False)]
    assert list(second["table"]) == ["metagrad"]
    assert second["table"]["metagrad"]["apples"]["per_seed"][:2] == first["table"]["metagrad"]["apples"]["per_seed"]


def test_gtb_taxes_example(tmp_path: Path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gtb_taxes.py"), "--smoke", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    methods = ["free market", "US federal", "Saez", "dual-RL", "MetaGrad"]
    for name in ("schedule_vs_baselines.png", "behaviour_by_skill.png", "training_dynamics.png", "schedules.png",
                 "rates_by_period.png"):
        assert (tmp_path / name).stat().st_size > 10_000
    header = "| designer | productivity | equality | equality · productivity | IQM [95% CI] | per seed | s/episode |"
    assert header in out.stdout and (tmp_path / "results.md").read_text().startswith(header)
    assert all(f"| {m} | " in out.stdout for m in methods)

    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results) == {"args", "wall_seconds", "runs"} and [r["method"] for r in results["runs"]] == methods
    for run in results["runs"]:
        assert set(run) >= {"seed", "episodes", "wall_seconds", "seconds_per_episode", "schedule", "schedule_episodes",
                            "curve", "active_units", "productivity", "equality", "equality_times_productivity",
                            "rates", "income_by_skill", "tax_by_skill", "lump_sum_by_skill", "coin_by_skill",
                            "labour_by_skill", "houses_built_by_skill", "trades_by_skill", "economy_curve"}
        curve = run["economy_curve"]  # the economy of the training episodes, logged at every evaluation
        assert curve["episodes"] == [0, 1, 2, 3, 4] and len(curve["houses_built_skill3"]) == 5
        assert np.isnan(curve["productivity"][0]) and np.isfinite(curve["productivity"][2:]).all()
        assert run["episodes"] == 4 and len(run["productivity"]) == 2  # --smoke: 4 episodes, 2 evaluation episodes
        assert [e for e, _ in run["curve"]] == [0, 1, 2, 3, 4]  # --eval-period: max(1, 4 // 50)
        assert run["schedule_episodes"] == [2, 3, 4]  # a schedule point per evaluation after an iteration
        assert all(len(r) == 7 and all(0 <= x <= 1 for x in r) for r in run["schedule"])
        assert (run["active_units"] is not None) == (run["method"] == "MetaGrad")
    by_method = {r["method"]: r for r in results["runs"]}
    assert all(r == [0.0] * 7 for r in by_method["free market"]["schedule"])
    assert by_method["US federal"]["schedule"][0] == pytest.approx([0.10, 0.12, 0.22, 0.24, 0.32, 0.35, 0.37])

    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"args", "settings", "wall_minutes", "machine", "designers", "paired_against_MetaGrad"}
    eqp_of = {m: row["equality_times_productivity"]["mean"] for m, row in summary["designers"].items()}
    paired = summary["paired_against_MetaGrad"]  # one seed: the difference, its interval that difference
    assert list(paired) == [m for m in methods if m != "MetaGrad"]
    for method, c in paired.items():
        assert c["mean"] == c["ci_low"] == c["ci_high"] == pytest.approx(eqp_of["MetaGrad"] - eqp_of[method])
        assert c["seeds"] == 1 and c["higher"] == int(c["mean"] > 0)
    assert list(summary["designers"]) == methods and summary["settings"]["phase1"] is None
    for method, row in summary["designers"].items():
        keys = {"seconds_per_episode", "productivity", "equality", "equality_times_productivity", "mean_rates",
                "mean_rates_per_seed", "seeds", "episodes_per_seed", "wall_seconds_per_seed"}
        assert set(row) == keys | ({"active_units_per_seed"} if method == "MetaGrad" else set())
        assert row["seeds"] == [0] and row["episodes_per_seed"] == [by_method[method]["episodes"]]
        assert row["wall_seconds_per_seed"] == [by_method[method]["wall_seconds"]]
        assert row["equality_times_productivity"]["per_seed"] == [
            pytest.approx(sum(by_method[method]["equality_times_productivity"]) / 2)]
        assert len(row["mean_rates"]) == 7 and row["mean_rates_per_seed"] == [row["mean_rates"]]
        eqp = row["equality_times_productivity"]  # one seed: the IQM and its interval are that seed's value
        assert eqp["iqm"] == eqp["ci_low"] == eqp["ci_high"] == pytest.approx(eqp["per_seed"][0])
    assert (tmp_path / "trials" / "MetaGrad" / "gtb__MetaGrad__default__seed0" / "checkpoint.pt").exists()


def test_cleanup_gif_example(tmp_path: Path):
    gif = tmp_path / "episode.gif"
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "cleanup_gif.py"), "--out", str(gif)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    from PIL import Image

    with Image.open(gif) as img:
        assert img.n_frames > 10


def test_gtb_taxes_curriculum_and_flat_grid(tmp_path: Path):
    """--phase1-episodes: each seed's agents train under the free market first and every designer's phase 2
    starts from them; --flat-grid adds flat 0%..90% and the best of them."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gtb_taxes.py"), "--smoke", "--phase1-episodes", "2",
         "--methods", "MetaGrad", "--flat-grid", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )
    assert out.returncode == 0, out.stderr
    phase1 = tmp_path / "trials" / "phase1" / "gtb__phase1__default__seed0" / "checkpoint.pt"
    assert phase1.exists()
    trial = json.loads((tmp_path / "trials" / "MetaGrad" / "gtb__MetaGrad__default__seed0" / "trial.json").read_text())
    assert trial["train"]["agents_from"] == str(phase1)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["phase1"]["lr"] == 7.85e-4 and summary["settings"]["metagrad"]["lr"] == 2.03e-4
    assert summary["settings"]["learner"]["lr"] == 1.09e-5  # the paper's curriculum phase 2
    flat = [f"flat {10 * k}%" for k in range(10)]
    assert list(summary["designers"]) == ["MetaGrad", *flat, "best flat"]  # the table's order
    ran = [r["method"] for r in json.loads((tmp_path / "results.json").read_text())["runs"]]
    assert ran == ["MetaGrad", *(f"flat {k}%" for k in (50, 40, 60, 30, 70, 20, 80, 10, 90, 0))]  # from the control
    best = summary["designers"]["best flat"]["chosen"]
    assert best in flat and summary["designers"][best]["equality_times_productivity"]["mean"] == max(
        summary["designers"][m]["equality_times_productivity"]["mean"] for m in flat)
    assert f"| best flat ({best}, chosen on these seeds) |" in out.stdout


def test_gtb_taxes_cpu_setting(tmp_path: Path):
    """--setting cpu: both phases use the flat agent network and 8 episodes per batched update;
    --phase2-agents phase1: phase 2 keeps phase 1's agent settings and MetaGrad the short-budget lr."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "gtb_taxes.py"), "--smoke", "--setting", "cpu", "--phase2-agents",
         "phase1", "--phase1-episodes", "2", "--methods", "MetaGrad", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    trials = tmp_path / "trials"
    phase1 = json.loads((trials / "phase1" / "gtb__phase1__default__seed0" / "trial.json").read_text())
    phase2 = json.loads((trials / "MetaGrad" / "gtb__MetaGrad__default__seed0" / "trial.json").read_text())
    for trial in (phase1, phase2):
        assert trial["train"]["batch_episodes"] == 8 and trial["train"]["vectorized"] is True
        assert trial["train"]["task_kwargs"]["agent_net"] == "cpu"
    assert phase2["learner"]["lr"] == phase1["learner"]["lr"] == 7.85e-4
    assert phase2["designer"]["lr"] == 3e-4
