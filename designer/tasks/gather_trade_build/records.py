"""What the tax designers log per step, and what they compute from it: rewards under other rates, reports.

Every quantity comes from the env's published step infos (:data:`incentive_envs.gtb.STEP_INFO_KEYS`), its state
schema (:class:`incentive_envs.gtb.GTBSchema`) and its reward rules (:func:`incentive_envs.gtb.utility`,
:func:`~incentive_envs.gtb.agent_reward`, :func:`~incentive_envs.gtb.period_tax`), so the designer's differentiable
rebuild of the agents' rewards is the env's own rule evaluated under the designer's rates.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from designer.batch import Batch
from incentive_envs.gtb import GTBSchema, agent_reward, period_tax, utility
from wrappers import BatchedStepContext, StepContext

__all__ = ["StepFeatures", "rebuild_rewards", "schedule_of", "tax_report"]


class StepFeatures:
    """What the tax designers log per step (``Batch.features``), from the env's infos.

    Layout (N agents, K brackets): ``coin_pre_tax, labour, income, u_prev, tax_paid, lump_sum, coin`` (N each),
    then ``enacted, period_start, swf, productivity, equality``, the K rates in force, and the counters
    ``houses_built, trades`` so far this episode (N each; last, so batches recorded before they existed, as in
    checkpoints of older runs, still split: :meth:`split` leaves them out when the rows are that short).
    ``u_prev`` is the agent's utility before the step (the env's utility after it minus its reward),
    ``period_start`` the step index of the current period's first step (whose designer observation set the
    rates), ``swf`` is ``equality * productivity / N`` after the step.
    """

    PER_AGENT = ("coin_pre_tax", "labour", "income", "u_prev", "tax_paid", "lump_sum", "coin")
    SCALARS = ("enacted", "period_start", "swf", "productivity", "equality")
    _INFO_PER_AGENT = ("coin_pre_tax", "labour", "income", "tax_paid", "lump_sum", "coin")  # read from the infos
    _INFO_SCALARS = ("tax_enacted", "tax_cycle_position", "productivity", "equality")  # the same for every agent
    COUNTERS = ("houses_built", "trades")

    def __init__(self, schema: GTBSchema) -> None:
        self.schema = schema
        self.size = schema.n_agents * (len(self.PER_AGENT) + len(self.COUNTERS)) + len(self.SCALARS) + schema.n_brackets

    def __call__(self, ctx: StepContext) -> np.ndarray:
        """The feature row ``[F]`` of one step (float32) from the step's infos and env rewards."""
        infos = [ctx.infos[a] for a in ctx.possible_agents]
        first = infos[0]
        per = {k: np.array([[float(i[k]) for i in infos]]) for k in (*self._INFO_PER_AGENT, *self.COUNTERS)}
        rewards = np.array([[float(ctx.env_rewards[a]) for a in ctx.possible_agents]])
        scalars = {k: np.array([float(first[k])]) for k in self._INFO_SCALARS}
        rates = np.asarray(first["marginal_rates"], dtype=np.float64)[None]
        return self._rows(per, rewards, scalars, rates, np.array([ctx.step]))[0]

    def batched(self, ctx: BatchedStepContext) -> NDArray[np.float32]:
        """:meth:`__call__` of every copy ``[B, F]`` from the batched infos (the rows of copies whose episode is
        over are meaningless: the batched rollout zeroes them)."""
        infos = ctx.infos
        per = {k: np.asarray(infos[k], dtype=np.float64) for k in (*self._INFO_PER_AGENT, *self.COUNTERS)}
        scalars = {k: np.asarray(infos[k][:, 0], dtype=np.float64) for k in self._INFO_SCALARS}
        rates = np.asarray(infos["marginal_rates"][:, 0], dtype=np.float64)
        return self._rows(per, np.asarray(ctx.env_rewards, dtype=np.float64), scalars, rates, ctx.step)

    def _rows(self, per: dict[str, NDArray[np.float64]], rewards: NDArray[np.float64],
              scalars: dict[str, NDArray[np.float64]], rates: NDArray[np.float64], step: NDArray[Any]
              ) -> NDArray[np.float32]:
        """The feature rows ``[B, F]`` of B copies from their per-agent infos ``[B, N]``, env rewards ``[B, N]``,
        the infos shared by the agents ``[B]`` (the first agent's), the rates in force ``[B, K]`` and the steps."""
        per = {**per, "u_prev": utility(per["coin"], per["labour"], self.schema.config) - rewards}
        next_pos = scalars["tax_cycle_position"]
        position = np.where(next_pos > 1, next_pos - 1, self.schema.tax_period)  # this step's position in its period
        prod, eq = scalars["productivity"], scalars["equality"]
        columns = [scalars["tax_enacted"], step - (position - 1), eq * prod / rewards.shape[-1], prod, eq]
        parts = [per[k] for k in self.PER_AGENT] + [np.stack(columns, axis=-1).astype(np.float64), rates]
        parts += [per[k] for k in self.COUNTERS]
        return np.concatenate(parts, axis=-1).astype(np.float32)

    def split(self, features: Tensor) -> dict[str, Tensor]:
        """Named views of ``[..., F]`` features: ``[..., N]`` per agent, ``[...]`` scalars, rates ``[..., K]``, and
        the counters when the rows hold them (columns after :attr:`size` are ignored)."""
        n, out, at = self.schema.n_agents, {}, 0
        for k in self.PER_AGENT:
            out[k] = features[..., at : at + n]
            at += n
        for k in self.SCALARS:
            out[k] = features[..., at]
            at += 1
        out["rates"] = features[..., at : at + self.schema.n_brackets]
        at += self.schema.n_brackets
        if features.shape[-1] >= self.size:  # designers may append columns of their own (dual-RL: 2)
            for k in self.COUNTERS:
                out[k] = features[..., at : at + n]
                at += n
        return out


