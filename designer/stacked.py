"""Several independent runs (seeds) as one program: parameters stacked on a leading run axis.

The paper's B = 1 schedules (Escape Room, the matrix games) cannot batch episodes without changing the algorithm,
so the vectorized path runs S seeds together instead: every parameter, optimizer moment and batch gets a leading
axis of size S, per-run computations go through ``torch.func.vmap`` and the per-run losses are **summed** before
differentiating. The runs share no parameter, so the gradient of the sum with respect to run ``s``'s slice is run
``s``'s own gradient, and the optimizers the library uses (SGD, Adam, the Adam replica of
:func:`~designer.learners.inner_update`) act elementwise: each run takes exactly the step it takes alone, up to
the float rounding of a batched matmul. Global-norm clipping is the one cross-element rule and is done per run
(:func:`designer.algorithms.base.apply_grads`).

This module holds the method side (:class:`StackedLearner`, :class:`RunAxis`, stacking helpers); the runner
that drives S :class:`~designer.experiments.trainer.Trainer` objects as one lives in
:mod:`designer.experiments.seed_stack`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from designer.batch import Batch
from designer.learners import AgentLearner, OptState, Params
from designer.networks import AgentNet, EnsembleLinear, IncentiveMLP

__all__ = [
    "CannotStack",
    "RunAxis",
    "StackedLearner",
    "StackedModule",
    "fast_stacked_forward",
    "stack_optimizer_states",
    "stack_tensors",
    "unstack_optimizer_state",
]


class CannotStack(ValueError):
    """These runs cannot be trained as one stacked program (the message says why); train them one by one."""


def stack_tensors(dicts: Sequence[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """``{k: stack([d[k] for d in dicts])}`` (detached): one tensor per key with a leading run axis."""
    keys = list(dicts[0])
    for s, d in enumerate(dicts):
        if list(d) != keys:
            raise CannotStack(f"run {s} has parameters {list(d)}, run 0 has {keys}")
    return {k: torch.stack([d[k].detach() for d in dicts]) for k in keys}


def stack_optimizer_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One ``torch.optim`` state dict for the stacked parameters from the runs' own (same step counts)."""
    first = states[0]
    out: dict[str, Any] = {"param_groups": first["param_groups"], "state": {}}
    for idx, entry in first["state"].items():
        merged: dict[str, Any] = {}
        for key, value in entry.items():
            values = [st["state"][idx][key] for st in states]
            if key == "step":
                if any(float(v) != float(value) for v in values):
                    raise CannotStack(f"optimizer step counts differ between runs: {[float(v) for v in values]}")
                merged[key] = value.clone() if isinstance(value, Tensor) else value
            else:
                merged[key] = torch.stack(values)
        out["state"][idx] = merged
    if any(len(st["state"]) != len(first["state"]) for st in states):
        raise CannotStack("the runs' optimizers have taken different numbers of steps")
    return out


def unstack_optimizer_state(state: dict[str, Any], run: int) -> dict[str, Any]:
    """Run ``run``'s slice of :func:`stack_optimizer_states` output (a state dict its own optimizer loads)."""
    return {
        "param_groups": state["param_groups"],
        "state": {idx: {k: (v.clone() if k == "step" else v[run].clone()) if isinstance(v, Tensor) else v
                        for k, v in entry.items()}
                  for idx, entry in state["state"].items()},
    }


class RunAxis:
    """How a designer applies its per-run computations: directly (one run) or vmapped over S stacked runs."""

    def __init__(self, n_runs: int | None = None) -> None:
        self.n_runs = n_runs

    @property
    def stacked(self) -> bool:
        return self.n_runs is not None

    def map(self, fn: Callable[..., Any], bind: Callable[[Any], None] | None = None,
            params: Any = None) -> Callable[..., Any]:
        """``fn`` itself for one run; else ``fn`` vmapped over dim 0 of every argument (and of ``params``, which
        ``bind`` installs for the duration of each per-run call, e.g. a designer's network parameters)."""
        if self.n_runs is None:
            return fn
        if bind is None:
            return vmap(fn)

        def one(p: Any, *args: Any) -> Any:
            bind(p)
            try:
                return fn(*args)
            finally:
                bind(None)

        return lambda *args: vmap(one)(params, *args)


_ELEMENTWISE = (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity)


