"""The principals' rules against hand-computed cases, and their behaviour on a tiny bandit-like designer env."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from designer.extras import MissingExtra
from designer.principal import (
    UCB,
    CallablePrincipal,
    EpsilonGreedy,
    OptunaPrincipal,
    Round,
    ThompsonSampling,
    grid_arms,
    history_json,
    run_principal,
)

BOX = spaces.Box(0.0, 2.0, shape=(1,), dtype=np.float32)


class PeakEnv(gymnasium.Env[np.ndarray, np.ndarray]):
    """A bandit-like designer env: one parameter x in [0, 2]; reward ``4 - 5 (x - 1.5)^2`` plus N(0, 0.5^2) noise;
    each round costs 10 agent episodes."""

    metadata: dict[str, Any] = {"render_modes": []}
    episodes_per_step = 10
    parameter_names = ("pay_lever",)

    def __init__(self) -> None:
        self.action_space = BOX
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(1,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        x = float(np.asarray(action).reshape(-1)[0])
        reward = 4.0 - 5.0 * (x - 1.5) ** 2 + 0.5 * float(self.np_random.standard_normal())
        outcome = {"welfare": reward + x, "incentives": x, "net": reward}
        obs = np.array([reward], dtype=np.float32)
        return obs, reward, False, False, {"agent_episodes": 10, "outcome": outcome, "parameters": [x]}


def _round(step: int, x: float, reward: float) -> Round:
    return Round(step=step, parameters=(x,), reward=reward)


def _feed(bandit: Any, rewards: list[float]) -> list[int]:
    """Propose/observe with the given rewards; the arm indices chosen."""
    chosen = []
    for t, r in enumerate(rewards):
        x = bandit.propose()
        chosen.append(int(np.flatnonzero((bandit.arms == x).all(1))[0]))
        bandit.observe(_round(t, float(x[0]), r))
    return chosen


# ----------------------------------------------------------------------------------------- grids and rules
def test_grid_arms_cover_the_box_lexicographically() -> None:
    box = spaces.Box(np.array([0.0, 1.0], dtype=np.float32), np.array([2.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(grid_arms(box, 3), [[0, 1], [0, 2], [0, 3], [1, 1], [1, 2], [1, 3], [2, 1],
                                                      [2, 2], [2, 3]])
    with pytest.raises(ValueError, match="levels"):
        grid_arms(box, 1)
    with pytest.raises(ValueError, match="arms"):
        grid_arms(spaces.Box(0.0, 1.0, shape=(20,)), 3)


def test_ucb_pulls_each_arm_once_then_the_largest_upper_bound() -> None:
    ucb = UCB(c=1.0, levels=3)
    ucb.reset(BOX, seed=0)
    assert _feed(ucb, [1.0, 2.0, 0.0]) == [0, 1, 2]
    # t=3, n=1 each: bound = mean + sqrt(2 ln 3) = mean + 1.4823 -> arm 1 (3.48)
    np.testing.assert_allclose(ucb.scores(), np.array([1.0, 2.0, 0.0]) + np.sqrt(2 * np.log(3)))
    assert _feed(ucb, [0.0]) == [1]
    # arm 1: mean 1.0, n=2 -> 1 + sqrt(2 ln 4 / 2) = 2.1774; arm 0: 1 + sqrt(2 ln 4) = 2.6651; arm 2: 1.6651
    np.testing.assert_allclose(ucb.scores(), [1 + np.sqrt(2 * np.log(4)), 1 + np.sqrt(np.log(4)),
                                              np.sqrt(2 * np.log(4))])
    assert _feed(ucb, [5.0]) == [0]


def test_epsilon_greedy_tries_each_arm_then_exploits_with_probability_one_minus_epsilon() -> None:
    greedy = EpsilonGreedy(epsilon=0.0, levels=3)
    greedy.reset(BOX, seed=0)
    # means after each pull of arm 1: 3 -> 2.5 (> arm 2's 2: pulled again) -> 1.67 (< 2: arm 2 next)
    assert _feed(greedy, [1.0, 3.0, 2.0, 2.0, 0.0]) == [0, 1, 2, 1, 1]
    assert _feed(greedy, [0.0]) == [2]
    explorer = EpsilonGreedy(epsilon=1.0, levels=3)
    explorer.reset(BOX, seed=3)
    chosen = _feed(explorer, [0.0] * 300)
    assert chosen[:3] == [0, 1, 2]
    counts = np.bincount(chosen[3:], minlength=3)
    assert counts.min() > 70  # uniform: ~99 each


def test_epsilon_greedy_breaks_ties_toward_the_lowest_arm() -> None:
    greedy = EpsilonGreedy(epsilon=0.0, arms=[[0.5], [1.0], [1.5]])
    greedy.reset(BOX, seed=0)
    assert _feed(greedy, [2.0, 2.0, 2.0, 2.0]) == [0, 1, 2, 0]


def test_thompson_posterior_matches_the_conjugate_update() -> None:
    ts = ThompsonSampling(prior_mean=0.0, prior_std=2.0, noise_std=1.0, levels=2)
    ts.reset(BOX, seed=0)
    ts.counts[:] = [2, 0]
    ts.sums[:] = [6.0, 0.0]
    mean, std = ts.posterior()
    # precision 1/4 + 2/1 = 2.25; mean (0 + 6) / 2.25 = 2.6667; untouched arm keeps the prior
    np.testing.assert_allclose(mean, [6 / 2.25, 0.0])
    np.testing.assert_allclose(std, [1 / 1.5, 2.0])


def test_thompson_draws_from_the_posterior_with_its_generator() -> None:
    ts = ThompsonSampling(prior_mean=0.0, prior_std=2.0, noise_std=1.0, levels=2)
    ts.reset(BOX, seed=7)
    ts.counts[:] = [2, 0]
    ts.sums[:] = [6.0, 0.0]
    z = np.random.default_rng(7).standard_normal(2)
    want = int(np.argmax([6 / 2.25 + z[0] / 1.5, 2.0 * z[1]]))
    assert ts.choose() == want
    # a confident arm far above the prior wins almost always
    ts.counts[:] = [50, 0]
    ts.sums[:] = [500.0, 0.0]
    assert sum(ts.choose() == 0 for _ in range(200)) > 190


def test_bandits_reject_bad_settings_and_misuse() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        EpsilonGreedy(epsilon=1.5)
    with pytest.raises(ValueError, match="c must"):
        UCB(c=0.0)
    with pytest.raises(ValueError, match="arms must"):
        UCB(arms=[[3.0]]).reset(BOX)
    with pytest.raises(RuntimeError, match="reset"):
        UCB().propose()
    ucb = UCB()
    ucb.reset(BOX)
    with pytest.raises(RuntimeError, match="propose"):
        ucb.observe(_round(0, 0.0, 1.0))
    with pytest.raises(TypeError, match="bounded 1-d Box"):
        UCB().reset(spaces.Discrete(3))


# -------------------------------------------------------------------------------- on a tiny designer env
@pytest.mark.parametrize("make", [lambda: EpsilonGreedy(epsilon=0.1, levels=5), lambda: UCB(c=2.0, levels=5),
                                  lambda: ThompsonSampling(prior_std=10.0, noise_std=1.0, levels=5)],
                         ids=["epsilon_greedy", "ucb", "thompson"])
def test_bandits_find_the_best_arm_within_40_rounds(make: Any) -> None:
    """Arms 0, 0.5, 1, 1.5, 2: true means -7.25, -1, 2.75, 4, 2.75 (gap 1.25, noise 0.5); seed 0."""
    bandit = make()
    rounds = run_principal(PeakEnv(), bandit, budget=400, seed=0)
    assert len(rounds) == 40
    assert bandit.best_arm() == 3 and bandit.arms[3, 0] == 1.5
    assert sum(r.parameters == (1.5,) for r in rounds[-10:]) >= 7  # mostly exploiting by the end


def test_bayesian_optimisation_finds_the_peak() -> None:
    pytest.importorskip("optuna")
    bo = OptunaPrincipal(sampler="gp", n_startup_trials=4)
    rounds = run_principal(PeakEnv(), bo, budget=150, seed=0)
    assert len(rounds) == 15
    best = max(rounds, key=lambda r: r.reward)
    assert abs(best.parameters[0] - 1.5) < 0.25, best
    again = run_principal(PeakEnv(), OptunaPrincipal(sampler="gp", n_startup_trials=4), budget=150, seed=0)
    assert [r.parameters for r in again] == [r.parameters for r in rounds]  # seeded


def test_bayesian_optimisation_without_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtra, match=r'incentive-design\[principals\]'):
        OptunaPrincipal()
    with pytest.raises(ValueError, match="sampler"):
        OptunaPrincipal(sampler="nope")


def test_callable_principal_sees_the_history_and_a_scripted_policymaker_climbs() -> None:
    """A scripted stand-in for an LLM: reads the JSON, steps the lever payment up while the reward improves."""
    seen: list[dict[str, Any]] = []

    def policymaker(summary: str) -> str:
        data = json.loads(summary)
        seen.append(data)
        rounds = data["rounds"]
        if not rounds:
            return json.dumps({"pay_lever": 0.0})
        x = rounds[-1]["parameters"][0]
        better = len(rounds) < 2 or rounds[-1]["reward"] >= rounds[-2]["reward"]
        return json.dumps({"pay_lever": min(x + 0.25, 2.0) if better else max(x - 0.25, 0.0)})

    principal = CallablePrincipal(policymaker, parameter_names=PeakEnv.parameter_names, objective="net", last=3)
    rounds = run_principal(PeakEnv(), principal, budget=120, seed=1)
    assert seen[0] == {"parameters": [{"name": "pay_lever", "low": 0.0, "high": 2.0}], "objective": "net",
                       "rounds_so_far": 0, "rounds": []}
    assert [len(s["rounds"]) for s in seen] == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3, 3, 3]
    assert seen[5]["rounds_so_far"] == 5 and seen[5]["rounds"][0]["step"] == 2
    assert seen[1]["rounds"][0]["outcome"]["incentives"] == 0.0
    assert np.mean([r.parameters[0] for r in rounds[-4:]]) > 1.0  # it climbed toward the peak at 1.5


@pytest.mark.parametrize(("answer", "match"), [("not json", "cannot read"), ([1.0, 2.0], "1 finite"),
                                               ({"other": 1.0}, "names"), ([float("nan")], "finite"),
                                               ([3.0], "outside")])
def test_callable_principal_rejects_bad_answers_quoting_them(answer: Any, match: str) -> None:
    principal = CallablePrincipal(lambda _: answer, parameter_names=("pay_lever",))
    principal.reset(BOX, seed=0)
    with pytest.raises(ValueError, match=match):
        principal.propose()


def test_callable_principal_clips_when_asked() -> None:
    principal = CallablePrincipal(lambda _: [3.0], clip=True)
    principal.reset(BOX, seed=0)
    np.testing.assert_array_equal(principal.propose(), [2.0])


def test_history_json_is_stable_and_limited() -> None:
    rounds = [_round(t, 0.5 * t, float(t)) for t in range(4)]
    text = history_json(["x"], [0.0], [2.0], rounds, last=2)
    data = json.loads(text)
    assert [r["step"] for r in data["rounds"]] == [2, 3] and data["rounds_so_far"] == 4
    assert history_json(["x"], [0.0], [2.0], rounds, last=0).count('"rounds": []') == 1


def test_run_principal_logs_each_round_to_csv_and_stops_within_the_budget(tmp_path: Path) -> None:
    path = tmp_path / "run" / "rounds.csv"
    rounds = run_principal(PeakEnv(), UCB(levels=3), budget=55, seed=0, csv_path=path)
    assert len(rounds) == 5 and rounds[-1].total_agent_episodes == 50
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["step", "agent_episodes", "total_agent_episodes", "reward", "param/pay_lever",
                             "welfare", "incentives", "net", "designer_return", "episode_steps"]
    assert [float(r["param/pay_lever"]) for r in rows[:3]] == [0.0, 1.0, 2.0]
    assert [int(r["total_agent_episodes"]) for r in rows] == [10, 20, 30, 40, 50]
    assert float(rows[0]["reward"]) == pytest.approx(rounds[0].reward)
    assert rows[0]["designer_return"] == ""  # this env reports no designer return
    with pytest.raises(ValueError, match="less than one round"):
        run_principal(PeakEnv(), UCB(), budget=5)
