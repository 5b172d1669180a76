"""Designers: MetaGrad (m1, m2) and the paper's baselines (dual-RL, AMD, fixed, none) behind one interface.

Every designer exposes the incentive function the wrapper calls during rollouts (``incentive``), what the
rollout must log to recompute its payments (``features_of``), and one update per training iteration. The
learning agents are driven by the trainer through :func:`designer.learners.inner_update`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from designer.batch import Batch, discounted_returns, gae
from designer.config import DesignerConfig
from designer.learners import AgentLearner, Params, action_log_probs, detach_params, inner_update
from designer.networks import IncentiveMLP, ValueMLP
from designer.rollout import EpisodeStats
from designer.tasks import Task
from wrappers import ModuleIncentive, StepContext

__all__ = [
    "AMDDesigner",
    "Designer",
    "DualRLDesigner",
    "FixedDesigner",
    "MetaGradDesigner",
    "NoDesigner",
    "make_designer",
]

Collect = Callable[[Params], tuple[Batch, list[EpisodeStats]]]
Metrics = dict[str, float]


def require_finite(name: str, tensors: dict[str, Tensor] | list[Tensor], iteration: int) -> None:
    """Raise ``FloatingPointError`` naming the first non-finite tensor."""
    items = tensors.items() if isinstance(tensors, dict) else enumerate(tensors)
    for key, t in items:
        if t is not None and not torch.isfinite(t).all():
            raise FloatingPointError(f"{name}[{key}] is not finite at iteration {iteration}")


class Designer:
    """Base class: no incentive, no update. Subclasses override what they need."""

    metric_names: tuple[str, ...] = ()
    """Training metrics this designer reports each iteration (fixed, so logs have fixed columns)."""

    def __init__(self, task: Task, config: DesignerConfig) -> None:
        self.task = task
        self.config = config
        self.slot_rule = task.slot_rules.get(config.output) if config.output in task.slot_rules else None
        self.iteration = 0

    @property
    def incentive(self) -> Callable[[StepContext], dict[str, float]] | None:
        """The function the incentive wrapper calls each step (None: pay nothing)."""
        return None

    @property
    def features_of(self) -> Callable[[StepContext], tuple[np.ndarray, dict[str, int]]] | None:
        """How the rollout logs the designer's inputs for a step (None: nothing to log)."""
        return None

    def wrap_env(self, env: Any, eval_generator: torch.Generator | None = None) -> Any:
        """Wrap the task's env before the incentive wrapper goes on (designers acting through another control
        point, such as a tax-rate interface, add their wrapper here). Default: unchanged.

        ``eval_generator`` is None for training envs; for evaluation envs it is the generator a stochastic
        designer samples from there (so that evaluation leaves the training RNGs untouched)."""
        return env

    def eval_incentive(self, generator: torch.Generator) -> Callable[[StepContext], dict[str, float]] | None:
        """The incentive function for evaluation rollouts (stochastic designers sample from ``generator``)."""
        return self.incentive

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        """One training iteration starting from training batch ``batch``; returns the next training batch.

        The default is the learning-oblivious loop: agents update on the incentives paid during ``batch``, the
        designer updates on ``batch`` (:meth:`update`), then a fresh batch is collected.
        """
        rewards = batch.env_rewards + batch.paid
        values = _critic_step(learner, batch, rewards)
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

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration = int(state["iteration"])


def _critic_step(learner: AgentLearner, batch: Batch, rewards: Tensor) -> tuple[Tensor, Tensor] | None:
    """Critic first (TD(0) on the real rewards), then its values as constants for the actor step."""
    if learner.critic is None:
        return None
    learner.update_critic(batch, rewards)
    return learner.values(batch)


class NoDesigner(Designer):
    """Agents learn on env rewards alone."""


class _SlotTable:
    """Pays ``values[slot(agent)]`` under the task's slot rule (picklable, unlike a lambda)."""

    def __init__(self, values: tuple[float, ...], slot_rule: Callable[[StepContext], dict[str, int]]) -> None:
        self.values = values
        self.slot_rule = slot_rule

    def __call__(self, ctx: StepContext) -> dict[str, float]:
        return {a: float(self.values[s]) for a, s in self.slot_rule(ctx).items()}


class FixedDesigner(Designer):
    """A constant incentive table, one (already scaled) value per slot."""

    def __init__(self, task: Task, config: DesignerConfig) -> None:
        super().__init__(task, config)
        n = task.n_slots[config.output]
        if len(config.fixed_values) != n:
            raise ValueError(f"fixed_values needs {n} values for output {config.output!r}, got {config.fixed_values}")
        if self.slot_rule is None:
            raise ValueError(f"task {task.name!r} has no slot rule for output {config.output!r}")
        self._fn = _SlotTable(tuple(config.fixed_values), self.slot_rule)

    @property
    def incentive(self) -> Callable[[StepContext], dict[str, float]]:
        return self._fn


