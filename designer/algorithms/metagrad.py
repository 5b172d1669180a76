"""MetaGrad: the designer learns by differentiating through the agents' own learning step (Yang et al. 2022).

With online cross-validation (method.md §1.1, §2.2): the incentive network's parameters move along the gradient
of the designer's objective on a validation batch collected by the agents *after* their update, through that
update (:func:`designer.learners.inner_update`). ``metagrad`` is m1 (validation with the updated agents),
``metagrad_m2`` collects it with the un-updated agents.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from designer.algorithms.base import Collect, Designer, Metrics, apply_grads, critic_step, require_finite
from designer.batch import Batch, discounted_returns, gae
from designer.batched_rollout import BatchedIncentivePolicy
from designer.config import DesignerConfig
from designer.learners import AgentLearner, Params, action_log_probs, detach_params, inner_update
from designer.registry import register_algorithm
from designer.stacked import (
    CannotStack,
    RunAxis,
    StackedModule,
    stack_optimizer_states,
    stack_tensors,
    unstack_optimizer_state,
)
from designer.task import Task
from wrappers import ModuleIncentive

__all__ = ["MetaGradDesigner"]


class _Optimizers:
    """Adam over the incentive network, plus the separate cost optimizer the paper uses (method.md §2.1)."""

    def __init__(self, params: list[Tensor], config: DesignerConfig, foreach: bool | None = None) -> None:
        self.main = torch.optim.Adam(params, lr=config.lr, foreach=foreach)
        self.cost = (
            torch.optim.Adam(params, lr=config.cost_lr, foreach=foreach)
            if config.cost != "none" and config.cost_weight is None
            else None
        )

    def state_dict(self) -> dict[str, Any]:
        return {"main": self.main.state_dict(), "cost": self.cost.state_dict() if self.cost else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.main.load_state_dict(state["main"])
        if self.cost is not None:
            self.cost.load_state_dict(state["cost"])


@register_algorithm("metagrad", "metagrad_m2",
                    summary="MetaGrad (m1 / m2): meta-gradient through the agents' learning step (the paper's method)")
class MetaGradDesigner(Designer):
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
                self.critic = task.state_critic(config)
                self.critic_target = task.state_critic(config)
                self.critic_target.load_state_dict(self.critic.state_dict())
                self.critic_target.requires_grad_(False)
        self._params: list[Tensor] = list(self.net.parameters())
        self.optim = _Optimizers(self._params, config)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=config.critic_lr) if self.critic else None
        self._incentive = self._make_incentive()
        self.runs = RunAxis()
        self._stacked: Params = {}  # the stacked runs' parameters (stack_runs), keyed as the network's
        self._stacked_critic: tuple[Params, Params] = ({}, {})  # and their critic's and its target's

    # ------------------------------------------------------------ stacked runs
    @classmethod
    def stack_runs(cls, designers: Sequence[Designer]) -> MetaGradDesigner:
        """One designer training S runs' incentive networks as one program (:mod:`designer.stacked`): their
        parameters, critic and every optimizer's moments stacked on a leading run axis.

        Raises:
            CannotStack: the designers are not all plain MetaGrad designers of one configuration and iteration.
        """
        runs: list[MetaGradDesigner] = []
        for s, d in enumerate(designers):
            if type(d) is not MetaGradDesigner or not isinstance(d, MetaGradDesigner):
                raise CannotStack(f"run {s}'s designer is a {type(d).__name__}: only MetaGradDesigner stacks")
            if d.config != designers[0].config or d.iteration != designers[0].iteration:
                raise CannotStack(f"run {s}'s designer differs from run 0's (configuration or iteration)")
            runs.append(d)
        first = runs[0]
        out = cls.__new__(cls)
        Designer.__init__(out, first.task, first.config)
        out.iteration = first.iteration
        n = len(runs)
        stacked = {k: v.requires_grad_(True)
                   for k, v in stack_tensors([dict(d.net.named_parameters()) for d in runs]).items()}
        out.runs = RunAxis(n)
        out.net = StackedModule(first.net, lambda: stacked, n)
        out._stacked = stacked
        out.critic = out.critic_target = None
        out.critic_opt = None
        out._stacked_critic = ({}, {})
        if first.critic is not None and first.critic_target is not None:
            pairs = [d._critic_params() for d in runs]
            critic = {k: v.requires_grad_(True) for k, v in stack_tensors([c for c, _ in pairs]).items()}
            target = stack_tensors([t for _, t in pairs])
            out._stacked_critic = (critic, target)
            out.critic = StackedModule(first.critic, lambda: critic, n)
            out.critic_target = StackedModule(first.critic_target, lambda: target, n)
            out.critic_opt = torch.optim.Adam(list(critic.values()), lr=first.config.critic_lr)
            out.critic_opt.load_state_dict(stack_optimizer_states(
                [d.critic_opt.state_dict() for d in runs if d.critic_opt is not None]))
        out._params = list(stacked.values())
        out.optim = _Optimizers(out._params, first.config, foreach=True)  # one fused step for all runs
        out.optim.main.load_state_dict(stack_optimizer_states([d.optim.main.state_dict() for d in runs]))
        if out.optim.cost is not None:
            out.optim.cost.load_state_dict(stack_optimizer_states([d.optim.cost.state_dict() for d in runs
                                                                   if d.optim.cost is not None]))
        out._incentive = None
        return out

    def unstack_into(self, designers: Sequence[Designer]) -> None:
        """Write each run's slice (network, optimizer moments, iteration) back into its own designer."""
        main = self.optim.main.state_dict()
        cost = self.optim.cost.state_dict() if self.optim.cost is not None else None
        for s, d in enumerate(designers):
            if not isinstance(d, MetaGradDesigner):
                raise TypeError(f"run {s}'s designer is a {type(d).__name__}, not a MetaGradDesigner")
            with torch.no_grad():
                for k, p in d.net.named_parameters():
                    p.copy_(self._stacked[k][s])
            d.optim.main.load_state_dict(unstack_optimizer_state(main, s))
            if d.critic is not None and d.critic_target is not None and d.critic_opt is not None:
                with torch.no_grad():
                    for module, values in zip((d.critic, d.critic_target), self._stacked_critic):
                        for k, p in module.named_parameters():
                            p.copy_(values[k][s])
                if self.critic_opt is not None:
                    d.critic_opt.load_state_dict(unstack_optimizer_state(self.critic_opt.state_dict(), s))
            if d.optim.cost is not None and cost is not None:
                d.optim.cost.load_state_dict(unstack_optimizer_state(cost, s))
            d.iteration = self.iteration

    def _per_run(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` on one run, or vmapped over the stacked runs with each run's network parameters bound."""
        if not self.runs.stacked:
            return fn
        modules = [m for m in (self.net, self.critic, self.critic_target) if m is not None]
        if not all(isinstance(m, StackedModule) for m in modules):  # pragma: no cover - stack_runs installs them
            raise TypeError("a stacked MetaGrad designer evaluates StackedModules")
        params = (self._stacked, *self._stacked_critic)[: len(modules)]

        def bind(values: tuple[Params, ...] | None) -> None:
            for i, m in enumerate(modules):
                m.bind(None if values is None else values[i])  # type: ignore[operator]

        return self.runs.map(fn, bind=bind, params=params)

    def _make_net(self) -> nn.Module:
        """The designer's network (a subclass with another kind of output, such as tax rates, overrides it)."""
        self.require_slot_rule()
        return self.task.incentive_net(self.config.output, self.config.hidden)

    def _make_incentive(self) -> Any:
        """The payment rule applied through the wrapper (designers acting through ``wrap_env`` log instead)."""
        return ModuleIncentive(self.net, features=self.task.features, slots=self.require_slot_rule(),
                               scale=self.config.scale)

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedIncentivePolicy | None:
        """The incentive network on the batched rollout's ``[B, F]`` inputs (not for subclasses that pay
        another way: they stay on the sequential rollout)."""
        if not self._batches_own_rule(MetaGradDesigner, "_make_incentive"):
            return super().batched_incentive(generator)
        return self.batched_module_incentive(self.net, self.config.output)

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
        if cfg.normalize_weights:  # masked mean and unbiased std over the real steps (1 with a single step)
            n = batch.step_mask.sum()
            mean = (w * batch.step_mask).sum() / n.clamp_min(1.0)
            var = (((w - mean) ** 2) * batch.step_mask).sum() / (n - 1).clamp_min(1.0)
            std = torch.where(n > 1, var.sqrt().clamp_min(1e-8), torch.ones(()))
            w = (w - mean) / std * batch.step_mask
        return w.detach()

    def _critic_loss(self, batch: Batch) -> Tensor:
        """The designer critic's TD(0) loss on the designer's rewards (one run)."""
        if self.critic is None or self.critic_target is None:
            raise RuntimeError("this designer has no critic")
        with torch.no_grad():
            not_term = 1.0 - batch.terminated
            target = batch.designer_reward + self.config.gamma * not_term * self.critic_target(batch.next_state)
        v = self.critic(batch.state)
        return (((target - v) ** 2) * batch.step_mask).sum() / batch.step_mask.sum().clamp_min(1.0)

    def _update_critic(self, batch: Batch) -> float | Tensor:
        if self.critic is None or self.critic_opt is None:
            return 0.0
        loss = self._per_run(self._critic_loss)(batch)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.sum().backward()
        self.critic_opt.step()
        critic, target = self._critic_params()
        with torch.no_grad():
            for k, p_t in target.items():
                p_t.lerp_(critic[k], self.config.critic_tau)
        return _metric(loss)

    def _critic_params(self) -> tuple[Params, Params]:
        """The designer critic's and its target's parameters (stacked runs: with the run axis)."""
        if self.runs.stacked:
            return self._stacked_critic
        if self.critic is None or self.critic_target is None:
            raise RuntimeError("this designer has no critic")
        return dict(self.critic.named_parameters()), dict(self.critic_target.named_parameters())

    def outer_loss(self, learner: AgentLearner, theta_hat: Params, validation: Batch) -> Tensor:
        """``-agg_t W_t sum_i log pi_theta_hat(a'_i | o'_i)`` on the validation batch."""
        return self.outer_from_logits(learner.logits(theta_hat, validation.obs), learner.epsilon, validation)

    def outer_from_logits(self, logits: Tensor, epsilon: float, validation: Batch) -> Tensor:
        """:meth:`outer_loss` given the updated agents' logits on the validation batch (one run)."""
        logp, _ = action_log_probs(logits, validation.actions, epsilon, validation.action_mask)
        score = (logp * validation.mask).sum(-1)
        w = self.outer_weights(validation)
        total = -(w * score * validation.step_mask).sum()
        if self.config.outer_reduction == "sum":
            return total / validation.n_episodes
        return total / validation.step_mask.sum().clamp_min(1.0)

    def agent_rewards(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The agents' total rewards on ``batch`` as functions of the designer's parameters, and the designer's
        payments ``[B, T, N]`` (for the cost). Incentives: env reward + recomputed payment, per step, so stacked
        runs (``[S, B, T, N]``) compute it as is. Designers that act otherwise (taxes) override this."""
        payments = self.payments(batch)
        return batch.env_rewards + payments, payments

    def iterate(self, learner: AgentLearner, collect: Collect, batch: Batch) -> tuple[Batch, Metrics]:
        cfg = self.config
        rewards, payments = self.agent_rewards(batch)  # per step: stacked runs need no per-run map
        require_finite("recomputed rewards", {"rewards": rewards}, self.iteration)
        values = critic_step(learner, batch, rewards.detach())
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
        logits = learner.logits(theta_hat, validation.obs)  # stacked runs: every run's agents at once
        epsilon = learner.epsilon
        outer = self._per_run(lambda x, v: self.outer_from_logits(x, epsilon, v))(logits, validation)
        cost = self._per_run(self.cost)(batch, payments)
        # both gradients at the same eta (the paper evaluates them in one session run), then both steps; stacked
        # runs share no parameter, so the gradient of their sum is each run's own
        grads = _grads(outer.sum(), self._params, retain_graph=cfg.cost != "none")
        if all(g is None for g in grads):
            raise RuntimeError(
                "meta-gradient is None: the inner update must be out-of-place and keep the graph to the incentives"
            )
        outer_grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(self._params, grads))
        cost_grads = None
        if cfg.cost != "none":
            cost_grads = tuple(torch.zeros_like(p) if g is None else g
                               for p, g in zip(self._params, _grads(cost.sum(), self._params)))
        metrics: Metrics = {"outer_loss": _metric(outer), "cost": _metric(cost)}
        if cost_grads is not None and cfg.cost_weight is not None:
            outer_grads = tuple(g + cfg.cost_weight * c for g, c in zip(outer_grads, cost_grads))
        stacked = self.runs.stacked
        metrics["meta_grad_norm"] = apply_grads(self.optim.main, self._params, outer_grads, cfg.max_grad_norm,
                                                self.iteration, stacked)
        if self.optim.cost is not None and cost_grads is not None:
            metrics["cost_grad_norm"] = apply_grads(self.optim.cost, self._params, cost_grads, cfg.max_grad_norm,
                                                    self.iteration, stacked)
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


def _metric(value: Tensor) -> float | Tensor:
    """A scalar metric as a float; per-run values of stacked runs as a detached ``[S]`` tensor."""
    return float(value.detach()) if value.dim() == 0 else value.detach()


def _grads(loss: Tensor, params: list[Tensor], retain_graph: bool = False) -> tuple[Tensor | None, ...]:
    """``d loss / d params`` (None for parameters the loss does not reach)."""
    if not loss.requires_grad:
        return tuple(None for _ in params)
    return torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
