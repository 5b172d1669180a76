"""The Gather-Trade-Build tax designers: each sets the 7 marginal rates of every tax period through
:class:`wrappers.TaxRatesWrapper` (the env's public ``set_tax_rates``/``tax_cycle_position``), so every tax
designer plugs into the generic trainer through :meth:`Designer.wrap_env` (method.md §2.5, §3.3, §4.1), and into
its batched rollout (``TrainConfig.vectorized``) through :meth:`Designer.batched_wrap_env` and
:class:`wrappers.BatchedTaxRatesWrapper` over the native batched env, logging with :class:`BatchedStepLog`.

- :class:`TaxMetaGradDesigner` (``metagrad``, ``metagrad_m2``): a tax network maps the planner's observation held
  from the period's first step to the rates; the agents' rewards are rebuilt differentiably from the logged step
  data (:func:`~designer.tasks.gather_trade_build.records.rebuild_rewards`, the "exact fix" of method.md
  §7.1.6) and the meta-gradient flows through the PPO agents' Adam-step replica.
- :class:`TaxDualRLDesigner` (``dual_rl``): the AI-Economist-style planner, an RL agent choosing one of 22
  levels per bracket at every period start (0 keeps the rate, k sets (k-1)·0.05), with rate-cap annealing by
  masks; entropy is really computed and epsilon-mixing respects the masks (fixes of method.md §7.1.10).
- :class:`TaxModelDesigner` (``none``, ``fixed``): a fixed tax model (free market, US federal 2018, Saez, or
  constant rates) from :mod:`incentive_envs.gtb.tax_models`.

None pays an incentive: each logs the step's tax data (:class:`StepLog`) through the rollout's records, and each
reports the mean rate per bracket enacted in every training batch as the training metrics ``rate_0`` ..
``rate_{K-1}`` (so a run's ``log.csv`` holds the schedule over training as ``train/rate_<b>`` columns), and the
economy of those episodes (:func:`economy_metrics`: productivity, equality, and income, labour, houses built and
trades per skill rank).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor, nn

from designer.algorithms.base import Collect, Designer, IncentiveCall, Metrics, require_finite
from designer.algorithms.metagrad import MetaGradDesigner
from designer.batch import Batch, discounted_returns
from designer.batched_rollout import BatchedIncentiveInputs
from designer.config import DesignerConfig
from designer.learners import AgentLearner, mixed_probs
from designer.rollout import IncentiveInputs
from designer.task import Task
from designer.tasks.gather_trade_build.game import as_gtb_task
from designer.tasks.gather_trade_build.networks import PlannerNet, StateCritic, TaxNet
from designer.tasks.gather_trade_build.records import StepFeatures, rebuild_rewards, schedule_of, tax_report
from incentive_envs.gtb import FreeMarketTax, GTBSchema, SaezTax, TaxModel, USFederalTax
from incentive_envs.vector import BatchedParallelEnv
from wrappers import BatchedStepContext, BatchedTaxRatesWrapper, PerCopyRates, StepContext, TaxRatesWrapper

__all__ = [
    "BatchedStepLog",
    "StepLog",
    "TaxDualRLDesigner",
    "TaxMetaGradDesigner",
    "TaxModelDesigner",
    "rate_metrics",
    "tax_model_designer",
]


class StepLog(IncentiveCall):
    """Pays nothing; its inputs are the step's tax data (and ``extra()`` values, e.g. the planner's exploration),
    which the rollout records as ``Batch.features``."""

    def __init__(self, features: StepFeatures, extra: Callable[[], list[float]] | None = None) -> None:
        self.features = features
        self.extra = extra

    def inputs(self, ctx: StepContext) -> IncentiveInputs:
        x = self.features(ctx)
        if self.extra is not None:
            x = np.concatenate([x, np.asarray(self.extra(), dtype=np.float32)])
        return x, {}

    def pay(self, inputs: IncentiveInputs) -> Mapping[str, float]:
        return {}

    def batched(self) -> BatchedStepLog:
        """Its counterpart for the batched rollout (the same features, one row per copy)."""
        return BatchedStepLog(self.features, self.extra)


class BatchedStepLog:
    """:class:`StepLog` for all copies of the batched rollout: pays nothing; its inputs are the rows ``[B, F]`` of
    the copies' tax data (``extra()`` appended to every row), which the rollout records as ``Batch.features``."""

    def __init__(self, features: StepFeatures, extra: Callable[[], list[float]] | None = None) -> None:
        self.features = features
        self.extra = extra

    def inputs(self, ctx: BatchedStepContext) -> BatchedIncentiveInputs:
        x = self.features.batched(ctx)
        if self.extra is not None:
            more = np.asarray(self.extra(), dtype=np.float32)
            x = np.concatenate([x, np.broadcast_to(more, (len(x), len(more)))], axis=-1)
        return x, np.zeros(ctx.shape, dtype=np.int64)

    def pay(self, inputs: BatchedIncentiveInputs) -> NDArray[np.float64]:
        return np.zeros(inputs[1].shape)