class _Optimizers:
    """Adam over the incentive network, plus the separate cost optimizer the paper uses (method.md §2.1)."""

    def __init__(self, net: nn.Module, config: DesignerConfig) -> None:
        self.main = torch.optim.Adam(net.parameters(), lr=config.lr)
        self.cost = (
            torch.optim.Adam(net.parameters(), lr=config.cost_lr)
            if config.cost != "none" and config.cost_weight is None
            else None
        )

    def state_dict(self) -> dict[str, Any]:
        return {"main": self.main.state_dict(), "cost": self.cost.state_dict() if self.cost else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.main.load_state_dict(state["main"])
        if self.cost is not None:
            self.cost.load_state_dict(state["cost"])


def apply_grads(
    optimizer: torch.optim.Optimizer, params: list[nn.Parameter], grads: tuple[Tensor, ...], max_norm: float | None,
    iteration: int,
) -> float:
    """Clip ``grads`` by global norm (when ``max_norm``), check them, and take one optimizer step.

    Returns the pre-clip global norm. Raises ``FloatingPointError`` on a non-finite gradient, before any
    parameter changes.
    """
    require_finite("meta-gradient", list(grads), iteration)
    norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
    scale = 1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-12))
    for p, g in zip(params, grads):
        p.grad = g.detach() * scale
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


class _LoggedIncentiveDesigner(Designer):
    """A designer whose incentive function records the exact inputs it paid from (``last_inputs``), which the
    rollout logs so that the payments can be recomputed from the batch."""

    _incentive: Any

    @property
    def incentive(self) -> Any:
        return self._incentive

    @property
    def features_of(self) -> Callable[[StepContext], tuple[np.ndarray, dict[str, int]]]:
        return self._last_inputs

    def _last_inputs(self, ctx: StepContext) -> tuple[np.ndarray, dict[str, int]]:
        inputs = self._incentive.last_inputs
        if inputs is None:
            raise RuntimeError("the incentive function has not been called for this step")
        return inputs


