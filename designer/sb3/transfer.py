"""Transfer evaluation: train off-the-shelf SB3 agents from scratch under a FROZEN incentive, and without it.

The question it answers: does an incentive function (e.g. a MetaGrad checkpoint, or a hand-made
``ActionTable``) make standard RL agents reach good social outcomes, and at what price? For every seed it
trains SB3 agents (parameter-shared PPO/A2C through :func:`wrappers.sb3.make_sb3_vec_env`, or one model per
agent with :class:`designer.sb3.IndependentSB3`) on the env wrapped with the incentive, evaluates them, and
reports:

- **welfare**: the sum of all agents' *env* rewards per episode (incentives excluded);
- **incentives**: the total incentive paid per episode;
- **designer net**: welfare - incentives, the designer's return;
- **action frequencies** of the evaluated agents (e.g. the cooperation rate in the IPD).

:func:`compare_transfer` runs the same training with and without the incentive and writes a CSV and a PNG of
welfare over training (the tables, CSVs and plot are :mod:`designer.sb3.results`). Timesteps everywhere count
joint env steps summed over env copies (each agent acts once per joint step).

CLI (mounted by ``designer`` as ``python -m designer transfer``)::

    python -m designer transfer --checkpoint runs/er/designer.pt --env escape_room \
        --env-kwargs '{"n_agents": 3, "min_at_lever": 2}' --timesteps 60000 --seeds 0 1 2 --out runs/transfer
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from pettingzoo import ParallelEnv
from stable_baselines3.common.callbacks import BaseCallback

from designer.sb3.independent import IndependentSB3
from designer.sb3.results import EvalRow, TransferResult
from incentive_envs.validation import check_positive_int
from wrappers.incentive import incentive
from wrappers.sb3 import ALGOS, make_sb3_vec_env

__all__ = [
    "DEFAULT_PPO_KWARGS",
    "EpisodeTracker",
    "add_transfer_subcommand",
    "compare_transfer",
    "evaluate_agents",
    "run_transfer",
    "transfer_eval",
]

DEFAULT_PPO_KWARGS: dict[str, Any] = {
    "n_steps": 64,
    "batch_size": 256,
    "n_epochs": 4,
    "learning_rate": 1e-3,
    "ent_coef": 0.01,
    "gamma": 0.99,
    "device": "cpu",
}
"""Defaults for small matrix/room games: short rollouts, a few epochs, a little entropy (overridable)."""

N_EVAL_EPISODES = 20
"""Evaluation episodes per seed and mode unless told otherwise (``transfer_eval`` and the CLI)."""

NO_INCENTIVE = "no incentive"
WITH_INCENTIVE = "incentive"

Policy = Callable[[Mapping[str, Any], bool], dict[str, Any]]
"""``policy(observations, deterministic) -> actions`` for the live agents."""


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Small MLPs on a 2-core CPU train ~18x faster with one thread; restore the caller's setting after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _with_incentive(
    env_fn: Callable[[], ParallelEnv], incentive_fn: Any, rules: Mapping[str, Any] | None = None
) -> Callable[[], ParallelEnv]:
    """``env_fn`` wrapped by the project's incentive wrapper (the frozen ``incentive_fn`` pays every step, under
    the wrapper's payment ``rules`` such as ``budget_per_episode``)."""
    if incentive_fn is None:
        return env_fn
    return functools.partial(_wrapped, env_fn, incentive_fn, dict(rules or {}))


def _wrapped(env_fn: Callable[[], ParallelEnv], incentive_fn: Any, rules: dict[str, Any]) -> ParallelEnv:
    return incentive(env_fn(), incentive_fn, **rules)  # module-level so that SuperSuit can pickle the factory