def rate_metrics(batch: Batch, schema: GTBSchema) -> Metrics:
    """``rate_<b>``: the mean rate of bracket ``b`` over the periods enacted in ``batch`` (empty when none was)."""
    rates = schedule_of(batch, schema)
    return {f"rate_{b}": float(r) for b, r in enumerate(rates.mean(0))} if len(rates) else {}


ECONOMY = ("productivity", "equality", "equality_times_productivity")
BY_SKILL = ("income", "labour", "houses_built", "trades")


def economy_metric_names(schema: GTBSchema) -> tuple[str, ...]:
    """Names of :func:`economy_metrics`."""
    return (*ECONOMY, *(f"{k}_skill{s}" for k in BY_SKILL for s in range(schema.n_agents)))


def economy_metrics(batch: Batch, schema: GTBSchema) -> Metrics:
    """The economy of the batch's episodes (:func:`tax_report`, means over episodes): final productivity,
    equality and their product, and per skill rank ``s`` (0 = lowest build payment) the pre-tax income, labour,
    houses built and trades (``<name>_skill<s>``), so the logs show how behaviour moves during training."""
    report = tax_report(batch, schema)
    out: Metrics = {k: float(np.mean(report[k])) for k in ECONOMY}
    for k in BY_SKILL:
        if f"{k}_by_skill" in report:  # batches recorded before the counters existed lack houses and trades
            out.update({f"{k}_skill{s}": float(v) for s, v in enumerate(report[f"{k}_by_skill"])})
    return out


class _ReportsRates(Designer):
    """Base of the tax designers: adds :func:`rate_metrics` and :func:`economy_metrics` of each training batch
    to the iteration's metrics."""

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None = None) -> None:
        self.schema = as_gtb_task(task).schema
        super().__init__(task, config, generator)
        self.metric_names = (*self.metric_names, *(f"rate_{b}" for b in range(self.schema.n_brackets)),
                             *economy_metric_names(self.schema))

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        next_batch, metrics = super().iterate(learner, collect, batch)
        return next_batch, {**metrics, **rate_metrics(batch, self.schema), **economy_metrics(batch, self.schema)}

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedStepLog:
        """The batched counterpart of the designer's :class:`StepLog` (it pays nothing, evaluation included)."""
        log = self.incentive
        if not isinstance(log, StepLog):  # pragma: no cover - every tax designer logs through a StepLog
            raise TypeError(f"{type(self).__name__} logs through {type(log).__name__}, not a StepLog")
        return log.batched()