def _stacked_sequential(seq: nn.Sequential, prefix: str, params: Mapping[str, Tensor], x: Tensor) -> Tensor:
    """``seq`` (linear layers and elementwise activations) on ``x [S, ..., in]`` with every run's own weights."""
    for idx, layer in enumerate(seq):
        name = f"{prefix}{idx}."
        if isinstance(layer, EnsembleLinear):
            w = params[name + "weight"]
            x = (torch.einsum("s...mi,smio->s...mo", x, w) if x.shape[-2] == w.shape[1]
                 else torch.einsum("s...mi,sio->s...mo", x, w[:, 0]))
            if layer.bias is not None:
                b = params[name + "bias"]
                b = b if x.shape[-2] == b.shape[1] else b[:, :1]
                x = x + b.reshape(b.shape[0], *([1] * (x.dim() - 3)), *b.shape[1:])
        elif isinstance(layer, nn.Linear):
            x = torch.einsum("s...i,soi->s...o", x, params[name + "weight"])
            if layer.bias is not None:
                b = params[name + "bias"]
                x = x + b.reshape(b.shape[0], *([1] * (x.dim() - 2)), b.shape[-1])
        elif isinstance(layer, _ELEMENTWISE):
            x = layer(x)
        else:  # pragma: no cover - guarded by fast_stacked_forward
            raise TypeError(f"no stacked form for {type(layer).__name__}")
    return x


def _plain(seq: nn.Sequential) -> bool:
    return all(isinstance(m, (EnsembleLinear, nn.Linear, *_ELEMENTWISE)) for m in seq)


def fast_stacked_forward(template: nn.Module) -> Callable[[Mapping[str, Tensor], Tensor], Tensor] | None:
    """A forward of S runs' copies of ``template`` as plain batched matmuls, ``(params [S, ...], x [S, ...])``,
    for the library's MLPs (:class:`~designer.networks.IncentiveMLP`, flat-observation
    :class:`~designer.networks.AgentNet`); None for other modules, which go through ``vmap``. The rollouts use
    it: at these sizes ``vmap`` + ``functional_call`` cost several times the arithmetic."""
    if isinstance(template, IncentiveMLP) and _plain(template.net):
        return lambda p, x: torch.sigmoid(_stacked_sequential(template.net, "net.", p, x))
    if isinstance(template, AgentNet) and template.trunk is None and _plain(template.head):
        def agents(p: Mapping[str, Tensor], obs: Tensor) -> Tensor:
            x = obs.to(torch.get_default_dtype() if not obs.is_floating_point() else obs.dtype) * template.obs_scale
            return _stacked_sequential(template.head, "head.", p, x)
        return agents
    return None