class EpisodeTracker:
    """Accumulates per-copy episode welfare and incentives from flat vector-env steps.

    Sub-env ``k`` is agent ``k % n_agents`` of copy ``k // n_agents`` (the layout of both training paths). Env
    rewards come from ``info["env_reward"]`` when the incentive wrapper is present, else from the reward.
    """

    def __init__(self, n_copies: int, n_agents: int) -> None:
        self.n_copies, self.n_agents = n_copies, n_agents
        self._welfare = np.zeros(n_copies)
        self._incentive = np.zeros(n_copies)
        self.steps = 0
        self.episodes: list[tuple[int, float, float]] = []
        """``(joint env steps so far, welfare, incentives paid)`` for every finished episode."""

    def update(self, rewards: np.ndarray, dones: np.ndarray, infos: Sequence[Mapping[str, Any]]) -> None:
        if len(infos) != self.n_copies * self.n_agents:
            raise ValueError(f"expected {self.n_copies * self.n_agents} sub-env infos, got {len(infos)}")
        for k, info in enumerate(infos):
            copy = k // self.n_agents
            self._welfare[copy] += float(info.get("env_reward", rewards[k]))
            self._incentive[copy] += float(info.get("incentive", 0.0))
        self.steps += self.n_copies
        done = np.asarray(dones, dtype=bool).reshape(self.n_copies, self.n_agents)
        for ended in np.flatnonzero(done.all(axis=1)):
            self.episodes.append((self.steps, float(self._welfare[ended]), float(self._incentive[ended])))
            self._welfare[ended] = self._incentive[ended] = 0.0


class _TrackerCallback(BaseCallback):
    """SB3 callback feeding every vector step into an :class:`EpisodeTracker`."""

    def __init__(self, tracker: EpisodeTracker) -> None:
        super().__init__()
        self.tracker = tracker

    def _on_step(self) -> bool:
        self.tracker.update(self.locals["rewards"], self.locals["dones"], self.locals["infos"])
        return True


def evaluate_agents(
    env_fn: Callable[[], ParallelEnv], policy: Policy, n_episodes: int, seed: int, deterministic: bool
) -> dict[str, Any]:
    """Run ``n_episodes`` episodes (episode ``e`` reset with ``seed + e``); mean welfare, incentives, actions.

    Welfare sums env rewards (``info["env_reward"]`` under the incentive wrapper), so incentives never count
    as welfare; the designer's net return is welfare minus incentives.
    """
    env = env_fn()
    welfare, paid = np.zeros(n_episodes), np.zeros(n_episodes)
    first = env.action_space(env.possible_agents[0])
    counts = np.zeros(int(first.n) if isinstance(first, spaces.Discrete) else 0)
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed + episode)
        while env.agents:
            actions = policy({a: obs[a] for a in env.agents}, deterministic)
            for action in actions.values():
                if counts.size:
                    counts[int(action) - int(first.start)] += 1
            obs, rewards, _, _, infos = env.step(actions)
            for agent, reward in rewards.items():
                welfare[episode] += float(infos[agent].get("env_reward", reward))
                paid[episode] += float(infos[agent].get("incentive", 0.0))
    env.close()
    freq = tuple(float(c) for c in counts / max(counts.sum(), 1.0))
    return {
        "welfare": float(welfare.mean()),
        "incentives": float(paid.mean()),
        "designer_net": float((welfare - paid).mean()),
        "action_freq": freq,
    }


def _train_one(
    env_fn: Callable[[], ParallelEnv],
    seed: int,
    *,
    algo: str,
    total_timesteps: int,
    n_copies: int,
    model_kwargs: Mapping[str, Any],
    independent: bool,
    progress_bar: bool,
) -> tuple[Policy, list[tuple[int, float, float]]]:
    """Train agents for one seed; return their joint policy and the training episodes."""
    if independent:
        learners = IndependentSB3(env_fn, n_copies, seed, algo=algo, model_kwargs=model_kwargs)
        tracker = EpisodeTracker(n_copies, len(learners.agents))
        learners.learn(total_timesteps, hook=tracker.update, progress_bar=progress_bar)
        return learners.predict, tracker.episodes
    venv = make_sb3_vec_env(env_fn, n_copies, seed)
    tracker = EpisodeTracker(n_copies, venv.n_agents)
    model = ALGOS[algo]("MlpPolicy", venv, seed=seed, **model_kwargs)
    model.learn(
        total_timesteps * venv.n_agents, callback=_TrackerCallback(tracker), progress_bar=progress_bar
    )
    venv.close()

    def shared(observations: Mapping[str, Any], deterministic: bool) -> dict[str, Any]:
        agents = list(observations)
        actions, _ = model.predict(np.stack([observations[a] for a in agents]), deterministic=deterministic)
        return {a: act.item() if np.ndim(act) == 0 else act for a, act in zip(agents, actions, strict=True)}

    return shared, tracker.episodes


