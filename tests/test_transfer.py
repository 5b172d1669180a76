"""Transfer evaluation (designer.sb3): exact accounting, reproducibility, files, CLI, and learning arms."""

from __future__ import annotations

import argparse
import csv
import functools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import designer
from designer.sb3 import (
    EpisodeTracker,
    add_transfer_subcommand,
    compare_transfer,
    evaluate_agents,
    run_transfer,
    transfer_eval,
)
from incentive_envs import ipd
from incentive_envs.escape_room import parallel_env as escape_room
from wrappers.incentive import ActionTable, incentive

ROOT = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {"n_steps": 8, "batch_size": 8, "n_epochs": 1}
er21 = functools.partial(escape_room, n_agents=2, min_at_lever=1)


def test_tracker_sums_env_rewards_and_incentives_per_copy() -> None:
    tracker = EpisodeTracker(n_copies=2, n_agents=2)
    paid = [{"env_reward": -1.0, "incentive": 2.0}, {"env_reward": 0.0, "incentive": 0.0}]
    tracker.update(np.array([1.0, 0.0, 5.0, 5.0]), np.zeros(4, bool), [*paid, {}, {}])  # copy 1: no wrapper
    tracker.update(np.array([9.0, 9.0, 1.0, 1.0]), np.array([0, 0, 1, 1], bool), [{}, {}, {}, {}])
    assert tracker.episodes == [(4, 12.0, 0.0)]  # copy 1: rewards are env rewards
    done = [{"env_reward": 10.0, "incentive": 0.0}, {"env_reward": -1.0, "incentive": 2.0}, {}, {}]
    tracker.update(np.zeros(4), np.array([1, 1, 0, 0], bool), done)
    assert tracker.episodes[-1] == (6, -1.0 + 0.0 + 18.0 + 10.0 - 1.0, 4.0)  # welfare excludes incentives
    with pytest.raises(ValueError, match="expected 4"):
        tracker.update(np.zeros(2), np.zeros(2, bool), [{}, {}])


def scripted(observations: dict[str, Any], deterministic: bool) -> dict[str, int]:
    """agent_0 pulls the lever, everyone else heads for the door."""
    return {a: 0 if a == "agent_0" else 2 for a in observations}


def test_evaluation_matches_the_rules_and_the_wrapper_books() -> None:
    wrapped = functools.partial(lambda: incentive(er21(), ActionTable([1.0, 0.0, 0.0])))
    stats = evaluate_agents(wrapped, scripted, n_episodes=3, seed=0, deterministic=True)
    assert stats == {"welfare": 9.0, "incentives": 1.0, "designer_net": 8.0, "action_freq": (0.5, 0.0, 0.5)}
    env = wrapped()
    env.reset(seed=0)
    env.step({"agent_0": 0, "agent_1": 2})
    books = env.episode_stats()
    assert (books["welfare"], books["incentives_paid"], books["designer_net"]) == (9.0, 1.0, 8.0)
    plain = evaluate_agents(er21, scripted, n_episodes=2, seed=0, deterministic=False)
    assert (plain["welfare"], plain["incentives"], plain["designer_net"]) == (9.0, 0.0, 9.0)


def test_transfer_eval_is_reproducible_and_reports_every_seed_and_mode() -> None:
    runs = [
        transfer_eval(
            er21,
            ActionTable([1.0, 0.0, 0.0]),
            total_timesteps=64,
            seeds=[3, 4],
            n_eval_episodes=2,
            ppo_kwargs=TINY,
            n_copies=2,
        )
        for _ in range(2)
    ]
    assert runs[0].rows == runs[1].rows and runs[0].curves == runs[1].curves
    rows = runs[0].rows
    assert [(r.condition, r.seed, r.deterministic) for r in rows] == [
        ("incentive", 3, False), ("incentive", 3, True), ("incentive", 4, False), ("incentive", 4, True),
    ]  # fmt: skip
    for r in rows:
        assert r.designer_net == pytest.approx(r.welfare - r.incentives) and sum(r.action_freq) == pytest.approx(1)
    steps = [s for s, _, _ in runs[0].curves[("incentive", 3)]]
    assert steps == sorted(steps) and 0 < steps[-1] <= 64 + 8 * 2


def test_torch_threads_are_restored() -> None:
    torch.set_num_threads(2)
    try:
        transfer_eval(er21, None, total_timesteps=16, seeds=[0], n_eval_episodes=1, ppo_kwargs=TINY, n_copies=1)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(1)