class StackedModule(nn.Module):
    """``template`` evaluated with per-run parameters.

    Outside :meth:`RunAxis.map` (``bound is None``) it maps inputs whose leading dimension holds the runs' rows in
    run order (``[S * B, ...]``: rows ``s * B ... (s + 1) * B - 1`` through run ``s``'s parameters, the rollout's
    view of one batched env holding every run's copies; or ``[S, ...]`` stacked batches) to outputs with the same
    leading dimension. Inside a per-run call the designer binds one run's parameters and it is ``template`` with
    those.
    """

    def __init__(self, template: nn.Module, params: Callable[[], Params], n_runs: int) -> None:
        super().__init__()
        self.template = template
        self._params = params
        self.n_runs = n_runs
        self.bound: Params | None = None
        self._fast = fast_stacked_forward(template)

    def bind(self, params: Params | None) -> None:
        self.bound = params

    def forward(self, x: Tensor) -> Tensor:
        if self.bound is not None:
            return functional_call(self.template, self.bound, (x,))
        rows = x.reshape(self.n_runs, x.shape[0] // self.n_runs, *x.shape[1:])
        if self._fast is not None:
            out = self._fast(self._params(), rows)
        else:
            out = vmap(lambda p, xs: functional_call(self.template, p, (xs,)))(self._params(), rows)
        return out.reshape(x.shape[0], *out.shape[2:])


class StackedLearner(AgentLearner):
    """S runs' agent learners as one: the :class:`~designer.learners.AgentLearner` interface that the designers
    and :func:`~designer.learners.inner_update` use, on parameters with a leading run axis (built from the runs'
    learners, not from a configuration, so the base initialiser is not called).

    ``loss`` is the sum over runs of each run's own loss (``AgentLearner.loss`` vmapped), so ``inner_update``'s
    gradient and elementwise step are each run's own. A critic (actor-critic, PPO) is stacked the same way: its
    parameters, target and Adam moments on the run axis, one Adam step on the sum of the runs' TD losses.

    Args:
        learners: the runs' learners (same configuration, same iteration count); ``learners[0]`` evaluates the
            per-run computations (its own parameters are not used while stacked).
    """

    def __init__(self, learners: Sequence[AgentLearner]) -> None:
        base = learners[0]
        for s, other in enumerate(learners):
            if other.config != base.config or other.iteration != base.iteration:
                raise CannotStack(f"run {s}'s agent learner differs from run 0's (configuration or iteration)")
            if other.opt_state.step != base.opt_state.step:
                raise CannotStack(f"run {s}'s agents took {other.opt_state.step} optimizer steps, run 0's "
                                  f"{base.opt_state.step}")
        self.base = base
        self.config = base.config
        self.n_agents = base.n_agents
        self.n_runs = len(learners)
        self.net = base.net
        self._fast = fast_stacked_forward(base.net)
        self.critic, self.critic_target, self.critic_opt = base.critic, base.critic_target, None
        self._critic: Params = {}
        self._target: Params = {}
        if base.critic is not None:
            pairs = [lr.critic_params() for lr in learners]
            self._critic = {k: v.requires_grad_(True) for k, v in stack_tensors([c for c, _ in pairs]).items()}
            self._target = stack_tensors([t for _, t in pairs])
            self.critic_opt = torch.optim.Adam(list(self._critic.values()), lr=base.config.critic_lr)
            self.critic_opt.load_state_dict(stack_optimizer_states(
                [lr.critic_opt.state_dict() for lr in learners if lr.critic_opt is not None]))
        stacked = stack_tensors([lr.params for lr in learners])
        self.params: Params = {k: v.requires_grad_(True) for k, v in stacked.items()}
        moments = [lr.opt_state for lr in learners]
        self.opt_state = OptState(
            stack_tensors([m.exp_avg for m in moments]) if base.opt_state.exp_avg else {},
            stack_tensors([m.exp_avg_sq for m in moments]) if base.opt_state.exp_avg_sq else {},
            base.opt_state.step,
        )

    @property
    def iteration(self) -> int:
        return self.base.iteration

    @iteration.setter
    def iteration(self, value: int) -> None:
        self.base.iteration = value

    def logits(self, params: Mapping[str, Tensor], obs: Tensor) -> Tensor:
        """Logits ``[S, ..., N, A]`` of every run's agents on observations ``[S, ..., N, *obs_shape]``."""
        if self._fast is not None:
            return self._fast(params, obs)
        return vmap(self.base.logits)(dict(params), obs)

    def loss(self, params: Params, batch: Batch, rewards: Tensor, values: tuple[Tensor, Tensor] | None) -> Tensor:
        """The sum over runs of each run's :meth:`AgentLearner.loss` (batch, rewards, values ``[S, B, T, N]``)."""
        logits = self.logits(params, batch.obs)
        if values is None:
            return vmap(lambda x, b, r: self.base.loss_from_logits(x, b, r, None))(logits, batch, rewards).sum()
        return vmap(self.base.loss_from_logits)(logits, batch, rewards, values).sum()

    def critic_params(self) -> tuple[Params, Params]:
        if not self._critic:
            raise RuntimeError("this learner has no critic")
        return self._critic, self._target

    def values(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Every run's critic values ``[S, B, T, N]`` (constants)."""
        return vmap(self.base.critic_values)(*self.critic_params(), batch)

    def _critic_losses(self, params: Params, target: Params, batch: Batch, rewards: Tensor) -> Tensor:
        return vmap(self.base.critic_loss)(params, target, batch, rewards)

    def unstack_into(self, learners: Sequence[AgentLearner]) -> None:
        """Write each run's slice back into its own learner (before an evaluation or a checkpoint)."""
        for s, lr in enumerate(learners):
            lr.params = {k: v[s].detach().clone().requires_grad_(True) for k, v in self.params.items()}
            lr.opt_state = OptState({k: v[s].clone() for k, v in self.opt_state.exp_avg.items()},
                                    {k: v[s].clone() for k, v in self.opt_state.exp_avg_sq.items()},
                                    self.opt_state.step)
            lr.iteration = self.iteration
            if lr.critic is not None and lr.critic_target is not None and lr.critic_opt is not None:
                with torch.no_grad():
                    for module, stacked in ((lr.critic, self._critic), (lr.critic_target, self._target)):
                        for k, p in module.named_parameters():
                            p.copy_(stacked[k][s])
                if self.critic_opt is not None:
                    lr.critic_opt.load_state_dict(unstack_optimizer_state(self.critic_opt.state_dict(), s))