def transfer_eval(
    env_fn: Callable[[], ParallelEnv],
    incentive_fn: Any | None,
    *,
    algo: str = "ppo",
    total_timesteps: int,
    seeds: Sequence[int],
    n_eval_episodes: int = N_EVAL_EPISODES,
    ppo_kwargs: Mapping[str, Any] | None = None,
    log_dir: str | Path | None = None,
    n_copies: int = 4,
    independent: bool = False,
    deterministic: Sequence[bool] = (False, True),
    progress_bar: bool = False,
    optimum: float | None = None,
    incentive_rules: Mapping[str, Any] | None = None,
) -> TransferResult:
    """Train SB3 agents from scratch on ``env_fn()`` under the frozen ``incentive_fn`` (None: no incentive).

    Args:
        env_fn: builds the ``ParallelEnv``.
        incentive_fn: a frozen incentive accepted by ``wrappers.incentive.incentive`` (e.g. ``ActionTable``,
            ``designer.load_incentive(path)``), or None for plain training.
        algo: ``"ppo"`` or ``"a2c"``.
        total_timesteps: joint env steps per seed, summed over the ``n_copies`` copies.
        seeds: one training run per seed (seed ``s``: model seed ``s``, env copy ``i`` seeded ``s + i``).
        n_eval_episodes: evaluation episodes per seed and mode, on env seeds ``10_000 + s + e``
            (default :data:`N_EVAL_EPISODES`, as the CLI's ``--n-eval-episodes``).
        ppo_kwargs: algorithm keyword arguments, overriding :data:`DEFAULT_PPO_KWARGS` (PPO) key by key.
        log_dir: if given, write CSVs and the PNG plot there (see :meth:`TransferResult.write`).
        n_copies: env copies trained in parallel.
        independent: one model per agent (:class:`designer.sb3.IndependentSB3`) instead of parameter sharing.
        deterministic: evaluation modes (sampled and/or greedy actions).
        progress_bar: show SB3's / tqdm's progress bar.
        optimum: social-optimum welfare drawn as a reference line in the plot.
        incentive_rules: payment rules of the incentive wrapper (e.g. ``{"budget_per_episode": 2.0,
            "on_budget": "scale"}``), so a frozen incentive can be capped when fresh agents would exploit it.

    Returns:
        A :class:`TransferResult` with one row per (seed, evaluation mode) and the training curves.
    """
    if algo not in ALGOS:
        raise ValueError(f"algo must be one of {sorted(ALGOS)}, got {algo!r}")
    total_timesteps = check_positive_int("total_timesteps", total_timesteps)
    n_eval_episodes = check_positive_int("n_eval_episodes", n_eval_episodes)
    n_copies = check_positive_int("n_copies", n_copies)
    seeds = [int(s) for s in seeds]
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct non-negative integers, got {seeds}")
    modes = [bool(d) for d in deterministic]
    if not modes:
        raise ValueError("deterministic must name at least one evaluation mode (False and/or True)")
    kwargs = {**(DEFAULT_PPO_KWARGS if algo == "ppo" else {"device": "cpu"}), **(ppo_kwargs or {})}
    condition = NO_INCENTIVE if incentive_fn is None else WITH_INCENTIVE
    wrapped = _with_incentive(env_fn, incentive_fn, incentive_rules)
    result = TransferResult()
    with _one_torch_thread():
        for seed in seeds:
            policy, episodes = _train_one(
                wrapped, seed, algo=algo, total_timesteps=total_timesteps, n_copies=n_copies,
                model_kwargs=kwargs, independent=independent, progress_bar=progress_bar,
            )  # fmt: skip
            result.curves[(condition, seed)] = episodes
            for det in modes:
                stats = evaluate_agents(wrapped, policy, n_eval_episodes, 10_000 + seed, det)
                result.rows.append(EvalRow(condition, seed, det, episodes=n_eval_episodes, **stats))
    if log_dir is not None:
        result.write(log_dir, optimum=optimum)
    return result


