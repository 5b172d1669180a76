"""Collect episodes through the incentive wrapper into a :class:`~designer.batch.Batch`.

The designer never touches an env directly: each of the B envs is an ``IncentiveWrapper`` around the task's
PettingZoo game (after the designer's own control point, if any). The wrapper pays through a recorder the rollout
owns: it asks the designer's :class:`IncentivePolicy` for the step's exact inputs, keeps them in the rollout's
records and pays ``policy.pay(inputs)``, so the payments can be recomputed with gradients from the batch later.
Per step the wrapper's ``last_context`` gives the designer's observation, the joint action and the env rewards.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from pettingzoo import ParallelEnv
from torch import Tensor

from designer.batch import Batch
from designer.learners import action_log_probs, mixed_probs
from wrappers import IncentiveWrapper, StepContext

if TYPE_CHECKING:
    from designer.task import Task

__all__ = [
    "EpisodeStats",
    "IncentiveInputs",
    "IncentivePolicy",
    "Recorder",
    "RolloutWorker",
    "action_counts",
    "batch_from_steps",
    "final_state",
    "sample_actions",
]

Policy = Callable[[Tensor], Tensor]
IncentiveInputs = tuple[np.ndarray, dict[str, int]]
"""What a designer pays from at one step: its input vector and each acting agent's output slot."""


class IncentivePolicy(Protocol):
    """A designer's payment rule in two steps, so that the rollout can record exactly what it paid from.

    ``wrappers.ModuleIncentive`` is one; a policy is also callable as an ordinary incentive function.
    """

    def inputs(self, ctx: StepContext) -> IncentiveInputs: ...

    def pay(self, inputs: IncentiveInputs) -> Mapping[str, float]: ...

    def __call__(self, ctx: StepContext) -> Mapping[str, float]: ...


class Recorder:
    """The incentive function a rollout installs in its wrapper: pays through the policy and keeps its inputs.

    Args:
        policy: anything with ``inputs(ctx)`` and ``pay(inputs)`` (an :class:`IncentivePolicy`, or the batched
            one of :mod:`designer.batched_rollout`); None pays nothing.
        unpaid: what a step pays without a policy, from its context (default: no payment, ``{}``).
    """

    def __init__(self, policy: Any, unpaid: Callable[[Any], Any] = lambda ctx: {}) -> None:
        self.policy = policy
        self.unpaid = unpaid
        self.inputs: Any = None

    def __call__(self, ctx: Any) -> Any:
        if self.policy is None:
            return self.unpaid(ctx)
        self.inputs = self.policy.inputs(ctx)
        return self.policy.pay(self.inputs)

    def take(self) -> Any:
        """The inputs of the step just paid (None without a policy); each step's inputs are taken once."""
        if self.policy is None:
            return None
        if self.inputs is None:
            raise RuntimeError("the incentive wrapper did not call the designer's policy for this step")
        inputs, self.inputs = self.inputs, None
        return inputs


@dataclass(frozen=True)
class EpisodeStats:
    """Per-episode outcome as the paper reports it (method.md §6.1)."""

    welfare: float
    incentives: float
    steps: int
    env_returns: tuple[float, ...]
    incentive_returns: tuple[float, ...]
    info_totals: tuple[tuple[str, float], ...] = ()
    """Per-episode totals (over agents and steps) of the task's numeric ``infos`` keys, e.g. Cleanup's beams."""
    action_counts: tuple[tuple[int, ...], ...] = ()
    """How often each agent took each action this episode (e.g. Escape Room's lever and door moves)."""

    @property
    def net(self) -> float:
        """Designer net return: welfare minus incentives paid."""
        return self.welfare - self.incentives


