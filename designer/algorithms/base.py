"""The designer interface and the training-loop helpers every designer shares.

Every designer exposes the payment rule the incentive wrapper applies during rollouts (``incentive``, an
:class:`~designer.rollout.IncentivePolicy`, whose exact inputs the rollout records for recomputation), an optional
control point of its own (``wrap_env``, and ``batched_wrap_env`` for the batched rollout), and one training
iteration (``iterate``). The learning agents are driven through :func:`designer.learners.inner_update`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from designer.batch import Batch
from designer.batched_rollout import BatchedIncentivePolicy, CannotBatch
from designer.config import DesignerConfig
from designer.learners import AgentLearner, Params, detach_params, inner_update
from designer.rollout import EpisodeStats, IncentiveInputs, IncentivePolicy
from designer.stacked import CannotStack
from designer.task import SlotRule, Task
from incentive_envs.vector import BatchedParallelEnv
from wrappers import BatchedModuleIncentive, StepContext

__all__ = [
    "Collect",
    "Designer",
    "IncentiveCall",
    "Metrics",
    "apply_grads",
    "critic_step",
    "require_finite",
]

Collect = Callable[[Params], tuple[Batch, list[EpisodeStats]]]
Metrics = dict[str, "float | Tensor"]
"""A designer's training metrics of one iteration: floats, or ``[S]`` tensors (one per run) for stacked runs."""


def require_finite(
    name: str, tensors: Mapping[str, Tensor | None] | Sequence[Tensor | None], iteration: int
) -> None:
    """Raise ``FloatingPointError`` naming the first non-finite tensor."""
    items: Iterable[tuple[Any, Tensor | None]] = (
        tensors.items() if isinstance(tensors, Mapping) else enumerate(tensors)
    )
    for key, t in items:
        if t is not None and not torch.isfinite(t).all():
            raise FloatingPointError(f"{name}[{key}] is not finite at iteration {iteration}")


class IncentiveCall:
    """Base of the designers' payment rules: ``inputs(ctx)`` then ``pay(inputs)``; calling one does both, so a
    frozen rule works in any incentive wrapper too."""

    def inputs(self, ctx: StepContext) -> IncentiveInputs:
        raise NotImplementedError

    def pay(self, inputs: IncentiveInputs) -> Mapping[str, float]:
        raise NotImplementedError

    def __call__(self, ctx: StepContext) -> Mapping[str, float]:
        return self.pay(self.inputs(ctx))


