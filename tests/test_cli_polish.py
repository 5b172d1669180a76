"""The command line's help, argument errors, custom tasks, resume output, Ctrl-C and quiet progress (#17)."""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
from pathlib import Path

import pytest

from designer.experiments import cli
from designer.experiments.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
HAWK_DOVE = "tests.games.hawk_dove:parallel_env"
SMALL = ["--episodes", "16", "--eval-period", "8", "--eval-episodes", "2", "--no-progress"]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["train", "compare", "resume", "report", "sweep", "aggregate"])
def test_every_option_has_help_and_defaults_are_shown(command: str):
    parser = _subparser(command)
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert undocumented == []
    text = parser.format_help()
    if command in ("train", "compare"):
        assert "evaluate every this many training episodes (default: 100)" in " ".join(text.split())
        assert "(default: None)" not in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--task-kwargs", "{bad"], "argument --task-kwargs: not valid JSON"),
    (["--task-kwargs", "[1]"], "argument --task-kwargs: must be a JSON object"),
    (["--designer-json", '{"lr": NaN}'], "argument --designer-json: --designer-json.lr must be a finite number"),
    (["--task", "ipd", "--task-kwargs", '{"max_cycle": 5}'], "argument --task-kwargs: task 'ipd' does not take the "
                                                             "task kwargs ['max_cycle']"),
    (["--task", "ipd", "--n-agents", "5"], "argument --n-agents: applies only to --task escape_room, not 'ipd'"),
    (["--task", "no_such"], "argument --task: unknown task 'no_such'"),
    (["--task", "no_such_module:game"], "argument --task: cannot import task module 'no_such_module'"),
    (["--task", "ipd", "--designer-json", '{"lrr": 1}'], "argument --designer-json: unknown field(s) ['lrr']"),
    (["--task", "ipd", "--learner-json", '{"lr": -1}'], "argument --learner-json: lr must be a finite number > 0"),
])
def test_bad_arguments_are_argparse_errors_naming_the_flag(argv: list[str], message: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", *argv, "--out", str(tmp_path), *SMALL])
    assert exit_info.value.code == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_custom_task_trains_logs_action_names_and_resumes_with_table_and_plot(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """A module:factory game trains with the small_game preset (B = 8), logs named actions; resume prints the
    table and redraws the plot."""
    assert cli.main(["train", "--task", HAWK_DOVE, "--out", str(tmp_path), *SMALL]) == 0
    run = tmp_path / "parallel_env" / "metagrad" / "seed0"
    with (run / "log.csv").open() as fh:
        header = next(csv.reader(fh))
    assert {"actions/player_0/dove", "actions/player_1/hawk"} <= set(header)
    trainer = Trainer.resume(run / "checkpoint.pt", out_dir=None)
    assert trainer.config.batch_episodes == 8 and trainer.learner_config.lr == 0.01
    capsys.readouterr()
    plot = run / "learning_curve.png"
    plot.unlink(missing_ok=True)
    assert cli.main(["resume", str(run / "checkpoint.pt"), "--episodes", "32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| metagrad |" in out and "EvalResult(" not in out
    assert plot.exists() and Trainer.resume(run / "checkpoint.pt", out_dir=None).progress.episodes == 32


def test_ctrl_c_names_the_last_checkpoint_and_the_resume_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    iterate = Trainer._iterate

    def interrupt_at_24(self: Trainer) -> None:
        if self.progress.episodes >= 24:
            raise KeyboardInterrupt
        iterate(self)

    monkeypatch.setattr(Trainer, "_iterate", interrupt_at_24)
    code = cli.main(["train", "--task", HAWK_DOVE, "--out", str(tmp_path), "--episodes", "64", "--eval-period", "8",
                     "--eval-episodes", "2", "--checkpoint-period", "16", "--no-progress"])
    ckpt = tmp_path / "parallel_env" / "metagrad" / "seed0" / "checkpoint.pt"
    assert code == 130
    err = " ".join(capsys.readouterr().err.split())
    assert (f"interrupted at episode 24 of 64; last checkpoint: {ckpt} (episode 16); continue with: "
            f"python -m designer resume {ckpt}") in err


@pytest.mark.parametrize("seeds", [["0"], ["0", "1"]], ids=["one run", "stacked seeds"])
def test_progress_bar_is_quiet_when_stderr_is_not_a_terminal(tmp_path: Path, seeds: list[str]):
    task = HAWK_DOVE if len(seeds) == 1 else "ipd"
    out = subprocess.run(
        [sys.executable, "-m", "designer", "train", "--task", task, "--out", str(tmp_path), "--episodes", "64",
         "--eval-period", "16", "--eval-episodes", "2", "--seeds", *seeds], cwd=ROOT, capture_output=True, text=True,
        timeout=300)
    assert out.returncode == 0, out.stderr
    assert "ep/s" not in out.stderr and "%|" not in out.stderr
    assert "one by one" not in out.stdout  # the two seeds did train stacked


def test_rates_heatmap_has_a_colorbar():
    import matplotlib.pyplot as plt

    from designer.experiments.plots import rates_heatmap

    fig, ax = plt.subplots()
    rates_heatmap(ax, [[0.1, 0.5], [0.2, 0.9], [0.3, 1.0]], title="metagrad")
    colorbar_axes = [a for a in fig.axes if a is not ax]
    assert len(colorbar_axes) == 1 and colorbar_axes[0].get_ylabel() == "marginal tax rate"
    assert ax.images[0].get_array().shape == (2, 3)  # brackets x periods
    plt.close(fig)


def test_ctrl_c_on_stacked_seeds_names_every_runs_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]):
    from designer.experiments.seed_stack import SeedStack

    iterate = SeedStack.iterate

    def interrupt_at_24(self: SeedStack) -> None:
        if self.trainers[0].progress.episodes >= 24:
            raise KeyboardInterrupt
        iterate(self)

    monkeypatch.setattr(SeedStack, "iterate", interrupt_at_24)
    code = cli.main(["train", "--task", "ipd", "--out", str(tmp_path), "--episodes", "64", "--eval-period", "8",
                     "--eval-episodes", "2", "--checkpoint-period", "16", "--seeds", "0", "1", "--no-progress"])
    assert code == 130
    err = " ".join(capsys.readouterr().err.split())
    for seed in (0, 1):
        ckpt = tmp_path / "ipd" / "metagrad" / f"seed{seed}" / "checkpoint.pt"
        assert f"last checkpoint: {ckpt} (episode 16); continue with: python -m designer resume {ckpt}" in err