class _NetRates:
    """The MetaGrad tax network as a ``rates_fn``: rates ``[..., K]`` from the planner's observations ``[..., S]``
    (one state, or one per copy for the batched wrapper: one forward), no gradient."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net

    def __call__(self, state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.net(torch.as_tensor(np.asarray(state, dtype=np.float32))).double().numpy()


class TaxMetaGradDesigner(_ReportsRates, MetaGradDesigner):
    """MetaGrad (m1/m2) tax designer for Gather-Trade-Build (method.md §2.5 with §7.1.5-6 fixed).

    The tax network (:class:`TaxNet`) sets the rates at each period start from the planner's true observation
    through :class:`TaxRatesWrapper`. The agents' rewards are rebuilt from the logged step data with the rates
    the network gives on the held period-start observations (:func:`rebuild_rewards`), so the agents' PPO step
    (the Adam replica) and hence ``theta_hat`` are functions of the network. No incentive is paid and there is
    no cost; the outer weights are GAE advantages from the designer critic (``use_critic``).
    """

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None = None) -> None:
        self.step_features = StepFeatures(as_gtb_task(task).schema)
        super().__init__(task, config, generator)

    def _make_net(self) -> nn.Module:
        return TaxNet(self.schema, self.config.hidden)

    def _make_incentive(self) -> StepLog:
        return StepLog(self.step_features)

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        return TaxRatesWrapper(env, _NetRates(self.net))

    def batched_wrap_env(self, env: BatchedParallelEnv, eval_generator: torch.Generator | None = None
                         ) -> BatchedTaxRatesWrapper:
        return BatchedTaxRatesWrapper(env, _NetRates(self.net))

    def rates(self, batch: Batch) -> Tensor:
        """``[B, T, K]`` rates of the network on each enactment step's held period-start observation (0 elsewhere)."""
        f = self.step_features.split(batch.features)
        bi, ti = torch.nonzero((f["enacted"] > 0) & (batch.step_mask > 0), as_tuple=True)
        held = batch.state[bi, f["period_start"][bi, ti].long()]
        out = torch.zeros(*batch.step_mask.shape, self.schema.n_brackets, dtype=batch.state.dtype)
        return out.index_put((bi, ti), self.net(held))

    def agent_rewards(self, batch: Batch) -> tuple[Tensor, Tensor]:
        return rebuild_rewards(batch, self.rates(batch), self.schema)

    def live_units(self, states: Tensor) -> float:
        """Fraction of the tax network's last hidden ReLU units active on at least one of ``states``.

        The output layer has no bias, so with every unit dead all rates sit at sigmoid(0) = 0.5.
        """
        inputs: list[Tensor] = []
        output_layer = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
        hook = output_layer.register_forward_hook(lambda module, args, output: inputs.append(args[0]))
        with torch.no_grad():
            self.net(states.reshape(-1, states.shape[-1]))
        hook.remove()
        return float((inputs[0] > 0).any(0).float().mean())


class _PlannerRates:
    """The dual-RL planner as a ``rates_fn``: samples one level per bracket from its masked, mixed policy.

    Takes one planner observation ``[S]`` or one per copy ``[B, S]`` (the batched wrapper): the policy runs once,
    and the levels are drawn copy by copy in batch order, as B sequential envs sharing the generator draw them.
    """

    def __init__(self, designer: TaxDualRLDesigner, generator: torch.Generator, explore: bool) -> None:
        self.designer = designer
        self.generator = generator
        self.explore = explore

    def __call__(self, state: np.ndarray) -> np.ndarray:
        d = self.designer
        x = torch.as_tensor(np.asarray(state, dtype=np.float32))
        with torch.no_grad():
            probs = d.probs(x, d.epsilon if self.explore else 0.0, d.cap)
            per_copy = probs.reshape(-1, *probs.shape[-2:])
            level = torch.stack([torch.multinomial(p, 1, generator=self.generator).squeeze(-1) for p in per_copy])
            level = level.reshape(probs.shape[:-1])
        current = d.level_of(d.schema.rates(x))
        chosen = torch.where(level == 0, current, level)
        return d.rate_values[chosen].numpy()


