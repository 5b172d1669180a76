"""The dual-RL baseline: the designer is a standard, learning-oblivious RL agent (method.md §4.1)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from designer.algorithms.base import Designer, IncentiveCall, Metrics, require_finite
from designer.batch import Batch, discounted_returns
from designer.batched_rollout import BatchedIncentiveInputs, BatchedIncentivePolicy
from designer.config import DesignerConfig
from designer.registry import register_algorithm
from designer.rollout import IncentiveInputs
from designer.task import Task
from wrappers import BatchedStepContext, StepContext

__all__ = ["DualRLDesigner"]


class _DualRLIncentive(IncentiveCall):
    """Samples the dual-RL designer's action per step and pays by slot.

    Its inputs append the sampled action (the combination index, or the pre-sigmoid Gaussian sample per slot) to
    the feature vector, so the REINFORCE update recovers it from the batch the rollout recorded.
    """

    def __init__(self, designer: DualRLDesigner, generator: torch.Generator) -> None:
        self.designer = designer
        self.generator = generator

    def inputs(self, ctx: StepContext) -> IncentiveInputs:
        d = self.designer
        x = np.asarray(d.task.features(ctx), dtype=np.float32)
        with torch.no_grad():
            action = d.sample(torch.as_tensor(x), self.generator)
        return np.concatenate([x, action.numpy().astype(np.float32).reshape(-1)]), d.require_slot_rule()(ctx)

    def pay(self, inputs: IncentiveInputs) -> dict[str, float]:
        x, slots = inputs
        values = self.designer.payments_of(torch.as_tensor(x[x.size - self.designer.action_dim :]))
        return {a: float(values[s]) for a, s in slots.items()}


class _BatchedDualRLIncentive:
    """:class:`_DualRLIncentive` for the batched rollout: one policy forward on the ``[B, F]`` inputs of all
    copies, then one action drawn per live copy, in copy order.

    The draws stay one generator call per copy, as the sequential path makes them (one call per env, envs in
    order), so both paths consume the designer's generator identically and sample the same actions whatever
    torch's batched samplers do with their random streams. This is the only per-copy loop of a batched step, and
    only for this designer.
    """

    def __init__(self, designer: DualRLDesigner, generator: torch.Generator) -> None:
        self.designer = designer
        self.generator = generator
        self.slot_rule = designer.task.output(designer.config.output).batched_rule

    def inputs(self, ctx: BatchedStepContext) -> BatchedIncentiveInputs:
        d = self.designer
        x = np.asarray(d.task.batched_features(ctx), dtype=np.float32)
        actions = np.zeros((len(x), d.action_dim), dtype=np.float32)
        with torch.no_grad():
            out = d.policy(torch.as_tensor(x))
            for b in np.flatnonzero(ctx.active.any(axis=1)):
                actions[b] = d.sample_from(out[b], self.generator).numpy().reshape(-1)
        return np.concatenate([x, actions], axis=1), self.slot_rule(ctx)

    def pay(self, inputs: BatchedIncentiveInputs) -> NDArray[np.float64]:
        x, slots = inputs
        values = self.designer.slot_payments(torch.as_tensor(x[:, x.shape[1] - self.designer.action_dim :]))
        return np.take_along_axis(values.to(torch.float64).numpy(), slots, axis=1)


@register_algorithm("dual_rl", summary="the designer as a standard RL agent over incentive levels (learning-oblivious)")
class DualRLDesigner(Designer):
    """The learning-oblivious baseline: the designer is a REINFORCE agent (method.md §4.1).

    ``dual_mode="discrete"`` (default): its action is one of ``D ** S`` combinations of discrete incentive levels
    (``dual_values``, paid as is), digit ``j`` (least significant first) giving slot ``j``'s payment.
    ``dual_mode="continuous"``: a Gaussian over ``S`` pre-sigmoid values (mean from the network, std 1), paid
    as ``scale * sigmoid(u)``; the change-of-variables term of the log-probability is constant and dropped, and
    there is no entropy bonus (as the paper). Its reward is the social welfare minus the incentives paid
    (welfare alone with ``cost="none"``, as in the paper's Cleanup); it learns with discounted returns and Adam,
    one batch per update.
    """

    metric_names = ("designer_loss",)

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator) -> None:
        super().__init__(task, config)
        self.require_slot_rule()
        self.n_slots = task.output(config.output).n_slots
        self.continuous = config.dual_mode == "continuous"
        self.levels = torch.tensor(config.dual_values, dtype=torch.float32)
        n_out = self.n_slots if self.continuous else len(config.dual_values) ** self.n_slots
        if n_out > 4096:
            raise ValueError(f"dual-RL over {n_out} combinations is too large; use fewer levels, slots or "
                             "dual_mode='continuous'")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            layers: list[nn.Module] = []
            size = task.feature_dim
            for h in config.dual_hidden:
                layers += [nn.Linear(size, h), nn.ReLU()]
                size = h
            layers.append(nn.Linear(size, n_out))
            self.policy = nn.Sequential(*layers)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=config.dual_lr)
        self.generator = generator
        self._incentive = _DualRLIncentive(self, generator)
        powers = len(config.dual_values) ** torch.arange(self.n_slots)
        self._digits = (torch.arange(n_out)[:, None] // powers) % len(config.dual_values)
        self.action_dim = self.n_slots if self.continuous else 1

    def sample(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """One action for designer input ``x``: a combination index, or pre-sigmoid values per slot."""
        return self.sample_from(self.policy(x), generator)

    def sample_from(self, out: Tensor, generator: torch.Generator) -> Tensor:
        """One action from the policy's output ``out`` for one input."""
        if self.continuous:
            return out + torch.randn(out.shape, generator=generator, dtype=out.dtype)
        return torch.multinomial(torch.softmax(out, -1), 1, generator=generator)

    def payments_of(self, action: Tensor) -> list[float]:
        """Per-slot payments of a sampled action."""
        if self.continuous:
            return (self.config.scale * torch.sigmoid(action)).tolist()
        return [float(self.levels[d]) for d in self._digits[int(action)]]

    def slot_payments(self, actions: Tensor) -> Tensor:
        """Per-slot payments ``[B, S]`` of sampled actions ``[B, action_dim]`` (float32, as :meth:`payments_of`)."""
        if self.continuous:
            return self.config.scale * torch.sigmoid(actions)
        return self.levels[self._digits[actions[:, 0].long()]]

    def eval_incentive(self, generator: torch.Generator) -> _DualRLIncentive:
        return _DualRLIncentive(self, generator)

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedIncentivePolicy | None:
        """The policy on the batched rollout, sampling from the designer's generator (``generator`` for
        evaluation), one draw per live copy as on the sequential path."""
        if not self._batches_own_rule(DualRLDesigner, "__init__", "sample_from", "payments_of"):
            return super().batched_incentive(generator)
        return _BatchedDualRLIncentive(self, self.generator if generator is None else generator)

    def update(self, batch: Batch) -> Metrics:
        cfg = self.config
        x, action = batch.features[..., : -self.action_dim], batch.features[..., -self.action_dim :]
        reward = batch.designer_reward
        if cfg.cost != "none":
            reward = reward - batch.paid.sum(-1)
        returns = discounted_returns(reward, batch.step_mask, cfg.gamma)
        out = self.policy(x)
        if self.continuous:
            logp = -0.5 * ((action - out) ** 2).sum(-1)
            entropy = torch.zeros_like(logp)
        else:
            logp_all = torch.log_softmax(out, -1)
            logp = logp_all.gather(-1, action.long()).squeeze(-1)
            entropy = -(logp_all.exp() * logp_all).sum(-1)
        loss = (-(logp * returns) - cfg.dual_entropy * entropy) * batch.step_mask
        loss = loss.sum() / batch.n_episodes
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        require_finite("dual-RL gradient", [p.grad for p in self.policy.parameters()], self.iteration)
        self.opt.step()
        return {"designer_loss": float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "policy": self.policy.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.policy.load_state_dict(state["policy"])
        self.opt.load_state_dict(state["opt"])
