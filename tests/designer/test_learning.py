"""Learning outcomes: the designer changes what selfish learners converge to; the control arm does not."""

from __future__ import annotations

from dataclasses import replace

import pytest

from designer import DesignerConfig, TrainConfig, Trainer


def _final_welfare(trainer: Trainer, last: int = 3) -> float:
    hist = trainer.progress.history[-last:]
    return sum(h.welfare for h in hist) / len(hist)


def _run(task: str, algorithm: str, episodes: int, seed: int, **task_kwargs) -> Trainer:
    base = Trainer(TrainConfig(task=task, task_kwargs=task_kwargs, episodes=1, seed=seed)).task.designer
    trainer = Trainer(
        TrainConfig(task=task, task_kwargs=task_kwargs, episodes=episodes, eval_period=max(episodes // 5, 1),
                    eval_episodes=50, seed=seed),
        designer=replace(base, algorithm=algorithm),
    )
    trainer.train()
    return trainer


def test_metagrad_makes_cooperation_the_learned_outcome_in_the_prisoners_dilemma():
    """PD (R,S,T,P)=(3,0,5,1): under MetaGrad both agents learn to cooperate (welfare 6); without a designer
    they learn to defect (welfare 2). Seed 0, 600 episodes, a few seconds."""
    with_designer = _run("ipd", "metagrad", 600, 0)
    without = _run("ipd", "none", 600, 0)
    assert _final_welfare(with_designer) >= 5.5
    assert _final_welfare(without) <= 2.5


@pytest.mark.slow
def test_metagrad_solves_escape_room_2_1():
    """ER(2,1): MetaGrad reaches >= 95% of the optimal welfare 9 within 12,000 episodes on seed 0, and the
    no-incentive agents stay far below (nobody pulls the lever for someone else)."""
    with_designer = _run("escape_room", "metagrad", 12000, 0, n_agents=2, min_at_lever=1)
    without = _run("escape_room", "none", 4000, 0, n_agents=2, min_at_lever=1)
    assert _final_welfare(with_designer) >= 0.95 * 9
    assert _final_welfare(without) <= 2.0


@pytest.mark.slow
def test_dual_rl_designer_improves_on_no_incentive_in_the_prisoners_dilemma():
    """The learning-oblivious baseline also learns something in the one-shot PD (it pays cooperation)."""
    dual = _run("ipd", "dual_rl", 3000, 0)
    assert _final_welfare(dual) > 2.5
    assert isinstance(dual.designer.config, DesignerConfig)