class TaxDualRLDesigner(_ReportsRates):
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

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator) -> None:
        super().__init__(task, config)
        schema = self.schema
        self.options = options = as_gtb_task(task).options
        self.step_features = StepFeatures(schema)
        k, n = schema.n_brackets, options.n_levels
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            self.policy = PlannerNet(schema, k * n, config.dual_hidden)
            self.critic = StateCritic(schema, config.dual_hidden)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=config.dual_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=options.planner_critic_lr)
        self.generator = generator
        self.completed_episodes = 0
        self.rate_values = torch.cat([torch.zeros(1, dtype=torch.float64),
                                      torch.arange(n - 1, dtype=torch.float64) * options.rate_step])
        self._incentive = StepLog(self.step_features, self._exploration)

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
        logits = self.policy(state).reshape(*state.shape[:-1], self.schema.n_brackets, self.options.n_levels)
        mask = self.level_mask(cap).unsqueeze(-2).expand_as(logits)
        eps = torch.as_tensor(epsilon, dtype=logits.dtype).reshape(*torch.as_tensor(epsilon).shape, 1, 1)
        greedy, _ = mixed_probs(logits, 0.0, mask)
        uniform = mask / mask.sum(-1, keepdim=True)
        return (1.0 - eps) * greedy + eps * uniform

    def _exploration(self) -> list[float]:
        """The exploration and rate cap in force, logged with every step (the update needs the sampling policy)."""
        return [self.epsilon, self.cap]

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        return TaxRatesWrapper(env, self._rates_fn(eval_generator))

    def batched_wrap_env(self, env: BatchedParallelEnv, eval_generator: torch.Generator | None = None
                         ) -> BatchedTaxRatesWrapper:
        return BatchedTaxRatesWrapper(env, self._rates_fn(eval_generator))

    def _rates_fn(self, eval_generator: torch.Generator | None) -> _PlannerRates:
        """Training: explore, sampling from the designer's generator; evaluation: greedy-masked, from its own."""
        gen = self.generator if eval_generator is None else eval_generator
        return _PlannerRates(self, gen, explore=eval_generator is None)

    def update(self, batch: Batch) -> Metrics:
        f = self.step_features.split(batch.features[..., :-2])
        eps, cap = batch.features[..., -2], batch.features[..., -1]
        swf = f["swf"] * batch.step_mask
        # equal endowments at reset: equality 1, productivity N * c0, so swf = c0
        swf0 = float(self.schema.config.starting_coin)
        prev = torch.cat([torch.full_like(swf[:, :1], swf0), swf[:, :-1]], dim=1)
        returns = discounted_returns((swf - prev) * batch.step_mask, batch.step_mask, self.config.gamma)
        decide = self.schema.period_starts_next(batch.state) & (batch.step_mask > 0)
        state = batch.state[decide]
        probs = self.probs(state, eps[decide].double(), cap[decide].double()).double()
        new = self.level_of(f["rates"][decide])
        old = self.level_of(self.schema.rates(batch.state[decide]))
        p_outcome = probs.gather(-1, new.unsqueeze(-1)).squeeze(-1) + (new == old) * probs[..., 0]
        logp = torch.log(p_outcome.clamp_min(1e-12)).sum(-1)
        entropy = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1).mean(-1)
        value = self.critic(state)
        target = returns[decide]
        advantage = (target - value.detach()).double()
        loss = -(logp * advantage).mean() - self.config.dual_entropy * entropy.mean()
        value_loss = ((value - target) ** 2).mean()
        clip = self.options.planner_grad_clip
        for opt, module, objective in ((self.opt, self.policy, loss), (self.critic_opt, self.critic, value_loss)):
            opt.zero_grad(set_to_none=True)
            objective.backward()
            params = list(module.parameters())
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


class TaxModelDesigner(_ReportsRates):
    """A fixed tax model (free market, US federal, Saez, constant rates) through :class:`TaxRatesWrapper`.

    Training envs share the model (Saez pools the incomes of every training episode, as Foundation's global
    buffer); each evaluation env gets a copy, so evaluation never changes it.
    """

    def __init__(self, task: Task, config: DesignerConfig, model: TaxModel) -> None:
        super().__init__(task, config)
        self.model = model
        self._incentive = StepLog(StepFeatures(as_gtb_task(task).schema))

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> TaxRatesWrapper:
        return TaxRatesWrapper(env, self.model if eval_generator is None else copy.deepcopy(self.model))

    def batched_wrap_env(self, env: BatchedParallelEnv, eval_generator: torch.Generator | None = None
                         ) -> BatchedTaxRatesWrapper:
        """Training copies share the model, called copy by copy in batch order (as B sequential envs call it);
        evaluation gives each copy its own copy of the model, as the sequential path gives each env."""
        rates = PerCopyRates(self.model if eval_generator is None else
                             [copy.deepcopy(self.model) for _ in range(env.n_envs)])
        return BatchedTaxRatesWrapper(env, rates)

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


def tax_model_designer(task: Task, config: DesignerConfig, generator: torch.Generator) -> TaxModelDesigner:
    """``none``: the task's fixed tax model (free market, US federal or Saez); ``fixed``: constant rates
    ``config.fixed_values`` (under the US-federal cap schedule when annealed)."""
    options = as_gtb_task(task).options
    capped = functools.partial(USFederalTax, anneal_cap=options.anneal_cap, initial_cap=options.initial_max_tax_rate,
                               anneal_episodes=options.n_episodes_reach_max_rate)
    model: TaxModel
    if config.algorithm == "fixed":
        model = capped(rates=config.fixed_values)
    elif options.tax_model == "free_market":
        model = FreeMarketTax()
    elif options.tax_model == "us_federal":
        model = capped()
    else:
        model = SaezTax(seed=int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    return TaxModelDesigner(task, config, model)
