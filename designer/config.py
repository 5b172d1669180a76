"""Validated, frozen configuration dataclasses for designers and training runs.

Every field is type-checked against its annotation at construction (:func:`designer.validation.check_fields`:
a bool is not an int, a string is not a bool, numbers are finite), then its value range is checked here.
Comparisons are written ``not x > 0`` so that NaN is rejected too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Literal

from designer.registry import algorithm_entry
from designer.validation import check_fields

__all__ = [
    "MAX_SEED",
    "DesignerConfig",
    "TrainConfig",
    "check_fraction",
    "check_layer_sizes",
    "check_positive",
    "config_from_dict",
    "config_to_dict",
]


MAX_SEED = 2**63 - 1
"""The largest run seed: it fits a signed 64-bit integer, so ``seed + k`` (the trainer seeds several torch
generators this way; ``torch.Generator.manual_seed`` takes at most ``2**64 - 1``) and NumPy both accept it."""


def check_positive(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def check_fraction(name: str, value: Any) -> None:
    """Raise ``ValueError`` unless ``value`` is a number in [0, 1]."""
    if not (isinstance(value, (int, float)) and 0 <= value <= 1):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def check_layer_sizes(cfg: Any, *names: str) -> None:
    """Raise ``ValueError`` unless every size in the tuple fields ``names`` of ``cfg`` is >= 1."""
    for name in names:
        sizes = getattr(cfg, name)
        if any(size < 1 for size in sizes):
            raise ValueError(f"{name}: layer sizes must be >= 1, got {sizes}")


@dataclass(frozen=True)
class DesignerConfig:
    """The incentive designer. Defaults are the paper's MetaGrad designer on Escape Room (method.md §2.3, §5.1).

    Attributes:
        algorithm: a name from :mod:`designer.registry`: ``"metagrad"`` (m1: validation rollout with the
            updated agents), ``"metagrad_m2"`` (validation rollout with the un-updated agents), ``"dual_rl"`` (the
            designer is a standard RL agent), ``"amd"`` (Baumann et al. 2018), ``"fixed"`` (a constant incentive
            table), ``"none"``, or any algorithm a module registered.
        hidden: incentive network sizes (``IncentiveMLP``).
        output: ``"action"`` (one value per action, paid by the action taken), ``"agent"`` (one value per agent)
            ``"action_type"`` (env-defined type such as Cleanup's clean / apple / other) or ``"agent_action_type"``
            (one value per agent and type).
        scale: payments are ``scale * sigmoid(.)`` (the paper's ``r_multiplier`` = 2).
        lr: Adam learning rate of the meta-gradient step.
        cost: ``"paid"`` (discounted sum of incentives actually paid, recomputed with gradients; default),
            ``"proxy"`` (the paper's sum of raw sigmoid outputs over all slots) or ``"none"``.
        cost_lr: learning rate of the separate cost optimizer (paper: 6.03e-5); ignored if ``cost_weight``.
        cost_weight: when set, the cost is added to the outer loss with this weight and one optimizer is used.
        gamma: the designer's discount.
        outer_reduction: ``"sum"`` over steps (ER) or ``"mean"`` (Cleanup, GTB).
        use_critic: weight the outer loss by GAE advantages from a designer critic instead of returns.
        critic_lr, critic_tau, gae_lambda, critic_hidden: the designer critic.
        normalize_weights: standardise the outer weights per batch (variance reduction, off by default).
        pipeline: reuse the validation trajectory as the next training trajectory (paper default).
        stale_incentives: paper-faithful mode: the real agent update uses the incentives stored at rollout
            time (from the previous designer) instead of ``detach(theta_hat)``.
        max_grad_norm: global-norm clip of the meta-gradient (pre-clip norm is logged); None disables.
        fixed_values: the table paid by ``"fixed"`` (one value per slot, already scaled).
        dual_values: discrete incentive levels of the dual-RL designer (paper: [0, 1.1]).
        dual_mode: ``"discrete"`` (combinations of ``dual_values``) or ``"continuous"`` (Gaussian over pre-sigmoid
            values paid as ``scale * sigmoid``).
        dual_entropy, dual_lr, dual_hidden: dual-RL designer hyperparameters (paper: 0.0289, 8e-3, (64, 32)).
        amd_lr, amd_cost, amd_clip, amd_agent_lr: AMD planner hyperparameters (paper: 2.74e-5, 4.24e-4, 10).
    """

    algorithm: str = "metagrad"
    hidden: tuple[int, ...] = (64, 16)
    output: Literal["action", "agent", "action_type", "agent_action_type"] = "action"
    scale: float = 2.0
    lr: float = 7.93e-4
    cost: Literal["paid", "proxy", "none"] = "paid"
    cost_lr: float = 6.03e-5
    cost_weight: float | None = None
    gamma: float = 0.99
    outer_reduction: Literal["sum", "mean"] = "sum"
    use_critic: bool = False
    critic_lr: float = 2.4e-5
    critic_tau: float = 0.114
    gae_lambda: float = 0.99
    critic_hidden: tuple[int, ...] = (64, 64)
    normalize_weights: bool = False
    pipeline: bool = True
    stale_incentives: bool = False
    max_grad_norm: float | None = None
    fixed_values: tuple[float, ...] = ()
    dual_values: tuple[float, ...] = (0.0, 1.1)
    dual_mode: Literal["discrete", "continuous"] = "discrete"
    dual_entropy: float = 0.0289
    dual_lr: float = 8.0e-3
    dual_hidden: tuple[int, ...] = (64, 32)
    amd_lr: float = 2.74e-5
    amd_cost: float = 4.24e-4
    amd_clip: float = 10.0

    def __post_init__(self) -> None:
        check_fields(self)
        entry = algorithm_entry(self.algorithm)
        missing = [name for name in entry.required if not getattr(self, name)]
        if missing:
            raise ValueError(f"algorithm {self.algorithm!r} needs {missing} (e.g. fixed_values: one payment per slot)")
        for name in ("scale", "lr", "cost_lr", "critic_lr", "dual_lr", "amd_lr", "amd_clip"):
            check_positive(name, getattr(self, name))
        for name in ("gamma", "critic_tau", "gae_lambda"):
            check_fraction(name, getattr(self, name))
        if self.cost_weight is not None and not self.cost_weight >= 0:
            raise ValueError(f"cost_weight must be a finite number >= 0 or None, got {self.cost_weight!r}")
        if self.max_grad_norm is not None:
            check_positive("max_grad_norm", self.max_grad_norm)
        if not self.dual_entropy >= 0:
            raise ValueError(f"dual_entropy must be >= 0, got {self.dual_entropy!r}")
        if not self.amd_cost >= 0:
            raise ValueError(f"amd_cost must be >= 0, got {self.amd_cost!r}")
        if self.algorithm == "dual_rl" and self.dual_mode == "discrete" and len(self.dual_values) < 2:
            raise ValueError(f"dual_values needs at least two levels, got {self.dual_values}")
        check_layer_sizes(self, "hidden", "critic_hidden", "dual_hidden")


@dataclass(frozen=True)
class TrainConfig:
    """One training run: the task, its budget, evaluation, logging and checkpoints.

    Attributes:
        task: task name from :data:`designer.tasks.TASKS` (e.g. ``"escape_room"``, ``"ipd"``).
        task_kwargs: keyword arguments of the task (e.g. ``{"n_agents": 5, "min_at_lever": 2}``).
        episodes: training budget in episodes (validation rollouts count).
        batch_episodes: episodes per inner update (B; 1 is the paper).
        seed: the run's seed (agents, designer, envs and sampling all derive from it).
        eval_period: evaluate every this many training episodes.
        eval_episodes: episodes per evaluation (actions sampled, no exploration mixing).
        checkpoint_period: save a checkpoint every this many episodes (0: only at the end).
        out_dir: where logs, checkpoints and plots go (None: nothing is written).
        tensorboard: also write TensorBoard event files (needs the ``tensorboard`` extra).
        progress: show a progress bar.
        torch_threads: torch intra-op threads (1 is fastest for these small models on 2-core machines).
        vectorized: collect training and evaluation episodes with the batched rollout
            (:class:`~designer.batched_rollout.BatchedRolloutWorker`: the task's batched env, one policy forward
            and one incentive evaluation per step for all copies) instead of B single envs. Same batches as the
            sequential path up to float rounding; refused (``CannotBatch``) for designers without a batched
            path. Off by default: the sequential path is the reference; ``compare``/``train`` with several seeds
            and sweeps turn it on where they stack seeds (:mod:`designer.experiments.seed_stack`).
        agents_from: a checkpoint whose agents this run starts from (their parameters, optimizer state, critic
            and update count; the designer, RNGs and budget are this run's own). The paper's Gather-Trade-Build
            curriculum: phase 1 trains the agents under the free market, and every phase-2 designer starts from
            the same phase-1 agents. The checkpoint must be of the same task with the same kind of agents
            (networks and optimizer; learning rates, entropy and exploration may differ, as in the paper).
    """

    task: str = "escape_room"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 20000
    batch_episodes: int = 1
    seed: int = 0
    eval_period: int = 100
    eval_episodes: int = 10
    checkpoint_period: int = 0
    out_dir: str | None = None
    tensorboard: bool = False
    progress: bool = False
    torch_threads: int = 1
    vectorized: bool = False
    agents_from: str | None = None

    def __post_init__(self) -> None:
        check_fields(self)
        for name in ("episodes", "batch_episodes", "eval_period", "eval_episodes", "torch_threads"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.checkpoint_period < 0:
            raise ValueError(f"checkpoint_period must be an integer >= 0, got {self.checkpoint_period!r}")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"seed must be an integer in [0, 2**63 - 1] (it seeds torch and NumPy), got {self.seed}")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict of a (nested) config dataclass; tuples become lists."""
    if not is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"expected a dataclass instance, got {type(cfg).__name__}")
    return asdict(cfg)


def config_from_dict(cls: type[Any], data: dict[str, Any]) -> Any:
    """Rebuild a config dataclass from :func:`config_to_dict` output, restoring tuples; unknown keys raise."""
    names = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {unknown}")
    kwargs = {}
    for key, value in data.items():
        kwargs[key] = tuple(value) if isinstance(value, list) else value
    return cls(**kwargs)