class RolloutWorker:
    """Steps B envs in lockstep with a batched policy and records everything the learners need.

    Args:
        envs: the task's envs (B of them), already seeded once by the caller; each is wrapped here in an
            ``IncentiveWrapper`` paying through ``incentive``.
        task: the game (agent order, observation rows, masks, the designer's reward and observation).
        incentive: the designer's payment rule (None: pay nothing and log no designer inputs).
    """

    def __init__(self, envs: Sequence[ParallelEnv], task: Task, incentive: IncentivePolicy | None) -> None:
        if not envs:
            raise ValueError("RolloutWorker needs at least one env")
        self.task = task
        self.agents = list(task.agents)
        self._recorders = [Recorder(incentive) for _ in envs]
        self.envs = [IncentiveWrapper(env, rec) for env, rec in zip(envs, self._recorders)]

    def reset(self, seed: int) -> None:
        """Seed the envs: env ``i`` with ``seed + i`` (later episodes continue each env's own random stream)."""
        for i, env in enumerate(self.envs):
            env.reset(seed=seed + i)

    def rng_states(self) -> list[Any]:
        """Each env's random generator state, for checkpoints (None for a game without ``np_random``: it draws
        no random numbers, which :func:`designer.task.check_game` checked when the task was built)."""
        return [None if (rng := getattr(env.unwrapped, "np_random", None)) is None else rng.bit_generator.state
                for env in self.envs]

    def set_rng_states(self, states: Sequence[Any]) -> None:
        """Restore :meth:`rng_states` output (one state per env; None: leave that env's generator alone)."""
        for env, state in zip(self.envs, states, strict=True):
            rng = getattr(env.unwrapped, "np_random", None)
            if state is not None and rng is not None:
                rng.bit_generator.state = state

    def close(self) -> None:
        for env in self.envs:
            env.close()

    def collect(self, policy: Policy, epsilon: float, generator: torch.Generator) -> tuple[Batch, list[EpisodeStats]]:
        """Run one episode in every env with ``policy`` (logits from ``[B, N, *obs]``) and return the batch."""
        n_agents = len(self.agents)
        b = len(self.envs)
        live = [True] * b
        obs_dicts: list[dict[str, Any]] = []
        masks_now: list[dict[str, np.ndarray]] = []
        for env in self.envs:
            obs, infos = env.reset()
            obs_dicts.append(obs)
            masks_now.append(self._masks(obs, infos))
        steps: list[dict[str, Any]] = []
        final_states: list[np.ndarray | None] = [None] * b
        totals = [dict.fromkeys(self.task.info_metrics, 0.0) for _ in range(b)]
        while any(live):
            obs_t = np.stack([self._obs_row(o) for o in obs_dicts])
            obs_tensor = torch.as_tensor(obs_t)
            mask_t = self._mask_rows(masks_now) if masks_now[0] else None
            with torch.no_grad():
                logits = policy(obs_tensor)
                actions, logp = sample_actions(logits, epsilon, mask_t, generator)
            rec = _StepRecord(b, n_agents, obs_t, mask_t)
            rec.actions[:] = actions.numpy()
            rec.logp[:] = logp.numpy()
            for i, env in enumerate(self.envs):
                if not live[i]:
                    continue
                acting = [a for a in self.agents if a in env.agents]
                joint = {a: int(actions[i, self.agents.index(a)]) for a in acting}
                obs, _rewards, terms, _truncs, infos = env.step(joint)
                ctx = env.last_context
                if ctx is None:  # pragma: no cover - the wrapper always sets it after a step
                    raise RuntimeError("incentive wrapper did not record the step context")
                rec.fill(i, self, ctx, acting, infos, terms, self._recorders[i].take())
                for key in self.task.info_metrics:
                    totals[i][key] += sum(float(infos[a].get(key, 0.0)) for a in acting)
                obs_dicts[i] = {**obs_dicts[i], **obs}
                rec.next_obs[i] = self._obs_row(obs_dicts[i])
                masks_now[i] = self._masks(obs_dicts[i], infos)
                if not env.agents:
                    live[i] = False
                    final_states[i] = final_state(env, rec.state[i])
            steps.append(rec.as_dict())
        batch = batch_from_steps(steps, final_states)
        counts = action_counts(batch, self.task.n_actions)
        return batch, [_stats(env, t, c) for env, t, c in zip(self.envs, totals, counts)]

    # ------------------------------------------------------------------ helpers
    def _obs_row(self, obs: dict[str, Any]) -> np.ndarray:
        rows: list[np.ndarray | None] = []
        template = None
        for a in self.agents:
            if a in obs:
                row = self.task.obs_row(obs[a])
                template = row
                rows.append(row)
            else:
                rows.append(None)
        if template is None:
            raise RuntimeError("no agent observation to build a row from")
        return np.stack([r if r is not None else np.zeros_like(template) for r in rows])

    def _masks(self, obs: dict[str, Any], infos: dict[str, Any]) -> dict[str, np.ndarray]:
        """Each present agent's action mask (empty when the task has none)."""
        masks = {a: self.task.action_mask(a, obs.get(a), infos.get(a, {})) for a in self.agents if a in obs}
        return {a: m for a, m in masks.items() if m is not None}

    def _mask_rows(self, masks: list[dict[str, np.ndarray]]) -> Tensor:
        ref = next(iter(masks[0].values()))
        rows = [[m.get(a, np.ones_like(ref)) for a in self.agents] for m in masks]
        return torch.as_tensor(np.asarray(rows, dtype=np.float32))

