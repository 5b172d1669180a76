"""TrainConfig.agents_from: phase-2 runs start from phase-1 agents (the paper's GTB curriculum)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from designer import DesignerConfig, TrainConfig, Trainer


def _phase1(tmp_path: Path) -> Path:
    cfg = TrainConfig(task="ipd", episodes=40, eval_period=20, eval_episodes=4, seed=5, out_dir=str(tmp_path / "p1"))
    trainer = Trainer(cfg, designer=replace(Trainer(cfg).task.designer, algorithm="none"))
    trainer.train()
    return tmp_path / "p1" / "checkpoint.pt"


def test_phase_two_starts_from_the_phase_one_agents_and_resumes_without_them(tmp_path: Path) -> None:
    ckpt = _phase1(tmp_path)
    phase1 = Trainer.resume(ckpt, out_dir=None)
    cfg = TrainConfig(task="ipd", episodes=20, eval_period=10, eval_episodes=4, seed=0, agents_from=str(ckpt),
                      out_dir=str(tmp_path / "p2"), checkpoint_period=10)
    phase2 = Trainer(cfg, designer=DesignerConfig(**{**phase1.task.designer.__dict__, "algorithm": "metagrad"}))
    for k, v in phase1.learner.params.items():
        assert torch.equal(phase2.learner.params[k], v)
    assert (phase2.learner.iteration, phase2.learner.opt_state.step) == (phase1.learner.iteration,
                                                                         phase1.learner.opt_state.step)
    assert phase2.learner.iteration > 0 and phase2.designer.iteration == 0 and phase2.progress.episodes == 0
    fresh = Trainer(replace(cfg, agents_from=None, out_dir=None))
    assert not all(torch.equal(fresh.learner.params[k], v) for k, v in phase1.learner.params.items())
    phase2.train()
    # the phase-2 run resumes from its own checkpoint even when the phase-1 checkpoint has gone
    shutil.rmtree(tmp_path / "p1")
    resumed = Trainer.resume(tmp_path / "p2" / "checkpoint.pt", episodes=30)
    assert resumed.config.agents_from == str(ckpt)
    resumed.train()
    assert resumed.progress.episodes == 30


def test_agents_of_another_kind_are_refused_naming_the_difference(tmp_path: Path) -> None:
    ckpt = str(_phase1(tmp_path))
    base = Trainer(TrainConfig(task="ipd")).task.learner
    with pytest.raises(ValueError, match=r"differs in \['hidden'\]"):
        Trainer(TrainConfig(task="ipd", agents_from=ckpt), learner=replace(base, hidden=(7,)))
    # other learning rates and entropy are fine: the paper's phase 2 trains the phase-1 agents with its own
    other = Trainer(TrainConfig(task="ipd", agents_from=ckpt), learner=replace(base, lr=base.lr * 2, entropy_coef=0.0))
    phase1 = Trainer.resume(ckpt, out_dir=None)
    assert all(torch.equal(other.learner.params[k], v) for k, v in phase1.learner.params.items())
    with pytest.raises(ValueError, match="agents of task 'ipd'"):
        Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 2, "min_at_lever": 1}, agents_from=ckpt))
    er = Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 2, "min_at_lever": 1}, episodes=2,
                             out_dir=str(tmp_path / "er")))
    er.train()
    with pytest.raises(ValueError, match="another number of agents"):
        Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 3, "min_at_lever": 1},
                            agents_from=str(tmp_path / "er" / "checkpoint.pt")))


def test_cli_agents_from(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from designer.experiments.cli import main

    ckpt = _phase1(tmp_path)
    with pytest.raises(SystemExit):
        main(["train", "--task", "ipd", "--agents-from", str(tmp_path / "missing.pt")])
    assert "--agents-from: no checkpoint file at" in capsys.readouterr().err
    assert main(["train", "--task", "ipd", "--episodes", "20", "--eval-period", "10", "--agents-from", str(ckpt),
                 "--out", str(tmp_path / "runs"), "--no-progress"]) in (0, None)
    run = Trainer.resume(next((tmp_path / "runs").glob("*/*/seed0/checkpoint.pt")), out_dir=None)
    assert run.config.agents_from == str(ckpt) and run.progress.episodes == 20
