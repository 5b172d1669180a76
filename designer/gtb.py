"""Gather-Trade-Build for the designer: the task, the tax designers and their networks (method.md §2.5, §3.3, §4.1).

The designer sets the 7 marginal tax rates of every 10-step tax period through
:class:`wrappers.tax_rates.TaxRatesWrapper` (the env's public ``set_tax_rates``/``tax_cycle_position``), so every
tax designer plugs into the generic trainer through :meth:`Designer.wrap_env`:

- :class:`TaxMetaGradDesigner`: MetaGrad (m1). A tax network maps the planner's observation held from the
  period's first step to the rates; the agents' rewards are rebuilt differentiably from the logged step data
  (:func:`rebuild_rewards`, the "exact fix" of method.md §7.1.6) and the meta-gradient flows through the PPO
  agents' Adam-step replica.
- :class:`TaxDualRLDesigner`: the AI-Economist-style planner, an RL agent choosing one of 22 levels per bracket
  at every period start (0 keeps the rate, k sets (k-1)·0.05), with rate-cap annealing by masks; entropy is
  really computed and epsilon-mixing respects the masks (fixes of method.md §7.1.10).
- :class:`TaxModelDesigner`: a fixed tax model (free market, US federal 2018, Saez) from
  :mod:`incentive_envs.gtb.tax_models`.

Which one :func:`designer.algorithms.make_designer` builds: ``metagrad``/``metagrad_m2`` -> MetaGrad;
``dual_rl`` -> the RL planner; ``fixed`` -> constant rates ``fixed_values`` (7 values); ``none`` -> the task's
``tax_model`` (``"free_market"`` by default, ``"us_federal"`` or ``"saez"``), i.e. no learning designer.

Networks read the flat observations the rollout logs: the agents' ``spatial (9, 11, 11) | flat (138) | mask (50)``
vector and the planner's ``map (8, 15, 15) | features`` state (:meth:`GatherTradeBuildEnv.state`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from designer.algorithms import Designer, MetaGradDesigner, Metrics, require_finite
from designer.batch import Batch, discounted_returns
from designer.config import DesignerConfig
from designer.learners import LearnerConfig, mixed_probs
from designer.tasks import Task
from incentive_envs.economics import collect_and_redistribute, isoelastic_utility
from incentive_envs.gtb import (
    SPATIAL_CHANNELS,
    STATE_MAP_CHANNELS,
    FreeMarketTax,
    GTBConfig,
    SaezTax,
    TaxModel,
    USFederalTax,
    flat_feature_names,
    load_layout,
    state_feature_names,
)
from incentive_envs.gtb.tax_models import annealed_rate_cap
from wrappers import StepContext
from wrappers.tax_rates import TaxRatesWrapper

__all__ = [
    "GTBLayout",
    "GTBTaxOptions",
    "PlannerNet",
    "SpatialFlatNet",
    "TaxDualRLDesigner",
    "TaxMetaGradDesigner",
    "TaxModelDesigner",
    "TaxNet",
    "evaluate_taxes",
    "gtb_task",
    "rebuild_rewards",
    "schedule_of",
    "tax_report",
]

TAX_MODELS = ("free_market", "us_federal", "saez")
R_SCALAR = 0.01
"""The MetaGrad designer's reward is ``R_SCALAR * productivity * equality`` after each step (method.md §2.5)."""