class _StepRecord:
    """Arrays of one lockstep step over the B envs (finished envs keep zeros and a zero step mask)."""

    def __init__(self, b: int, n: int, obs: np.ndarray, action_mask: Tensor | None) -> None:
        self.obs = obs
        self.next_obs = np.zeros_like(obs)
        self.actions = np.zeros((b, n), dtype=np.int64)
        self.logp = np.zeros((b, n), dtype=np.float32)
        self.env_rewards = np.zeros((b, n), dtype=np.float32)
        self.paid = np.zeros((b, n), dtype=np.float32)
        self.mask = np.zeros((b, n), dtype=np.float32)
        self.step_mask = np.zeros(b, dtype=np.float32)
        self.terminated = np.zeros(b, dtype=np.float32)
        self.slots = np.zeros((b, n), dtype=np.int64)
        self.designer_reward = np.zeros(b, dtype=np.float32)
        self.features: list[np.ndarray | None] = [None] * b
        self.state: list[np.ndarray | None] = [None] * b
        self.action_mask = action_mask.numpy() if action_mask is not None else None

    def fill(
        self,
        i: int,
        worker: RolloutWorker,
        ctx: StepContext,
        acting: list[str],
        infos: dict[str, Any],
        terms: dict[str, bool],
        inputs: IncentiveInputs | None,
    ) -> None:
        agents = worker.agents
        for a in acting:
            j = agents.index(a)
            self.mask[i, j] = 1.0
            self.env_rewards[i, j] = ctx.env_rewards[a]
            self.paid[i, j] = float(infos[a]["incentive"])
        self.step_mask[i] = 1.0
        self.terminated[i] = float(bool(acting) and all(terms.get(a, False) for a in acting))
        self.designer_reward[i] = worker.task.designer_reward(ctx)
        self.state[i] = np.asarray(worker.task.state(ctx), dtype=np.float32).reshape(-1)
        if inputs is not None:
            x, slots = inputs
            self.features[i] = np.asarray(x, dtype=np.float32)
            for a, s in slots.items():
                self.slots[i, agents.index(a)] = s

    def as_dict(self) -> dict[str, Any]:
        ref_state = next(s for s in self.state if s is not None)
        ref_feat = next((f for f in self.features if f is not None), np.zeros(0, dtype=np.float32))
        state = np.stack([s if s is not None else np.zeros_like(ref_state) for s in self.state])
        return {
            "obs": self.obs,
            "next_obs": self.next_obs,
            "actions": self.actions,
            "logp": self.logp,
            "env_rewards": self.env_rewards,
            "paid": self.paid,
            "mask": self.mask,
            "step_mask": self.step_mask,
            "terminated": self.terminated,
            "slots": self.slots,
            "designer_reward": self.designer_reward,
            "features": np.stack([f if f is not None else np.zeros_like(ref_feat) for f in self.features]),
            "state": state,
            "action_mask": self.action_mask,
        }


