"""AMD: Adaptive Mechanism Design (Baumann, Graepel & Shawe-Taylor 2018; method.md §4.2), with its bugs fixed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.func import grad, vmap

from designer.algorithms.base import Collect, Designer, Metrics, require_finite
from designer.batch import Batch
from designer.batched_rollout import BatchedIncentivePolicy
from designer.config import DesignerConfig
from designer.learners import AgentLearner, Params, action_log_probs
from designer.networks import IncentiveMLP
from designer.registry import register_algorithm
from designer.task import Task
from wrappers import ModuleIncentive

__all__ = ["AMDDesigner"]


@register_algorithm("amd", summary="Adaptive Mechanism Design (Baumann et al. 2018), pays per agent",
                    defaults={"output": "agent"})
class AMDDesigner(Designer):
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
            self.net = IncentiveMLP(task.feature_dim, task.output("agent").n_slots, config.hidden)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.amd_lr)
        self._incentive = ModuleIncentive(self.net, features=task.features, slots=self.require_slot_rule(),
                                          scale=config.scale)
        self.learner: AgentLearner | None = None

    def batched_incentive(self, generator: torch.Generator | None = None) -> BatchedIncentivePolicy | None:
        """The planner's network on the batched rollout's ``[B, F]`` inputs, paying per agent."""
        if not self._batches_own_rule(AMDDesigner, "__init__"):
            return super().batched_incentive(generator)
        return self.batched_module_incentive(self.net, "agent")

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