def compare_transfer(
    env_fn: Callable[[], ParallelEnv],
    incentive_fn: Any,
    *,
    log_dir: str | Path | None = None,
    optimum: float | None = None,
    **kwargs: Any,
) -> TransferResult:
    """:func:`transfer_eval` with and without ``incentive_fn`` on the same seeds; both in one result.

    ``kwargs`` go to :func:`transfer_eval` for both conditions; ``log_dir`` gets the combined CSVs and plot.
    """
    if incentive_fn is None:
        raise ValueError("compare_transfer needs an incentive function; use transfer_eval for a single arm")
    with_incentive = transfer_eval(env_fn, incentive_fn, **kwargs)
    without = transfer_eval(env_fn, None, **kwargs)
    result = with_incentive.merge(without)
    if log_dir is not None:
        result.write(log_dir, optimum=optimum)
    return result


# -- CLI hook (mounted by the designer CLI as `transfer`) ------------------------------------------------


def add_transfer_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``transfer`` sub-command to an ``argparse`` sub-parser group; it dispatches to run_transfer."""
    parser = subparsers.add_parser(
        "transfer",
        help="train SB3 agents under a frozen learned incentive vs none, report welfare",
        description="Train SB3 agents from scratch with the checkpoint's frozen incentive and without it.",
    )
    parser.add_argument("--checkpoint", required=True, type=Path, help="designer checkpoint (load_incentive)")
    parser.add_argument("--env", default="escape_room", help="registered game name, e.g. escape_room, ipd")
    parser.add_argument("--env-kwargs", default="{}", type=_json_object, help="JSON dict of env kwargs")
    parser.add_argument("--timesteps", default=60_000, type=int, help="joint env steps per seed")
    parser.add_argument("--seeds", default=[0, 1, 2], type=int, nargs="+", help="training seeds")
    parser.add_argument("--out", default=Path("runs/transfer"), type=Path, help="output directory")
    parser.add_argument("--n-eval-episodes", default=N_EVAL_EPISODES, type=int, help="evaluation episodes per seed")
    parser.add_argument("--algo", default="ppo", choices=sorted(ALGOS))
    parser.add_argument("--independent", action="store_true", help="one model per agent")
    parser.add_argument("--budget-per-episode", type=float, default=None,
                        help="cap the frozen incentive's payments per episode (scaled down to fit)")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.set_defaults(func=run_transfer)
    return parser


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"--env-kwargs is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"--env-kwargs must be a JSON object, got {text!r}")
    return value


def run_transfer(args: argparse.Namespace) -> int:
    """Run :func:`compare_transfer` for parsed ``transfer`` arguments; print the table, write CSV/PNG."""
    from designer import load_incentive
    from incentive_envs import make_parallel

    incentive_fn = load_incentive(args.checkpoint)
    env_fn = functools.partial(make_parallel, args.env, **args.env_kwargs)
    result = compare_transfer(
        env_fn,
        incentive_fn,
        algo=args.algo,
        total_timesteps=args.timesteps,
        seeds=args.seeds,
        n_eval_episodes=args.n_eval_episodes,
        independent=args.independent,
        incentive_rules=(
            {"budget_per_episode": args.budget_per_episode, "on_budget": "scale"}
            if args.budget_per_episode is not None else None
        ),
        progress_bar=args.progress,
        log_dir=args.out,
        optimum=_optimum(args.env, args.env_kwargs),
    )
    print(result.table())
    png = " and transfer_welfare.png" if (Path(args.out) / "transfer_welfare.png").exists() else ""
    print(f"\nwrote {args.out}/transfer_*.csv{png}")
    return 0


def _optimum(env: str, env_kwargs: Mapping[str, Any]) -> float | None:
    """Known social-optimum welfare for the plot's reference line (Escape Room only)."""
    if env.split("/")[-1].split("-")[0] != "escape_room":
        return None
    from incentive_envs.escape_room import EscapeRoomEnv, optimal_welfare

    probe = EscapeRoomEnv(**env_kwargs)
    return optimal_welfare(probe.n_agents, probe.min_at_lever)
