"""Functional agent learners: REINFORCE, actor-critic and PPO, with SGD or Adam steps.

The designer differentiates through one learning step of the agents. :func:`inner_update` is the **only**
implementation of that step: the real update is the same call with detached incentives and no graph, so the
real and modelled updates cannot drift apart (the original code's Cleanup/GTB mismatches, method.md §7.1).

Parameters are plain ``dict[str, Tensor]`` evaluated with ``torch.func.functional_call``; the inner gradient
is ``torch.func.grad`` and the update is out-of-place, so the graph from the new parameters back to the
designer's parameters is kept (an in-place optimizer step would cut it and give a ``None`` meta-gradient).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad

from designer.batch import Batch, discounted_returns, gae
from designer.config import check_fraction, check_layer_sizes, check_positive
from designer.networks import AgentNet
from designer.validation import check_fields

__all__ = [
    "AgentLearner",
    "LearnerConfig",
    "OptState",
    "action_log_probs",
    "inner_update",
]

Params = dict[str, Tensor]
NetFactory = Callable[[int, int, tuple[int, ...], bool], nn.Module]
"""``(n_members, n_outputs, hidden, is_critic) -> module`` mapping obs ``[..., N, *obs]`` to ``[..., N, n_outputs]``."""


def _default_net_factory(config: LearnerConfig, obs_shape: tuple[int, ...]) -> NetFactory:
    """:class:`AgentNet` actors and critics (MLP for flat observations, conv trunk for images)."""

    def make(members: int, n_out: int, hidden: tuple[int, ...], is_critic: bool) -> nn.Module:
        linear = config.linear_init_std is not None and not is_critic
        return AgentNet(
            members, obs_shape, n_out, hidden, conv_channels=config.conv_channels, kernel=config.kernel,
            obs_scale=config.obs_scale, bias=not linear, init_std=config.linear_init_std if linear else None,
        )

    return make


@dataclass(frozen=True)
class LearnerConfig:
    """How the agents learn. Defaults are the paper's Escape Room REINFORCE agents (method.md §2.3, §5.1).

    Attributes:
        kind: ``"reinforce"`` (Monte-Carlo returns, no baseline), ``"actor_critic"`` (TD(0) advantage from a
            critic with a soft target network) or ``"ppo"`` (clipped surrogate on GAE advantages).
        optimizer: ``"sgd"`` or ``"adam"`` for the actor step; the designer differentiates through either
            (Adam through its first moment, with the second moment held constant as in the paper).
        lr: actor learning rate.
        gamma: discount.
        entropy_coef: entropy bonus weight.
        reduction: ``"sum"`` over steps (the paper's ER agents) or ``"mean"`` over agent-steps (Cleanup, GTB).
        epsilon_start, epsilon_end, epsilon_iters: epsilon-uniform mixing of the policy, annealed linearly over
            ``epsilon_iters`` updates; used for sampling and in the loss alike.
        shared: one parameter set for all agents (parameter sharing) instead of one per agent.
        hidden: actor MLP sizes; ``()`` with ``linear_init_std`` gives the paper's linear softmax.
        conv_channels, kernel: conv trunk for image observations (one per agent unless ``shared``).
        linear_init_std: when set, the output layer has no bias and N(0, std^2) weights.
        critic_lr, critic_hidden, target_tau: critic (actor-critic, PPO) trained with Adam on TD(0) targets
            from a soft-updated target network.
        gae_lambda, ppo_clip: PPO's advantage estimator and ratio clip.
        adam_betas, adam_eps: Adam constants for the actor when ``optimizer == "adam"``.
        obs_scale: multiplies raw observations (1/256 for uint8 images, as the paper).
    """

    kind: Literal["reinforce", "actor_critic", "ppo"] = "reinforce"
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = 9.56e-5
    gamma: float = 0.99
    entropy_coef: float = 0.0166
    reduction: Literal["sum", "mean"] = "sum"
    epsilon_start: float = 0.0
    epsilon_end: float = 0.0
    epsilon_iters: int = 1
    shared: bool = False
    hidden: tuple[int, ...] = (64, 32)
    conv_channels: tuple[int, ...] = ()
    kernel: int = 3
    linear_init_std: float | None = None
    critic_lr: float = 5.54e-4
    critic_hidden: tuple[int, ...] = (64, 64)
    target_tau: float = 7.93e-3
    gae_lambda: float = 0.98
    ppo_clip: float = 0.2
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    obs_scale: float = 1.0

    def __post_init__(self) -> None:
        check_fields(self)  # types, Literal choices and finiteness (designer.validation)
        for name in ("lr", "critic_lr", "adam_eps", "obs_scale"):
            check_positive(name, getattr(self, name))
        for name in ("gamma", "gae_lambda", "epsilon_start", "epsilon_end", "target_tau"):
            check_fraction(name, getattr(self, name))
        if not self.entropy_coef >= 0:
            raise ValueError(f"entropy_coef must be >= 0, got {self.entropy_coef!r}")
        if not 0 < self.ppo_clip < 1:
            raise ValueError(f"ppo_clip must be in (0, 1), got {self.ppo_clip!r}")
        if self.epsilon_iters < 1:
            raise ValueError(f"epsilon_iters must be >= 1, got {self.epsilon_iters}")
        if not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"adam_betas must be in [0, 1), got {self.adam_betas}")
        if self.linear_init_std is not None:
            check_positive("linear_init_std", self.linear_init_std)
        if self.kernel < 1:
            raise ValueError(f"kernel must be >= 1, got {self.kernel}")
        check_layer_sizes(self, "hidden", "conv_channels", "critic_hidden")

    def epsilon(self, iteration: int) -> float:
        """Exploration mixing weight after ``iteration`` updates (linear anneal)."""
        frac = min(1.0, iteration / self.epsilon_iters)
        return self.epsilon_start + frac * (self.epsilon_end - self.epsilon_start)


@dataclass
class OptState:
    """Actor optimizer state: Adam moments and step count (empty for SGD). Tensors are never part of a graph."""

    exp_avg: Params = field(default_factory=dict)
    exp_avg_sq: Params = field(default_factory=dict)
    step: int = 0


def mixed_probs(logits: Tensor, epsilon: float, action_mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The (masked) softmax mixed with ``epsilon`` of the uniform distribution over allowed actions.

    Returns the probabilities and the masked logits.
    """
    if action_mask is not None:
        logits = logits.masked_fill(action_mask <= 0, -1e9)
    probs = torch.softmax(logits, dim=-1)
    if epsilon > 0:
        if action_mask is None:
            uniform = torch.full_like(probs, 1.0 / probs.shape[-1])
        else:
            allowed = (action_mask > 0).to(probs.dtype)
            uniform = allowed / allowed.sum(-1, keepdim=True)
        probs = (1.0 - epsilon) * probs + epsilon * uniform
    return probs, logits


def action_log_probs(
    logits: Tensor, actions: Tensor, epsilon: float, action_mask: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Log-probabilities of ``actions`` and entropies under the epsilon-mixed (and masked) softmax policy."""
    probs, logits = mixed_probs(logits, epsilon, action_mask)
    logp_all = torch.log(probs.clamp_min(1e-12)) if epsilon > 0 else torch.log_softmax(logits, dim=-1)
    entropy = -(probs * logp_all).sum(-1)
    logp = logp_all.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    return logp, entropy


class AgentLearner:
    """The agents' networks, their functional loss and optimizer state.

    ``params`` (the actor) is a plain dict of leaf tensors updated out-of-place by :func:`inner_update`; the
    critic, when the learner has one, is an ordinary module trained with ``torch.optim.Adam`` on real data
    only (the designer does not differentiate through it, as in the paper).
    """

    def __init__(
        self,
        config: LearnerConfig,
        n_agents: int,
        obs_shape: tuple[int, ...],
        n_actions: int,
        generator: torch.Generator | None = None,
        make_net: NetFactory | None = None,
    ) -> None:
        self.config = config
        self.n_agents = n_agents
        members = 1 if config.shared else n_agents
        factory = make_net or _default_net_factory(config, obs_shape)
        with torch.random.fork_rng(devices=[]):
            if generator is not None:
                torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
            self.net = factory(members, n_actions, config.hidden, False)
            self.critic: nn.Module | None = None
            self.critic_target: nn.Module | None = None
            if config.kind != "reinforce":
                self.critic = factory(members, 1, config.critic_hidden, True)
                self.critic_target = factory(members, 1, config.critic_hidden, True)
                self.critic_target.load_state_dict(self.critic.state_dict())
                self.critic_target.requires_grad_(False)
        self.params: Params = {k: v.detach().clone().requires_grad_(True) for k, v in self.net.named_parameters()}
        self.opt_state = OptState()
        self.critic_opt = (
            torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr) if self.critic is not None else None
        )
        self.iteration = 0

    # ----------------------------------------------------------------- acting
    def logits(self, params: Mapping[str, Tensor], obs: Tensor) -> Tensor:
        """Actor logits ``[..., N, A]`` for observations ``[..., N, *obs_shape]``."""
        return functional_call(self.net, dict(params), (obs,))

    @property
    def epsilon(self) -> float:
        return self.config.epsilon(self.iteration)

    # ------------------------------------------------------------------ losses
    def critic_params(self) -> tuple[Params, Params]:
        """The critic's and its target's parameters (stacked runs: with a leading run axis)."""
        if self.critic is None or self.critic_target is None:
            raise RuntimeError("this learner has no critic")
        return dict(self.critic.named_parameters()), dict(self.critic_target.named_parameters())

    def critic_values(self, params: Params, target: Params, batch: Batch) -> tuple[Tensor, Tensor]:
        """``V(o)`` under ``params`` and ``V(o')`` under ``target`` as constants ``[B, T, N]`` (one run)."""
        if self.critic is None or self.critic_target is None:
            raise RuntimeError("this learner has no critic")
        with torch.no_grad():
            v = functional_call(self.critic, params, (batch.obs,)).squeeze(-1)
            v_next = functional_call(self.critic_target, target, (batch.next_obs,)).squeeze(-1)
        return v, v_next

    def critic_loss(self, params: Params, target: Params, batch: Batch, rewards: Tensor) -> Tensor:
        """The critic's TD(0) loss on ``rewards`` (detached) under ``params``, bootstrapping from ``target``."""
        if self.critic is None or self.critic_target is None:
            raise RuntimeError("this learner has no critic")
        with torch.no_grad():
            v_next = functional_call(self.critic_target, target, (batch.next_obs,)).squeeze(-1)
            not_term = 1.0 - batch.terminated.to(v_next.dtype).unsqueeze(-1)
            td_target = rewards.detach() + self.config.gamma * not_term * v_next
        v = functional_call(self.critic, params, (batch.obs,)).squeeze(-1)
        return ((td_target - v) ** 2 * batch.mask).sum() / batch.mask.sum().clamp_min(1.0)

    def values(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Critic values ``V(o)`` (main network) and ``V(o')`` (target network) as constants ``[B, T, N]``."""
        return self.critic_values(*self.critic_params(), batch)

    def update_critic(self, batch: Batch, rewards: Tensor) -> float | Tensor:
        """One Adam TD(0) step of the critic on ``rewards`` (detached), then a soft target update; returns the
        loss (per run for stacked runs)."""
        if self.critic is None or self.critic_opt is None:
            return 0.0
        params, target = self.critic_params()
        loss = self._critic_losses(params, target, batch, rewards)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.critic_opt.step()
        with torch.no_grad():
            for k, p_t in target.items():
                p_t.lerp_(params[k], self.config.target_tau)
        return float(loss.detach()) if loss.dim() == 0 else loss.detach()

    def _critic_losses(self, params: Params, target: Params, batch: Batch, rewards: Tensor) -> Tensor:
        """The critic loss of this run (stacked learners: one per run)."""
        return self.critic_loss(params, target, batch, rewards)

    def loss(self, params: Params, batch: Batch, rewards: Tensor, values: tuple[Tensor, Tensor] | None) -> Tensor:
        """The agents' surrogate loss on ``batch`` with per-step total rewards ``rewards`` ``[B, T, N]``.

        Summed over agents (independent agents: each agent's gradient is its own loss's gradient) and averaged
        over episodes; ``reduction`` decides sum vs mean over steps. Differentiable in ``params`` and ``rewards``.
        """
        return self.loss_from_logits(self.logits(params, batch.obs), batch, rewards, values)

    def loss_from_logits(self, logits: Tensor, batch: Batch, rewards: Tensor,
                         values: tuple[Tensor, Tensor] | None) -> Tensor:
        """:meth:`loss` given the actor's logits on ``batch.obs`` (stacked runs compute those for all runs at once)."""
        cfg = self.config
        logp, entropy = action_log_probs(logits, batch.actions, self.epsilon, batch.action_mask)
        mask = batch.mask
        if cfg.kind == "reinforce":
            weight = discounted_returns(rewards, batch.step_mask, cfg.gamma)
            pg = -(logp * weight * mask)
        elif cfg.kind == "actor_critic":
            if values is None:
                raise ValueError("actor_critic needs critic values")
            v, v_next = values
            not_term = 1.0 - batch.terminated.to(v.dtype).unsqueeze(-1)
            delta = rewards + cfg.gamma * not_term * v_next - v
            pg = -(logp * delta * mask)
        else:
            if values is None:
                raise ValueError("ppo needs critic values")
            v, v_next = values
            adv = gae(rewards, v, v_next, batch.step_mask, cfg.gamma, cfg.gae_lambda, batch.terminated)
            ratio = torch.exp(logp - batch.logp)
            clipped = ratio.clamp(1.0 - cfg.ppo_clip, 1.0 + cfg.ppo_clip)
            pg = -torch.minimum(ratio * adv, clipped * adv) * mask
        ent = entropy * mask
        if cfg.reduction == "sum":
            total = (pg.sum() - cfg.entropy_coef * ent.sum()) / batch.n_episodes
        else:
            per_member = mask.sum() / (1 if cfg.shared else self.n_agents)
            total = (pg.sum() - cfg.entropy_coef * ent.sum()) / per_member.clamp_min(1.0)
        return total


def inner_update(
    learner: AgentLearner,
    params: Params,
    opt_state: OptState,
    batch: Batch,
    rewards: Tensor,
    values: tuple[Tensor, Tensor] | None = None,
) -> tuple[Params, OptState]:
    """One actor step ``theta -> theta'`` on ``batch`` with total rewards ``rewards``.

    Out-of-place: the result stays differentiable with respect to ``rewards`` (and so to the designer's
    parameters that produced them). For the real update pass detached rewards and detach the result.
    SGD: ``theta - lr * g``. Adam: the paper's replica ``theta - lr * sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps)``
    with ``m = b1 m + (1-b1) g`` and ``v = b2 v + (1-b2) stopgrad(g)^2``; the returned state holds detached
    moments.
    """
    cfg = learner.config

    def loss_fn(p: Params) -> Tensor:
        return learner.loss(p, batch, rewards, values)

    grads = grad(loss_fn)(params)
    if cfg.optimizer == "sgd":
        return {k: p - cfg.lr * grads[k] for k, p in params.items()}, opt_state
    b1, b2 = cfg.adam_betas
    t = opt_state.step + 1
    scale = cfg.lr * math.sqrt(1.0 - b2**t) / (1.0 - b1**t)
    new_params: Params = {}
    exp_avg: Params = {}
    exp_avg_sq: Params = {}
    for k, p in params.items():
        g = grads[k]
        m_prev = opt_state.exp_avg.get(k, torch.zeros_like(p))
        v_prev = opt_state.exp_avg_sq.get(k, torch.zeros_like(p))
        m = b1 * m_prev + (1.0 - b1) * g
        v = b2 * v_prev + (1.0 - b2) * g.detach() ** 2
        new_params[k] = p - scale * m / (v.sqrt() + cfg.adam_eps)
        exp_avg[k], exp_avg_sq[k] = m.detach(), v.detach()
    return new_params, OptState(exp_avg, exp_avg_sq, t)


def detach_params(params: Mapping[str, Tensor]) -> Params:
    """Fresh leaf copies (requiring grad) of ``params``: the committed real update."""
    return {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