def test_compare_writes_tables_and_plot(tmp_path: Path) -> None:
    result = compare_transfer(
        er21, ActionTable([1.0, 0.0, 0.0]), total_timesteps=64, seeds=[0], n_eval_episodes=2, ppo_kwargs=TINY,
        n_copies=2, deterministic=(True,), log_dir=tmp_path, optimum=9.0, independent=True,
    )  # fmt: skip
    assert {r.condition for r in result.rows} == {"incentive", "no incentive"}
    assert all(r.incentives == 0.0 for r in result.rows if r.condition == "no incentive")
    with (tmp_path / "transfer_seeds.csv").open() as fh:
        seeds = list(csv.DictReader(fh))
    assert [(s["condition"], s["seed"], s["deterministic"]) for s in seeds] == [
        ("incentive", "0", "True"), ("no incentive", "0", "True"),
    ]  # fmt: skip
    with (tmp_path / "transfer_summary.csv").open() as fh:
        summary = list(csv.DictReader(fh))
    assert {s["condition"] for s in summary} == {"incentive", "no incentive"} and "welfare_std" in summary[0]
    with (tmp_path / "transfer_curves.csv").open() as fh:
        assert next(csv.reader(fh)) == ["condition", "seed", "step", "welfare", "incentives"]
    png = (tmp_path / "transfer_welfare.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "± " in result.table()


def test_compare_in_the_readme_form_needs_no_eval_episode_count() -> None:
    """The README's call ``compare_transfer(env_fn, incentive_fn, total_timesteps=..., seeds=[0, 1, 2])`` runs:
    ``n_eval_episodes`` defaults to the CLI's 20 (it used to be required)."""
    env_fn = functools.partial(ipd.parallel_env, max_cycles=1)
    result = compare_transfer(env_fn, ActionTable([2.5, 0.0]), total_timesteps=8, seeds=[0, 1, 2])
    assert {(r.condition, r.seed) for r in result.rows} == {
        (condition, seed) for condition in ("incentive", "no incentive") for seed in (0, 1, 2)
    }
    assert {r.episodes for r in result.rows} == {20}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"algo": "dqn"}, "algo"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [1, 1]}, "seeds"),
        ({"total_timesteps": 0}, "total_timesteps"),
        ({"n_eval_episodes": 0}, "n_eval_episodes"),
        ({"deterministic": ()}, "deterministic"),
    ],
)
def test_bad_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    args = {"total_timesteps": 16, "seeds": [0], "n_eval_episodes": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        transfer_eval(er21, None, **args)


def test_compare_needs_an_incentive() -> None:
    with pytest.raises(ValueError, match="incentive"):
        compare_transfer(er21, None, total_timesteps=16, seeds=[0], n_eval_episodes=1)


def test_cli_hook_parses_and_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    loaded: list[Path] = []

    def fake_load(path: Path) -> ActionTable:
        loaded.append(path)
        return ActionTable([1.0, 0.0, 0.0])

    monkeypatch.setattr(designer, "load_incentive", fake_load, raising=False)
    parser = argparse.ArgumentParser()
    add_transfer_subcommand(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["transfer", "--checkpoint", "ckpt.pt", "--env", "escape_room", "--env-kwargs",
         '{"n_agents": 2, "min_at_lever": 1}', "--timesteps", "32", "--seeds", "0", "--out", str(tmp_path),
         "--n-eval-episodes", "1"]
    )  # fmt: skip
    assert args.func is run_transfer and args.env_kwargs == {"n_agents": 2, "min_at_lever": 1}
    assert args.func(args) == 0
    assert loaded == [Path("ckpt.pt")] and (tmp_path / "transfer_welfare.png").exists()
    assert "designer net" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["transfer", "--checkpoint", "x", "--env-kwargs", "[1]"])


def test_example_smoke(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "transfer_sb3.py"), "--timesteps", "64", "--seeds", "0",
         "--n-eval-episodes", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    assert f"plot: {tmp_path / 'transfer_welfare.png'}" in out.stdout
    assert "no incentive" in out.stdout and (tmp_path / "transfer_welfare.png").exists()


@pytest.mark.slow
def test_ipd_agents_cooperate_with_the_incentive_and_defect_without() -> None:
    # paying 2.5 for cooperating makes it dominant: R + 2.5 > T and S + 2.5 > P
    result = compare_transfer(
        functools.partial(ipd.parallel_env, max_cycles=10), ActionTable([2.5, 0.0]), total_timesteps=8_000,
        seeds=[0], n_eval_episodes=10, deterministic=(True,),
    )  # fmt: skip
    rows = {r.condition: r for r in result.rows}
    assert rows["incentive"].action_freq[0] >= 0.9 and rows["incentive"].welfare >= 0.9 * 60
    assert rows["no incentive"].action_freq[0] <= 0.1 and rows["no incentive"].welfare <= 1.1 * 20


def test_incentive_rules_cap_the_frozen_incentive_per_episode():
    """``incentive_rules`` reach the wrapper: a frozen table paying 2 per lever pull is scaled to a 1.0 budget."""
    import functools

    from designer.sb3.transfer import _with_incentive
    from incentive_envs.escape_room import EscapeRoomEnv
    from wrappers import ActionTable

    make = _with_incentive(functools.partial(EscapeRoomEnv, n_agents=3, min_at_lever=2), ActionTable([2.0, 0, 0]),
                           {"budget_per_episode": 1.0, "on_budget": "scale"})
    env = make()
    env.reset(seed=0)
    total = 0.0
    while env.agents:
        _, _, _, _, infos = env.step(dict.fromkeys(env.agents, 0))  # everybody sits at the lever
        total += sum(i["incentive"] for i in infos.values())
    assert abs(total - 1.0) < 1e-9