def batch_from_steps(steps: list[dict[str, Any]], final_states: list[np.ndarray | None]) -> Batch:
    """The :class:`Batch` of lockstep steps (dicts of arrays ``[B, ...]``, one per step) and each episode's
    final designer observation (the ``next_state`` of its last step)."""
    def stack(key: str, dtype: torch.dtype | None = None) -> Tensor:
        arr = np.stack([s[key] for s in steps], axis=1)
        t = torch.as_tensor(arr)
        return t.to(dtype) if dtype is not None else t

    action_mask = stack("action_mask", torch.float32) if steps[0]["action_mask"] is not None else None
    state = stack("state", torch.float32)
    step_mask = stack("step_mask", torch.float32)
    # the designer's next observation is the following step's; after the last step, the final state
    next_state = torch.roll(state, -1, dims=1)
    lengths = step_mask.sum(1).long()
    for i, final in enumerate(final_states):
        if final is not None and final.shape == state.shape[2:]:
            next_state[i, lengths[i] - 1] = torch.as_tensor(final)
    return Batch(
        obs=stack("obs"),
        next_obs=stack("next_obs"),
        actions=stack("actions", torch.long),
        env_rewards=stack("env_rewards", torch.float32),
        paid=stack("paid", torch.float32),
        mask=stack("mask", torch.float32),
        step_mask=step_mask,
        terminated=stack("terminated", torch.float32),
        features=stack("features", torch.float32),
        slots=stack("slots", torch.long),
        designer_reward=stack("designer_reward", torch.float32),
        state=state,
        next_state=next_state,
        logp=stack("logp", torch.float32),
        action_mask=action_mask,
    )


def sample_actions(
    logits: Tensor, epsilon: float, action_mask: Tensor | None, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Sample actions from the epsilon-mixed (masked) softmax and return them with their log-probabilities."""
    probs, _ = mixed_probs(logits, epsilon, action_mask)
    actions = torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1, generator=generator).reshape(probs.shape[:-1])
    logp, _ = action_log_probs(logits, actions, epsilon, action_mask)
    return actions, logp


def final_state(env: Any, last: np.ndarray | None) -> np.ndarray:
    """The designer's observation after the episode's last step (the env's ``state()`` when it has one)."""
    try:
        return np.asarray(env.state(), dtype=np.float32).reshape(-1)
    except (AttributeError, NotImplementedError):
        return np.zeros_like(last) if last is not None else np.zeros(0, dtype=np.float32)


_MAX_COUNTED_ACTIONS = 10


def action_counts(batch: Batch, n_actions: int | None) -> list[tuple[tuple[int, ...], ...]]:
    """Per episode, per agent, how often each action was taken (empty for games with many actions)."""
    if n_actions is None or n_actions > _MAX_COUNTED_ACTIONS:
        return [()] * batch.n_episodes
    onehot = torch.nn.functional.one_hot(batch.actions, n_actions) * batch.mask.unsqueeze(-1).long()
    counts = onehot.sum(1)  # [B, N, A]
    return [tuple(tuple(int(c) for c in agent) for agent in ep) for ep in counts.tolist()]


def _stats(env: IncentiveWrapper, info_totals: dict[str, float], counts: tuple[tuple[int, ...], ...]) -> EpisodeStats:
    agents = list(env.possible_agents)
    return EpisodeStats(
        welfare=float(env.episode_welfare),
        incentives=float(env.episode_cost),
        steps=int(env.episode_stats()["steps"]),
        env_returns=tuple(float(env.episode_env_rewards.get(a, 0.0)) for a in agents),
        incentive_returns=tuple(float(env.episode_incentives.get(a, 0.0)) for a in agents),
        info_totals=tuple(info_totals.items()),
        action_counts=counts,
    )
