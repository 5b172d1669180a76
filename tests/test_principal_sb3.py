"""Stable-baselines3 as a black-box principal (issue #18): one run of agents, the rounds that fit the budget,
the same records as the other principals, as a sweep trial too."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from designer.experiments.spec import AlgorithmSpec, Sweep
from designer.experiments.sweep import read_result, run_sweep
from designer.principal import DesignerEnv, DesignerEnvConfig
from designer.principal.sb3 import run_sb3_principal

pytest.importorskip("stable_baselines3")
ER = {"n_agents": 2, "min_at_lever": 1}
PPO = {"algorithm": "PPO", "n_steps": 4, "batch_size": 4, "n_epochs": 2}


def _env(horizon: int = 6) -> DesignerEnv:
    return DesignerEnv(DesignerEnvConfig(task="escape_room", task_kwargs=ER, episodes_per_step=10, horizon=horizon))


def test_sb3_plays_the_rounds_that_fit_the_budget_on_one_run_of_agents(tmp_path: Path) -> None:
    """55 agent episodes at 10 per round: 5 rounds (not 6), all on the same agents (no reset into new agents),
    one rounds.csv row each; the same seed gives the same rounds."""
    env = _env()
    resets = []
    original = env.reset
    env.reset = lambda **kw: (resets.append(kw), original(**kw))[1]  # type: ignore[method-assign]
    rounds = run_sb3_principal(env, 55, seed=3, csv_path=tmp_path / "rounds.csv", **PPO)
    assert [r.total_agent_episodes for r in rounds] == [10, 20, 30, 40, 50] and len(resets) == 1
    with (tmp_path / "rounds.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [float(r["reward"]) for r in rows] == [r.reward for r in rounds]
    assert all(0.0 <= p <= env.action_space.high.max() for r in rounds for p in r.parameters)
    again = run_sb3_principal(_env(), 55, seed=3, **PPO)
    assert [(r.parameters, r.reward) for r in again] == [(r.parameters, r.reward) for r in rounds]


def test_sb3_principal_refuses_unknown_algorithms_and_small_budgets() -> None:
    with pytest.raises(ValueError, match="algorithm must be one of"):
        run_sb3_principal(_env(), 60, algorithm="DQN")
    with pytest.raises(ValueError, match="less than one round"):
        run_sb3_principal(_env(), 5)
    with pytest.raises(ValueError, match="sb3 principal: algorithm must be one of"):
        AlgorithmSpec("principal", principal={"name": "sb3", "options": {"algorithm": "DQN"}})


def test_sb3_principal_runs_as_a_sweep_trial(tmp_path: Path) -> None:
    spec = AlgorithmSpec("principal", principal={"name": "sb3", "options": PPO, "episodes_per_step": 10},
                         label="ppo")
    sweep = Sweep("p", tasks=[{"task": "escape_room", "task_kwargs": ER, "label": "er21"}], algorithms=[spec],
                  seeds=1, train={"episodes": 60, "eval_period": 20, "eval_episodes": 5})
    assert run_sweep(sweep, tmp_path).ok
    folder = tmp_path / "er21__ppo__default__seed0"
    with (folder / "log.csv").open(newline="") as fh:
        assert [int(r["episode"]) for r in csv.DictReader(fh)] == [0, 20, 40, 60]
    with (folder / "rounds.csv").open(newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 6
    assert read_result(folder).episodes == 60  # type: ignore[union-attr]