class Designer:
    """Base class: no incentive, no update. Subclasses override what they need.

    Args:
        task: the game.
        config: the designer's hyperparameters.
        generator: the designer's random stream (initialisation, sampling); unused by deterministic designers.
    """

    metric_names: tuple[str, ...] = ()
    """Training metrics this designer reports each iteration (fixed, so logs have fixed columns)."""

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None = None) -> None:
        self.task = task
        self.config = config
        self.slot_rule: SlotRule | None = task.outputs[config.output].rule if config.output in task.outputs else None
        self.iteration = 0
        self._incentive: IncentivePolicy | None = None

    @property
    def incentive(self) -> IncentivePolicy | None:
        """The payment rule the incentive wrapper applies each step (None: pay nothing, log nothing)."""
        return self._incentive

    def require_slot_rule(self) -> SlotRule:
        """The task's slot rule for ``config.output``; ``ValueError`` when the task has no such output."""
        return self.task.output(self.config.output).rule

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> Any:
        """Wrap the task's env before the incentive wrapper goes on (designers acting through another control
        point, such as a tax-rate interface, add their wrapper here). Default: unchanged.

        ``eval_generator`` is None for training envs; for evaluation envs it is the generator a stochastic
        designer samples from there (so that evaluation leaves the training RNGs untouched)."""
        return env

    def batched_wrap_env(self, env: BatchedParallelEnv, eval_generator: torch.Generator | None = None
                         ) -> BatchedParallelEnv:
        """The batched counterpart of :meth:`wrap_env`: wrap the task's batched env (B copies) before the batched
        incentive wrapper goes on, so copy ``b`` is controlled as the ``b``-th env of the sequential path is (the
        tax designers add a :class:`~wrappers.BatchedTaxRatesWrapper`). Default: unchanged.

        A designer that overrides :meth:`wrap_env` runs on the batched rollout only if it overrides this too
        (:meth:`batched_incentive` refuses it otherwise). ``eval_generator`` is as for :meth:`wrap_env`."""
        return env

    def _batches_control_point(self) -> bool:
        """Whether the batched rollout controls this designer's envs as the sequential one does: it acts through
        no control point of its own, or gives the batched one (:meth:`batched_wrap_env`) with it."""
        kind = type(self)
        return kind.wrap_env is Designer.wrap_env or kind.batched_wrap_env is not Designer.batched_wrap_env

    def eval_incentive(self, generator: torch.Generator) -> IncentivePolicy | None:
        """The incentive function for evaluation rollouts (stochastic designers sample from ``generator``)."""
        return self.incentive

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedIncentivePolicy | None:
        """The batched counterpart of :attr:`incentive` (with ``generator``: of :meth:`eval_incentive`) for the
        batched rollout (:mod:`designer.batched_rollout`); None pays nothing.

        The base class has one only for designers that pay nothing. Designers with a payment rule give theirs
        (MetaGrad, AMD, dual-RL, fixed); designers acting through their own control point (:meth:`wrap_env`) need
        its batched counterpart too (:meth:`batched_wrap_env`, as the Gather-Trade-Build tax designers have).

        Raises:
            CannotBatch: this designer has no batched payment rule or control point (the message says why).
        """
        name = type(self).__name__
        if not self._batches_control_point():
            raise CannotBatch(f"designer {name} acts through its own control point (wrap_env) and has no batched "
                              "one (batched_wrap_env)")
        if self.incentive is None and type(self).eval_incentive is Designer.eval_incentive:
            return None
        raise CannotBatch(f"designer {name} has no batched payment rule (batched_incentive)")

    def _batches_own_rule(self, cls: type[Designer], *hooks: str) -> bool:
        """Whether this designer still pays with ``cls``'s own rule: it changes none of ``hooks`` (the methods
        that build the rule), and the batched rollout controls its envs (:meth:`_batches_control_point`)."""
        return all(getattr(type(self), h) is getattr(cls, h) for h in hooks) and self._batches_control_point()

    def batched_module_incentive(self, net: nn.Module, output: str) -> BatchedModuleIncentive:
        """``net`` paying ``scale * net(x)[slot]`` on the task's batched features and ``output``'s batched slots
        (the batched counterpart of the designers' ``ModuleIncentive``)."""
        return BatchedModuleIncentive(net, features=self.task.batched_features,
                                      slots=self.task.output(output).batched_rule, scale=self.config.scale)

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        """One training iteration starting from training batch ``batch``; returns the next training batch.

        The default is the learning-oblivious loop: agents update on the incentives paid during ``batch``, the
        designer updates on ``batch`` (:meth:`update`), then a fresh batch is collected.
        """
        rewards = batch.env_rewards + batch.paid
        values = critic_step(learner, batch, rewards)
        new_params, new_opt = inner_update(learner, learner.params, learner.opt_state, batch, rewards, values)
        require_finite("agent update", new_params, self.iteration)
        metrics = self.update(batch)
        learner.params, learner.opt_state = detach_params(new_params), new_opt
        learner.iteration += 1
        self.iteration += 1
        next_batch, _ = collect(learner.params)
        return next_batch, metrics

    def update(self, batch: Batch) -> Metrics:
        return {}

    # ------------------------------------------------------------ stacked runs
    @classmethod
    def stack_runs(cls, designers: Sequence[Designer]) -> Designer:
        """One designer for S runs trained as one program (:mod:`designer.stacked`). The base class stacks
        designers that hold no learned state and update nothing (``none``, ``fixed``): run 0's stands for all.

        Raises:
            CannotStack: a designer of this kind has no stacked form (the message names it).
        """
        first = designers[0]
        kind = type(first)
        stateless = kind.iterate is Designer.iterate and kind.update is Designer.update and (
            kind.state_dict is Designer.state_dict)
        if not stateless or any(type(d) is not kind or d.config != first.config for d in designers):
            raise CannotStack(f"designer {first.config.algorithm!r} ({kind.__name__}) does not train stacked runs")
        return first

    def unstack_into(self, designers: Sequence[Designer]) -> None:
        """Write each run's state back into its own designer (stateless designers: the iteration count)."""
        for d in designers:
            d.iteration = self.iteration

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])


def critic_step(learner: AgentLearner, batch: Batch, rewards: Tensor) -> tuple[Tensor, Tensor] | None:
    """Critic first (TD(0) on the real rewards), then its values as constants for the actor step."""
    if learner.critic is None:
        return None
    learner.update_critic(batch, rewards)
    return learner.values(batch)


def apply_grads(
    optimizer: torch.optim.Optimizer, params: list[Tensor], grads: tuple[Tensor, ...], max_norm: float | None,
    iteration: int, stacked: bool = False,
) -> float | Tensor:
    """Clip ``grads`` by global norm (when ``max_norm``), check them, and take one optimizer step.

    Returns the pre-clip global norm. With ``stacked`` the parameters carry a leading run axis
    (:mod:`designer.stacked`): norms and clipping are per run and the norm is an ``[S]`` tensor. Raises
    ``FloatingPointError`` on a non-finite gradient (naming the runs), before any parameter changes.
    """
    if not stacked:
        require_finite("meta-gradient", list(grads), iteration)
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        scales: list[float | Tensor] = [1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-12))] * len(grads)
        result: float | Tensor = norm
    else:
        finite = torch.stack([torch.isfinite(g.reshape(g.shape[0], -1)).all(1) for g in grads]).all(0)
        if not finite.all():
            bad = torch.nonzero(~finite).flatten().tolist()
            raise FloatingPointError(f"meta-gradient is not finite for stacked run(s) {bad} at iteration {iteration}")
        per_run = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1) for g in grads]), dim=0)
        run_scale = torch.ones_like(per_run) if max_norm is None else (max_norm / (per_run + 1e-12)).clamp(max=1.0)
        scales = [run_scale.reshape(-1, *([1] * (g.dim() - 1))) for g in grads]
        result = per_run.detach()
    for p, g, scale in zip(params, grads, scales):
        p.grad = g.detach() * scale
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return result
