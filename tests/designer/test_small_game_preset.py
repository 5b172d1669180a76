"""Acceptance of the ``small_game`` preset on games the library does not ship (#17): MetaGrad with the preset
reaches 90% of the optimum on at least 4 of 5 seeds, while agents without a designer end in the selfish
outcome; and the trainer warns when the meta-gradient stays exactly zero."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest
from pettingzoo import ParallelEnv

from designer import TrainConfig, Trainer
from designer.experiments import trainer as trainer_module
from designer.presets import SMALL_GAME, game_task
from tests.games import commons, hawk_dove, volunteer
from tests.games._stage import StageGameEnv

EPISODES = 3000
"""Training budget per seed (below the issue's 5,000: every seed that passes has passed by then)."""
SEEDS = range(5)


def _final_welfare(make: Callable[[], ParallelEnv], optimum: float, algorithm: str, seed: int) -> float:
    """Mean welfare of the last two evaluations, as a fraction of the optimum."""
    task = game_task("game", make, optimum=optimum)
    cfg = TrainConfig(task="game", episodes=EPISODES, seed=seed, batch_episodes=SMALL_GAME.batch_episodes,
                      vectorized=True, eval_period=EPISODES // 4, eval_episodes=20)
    history = Trainer(cfg, task=task, designer=replace(task.designer, algorithm=algorithm)).train()
    return (history[-1].welfare + history[-2].welfare) / 2 / optimum


# (game, optimum, the no-designer bound: the selfish outcome's welfare fraction plus a margin)
GAMES = [
    pytest.param(hawk_dove.parallel_env, 6.0, 0.75, id="hawk_dove"),  # one hawk: 4/6; mixed: 3/6
    pytest.param(volunteer.parallel_env, 5.0, 0.1, id="volunteer"),  # nobody volunteers: 0
    pytest.param(commons.parallel_env, commons.best_welfare(), 0.72, id="commons"),  # all high: 18/28
]


@pytest.mark.slow
@pytest.mark.parametrize(("make", "optimum", "selfish"), GAMES)
def test_metagrad_with_the_preset_learns_where_selfish_agents_fail(make: Callable[[], ParallelEnv],
                                                                 optimum: float, selfish: float):
    """>= 90% of the optimum on >= 4 of 5 seeds with MetaGrad; the selfish outcome without a designer."""
    with_designer = [_final_welfare(make, optimum, "metagrad", seed) for seed in SEEDS]
    assert sum(w >= 0.9 for w in with_designer) >= 4, with_designer
    without = [_final_welfare(make, optimum, "none", seed) for seed in SEEDS[:2]]
    assert max(without) <= selfish, without


def test_zero_meta_gradient_warns_once(monkeypatch: pytest.MonkeyPatch):
    """A game with one action gives the agents no policy gradient, so the meta-gradient is exactly 0: the
    trainer says so after ZERO_META_GRAD_PATIENCE iterations, once."""
    monkeypatch.setattr(trainer_module, "ZERO_META_GRAD_PATIENCE", 5)
    task = game_task("one_action", lambda: StageGameEnv(lambda joint: [1.0, 1.0], 2, ("only",)))
    cfg = TrainConfig(task="one_action", episodes=20, eval_period=20, eval_episodes=1)
    with pytest.warns(RuntimeWarning, match=r"exactly 0 in all of the first 5 iterations .* designer is not learn"
                      ) as seen:
        Trainer(cfg, task=task).train()
    assert len([w for w in seen if "meta-gradient" in str(w.message)]) == 1


def test_no_warning_once_the_meta_gradient_was_non_zero(monkeypatch: pytest.MonkeyPatch,
                                                        recwarn: pytest.WarningsRecorder):
    """A designer that learned and then saturated (meta-gradient 0 from then on) is not warned about."""
    monkeypatch.setattr(trainer_module, "ZERO_META_GRAD_PATIENCE", 3)
    task = game_task("hawk_dove", hawk_dove.parallel_env, optimum=6.0)
    trainer = Trainer(TrainConfig(task="hawk_dove", episodes=2, eval_period=2, eval_episodes=1), task=task)
    for norm in (0.0, 0.5, 0.0, 0.0, 0.0, 0.0):
        trainer._watch_meta_gradient(norm)
    assert not [w for w in recwarn if "meta-gradient" in str(w.message)]