class MetaGradDesigner(_LoggedIncentiveDesigner):
    """MetaGrad with online cross-validation (Yang et al. 2022; method.md §1.1, §2.2).

    Each iteration: the agents' update ``theta_hat(eta)`` on the training batch with incentives recomputed by
    the incentive network; the real update is ``detach(theta_hat(eta))`` (or, with ``stale_incentives``, the
    update on the incentives paid at rollout time); a validation batch with the updated agents (m1) or the
    current agents (m2); then ``eta`` ascends ``sum_t W_t sum_i log pi_theta_hat(a'|o')`` on the validation
    batch, where ``W`` is the designer's return (or GAE from its critic). With ``pipeline`` the validation
    batch is the next training batch.
    """

    metric_names = ("outer_loss", "cost", "meta_grad_norm", "cost_grad_norm", "designer_critic_loss")

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator | None = None) -> None:
        super().__init__(task, config)
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            self.net = self._make_net()
            self.critic: nn.Module | None = None
            self.critic_target: nn.Module | None = None
            if config.use_critic:
                self.critic = _state_critic(task, config)
                self.critic_target = _state_critic(task, config)
                self.critic_target.load_state_dict(self.critic.state_dict())
                self.critic_target.requires_grad_(False)
        self.optim = _Optimizers(self.net, config)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr) if self.critic else None
        self._incentive = self._make_incentive()
        self._params = list(self.net.parameters())

    def _make_net(self) -> nn.Module:
        """The designer's network (a subclass with another kind of output, such as tax rates, overrides it)."""
        if self.slot_rule is None:
            raise ValueError(f"task {self.task.name!r} has no slot rule for output {self.config.output!r}")
        return self.task.incentive_net(self.config.output, self.config.hidden)

    def _make_incentive(self) -> Any:
        """The incentive function paid through the wrapper (None for designers acting through ``wrap_env``)."""
        return ModuleIncentive(self.net, features=self.task.features, slots=self.slot_rule, scale=self.config.scale)

    def payments(self, batch: Batch) -> Tensor:
        """Incentives on ``batch`` recomputed from the logged inputs, differentiable in the network ``[B, T, N]``."""
        out = self.net(batch.features)
        return self.config.scale * out.gather(-1, batch.slots) * batch.mask

    def cost(self, batch: Batch, payments: Tensor) -> Tensor:
        """The incentive cost on the training batch (``paid`` or the paper's ``proxy``), discounted over time."""
        if self.config.cost == "none":
            return torch.zeros(())
        if self.config.cost == "paid":
            per_step = payments.sum(-1)
        else:
            per_step = self.net(batch.features).abs().sum(-1) * batch.step_mask
        return discounted_returns(per_step.unsqueeze(-1), batch.step_mask, self.config.gamma)[:, 0, 0].mean()

    def outer_weights(self, batch: Batch) -> Tensor:
        """``W_t`` on the validation batch: discounted designer returns, or GAE from the designer critic."""
        cfg = self.config
        if self.critic is None or self.critic_target is None:
            w = discounted_returns(batch.designer_reward, batch.step_mask, cfg.gamma)
        else:
            with torch.no_grad():
                v = self.critic(batch.state)
                v_next = self.critic_target(batch.next_state)
            w = gae(batch.designer_reward, v, v_next, batch.step_mask, cfg.gamma, cfg.gae_lambda, batch.terminated)
        if cfg.normalize_weights:
            valid = batch.step_mask > 0
            mean = w[valid].mean()
            std = w[valid].std().clamp_min(1e-8) if int(valid.sum()) > 1 else torch.ones(())
            w = (w - mean) / std * batch.step_mask
        return w.detach()

    def _update_critic(self, batch: Batch) -> float:
        if self.critic is None or self.critic_target is None or self.critic_opt is None:
            return 0.0
        with torch.no_grad():
            not_term = 1.0 - batch.terminated
            target = batch.designer_reward + self.config.gamma * not_term * self.critic_target(batch.next_state)
        v = self.critic(batch.state)
        loss = (((target - v) ** 2) * batch.step_mask).sum() / batch.step_mask.sum().clamp_min(1.0)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            for p_t, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                p_t.lerp_(p, self.config.critic_tau)
        return float(loss.detach())

    def outer_loss(self, learner: AgentLearner, theta_hat: Params, validation: Batch) -> Tensor:
        """``-agg_t W_t sum_i log pi_theta_hat(a'_i | o'_i)`` on the validation batch."""
        logits = learner.logits(theta_hat, validation.obs)
        logp, _ = action_log_probs(logits, validation.actions, learner.epsilon, validation.action_mask)
        score = (logp * validation.mask).sum(-1)
        w = self.outer_weights(validation)
        total = -(w * score * validation.step_mask).sum()
        if self.config.outer_reduction == "sum":
            return total / validation.n_episodes
        return total / validation.step_mask.sum().clamp_min(1.0)

    def agent_rewards(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The agents' total rewards on ``batch`` as functions of the designer's parameters, and the designer's
        payments ``[B, T, N]`` (for the cost). Incentives: env reward + recomputed payment. Designers that act
        otherwise (taxes) override this."""
        payments = self.payments(batch)
        return batch.env_rewards + payments, payments

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        cfg = self.config
        rewards, payments = self.agent_rewards(batch)
        require_finite("recomputed rewards", {"rewards": rewards}, self.iteration)
        values = _critic_step(learner, batch, rewards.detach())
        theta, opt = learner.params, learner.opt_state
        theta_hat, opt_hat = inner_update(learner, theta, opt, batch, rewards, values)
        if cfg.stale_incentives:
            real, real_opt = inner_update(learner, theta, opt, batch, batch.env_rewards + batch.paid, values)
        else:
            real, real_opt = theta_hat, opt_hat
        committed = detach_params(real)
        require_finite("agent update", committed, self.iteration)
        m1 = cfg.algorithm == "metagrad"
        validation, _ = collect(committed if m1 else theta)
        critic_loss = self._update_critic(batch)
        outer = self.outer_loss(learner, theta_hat, validation)
        cost = self.cost(batch, payments)
        # both gradients at the same eta (the paper evaluates them in one session run), then both steps
        grads = _grads(outer, self._params, retain_graph=cfg.cost != "none")
        if all(g is None for g in grads):
            raise RuntimeError(
                "meta-gradient is None: the inner update must be out-of-place and keep the graph to the incentives"
            )
        outer_grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads))
        cost_grads = None
        if cfg.cost != "none":
            cost_grads = tuple(torch.zeros_like(p) if g is None else g
                               for p, g in zip(self._params, _grads(cost, self._params)))
        metrics: Metrics = {"outer_loss": float(outer.detach()), "cost": float(cost.detach())}
        if cost_grads is not None and cfg.cost_weight is not None:
            outer_grads = tuple(g + cfg.cost_weight * c for g, c in zip(outer_grads, cost_grads))
        metrics["meta_grad_norm"] = apply_grads(self.optim.main, self._params, outer_grads, cfg.max_grad_norm,
                                                self.iteration)
        if self.optim.cost is not None and cost_grads is not None:
            metrics["cost_grad_norm"] = apply_grads(self.optim.cost, self._params, cost_grads, cfg.max_grad_norm,
                                                    self.iteration)
        metrics["designer_critic_loss"] = critic_loss
        learner.params, learner.opt_state = committed, real_opt
        learner.iteration += 1
        self.iteration += 1
        if cfg.pipeline:
            return validation, metrics
        next_batch, _ = collect(learner.params)
        return next_batch, metrics

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "iteration": self.iteration,
            "net": self.net.state_dict(),
            "optim": self.optim.state_dict(),
        }
        if self.critic is not None and self.critic_target is not None and self.critic_opt is not None:
            state["critic"] = self.critic.state_dict()
            state["critic_target"] = self.critic_target.state_dict()
            state["critic_opt"] = self.critic_opt.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.net.load_state_dict(state["net"])
        self.optim.load_state_dict(state["optim"])
        if self.critic is not None and self.critic_target is not None and self.critic_opt is not None:
            self.critic.load_state_dict(state["critic"])
            self.critic_target.load_state_dict(state["critic_target"])
            self.critic_opt.load_state_dict(state["critic_opt"])


def _grads(loss: Tensor, params: list[nn.Parameter], retain_graph: bool = False) -> tuple[Tensor | None, ...]:
    """``d loss / d params`` (None for parameters the loss does not reach)."""
    if not loss.requires_grad:
        return tuple(None for _ in params)
    return torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)


def _state_critic(task: Task, config: DesignerConfig) -> nn.Module:
    """Designer critic over its (flattened) observation: the task's own if it has one; images get the paper's
    conv trunk."""
    if task.make_state_critic is not None:
        return task.make_state_critic(task, config)
    shape = task.state_shape
    if len(shape) == 3:
        return _FlatImageCritic(shape, config.critic_hidden)
    return ValueMLP((int(np.prod(shape)) if shape else 1,), config.critic_hidden)


class _FlatImageCritic(ValueMLP):
    """A conv critic that takes the flattened image the rollout logs."""

    def __init__(self, shape: tuple[int, ...], hidden: tuple[int, ...]) -> None:
        super().__init__(shape, hidden, conv_channels=(6,), obs_scale=1.0 / 256.0)

    def forward(self, obs: Tensor) -> Tensor:
        return super().forward(obs.reshape(*obs.shape[:-1], *self.obs_shape))


class _DualRLIncentive:
    """Samples the dual-RL designer's action per step and pays by slot.

    ``last_inputs`` appends the sampled action (the combination index, or the pre-sigmoid Gaussian sample per
    slot) to the feature vector so that the REINFORCE update can recover it from the logged batch.
    """

    def __init__(self, designer: DualRLDesigner, generator: torch.Generator) -> None:
        self.designer = designer
        self.generator = generator
        self.last_inputs: tuple[np.ndarray, dict[str, int]] = (np.zeros(0, dtype=np.float32), {})

    def __call__(self, ctx: StepContext) -> dict[str, float]:
        d = self.designer
        x = np.asarray(d.task.features(ctx), dtype=np.float32)
        slots = d.slot_rule(ctx) if d.slot_rule is not None else {}
        with torch.no_grad():
            action = d.sample(torch.as_tensor(x), self.generator)
        values = d.payments_of(action)
        self.last_inputs = (np.concatenate([x, action.numpy().astype(np.float32).reshape(-1)]), dict(slots))
        return {a: float(values[s]) for a, s in slots.items()}


class DualRLDesigner(_LoggedIncentiveDesigner):
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
        if self.slot_rule is None:
            raise ValueError(f"task {task.name!r} has no slot rule for output {config.output!r}")
        self.n_slots = task.n_slots[config.output]
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
        out = self.policy(x)
        if self.continuous:
            return out + torch.randn(out.shape, generator=generator, dtype=out.dtype)
        return torch.multinomial(torch.softmax(out, -1), 1, generator=generator)

    def payments_of(self, action: Tensor) -> list[float]:
        """Per-slot payments of a sampled action."""
        if self.continuous:
            return (self.config.scale * torch.sigmoid(action)).tolist()
        return [float(self.levels[d]) for d in self._digits[int(action)]]

    def eval_incentive(self, generator: torch.Generator) -> _DualRLIncentive:
        return _DualRLIncentive(self, generator)

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


class AMDDesigner(_LoggedIncentiveDesigner):
    """Adaptive Mechanism Design (Baumann, Graepel & Shawe-Taylor 2018; method.md §4.2), with its bugs fixed.

    The planner pays ``v_i = scale * sigmoid(f(s, a))_i`` per agent and, for each step of the logged episode in
    order, descends ``-sum_i lr_agent * r_ID * ||g_i||^2 * v_i + c * ||v||_2`` where ``g_i`` is the gradient of
    agent i's log-probability at **its own observation** (the original used the global state) and the joint
    action enters one-hot (the original fed integers). Per-tensor gradient clip ``amd_clip``, Adam ``amd_lr``.
    Updates run after each episode, one per step (the original ran them online inside the episode).
    """

    metric_names = ("designer_loss",)

    def __init__(self, task: Task, config: DesignerConfig, generator: torch.Generator) -> None:
        if config.output != "agent":
            raise ValueError("AMD pays per agent: use output='agent'")
        super().__init__(task, config)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            self.net = IncentiveMLP(task.feature_dim, task.n_slots["agent"], config.hidden)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.amd_lr)
        if self.slot_rule is None:
            raise ValueError("AMD needs the task's per-agent slot rule")
        self._incentive = ModuleIncentive(self.net, features=task.features, slots=self.slot_rule,
                                          scale=config.scale)
        self.learner: AgentLearner | None = None

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        self.learner = learner
        return super().iterate(learner, collect, batch)

    def _score_norms(self, batch: Batch) -> Tensor:
        """``||grad_theta_i log pi_i(a_i | o_i)||^2`` per step and agent ``[B, T, N]``, at each agent's own obs.

        Per-sample gradients with ``torch.func.vmap`` over steps and agents (one call per batch).
        """
        learner = self.learner
        if learner is None:
            raise RuntimeError("AMD update called before the first iteration")
        params = {k: v.detach() for k, v in learner.params.items()}
        b, t, n = batch.actions.shape
        eye = torch.eye(n, dtype=batch.env_rewards.dtype)
        eps = learner.epsilon

        def logp_of(p: Params, obs: Tensor, actions: Tensor, pick: Tensor) -> Tensor:
            logp, _ = action_log_probs(learner.logits(p, obs), actions, eps)
            return (logp * pick).sum()

        per_agent = vmap(grad(logp_of), in_dims=(None, None, None, 0))
        per_step = vmap(per_agent, in_dims=(None, 0, 0, None))
        obs = batch.obs.flatten(0, 1)
        grads = per_step(params, obs, batch.actions.flatten(0, 1), eye)
        norms = sum(g.pow(2).flatten(2).sum(-1) for g in grads.values())
        return norms.reshape(b, t, n) * batch.mask

    def update(self, batch: Batch) -> Metrics:
        cfg = self.config
        lr_agent = self.learner.config.lr if self.learner is not None else 1.0
        norms = self._score_norms(batch)
        total = 0.0
        for bi in range(batch.n_episodes):
            for ti in range(int(batch.step_mask[bi].sum())):
                v = cfg.scale * self.net(batch.features[bi, ti])
                r_id = batch.designer_reward[bi, ti]
                loss = -(lr_agent * r_id * norms[bi, ti] * v * batch.mask[bi, ti]).sum()
                loss = loss + cfg.amd_cost * torch.linalg.vector_norm(v)
                self.opt.zero_grad(set_to_none=True)
                loss.backward()
                for p in self.net.parameters():
                    if p.grad is not None:
                        require_finite("AMD gradient", [p.grad], self.iteration)
                        torch.nn.utils.clip_grad_norm_([p], cfg.amd_clip)
                self.opt.step()
                total += float(loss.detach())
        return {"designer_loss": total}

    def state_dict(self) -> dict[str, Any]:
        return {"iteration": self.iteration, "net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])


def make_designer(task: Task, config: DesignerConfig, generator: torch.Generator) -> Designer:
    """Build the task's own designer for ``config`` when it has one, else the designer named by ``config.algorithm``."""
    if task.make_designer is not None:
        own = task.make_designer(task, config, generator)
        if own is not None:
            return own
    algo = config.algorithm
    if algo in ("metagrad", "metagrad_m2"):
        return MetaGradDesigner(task, config, generator)
    if algo == "dual_rl":
        return DualRLDesigner(task, config, generator)
    if algo == "amd":
        return AMDDesigner(task, config, generator)
    if algo == "fixed":
        return FixedDesigner(task, config)
    if algo == "none":
        return NoDesigner(task, config)
    raise ValueError(f"unknown algorithm {algo!r}")  # pragma: no cover - DesignerConfig validates

