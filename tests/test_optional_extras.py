"""A base install without an optional extra: every command still runs (or refuses at once) and names the extra.

A missing package is simulated with ``sys.modules[name] = None``, which makes ``import name`` raise ImportError.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

from designer.experiments.cli import main
from designer.extras import MissingExtra, require

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--task", "ipd", "--episodes", "4", "--eval-period", "2", "--eval-episodes", "1", "--no-progress"]
PLOT_HINT = 'pip install "incentive-design[plot]"'


def _missing(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def no_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    _missing(monkeypatch, "matplotlib", "matplotlib.pyplot")


def test_require_names_the_extra(no_matplotlib):
    assert require("json", "plot", "anything") is json
    with pytest.raises(MissingExtra, match=r'^plotting needs matplotlib, .*"incentive-design\[plot\]"$') as err:
        require("matplotlib.pyplot", "plot", "plotting")
    assert isinstance(err.value, ImportError)


@pytest.mark.parametrize("command", [["train", "--algorithm", "metagrad"],
                                     ["compare", "--algorithms", "metagrad", "none"]])
def test_train_and_compare_without_plot_print_the_table(no_matplotlib, tmp_path: Path, capsys, command):
    assert main([*command, *TINY, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.count(PLOT_HINT) == 1 and "plot: not drawn" in out
    assert "| metagrad | 1 |" in out and (tmp_path / "ipd" / "results.md").is_file()
    assert (tmp_path / "ipd" / "metagrad" / "seed0" / "checkpoint.pt").is_file()
    assert not list(tmp_path.rglob("*.png"))
    # report rebuilds the table from the run folders, again without a plot
    assert main(["report", str(tmp_path / "ipd")]) == 0
    out = capsys.readouterr().out
    assert PLOT_HINT in out and "| metagrad | 1 |" in out and not list(tmp_path.rglob("*.png"))


def test_sweep_and_aggregate_without_plot_write_tables_and_csvs(no_matplotlib, tmp_path: Path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"name": "tiny", "tasks": ["ipd"], "algorithms": ["metagrad"], "seeds": [0],
                                "train": {"episodes": 4, "eval_period": 2, "eval_episodes": 1}}))
    sweep = tmp_path / "sw"
    assert main(["sweep", str(spec), "--out", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert out.count(PLOT_HINT) == 1
    for name in ("results.md", "results.csv", "trials.csv"):
        assert (sweep / "results" / name).is_file(), name
    assert main(["aggregate", str(sweep), "--out", str(tmp_path / "agg"), "--reps", "100"]) == 0
    out = capsys.readouterr().out
    assert out.count(PLOT_HINT) == 1 and "metagrad" in out
    assert (tmp_path / "agg" / "results.csv").is_file() and (tmp_path / "agg" / "trials.csv").is_file()
    assert not list(tmp_path.rglob("*.png"))
    # --no-plots asks for none: nothing to explain
    assert main(["aggregate", str(sweep), "--out", str(tmp_path / "agg2"), "--reps", "100", "--no-plots"]) == 0
    assert PLOT_HINT not in capsys.readouterr().out


@pytest.mark.parametrize("module", ["stable_baselines3", "supersuit"])
def test_transfer_is_listed_and_names_the_sb3_extra(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path,
                                                    module: str):
    _missing(monkeypatch, module)
    with pytest.raises(SystemExit) as help_exit:
        main(["--help"])
    assert help_exit.value.code == 0 and "transfer" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        main(["transfer", "--checkpoint", str(tmp_path / "checkpoint.pt"), "--env", "ipd"])
    message = str(err.value.code)
    assert "\n" not in message and 'pip install "incentive-design[sb3]"' in message
    assert ("stable-baselines3" if module == "stable_baselines3" else "SuperSuit") in message


def test_tensorboard_without_tensorboard_fails_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _missing(monkeypatch, "tensorboard")
    with pytest.raises(SystemExit) as err:
        main(["train", *TINY, "--out", str(tmp_path), "--tensorboard"])
    assert 'pip install "incentive-design[tensorboard]"' in str(err.value.code)
    assert not list(tmp_path.rglob("log.csv")) and not list(tmp_path.rglob("checkpoint.pt"))


def test_cleanup_gif_without_pillow_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _missing(monkeypatch, "PIL", "PIL.Image")
    gif = tmp_path / "episode.gif"
    monkeypatch.setattr(sys, "argv", ["cleanup_gif.py", "--out", str(gif)])
    with pytest.raises(SystemExit) as err:
        runpy.run_path(str(ROOT / "examples" / "cleanup_gif.py"), run_name="__main__")
    assert "Pillow" in str(err.value.code) and PLOT_HINT in str(err.value.code)
    assert not gif.exists()


def test_transfer_results_without_plot_write_the_csvs(no_matplotlib, tmp_path: Path, capsys):
    """SB3 transfer without matplotlib: every CSV is written, the PNG is skipped with one line naming the extra."""
    from designer.sb3 import compare_transfer
    from incentive_envs.ipd import parallel_env
    from wrappers import ActionTable

    result = compare_transfer(lambda: parallel_env(max_cycles=1), ActionTable([2.5, 0.0]), total_timesteps=8,
                              seeds=[0], n_eval_episodes=2, log_dir=tmp_path)
    assert {r.condition for r in result.rows} == {"incentive", "no incentive"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["transfer_curves.csv", "transfer_seeds.csv",
                                                          "transfer_summary.csv"]
    assert capsys.readouterr().out.count(PLOT_HINT) == 1
