"""Black-box principals as sweep trials: the same run folders, tables and curves as MetaGrad's trials.

A sweep algorithm ``{"algorithm": "principal", "principal": {"name": "ucb", ...}, "label": "ucb"}``
(:class:`designer.experiments.spec.AlgorithmSpec` with ``principal=``) makes each of its trials one run of
:func:`~designer.principal.run.run_principal` on a :class:`~designer.principal.env.DesignerEnv` built from the
trial's own configs: the task, the agents' settings (``LearnerConfig``), the designer's output and scale, the
episodes per batch, the seed and, as the budget, ``TrainConfig.episodes`` agent episodes. The trial folder gets
what a trainer trial writes, so :mod:`designer.experiments.aggregate` treats every designer alike:

- ``log.csv``: one row per evaluation, the trainer's columns (``episode`` = agent training episodes consumed so
  far, ``welfare``, ``incentives``, ``net``, ...; the evaluation is :meth:`Trainer.evaluate
  <designer.experiments.trainer.Trainer.evaluate>`: ``eval_episodes`` fresh episodes under the parameters in
  force, not counted in the budget, as for trainer trials), then ``round``, ``reward`` (the principal's objective
  over the last round's training episodes) and ``param/<name>`` (the parameters in force). Evaluations happen at
  episode 0, after the round in which the episodes cross a multiple of ``eval_period``, and after the last round;
- ``rounds.csv``: :func:`run_principal`'s row per round; ``trial.json`` and ``result.json`` as for every trial.

A principal trial keeps no checkpoint: an interrupted one is **run again from the start** by the next sweep run,
which gives the same rounds and log (the run is deterministic per seed); finished ones are skipped as usual.
``checkpoint_period``, ``tensorboard`` and ``agents_from`` do not apply (the last is refused).
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np

from designer.experiments.records import EvalResult, append_log_row
from designer.experiments.runfolder import RunLock
from designer.principal.bandits import UCB, EpsilonGreedy, ThompsonSampling
from designer.principal.base import Principal
from designer.principal.bayes import OptunaPrincipal
from designer.principal.env import OBJECTIVES, DesignerEnv, DesignerEnvConfig
from designer.principal.function import CallablePrincipal
from designer.principal.run import run_principal
from designer.principal.sb3 import SB3_ALGORITHMS, run_sb3_principal
from designer.tasks import make_task

if TYPE_CHECKING:
    from designer.experiments.spec import Trial

__all__ = ["PRINCIPAL", "PRINCIPALS", "PrincipalTrialConfig", "principal_env", "run_principal_trial"]

PRINCIPAL = "principal"
"""The ``algorithm`` of a sweep's principal entries (not a trainer designer: the sweep runs them here)."""


def _policy(reference: str) -> Callable[[str], Any]:
    """The function ``"package.module:function"`` names."""
    module, sep, attr = reference.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"policy must be 'package.module:function', got {reference!r}")
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise ValueError(f"{reference!r} is not a function")
    return fn


def _callable(names: Sequence[str], policy: str = "designer.principal.function:hill_climb",
              **kwargs: Any) -> Principal:
    return CallablePrincipal(_policy(policy), parameter_names=names, **kwargs)


PRINCIPALS: dict[str, Callable[..., Principal]] = {
    "epsilon_greedy": lambda names, **kw: EpsilonGreedy(**kw),
    "ucb": lambda names, **kw: UCB(**kw),
    "thompson": lambda names, **kw: ThompsonSampling(**kw),
    "optuna": lambda names, **kw: OptunaPrincipal(**kw),
    "callable": _callable,
}
"""Principal names a sweep accepts (besides :data:`SB3`) -> ``(parameter names, **options) -> Principal``.
Options are the class's keyword arguments (``levels``, ``c``, ``epsilon``, ``sampler``, ...); ``callable`` takes
``policy``, a ``"package.module:function"`` reference to a :data:`~designer.principal.function.PolicyFn` (default: the
scripted stand-in :func:`~designer.principal.function.hill_climb`), and :class:`CallablePrincipal`'s others."""
SB3 = "sb3"
"""The principal name of stable-baselines3 (:func:`~designer.principal.sb3.run_sb3_principal`: options
``algorithm``, one of :data:`~designer.principal.sb3.SB3_ALGORITHMS`, and the algorithm's own arguments)."""


@dataclass(frozen=True)
class PrincipalTrialConfig:
    """The ``principal`` settings of a sweep's principal entry (stored in each trial's ``trial.json``).

    Attributes:
        name: a key of :data:`PRINCIPALS`, or :data:`SB3`.
        options: the principal's keyword arguments (e.g. ``{"levels": 3, "c": 2.0}``).
        episodes_per_step: agent training episodes per round (rounded up to whole batches).
        objective: the principal's reward (:data:`~designer.principal.env.OBJECTIVES`: ``net`` by default).

    Raises:
        ValueError: an unknown name or objective, a non-positive round, or options the principal refuses.
    """

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    episodes_per_step: int = 50
    objective: str = "net"

    def __post_init__(self) -> None:
        if self.name not in PRINCIPALS and self.name != SB3:
            raise ValueError(f"unknown principal {self.name!r}; principals: {sorted([*PRINCIPALS, SB3])}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"principal {self.name!r} options must be a dict, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))
        if not isinstance(self.episodes_per_step, int) or self.episodes_per_step < 1:
            raise ValueError(f"episodes_per_step must be an integer >= 1, got {self.episodes_per_step!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if self.name == SB3:
            algorithm = self.options.get("algorithm", "PPO")
            if algorithm not in SB3_ALGORITHMS:
                raise ValueError(f"sb3 principal: algorithm must be one of {SB3_ALGORITHMS}, got {algorithm!r}")
        else:
            self.build(())  # refuse bad options where the spec is written, not when the trial runs

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PrincipalTrialConfig:
        """From a spec's ``principal`` dict; unknown keys raise ``ValueError``."""
        if not isinstance(data, Mapping):
            raise TypeError(f"principal settings must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown principal settings {unknown}; expected some of {sorted(names)}")
        if "name" not in data:
            raise ValueError(f"principal settings need a 'name' (one of {sorted(PRINCIPALS)})")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "options": dict(self.options), "episodes_per_step": self.episodes_per_step,
                "objective": self.objective}

    def build(self, parameter_names: Sequence[str]) -> Principal:
        """A fresh principal (``parameter_names`` name the parameters for a callable principal)."""
        try:
            return PRINCIPALS[self.name](tuple(parameter_names) or None, **self.options)
        except TypeError as err:
            raise ValueError(f"principal {self.name!r} does not take options {self.options}: {err}") from err