# ------------------------------------------------------------------------------------------------ layouts
@dataclass(frozen=True)
class GTBLayout:
    """Where things are in the flat vectors the rollout logs, derived from the game's public config.

    Attributes:
        config: the game constants.
        n_agents, n_brackets: agents and tax brackets.
        spatial_shape: an agent's egocentric view ``(9, V, V)``; ``flat_size``: its flat features.
        map_shape: the planner's map ``(8, H, W)``; ``state_flat``: the planner's other features.
        escrow_index, payment_index: per agent, the slot of its escrow coin / build payment in the state.
        first_day_index, rate_index: the state slots of "a period starts with the next step" and the 7 rates.
        swf0: ``equality * productivity / N`` at reset (the dual-RL planner's reward baseline).
    """

    config: GTBConfig
    n_agents: int
    n_brackets: int
    spatial_shape: tuple[int, int, int]
    flat_size: int
    map_shape: tuple[int, int, int]
    state_flat: int
    escrow_index: tuple[int, ...]
    payment_index: tuple[int, ...]
    first_day_index: int
    rate_index: tuple[int, ...]
    swf0: float

    @classmethod
    def of(cls, config: GTBConfig, layout: Any) -> GTBLayout:
        h, w = load_layout(layout).shape
        names = state_feature_names(config)
        map_size = len(STATE_MAP_CHANNELS) * h * w
        at = {n: map_size + j for j, n in enumerate(names)}
        v = 2 * config.view_radius + 1
        n = config.n_agents
        return cls(
            config=config,
            n_agents=n,
            n_brackets=config.n_brackets,
            spatial_shape=(len(SPATIAL_CHANNELS), v, v),
            flat_size=len(flat_feature_names(config)),
            map_shape=(len(STATE_MAP_CHANNELS), h, w),
            state_flat=len(names),
            escrow_index=tuple(at[f"agent_{i}_escrow_coin"] for i in range(n)),
            payment_index=tuple(at[f"agent_{i}_build_payment"] for i in range(n)),
            first_day_index=at["tax_is_first_day"],
            rate_index=tuple(at[f"tax_rate_{b}"] for b in range(config.n_brackets)),
            swf0=float(config.starting_coin),  # equal endowments at reset: equality 1, productivity N * c0
        )

    @property
    def state_size(self) -> int:
        return math.prod(self.map_shape) + self.state_flat


class StepFeatures:
    """What the tax designers log per step (``Batch.features``), from the env's infos.

    Layout (N agents, K brackets): ``coin_pre_tax, labour, income, u_prev, tax_paid, lump_sum, coin`` (N each),
    then ``enacted, period_start, swf, productivity, equality`` and the K rates in force. ``u_prev`` is the
    agent's utility before the step (the env's utility after it minus its reward), ``period_start`` the step
    index of the current period's first step (whose designer observation set the rates), ``swf`` is
    ``equality * productivity / N`` after the step.
    """

    PER_AGENT = ("coin_pre_tax", "labour", "income", "u_prev", "tax_paid", "lump_sum", "coin")
    SCALARS = ("enacted", "period_start", "swf", "productivity", "equality")

    def __init__(self, layout: GTBLayout) -> None:
        self.layout = layout
        n = layout.n_agents
        self.size = n * len(self.PER_AGENT) + len(self.SCALARS) + layout.n_brackets

    def __call__(self, ctx: StepContext) -> np.ndarray:
        cfg = self.layout.config
        infos = [ctx.infos[a] for a in ctx.possible_agents]
        per = {k: np.array([float(i[k]) for i in infos]) for k in ("coin_pre_tax", "labour", "income", "tax_paid",
                                                                    "lump_sum", "coin")}
        rewards = np.array([float(ctx.env_rewards[a]) for a in ctx.possible_agents])
        per["u_prev"] = isoelastic_utility(per["coin"], per["labour"], cfg.isoelastic_eta, cfg.labour_cost) - rewards
        first = infos[0]
        next_pos = int(first["tax_cycle_position"])
        position = next_pos - 1 if next_pos > 1 else cfg.tax_period  # this step's position in its period
        prod, eq = float(first["productivity"]), float(first["equality"])
        scalars = [float(first["tax_enacted"]), float(ctx.step - (position - 1)), eq * prod / len(infos), prod, eq]
        parts = [per[k] for k in self.PER_AGENT] + [np.array(scalars), np.asarray(first["marginal_rates"], float)]
        return np.concatenate(parts).astype(np.float32)

    def split(self, features: Tensor) -> dict[str, Tensor]:
        """Named views of ``[..., F]`` features: ``[..., N]`` per agent, ``[...]`` scalars, rates ``[..., K]``."""
        n, out, at = self.layout.n_agents, {}, 0
        for k in self.PER_AGENT:
            out[k] = features[..., at : at + n]
            at += n
        for k in self.SCALARS:
            out[k] = features[..., at]
            at += 1
        out["rates"] = features[..., at : at + self.layout.n_brackets]
        return out


