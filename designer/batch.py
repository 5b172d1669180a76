"""Trajectory batches and the discounting algebra shared by learners and designers.

A :class:`Batch` holds B episodes padded to T steps, agents on dim 2. Everything a learner or the designer
needs to recompute its loss from logged data is here, so the differentiable inner step never touches an env.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import lru_cache

import torch
from torch import Tensor
from torch.export import register_dataclass

__all__ = ["Batch", "discount_matrix", "discounted_returns", "gae"]


@dataclass
class Batch:
    """B episodes of N agents, padded to T steps.

    Attributes:
        obs: agents' observations ``[B, T, N, *obs_shape]``.
        next_obs: observations after the step ``[B, T, N, *obs_shape]`` (for critics).
        actions: ``[B, T, N]`` (long).
        env_rewards: the env's own rewards ``[B, T, N]``.
        paid: incentives actually paid during the rollout ``[B, T, N]``.
        mask: 1 where the agent acted at that step ``[B, T, N]``.
        step_mask: 1 where the step exists ``[B, T]``.
        terminated: 1 on a true terminal step (not a time-limit truncation) ``[B, T]``.
        features: the designer's incentive inputs per step ``[B, T, F]`` (empty F when there is no designer).
        slots: which designer output each agent is paid from ``[B, T, N]`` (long).
        designer_reward: the designer's own reward per step ``[B, T]``.
        state: the designer's observation per step, flattened ``[B, T, S]``.
        next_state: the designer's observation after the step ``[B, T, S]``.
        logp: log-probabilities of the actions under the sampling policy ``[B, T, N]``.
        action_mask: allowed actions ``[B, T, N, A]`` or None.
    """

    obs: Tensor
    next_obs: Tensor
    actions: Tensor
    env_rewards: Tensor
    paid: Tensor
    mask: Tensor
    step_mask: Tensor
    terminated: Tensor
    features: Tensor
    slots: Tensor
    designer_reward: Tensor
    state: Tensor
    next_state: Tensor
    logp: Tensor
    action_mask: Tensor | None = None

    @property
    def n_episodes(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_steps(self) -> int:
        """Number of real (unpadded) steps summed over episodes."""
        return int(self.step_mask.sum().item())

    def to_dict(self) -> dict[str, Tensor | None]:
        """Tensors by field name (for checkpoints)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Tensor | None]) -> Batch:
        names = {f.name for f in fields(cls)}
        if set(data) != names:
            raise ValueError(f"batch fields mismatch: missing {sorted(names - set(data))}, "
                             f"unexpected {sorted(set(data) - names)}")
        return cls(**data)  # type: ignore[arg-type]

    def with_(self, **changes: Tensor) -> Batch:
        return replace(self, **changes)

    def map(self, fn: Callable[[Tensor], Tensor]) -> Batch:
        """``fn`` applied to every tensor field (``action_mask`` stays None when it is)."""
        return Batch.from_dict({k: None if v is None else fn(v) for k, v in self.to_dict().items()})


register_dataclass(Batch)  # a pytree: ``torch.func.vmap`` maps over a Batch of stacked runs (designer.stacked)


@lru_cache(maxsize=64)
def _discount_matrix_cached(n: int, factor: float, dtype: torch.dtype) -> Tensor:
    idx = torch.arange(n)
    power = (idx[None, :] - idx[:, None]).to(dtype)
    return torch.where(power >= 0, factor**power, torch.zeros((), dtype=dtype))


def discount_matrix(n: int, factor: float, dtype: torch.dtype = torch.float32) -> Tensor:
    """Upper-triangular ``D[t, k] = factor**(k - t)`` for ``k >= t``; ``x @ D.T`` discounts ``x`` forward in time."""
    return _discount_matrix_cached(int(n), float(factor), dtype)


def discounted_returns(rewards: Tensor, step_mask: Tensor, gamma: float) -> Tensor:
    """Reward-to-go ``G_t = sum_{k>=t} gamma^(k-t) r_k`` along dim 1 of ``[B, T, ...]`` (padding contributes 0).

    Differentiable in ``rewards``: it is one matrix product, which also makes it cheap for long episodes.
    """
    mask = step_mask.reshape(*step_mask.shape, *([1] * (rewards.dim() - 2))).to(rewards.dtype)
    d = discount_matrix(rewards.shape[1], gamma, rewards.dtype)
    return torch.einsum("tk,bk...->bt...", d, rewards * mask)


def gae(
    rewards: Tensor, values: Tensor, next_values: Tensor, step_mask: Tensor, gamma: float, lam: float,
    terminated: Tensor | None = None,
) -> Tensor:
    """Generalised advantage estimates along dim 1 of ``[B, T, ...]``.

    ``next_values`` must already be zero after true terminal steps unless ``terminated`` is given, in which case
    it is masked here; time-limit truncations keep their bootstrap value (Gymnasium semantics).
    """
    mask = step_mask.reshape(*step_mask.shape, *([1] * (rewards.dim() - 2))).to(rewards.dtype)
    if terminated is not None:
        term = terminated.reshape(*terminated.shape, *([1] * (rewards.dim() - 2))).to(rewards.dtype)
        next_values = next_values * (1.0 - term)
    delta = (rewards + gamma * next_values - values) * mask
    d = discount_matrix(rewards.shape[1], gamma * lam, rewards.dtype)
    return torch.einsum("tk,bk...->bt...", d, delta)