def principal_env(trial: Trial, config: PrincipalTrialConfig) -> DesignerEnv:
    """The designer env of a principal trial: its task with the trial's learner and designer settings, rounds of
    ``config.episodes_per_step`` episodes and as many rounds as ``trial.train.episodes`` holds."""
    train = trial.train
    task = make_task(train.task, **train.task_kwargs)
    task.learner, task.designer = trial.learner, trial.designer
    per_round = math.ceil(config.episodes_per_step / train.batch_episodes) * train.batch_episodes
    env_config = DesignerEnvConfig(
        task=train.task, task_kwargs=dict(train.task_kwargs), episodes_per_step=config.episodes_per_step,
        horizon=max(1, train.episodes // per_round), batch_episodes=train.batch_episodes,
        output=trial.designer.output, scale=trial.designer.scale, objective=config.objective,  # type: ignore[arg-type]
        torch_threads=train.torch_threads, vectorized=train.vectorized)
    return DesignerEnv(env_config, task=task)


class _EvaluationLog(gymnasium.Wrapper[Any, Any, Any, Any]):
    """Evaluates the agents as a trainer does (at episode 0, at each ``eval_period`` crossed, after the last
    round) and appends each evaluation to ``log.csv``, keeping them in :attr:`history`."""

    def __init__(self, env: DesignerEnv, path: Path, eval_episodes: int, eval_period: int) -> None:
        super().__init__(env)
        self.designer_env = env
        self.path, self.eval_episodes, self.eval_period = path, eval_episodes, eval_period
        self.history: list[EvalResult] = []
        self._t0 = time.perf_counter()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        out = super().reset(**kwargs)
        self._log(round_=0, reward=math.nan, params=np.zeros(len(self.designer_env.parameter_names)))
        return out

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        before = self.designer_env.total_agent_episodes
        obs, reward, terminated, truncated, info = super().step(action)
        after = self.designer_env.total_agent_episodes
        if after // self.eval_period > before // self.eval_period or truncated or terminated:
            self._log(round_=self.designer_env._round, reward=float(reward), params=np.asarray(info["parameters"]))
        return obs, reward, terminated, truncated, info

    def _log(self, round_: int, reward: float, params: np.ndarray) -> None:
        env = self.designer_env
        trainer = env.trainer
        assert trainer is not None  # set by reset
        result = dataclasses.replace(trainer.evaluate(self.eval_episodes), episode=env.total_agent_episodes)
        self.history.append(result)
        row: dict[str, float] = result.row(env.task.agents, env.task.action_names)
        row.update({"iteration": trainer.progress.iterations, "wall_seconds": time.perf_counter() - self._t0,
                    "round": round_, "reward": reward})
        row.update({f"param/{n}": float(v) for n, v in zip(env.parameter_names, params)})
        append_log_row(self.path, row)


def run_principal_trial(trial: Trial, trial_dir: str | Path) -> tuple[list[EvalResult], int, float | None]:
    """Run a principal trial from the start into ``trial_dir`` (holding its ``run.lock``; an earlier attempt's
    ``log.csv`` and ``rounds.csv`` are replaced).

    Returns:
        The evaluations, the agent episodes consumed and the task's optimum (for ``result.json``).

    Raises:
        ValueError: the trial is not a principal trial, sets ``agents_from``, or its budget is under one round.
    """
    if trial.principal is None:
        raise ValueError(f"trial {trial.name} is not a principal trial")
    if trial.train.agents_from is not None:
        raise ValueError(f"trial {trial.name}: a principal trial cannot start from agents_from (its agents are "
                         "the designer env's own)")
    config = PrincipalTrialConfig.from_mapping(trial.principal)
    folder = Path(trial_dir)
    with RunLock(folder):
        for name in ("log.csv", "rounds.csv"):
            (folder / name).unlink(missing_ok=True)
        env = principal_env(trial, config)
        logged = _EvaluationLog(env, folder / "log.csv", trial.train.eval_episodes, trial.train.eval_period)
        try:
            if config.name == SB3:
                run_sb3_principal(logged, trial.train.episodes, seed=trial.seed, csv_path=folder / "rounds.csv",
                                  **config.options)
            else:
                run_principal(logged, config.build(env.parameter_names), trial.train.episodes, seed=trial.seed,
                              csv_path=folder / "rounds.csv")
        finally:
            env.close()
    return logged.history, env.total_agent_episodes, env.task.optimum