# ----------------------------------------------------------------------------------------------- networks
def _conv_trunk(channels: int, conv: Sequence[int], kernel: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    for out_c in conv:
        layers += [nn.Conv2d(channels, out_c, kernel, padding="same"), nn.ReLU()]
        channels = out_c
    return nn.Sequential(*layers, nn.Flatten()), channels


class SpatialFlatNet(nn.Module):
    """The paper's image+vector network (``actor_image_vec``/``tax_image_vec``) over one flat input vector.

    ``x = [image (C, H, W) flattened | vector (F) | ignored tail]`` -> 2 conv 6@5x5 SAME ReLU on the image ->
    flatten -> Dense(F) ReLU -> concat vector -> hidden Dense ReLU layers -> Dense(n_out) (bias optional).
    Any leading dims are kept: ``[..., D] -> [..., n_out]``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        vector_size: int,
        n_out: int,
        hidden: Sequence[int],
        *,
        conv: Sequence[int] = (6, 6),
        kernel: int = 5,
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.image_size = math.prod(self.image_shape)
        self.vector_size = int(vector_size)
        self.trunk, ch = _conv_trunk(self.image_shape[0], conv, kernel)
        self.image_dense = nn.Sequential(nn.Linear(ch * self.image_size // self.image_shape[0], self.vector_size),
                                         nn.ReLU())
        layers: list[nn.Module] = []
        size = 2 * self.vector_size
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, n_out, bias=out_bias))
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        image = x[:, : self.image_size].reshape(-1, *self.image_shape)
        vector = x[:, self.image_size : self.image_size + self.vector_size]
        h = torch.cat([self.image_dense(self.trunk(image)), vector], dim=-1)
        return self.head(h).reshape(*lead, -1)


class PlannerNet(SpatialFlatNet):
    """:class:`SpatialFlatNet` on the planner's state ``[map (8, H, W) | features]``."""

    def __init__(self, layout: GTBLayout, n_out: int, hidden: Sequence[int], out_bias: bool = True) -> None:
        super().__init__(layout.map_shape, layout.state_flat, n_out, hidden, out_bias=out_bias)


class TaxNet(nn.Module):
    """The MetaGrad tax function: :class:`PlannerNet` -> Dense(K, no bias) -> sigmoid = K marginal rates in [0, 1]."""

    def __init__(self, layout: GTBLayout, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.body = PlannerNet(layout, layout.n_brackets, hidden, out_bias=False)

    def forward(self, state: Tensor) -> Tensor:
        return torch.sigmoid(self.body(state))


class StateCritic(nn.Module):
    """Value of the planner's state: :class:`PlannerNet` with one output, ``[..., S] -> [...]``."""

    def __init__(self, layout: GTBLayout, hidden: Sequence[int]) -> None:
        super().__init__()
        self.body = PlannerNet(layout, 1, hidden)

    def forward(self, state: Tensor) -> Tensor:
        return self.body(state).squeeze(-1)


def _agent_net_factory(layout: GTBLayout) -> Callable[[int, int, tuple[int, ...], bool], nn.Module]:
    """Shared actor/critic for the agents' flat observation (the mask tail is not an input; it masks)."""

    def make(members: int, n_out: int, hidden: tuple[int, ...], is_critic: bool) -> nn.Module:
        if members != 1:
            raise ValueError("GTB agents share one policy (LearnerConfig.shared=True)")
        return SpatialFlatNet(layout.spatial_shape, layout.flat_size, n_out, hidden)

    return make


# ------------------------------------------------------------------------------------------ reward rebuild
def rebuild_rewards(batch: Batch, rates: Tensor, layout: GTBLayout) -> tuple[Tensor, Tensor]:
    """The agents' rewards on ``batch`` under the rates ``[B, T, K]`` in force (only enactment steps matter).

    ``r = U(coin_pre_tax - paid + lump, L) - U_prev`` with ``paid = min(inventory coin, bracket_tax(income))`` and
    ``lump = mean(paid)`` on enactment steps (method.md §7.1.6's exact fix: post-component pre-tax coin and
    post-step labour, so off enactment steps ``r`` is the env's reward and on them it includes the same-step
    earnings). Inventory coin = pre-tax total coin minus escrow, read from the state after the step (escrow is
    an integer number of coin, so rounding the scaled state value recovers it exactly). Returns the rewards and
    each agent's net transfer ``lump - paid``, ``[B, T, N]``, differentiable in ``rates``.
    """
    f = StepFeatures(layout).split(batch.features)
    cfg = layout.config
    escrow = torch.round(batch.next_state[..., list(layout.escrow_index)] / cfg.obs_scale)
    available = f["coin_pre_tax"] - escrow
    paid, share = collect_and_redistribute(f["income"], rates.unsqueeze(-2), cfg.tax_cutoffs, available=available)
    transfer = f["enacted"].unsqueeze(-1) * (share - paid) * batch.mask
    coin = f["coin_pre_tax"] + transfer
    rewards = isoelastic_utility(coin, f["labour"], cfg.isoelastic_eta, cfg.labour_cost) - f["u_prev"]
    return rewards * batch.mask, transfer


def schedule_of(batch: Batch, layout: GTBLayout) -> np.ndarray:
    """The rates in force at the enactment steps of ``batch`` ``[n_periods_total, K]``."""
    f = StepFeatures(layout).split(batch.features)
    enacted = (f["enacted"] > 0) & (batch.step_mask > 0)
    return f["rates"][enacted].double().numpy()


def tax_report(batch: Batch, layout: GTBLayout) -> dict[str, Any]:
    """The paper's behavioural analysis of a batch of evaluation episodes (method.md §6.1).

    Returns per-episode final ``productivity``, ``equality`` and their product, the rates per period
    ``[B, P, K]``, and per skill rank (0 = lowest build payment) the mean per-episode pre-tax income, tax paid,
    lump sum received and final coin.
    """
    f = StepFeatures(layout).split(batch.features.double())
    b = batch.n_episodes
    last = batch.step_mask.sum(1).long() - 1
    rows = torch.arange(b)
    enacted = f["enacted"] > 0
    payment = batch.state[:, 0, list(layout.payment_index)].double()
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
        "rates": f["rates"][enacted].reshape(b, -1, layout.n_brackets).numpy(),
        "income_by_skill": by_skill(income),
        "tax_by_skill": by_skill(f["tax_paid"].sum(1)),
        "lump_sum_by_skill": by_skill(f["lump_sum"].sum(1)),
        "coin_by_skill": by_skill(f["coin"][rows, last]),
    }


# ------------------------------------------------------------------------------------------------ designers
@dataclass(frozen=True)
class GTBTaxOptions:
    """Tax-designer settings that are not in :class:`DesignerConfig` (task keyword arguments).

    Attributes:
        tax_model: the fixed model used by ``algorithm="none"``: ``free_market``, ``us_federal`` or ``saez``.
        anneal_cap: anneal the US federal / fixed rates' cap (method.md §3.3.7).
        initial_max_tax_rate, n_episodes_reach_max_rate: the cap rises linearly from the first to 1 over the
            second (completed training episodes); used by the dual-RL planner and, with ``anneal_cap``, by
            the fixed schedules.
        planner_epsilon_start, planner_epsilon_end, planner_epsilon_iters: the dual-RL planner's exploration.
        planner_critic_lr, planner_grad_clip: its critic learning rate and gradient-norm clip.
        rate_step, n_levels: the planner's levels: 0 keeps the rate, ``k`` sets ``(k - 1) * rate_step``.
    """

    tax_model: str = "free_market"
    anneal_cap: bool = False
    initial_max_tax_rate: float = 0.1
    n_episodes_reach_max_rate: int = 8000
    planner_epsilon_start: float = 0.5
    planner_epsilon_end: float = 0.05
    planner_epsilon_iters: int = 5000
    planner_critic_lr: float = 2.0762e-4
    planner_grad_clip: float = 10.0
    rate_step: float = 0.05
    n_levels: int = 22

    def __post_init__(self) -> None:
        if self.tax_model not in TAX_MODELS:
            raise ValueError(f"tax_model must be one of {TAX_MODELS}, got {self.tax_model!r}")
        if self.n_episodes_reach_max_rate < 1 or self.planner_epsilon_iters < 1:
            raise ValueError("n_episodes_reach_max_rate and planner_epsilon_iters must be >= 1")
        if not 0 <= self.initial_max_tax_rate <= 1:
            raise ValueError(f"initial_max_tax_rate must be in [0, 1], got {self.initial_max_tax_rate}")
        if self.n_levels < 2 or not math.isclose((self.n_levels - 2) * self.rate_step, 1.0):
            raise ValueError(f"levels must reach rate 1: (n_levels - 2) * rate_step = 1, got {self.n_levels}, "
                             f"{self.rate_step}")

    def cap(self, completed_episodes: int) -> float:
        return annealed_rate_cap(completed_episodes, self.initial_max_tax_rate, self.n_episodes_reach_max_rate)


class _NetRates:
    """The MetaGrad tax network as a ``rates_fn``: rates from the planner's observation, no gradient."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def __call__(self, state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            x = torch.as_tensor(np.asarray(state, dtype=np.float32)).reshape(1, -1)
            return self.net(x)[0].double().numpy()


class TaxMetaGradDesigner(MetaGradDesigner):
    """MetaGrad (m1/m2) tax designer for Gather-Trade-Build (method.md §2.5 with §7.1.5-6 fixed).

    The tax network (:class:`TaxNet`) sets the rates at each period start from the planner's true observation
    through :class:`TaxRatesWrapper`. The agents' rewards are rebuilt from the logged step data with the rates
    the network gives on the held period-start observations (:func:`rebuild_rewards`), so the agents' PPO step
    (the Adam replica) and hence ``theta_hat`` are functions of the network. No incentive is paid and there is
    no cost; the outer weights are GAE advantages from the designer critic (``use_critic``).
    """

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None, layout: GTBLayout):
        self.layout = layout
        self.step_features = StepFeatures(layout)
        super().__init__(task, config, generator)

    def _make_net(self) -> nn.Module:
        return TaxNet(self.layout, self.config.hidden)

    def _make_incentive(self) -> None:
        return None

    @property
    def features_of(self) -> Callable[[StepContext], tuple[np.ndarray, dict[str, int]]]:
        return self._log_step

    def _log_step(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, int]]:
        return self.step_features(ctx), {}

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        return TaxRatesWrapper(env, _NetRates(self.net))

    def rates(self, batch: Batch) -> Tensor:
        """``[B, T, K]`` rates of the network on each enactment step's held period-start observation (0 elsewhere)."""
        f = self.step_features.split(batch.features)
        bi, ti = torch.nonzero((f["enacted"] > 0) & (batch.step_mask > 0), as_tuple=True)
        held = batch.state[bi, f["period_start"][bi, ti].long()]
        out = torch.zeros(*batch.step_mask.shape, self.layout.n_brackets, dtype=batch.state.dtype)
        return out.index_put((bi, ti), self.net(held))

    def agent_rewards(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return rebuild_rewards(batch, self.rates(batch), self.layout)


class _PlannerRates:
    """The dual-RL planner as a ``rates_fn``: samples one level per bracket from its masked, mixed policy."""

    def __init__(self, designer: TaxDualRLDesigner, generator: torch.Generator, explore: bool) -> None:
        self.designer = designer
        self.generator = generator
        self.explore = explore

    def __call__(self, state: np.ndarray) -> np.ndarray:
        d = self.designer
        x = torch.as_tensor(np.asarray(state, dtype=np.float32)).reshape(-1)
        with torch.no_grad():
            probs = d.probs(x, d.epsilon if self.explore else 0.0, d.cap)
            level = torch.multinomial(probs, 1, generator=self.generator).squeeze(-1)
        current = d.level_of(x[list(d.layout.rate_index)])
        chosen = torch.where(level == 0, current, level)
        return d.rate_values[chosen].numpy()


class TaxDualRLDesigner(Designer):
    """The AI-Economist-style dual-RL planner (method.md §4.1, GTB; §7.1.10 fixed), learning-oblivious.

    At each period start it picks, per bracket, one of ``n_levels`` actions (0 keeps the current rate, ``k``
    sets ``(k - 1) * rate_step``) from 7 factorised categoricals over the planner's observation. Levels above
    the annealed cap are masked; epsilon-mixing spreads over the allowed levels only. Its reward is the
    change of ``equality * productivity / N`` per step; it learns by REINFORCE with a learned state-value
    baseline on discounted returns, an entropy bonus (mean per bracket, actually computed), Adam and a
    gradient-norm clip, once per batch. The log-probability is that of the *resulting* rate per bracket
    (keep and "set to the current level" give the same rate, so their probabilities add), which needs nothing
    but the rates logged by the rollout.
    """

    metric_names = ("planner_loss", "planner_entropy", "planner_value_loss", "rate_cap")

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator, layout: GTBLayout,
                 options: GTBTaxOptions) -> None:
        super().__init__(task, config)
        self.layout = layout
        self.options = options
        self.step_features = StepFeatures(layout)
        k, n = layout.n_brackets, options.n_levels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            self.policy = PlannerNet(layout, k * n, config.dual_hidden)
            self.critic = StateCritic(layout, config.dual_hidden)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=config.dual_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=options.planner_critic_lr)
        self.generator = generator
        self.completed_episodes = 0
        self.rate_values = torch.cat([torch.zeros(1, dtype=torch.float64),
                                      torch.arange(n - 1, dtype=torch.float64) * options.rate_step])

    @property
    def epsilon(self) -> float:
        o = self.options
        frac = min(1.0, self.iteration / o.planner_epsilon_iters)
        return o.planner_epsilon_start + frac * (o.planner_epsilon_end - o.planner_epsilon_start)

    @property
    def cap(self) -> float:
        return self.options.cap(self.completed_episodes)

    def level_of(self, rates: Tensor) -> Tensor:
        """The level index (1..n_levels-1) of rates on the grid (nearest level otherwise)."""
        return torch.round(rates.double() / self.options.rate_step).long() + 1

    def level_mask(self, cap: Tensor | float) -> Tensor:
        """``[..., n_levels]`` 1 for allowed levels: keep, and every rate <= cap."""
        cap_t = torch.as_tensor(cap, dtype=torch.float64).unsqueeze(-1)
        allowed = self.rate_values <= cap_t + 1e-9
        allowed = allowed.expand(*cap_t.shape[:-1], self.options.n_levels).clone()
        allowed[..., 0] = True
        return allowed.float()

    def probs(self, state: Tensor, epsilon: float | Tensor, cap: float | Tensor) -> Tensor:
        """``[..., K, n_levels]`` masked, epsilon-mixed level probabilities (the same for every bracket's mask)."""
        logits = self.policy(state).reshape(*state.shape[:-1], self.layout.n_brackets, self.options.n_levels)
        mask = self.level_mask(cap).unsqueeze(-2).expand_as(logits)
        eps = torch.as_tensor(epsilon, dtype=logits.dtype).reshape(*torch.as_tensor(epsilon).shape, 1, 1)
        greedy, _ = mixed_probs(logits, 0.0, mask)
        uniform = mask / mask.sum(-1, keepdim=True)
        return (1.0 - eps) * greedy + eps * uniform

    @property
    def features_of(self) -> Callable[[StepContext], tuple[np.ndarray, dict[str, int]]]:
        return self._log_step

    def _log_step(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, int]]:
        extra = np.array([self.epsilon, self.cap], dtype=np.float32)
        return np.concatenate([self.step_features(ctx), extra]), {}

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        gen = self.generator if eval_generator is None else eval_generator
        return TaxRatesWrapper(env, _PlannerRates(self, gen, explore=eval_generator is None))

    def update(self, batch: Batch) -> Metrics:
        f = self.step_features.split(batch.features[..., :-2])
        eps, cap = batch.features[..., -2], batch.features[..., -1]
        swf = f["swf"] * batch.step_mask
        prev = torch.cat([torch.full_like(swf[:, :1], self.layout.swf0), swf[:, :-1]], dim=1)
        returns = discounted_returns((swf - prev) * batch.step_mask, batch.step_mask, self.config.gamma)
        decide = (batch.state[..., self.layout.first_day_index] > 0.5) & (batch.step_mask > 0)
        state = batch.state[decide]
        probs = self.probs(state, eps[decide].double(), cap[decide].double()).double()
        new = self.level_of(f["rates"][decide])
        old = self.level_of(batch.state[decide][:, list(self.layout.rate_index)])
        p_outcome = probs.gather(-1, new.unsqueeze(-1)).squeeze(-1) + (new == old) * probs[..., 0]
        logp = torch.log(p_outcome.clamp_min(1e-12)).sum(-1)
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean(-1)
        value = self.critic(state)
        target = returns[decide]
        advantage = (target - value.detach()).double()
        loss = -(logp * advantage).mean() - self.config.dual_entropy * entropy.mean()
        value_loss = ((value - target) ** 2).mean()
        clip = self.options.planner_grad_clip
        for opt, params, objective in ((self.opt, self.policy.parameters(), loss),
                                       (self.critic_opt, self.critic.parameters(), value_loss)):
            opt.zero_grad(set_to_none=True)
            objective.backward()
            params = list(params)
            require_finite("dual-RL planner gradient", [p.grad for p in params if p.grad is not None], self.iteration)
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        self.completed_episodes += batch.n_episodes
        return {"planner_loss": float(loss.detach()), "planner_entropy": float(entropy.mean().detach()),
                "planner_value_loss": float(value_loss.detach()), "rate_cap": self.cap}

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "completed_episodes": self.completed_episodes,
                "policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "opt": self.opt.state_dict(), "critic_opt": self.critic_opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.completed_episodes = int(state["completed_episodes"])
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.opt.load_state_dict(state["opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])


class TaxModelDesigner(Designer):
    """A fixed tax model (free market, US federal, Saez, constant rates) through :class:`TaxRatesWrapper`.

    Training envs share the model (Saez pools the incomes of every training episode, as Foundation's global
    buffer); each evaluation env gets a copy, so evaluation never changes it.
    """

    def __init__(self, task: Task, config: DesignerConfig, model: TaxModel, layout: GTBLayout) -> None:
        super().__init__(task, config)
        self.model = model
        self.step_features = StepFeatures(layout)

    @property
    def features_of(self) -> Callable[[StepContext], tuple[np.ndarray, dict[str, int]]]:
        return lambda ctx: (self.step_features(ctx), {})

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        return TaxRatesWrapper(env, self.model if eval_generator is None else copy.deepcopy(self.model))

    def state_dict(self) -> dict[str, Any]:
        m = self.model
        state: dict[str, Any] = {"iteration": self.iteration, "completed_episodes": m.completed_episodes}
        if isinstance(m, SaezTax):
            state.update(buffer=torch.tensor(list(m.buffer), dtype=torch.float64).reshape(-1, 2),
                         elasticity=m.elasticity, rng=m.rng.bit_generator.state)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        m = self.model
        m.completed_episodes = int(state["completed_episodes"])
        if isinstance(m, SaezTax):
            m.buffer.clear()
            m.buffer.extend((float(z), float(t)) for z, t in state["buffer"].tolist())
            m.elasticity = float(state["elasticity"])
            m.rng.bit_generator.state = state["rng"]


def _make_tax_designer(task: Task, config: DesignerConfig, generator: torch.Generator, layout: GTBLayout,
                       options: GTBTaxOptions) -> Designer:
    algo = config.algorithm
    if algo in ("metagrad", "metagrad_m2"):
        return TaxMetaGradDesigner(task, config, generator, layout)
    if algo == "dual_rl":
        return TaxDualRLDesigner(task, config, generator, layout, options)
    cap = {"anneal_cap": options.anneal_cap, "initial_cap": options.initial_max_tax_rate,
           "anneal_episodes": options.n_episodes_reach_max_rate}
    model: TaxModel
    if algo == "fixed":
        model = USFederalTax(rates=config.fixed_values, **cap)
    elif algo == "none" and options.tax_model == "free_market":
        model = FreeMarketTax()
    elif algo == "none" and options.tax_model == "us_federal":
        model = USFederalTax(**cap)
    elif algo == "none":
        model = SaezTax(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    else:
        raise ValueError(f"algorithm {algo!r} is not a tax designer; use metagrad, metagrad_m2, dual_rl, fixed or "
                         "none (with tax_model)")
    return TaxModelDesigner(task, config, model, layout)


# ----------------------------------------------------------------------------------------------------- task
def _mask_of(agent: str, obs: Any, info: dict[str, Any]) -> np.ndarray:
    return np.asarray(info["action_mask"], dtype=np.float32)


def _designer_reward(ctx: StepContext) -> float:
    info = ctx.infos[ctx.possible_agents[0]]
    return R_SCALAR * float(info["productivity"]) * float(info["equality"])


def gtb_task(
    max_cycles: int = 100,
    layout: str = "env-pure_and_mixed-15x15",
    tax_model: str = "free_market",
    anneal_cap: bool = False,
    initial_max_tax_rate: float = 0.1,
    n_episodes_reach_max_rate: int = 8000,
    planner_epsilon_iters: int = 5000,
    **env_kwargs: Any,
) -> Task:
    """Gather-Trade-Build with the paper's shared PPO agents and MetaGrad tax designer (method.md §2.5, §5.3).

    Agents: one shared policy over the flat observation (:class:`SpatialFlatNet`, 128-128, masked softmax),
    PPO with the Adam-step replica, entropy 0.184, lr 3.3e-4, critic lr 1.67e-5 (feed-forward critic on the
    same trunk; the paper's LSTM critic is not reproduced), clip 0.01, GAE 0.98, epsilon 0.5 -> 0.05 over 5000
    updates (``config_foundation_ppo``). Designer: tax network 256-256, Adam 1.82e-5, critic lr 8.64e-4, tau
    0.0158, GAE 0.98, reward ``0.01 * productivity * equality`` after each step. The dual-RL planner uses
    entropy 0.451, lr 5.77e-4 and 256-256 layers. ``tax_model``/``anneal_cap`` and the cap schedule configure the
    fixed baselines and the planner, ``planner_epsilon_iters`` the planner's exploration schedule
    (:class:`GTBTaxOptions`); other keyword arguments go to the env.
    """
    from incentive_envs.gather_trade_build import parallel_env

    options = GTBTaxOptions(tax_model=tax_model, anneal_cap=anneal_cap, initial_max_tax_rate=initial_max_tax_rate,
                            n_episodes_reach_max_rate=n_episodes_reach_max_rate,
                            planner_epsilon_iters=planner_epsilon_iters)
    kwargs = {"max_cycles": max_cycles, "layout": layout, **env_kwargs}
    if kwargs.get("observation_mode", "flat") != "flat":
        raise ValueError("the GTB task reads flat observations; observation_mode must be 'flat'")
    env = parallel_env(**kwargs)
    agents = tuple(env.possible_agents)
    config = env_kwargs.get("config") or GTBConfig()
    lay = GTBLayout.of(config, layout)
    obs_shape = tuple(int(s) for s in env.observation_space(agents[0]).shape)
    n_actions = int(env.action_space(agents[0]).n)
    if int(env.state_space.shape[0]) != lay.state_size:
        raise ValueError(f"state size {env.state_space.shape} does not match the layout ({lay.state_size})")
    env.close()
    features = StepFeatures(lay)

    def make_designer(task: Task, cfg: DesignerConfig, generator: Any) -> Designer:
        return _make_tax_designer(task, cfg, generator, lay, options)

    return Task(
        name="gather_trade_build",
        make_env=lambda: parallel_env(**kwargs),
        agents=agents,
        obs_shape=obs_shape,
        n_actions=n_actions,
        feature_dim=features.size,
        features=features,
        slot_rules={},
        n_slots={},
        designer_reward=_designer_reward,
        state_shape=(lay.state_size,),
        learner=LearnerConfig(
            kind="ppo", optimizer="adam", lr=3.3e-4, gamma=0.99, entropy_coef=0.184, reduction="mean",
            epsilon_start=0.5, epsilon_end=0.05, epsilon_iters=5000, shared=True, hidden=(128, 128),
            critic_lr=1.67e-5, critic_hidden=(128, 128), target_tau=0.0126, gae_lambda=0.98, ppo_clip=0.01,
        ),
        designer=DesignerConfig(
            algorithm="metagrad", hidden=(256, 256), lr=1.82e-5, cost="none", outer_reduction="mean",
            use_critic=True, critic_lr=8.64e-4, critic_tau=0.0158, gae_lambda=0.98, gamma=0.99,
            critic_hidden=(256, 256), dual_entropy=0.451, dual_lr=5.7676e-4, dual_hidden=(256, 256),
        ),
        env_kwargs=kwargs,
        action_mask_of=_mask_of,
        make_agent_net=_agent_net_factory(lay),
        make_designer=make_designer,
        make_state_critic=lambda task, cfg: StateCritic(lay, cfg.critic_hidden),
    )


def evaluate_taxes(trainer: Any, n_episodes: int = 20, seed: int = 0) -> dict[str, Any]:
    """:func:`tax_report` of ``n_episodes`` fresh evaluation episodes of a trained GTB :class:`Trainer`.

    Like :meth:`Trainer.evaluate` (actions sampled without exploration mixing; the designer's evaluation
    control point, seeded from ``seed``; training RNGs untouched) but logging the tax data of every step.
    """
    from designer.rollout import RolloutWorker
    from wrappers import IncentiveWrapper

    task = trainer.task
    features = task.features
    if not isinstance(features, StepFeatures):
        raise ValueError(f"evaluate_taxes needs the gather_trade_build task, got {task.name!r}")
    control = torch.Generator().manual_seed(seed + 1)
    envs = [IncentiveWrapper(trainer.designer.wrap_env(task.make_env(), control), _no_incentive)
            for _ in range(n_episodes)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    worker = RolloutWorker(envs, task.agents, features_of=lambda ctx: (features(ctx), {}),
                           designer_reward=task.designer_reward, state_of=task.state_of, obs_of=task.obs_of,
                           action_mask_of=task.action_mask_of)
    params = trainer.learner.params
    batch, _ = worker.collect(lambda obs: trainer.learner.logits(params, obs), 0.0,
                              torch.Generator().manual_seed(seed))
    return tax_report(batch, features.layout)


def _no_incentive(ctx: StepContext) -> dict[str, float]:
    return dict.fromkeys(ctx.agents, 0.0)