def rebuild_rewards(batch: Batch, rates: Tensor, schema: GTBSchema) -> tuple[Tensor, Tensor]:
    """The agents' rewards on ``batch`` under the rates ``[B, T, K]`` in force (only enactment steps matter).

    The env's rule (method.md §7.1.6's exact fix): ``agent_reward(coin_pre_tax - paid + lump, labour, u_prev)``
    with ``(paid, lump) = period_tax(income, rates, coin_pre_tax - escrow)`` on enactment steps, where the
    escrow is decoded from the state after the step; off enactment steps this is the env's reward. Returns the
    rewards and each agent's net transfer ``lump - paid``, ``[B, T, N]``, differentiable in ``rates``.
    """
    f = StepFeatures(schema).split(batch.features)
    available = f["coin_pre_tax"] - schema.escrow_coin(batch.next_state)
    paid, share = period_tax(f["income"], rates, available, schema.config)
    transfer = f["enacted"].unsqueeze(-1) * (share - paid) * batch.mask
    rewards = agent_reward(f["coin_pre_tax"] + transfer, f["labour"], f["u_prev"], schema.config)
    return rewards * batch.mask, transfer


def schedule_of(batch: Batch, schema: GTBSchema) -> np.ndarray:
    """The rates in force at the enactment steps of ``batch`` ``[n_periods_total, K]``."""
    f = StepFeatures(schema).split(batch.features)
    enacted = (f["enacted"] > 0) & (batch.step_mask > 0)
    return f["rates"][enacted].double().numpy()


def tax_report(batch: Batch, schema: GTBSchema) -> dict[str, Any]:
    """The paper's behavioural analysis of a batch of evaluation episodes (method.md §6.1).

    Returns per-episode final ``productivity``, ``equality`` and their product, the rates per period
    ``[B, P, K]``, and per skill rank (0 = lowest build payment) the mean per-episode pre-tax income, tax paid,
    lump sum received, final coin and labour, and houses built and trades (units bought plus sold).
    """
    f = StepFeatures(schema).split(batch.features.double())
    b = batch.n_episodes
    last = batch.step_mask.sum(1).long() - 1
    rows = torch.arange(b)
    enacted = f["enacted"] > 0
    payment = schema.build_payment(batch.state[:, 0].double())
    rank = torch.argsort(torch.argsort(payment, dim=-1), dim=-1)  # agent -> skill rank

    def by_skill(per_agent: Tensor) -> np.ndarray:
        out = torch.zeros_like(per_agent)
        out.scatter_(1, rank, per_agent)
        return out.mean(0).numpy()

    income = (f["income"] * enacted.unsqueeze(-1)).sum(1)
    return {
        "productivity": f["productivity"][rows, last].numpy(),
        "equality": f["equality"][rows, last].numpy(),
        "equality_times_productivity": (f["productivity"] * f["equality"])[rows, last].numpy(),
        "rates": f["rates"][enacted].reshape(b, -1, schema.n_brackets).numpy(),
        "income_by_skill": by_skill(income),
        "tax_by_skill": by_skill(f["tax_paid"].sum(1)),
        "lump_sum_by_skill": by_skill(f["lump_sum"].sum(1)),
        "coin_by_skill": by_skill(f["coin"][rows, last]),
        "labour_by_skill": by_skill(f["labour"][rows, last]),
        **{f"{k}_by_skill": by_skill(f[k][rows, last]) for k in StepFeatures.COUNTERS if k in f},
    }
