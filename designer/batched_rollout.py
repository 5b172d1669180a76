"""Collect B episodes from ONE batched env into a :class:`~designer.batch.Batch` (the vectorized rollout).

:class:`BatchedRolloutWorker` is :class:`~designer.rollout.RolloutWorker` over a
:class:`~incentive_envs.vector.BatchedParallelEnv` (arrays ``[B, N, ...]``) wrapped in a
:class:`~wrappers.vector.BatchedIncentiveWrapper`: per step one policy forward and one action sample for all
B x N agents (masks included), one batched env step, one incentive evaluation for all copies (the designer's
:class:`BatchedIncentivePolicy`, whose exact inputs the rollout records as the sequential recorder does) and the
task's batched rules (:meth:`Task.batched_features <designer.task.Task.batched_features>` and the others). No
Python loop over copies runs per step.

It returns the same ``Batch`` (fields, shapes, dtypes, padding, masks, recorded inputs) and the same
:class:`~designer.rollout.EpisodeStats` as ``RolloutWorker`` does from B single envs seeded ``s, s + 1, ...``
(the batched env's seeding contract), given the same agent policy and action generator: integers exactly,
floats to the last bits (a designer network evaluated on ``[B, F]`` instead of ``[1, F]`` may round
differently). The sequential worker stays the reference and the path of designers that cannot batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from numpy.typing import NDArray

from designer.batch import Batch
from designer.learners import action_log_probs, mixed_probs
from designer.rollout import EpisodeStats, Policy, Recorder, action_counts, batch_from_steps, sample_actions
from designer.task import CannotBatch, sum_over_agents
from incentive_envs.matrix_vector import BatchedMatrixGame
from incentive_envs.vector import BatchedParallelEnv, PettingZooBatch
from wrappers import BatchedIncentiveWrapper, BatchedStepContext

if TYPE_CHECKING:
    from designer.task import Task

__all__ = [
    "BatchedIncentiveInputs",
    "BatchedIncentivePolicy",
    "BatchedRolloutWorker",
    "CannotBatch",
    "copy_generators",
]

BatchedIncentiveInputs = tuple[NDArray[np.float32], NDArray[np.int64]]
"""What a designer pays from at one step of all copies: input rows ``[B, F]`` and output slots ``[B, N]``."""


class BatchedIncentivePolicy(Protocol):
    """The batched counterpart of :class:`~designer.rollout.IncentivePolicy`: ``inputs(ctx)`` gives the rows
    ``[B, F]`` and slots ``[B, N]`` of all copies (slots of agents that did not act are ignored), ``pay(inputs)``
    the payments ``[B, N]``. ``wrappers.vector_functions.BatchedModuleIncentive`` is one."""

    def inputs(self, ctx: BatchedStepContext) -> BatchedIncentiveInputs: ...

    def pay(self, inputs: BatchedIncentiveInputs) -> NDArray[np.float64]: ...


def copy_generators(env: BatchedParallelEnv) -> list[np.random.Generator | None]:
    """Each copy's random generator (None for games that draw no random numbers), looked up afresh: a seeded
    ``reset`` replaces them.

    Raises:
        CannotBatch: the env does not expose them, so a checkpoint could not resume it bit-exactly.
    """
    if isinstance(env, PettingZooBatch):
        return [getattr(copy.unwrapped, "np_random", None) for copy in env.envs]
    for holder in (env, getattr(env, "engine", None)):
        rngs = getattr(holder, "rngs", None)
        if rngs is not None:
            return list(rngs)
    if isinstance(env, BatchedMatrixGame):
        return [None] * env.n_envs
    raise CannotBatch(f"{type(env).__name__} does not expose its copies' random generators (``rngs``), so a "
                      "checkpoint could not resume it bit-exactly")


def _sample(logits: torch.Tensor, epsilon: float, mask: torch.Tensor | None,
            generator: torch.Generator | Sequence[torch.Generator], live: NDArray[np.bool_]
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Actions and log-probabilities for all copies; per group of copies with one generator per group (groups
    whose copies are all over draw nothing and get zeros)."""
    if isinstance(generator, torch.Generator):
        return sample_actions(logits, epsilon, mask, generator)
    n_groups = len(generator)
    if n_groups < 1 or logits.shape[0] % n_groups:
        raise ValueError(f"{logits.shape[0]} copies do not split into {n_groups} equal groups of stacked runs")
    size = logits.shape[0] // n_groups
    probs, _ = mixed_probs(logits, epsilon, mask)  # what sample_actions draws from, for all groups at once
    actions = torch.zeros(logits.shape[:-1], dtype=torch.long)
    sampled = torch.zeros(logits.shape[0], dtype=torch.bool)
    for g, gen in enumerate(generator):
        rows = slice(g * size, (g + 1) * size)
        if live[rows].any():
            part = probs[rows]
            actions[rows] = torch.multinomial(part.reshape(-1, part.shape[-1]), 1, generator=gen).reshape(
                part.shape[:-1])
            sampled[rows] = True
    logp, _ = action_log_probs(logits, actions, epsilon, mask)
    return actions, logp * sampled.reshape(-1, *([1] * (logp.dim() - 1)))


def _rows(mask: NDArray[np.bool_], like: NDArray[Any]) -> NDArray[np.bool_]:
    """``mask`` ``[B]`` or ``[B, N]`` shaped to broadcast against ``like`` ``[B, ...]``."""
    return mask.reshape(*mask.shape, *([1] * (like.ndim - mask.ndim)))


class BatchedRolloutWorker:
    """Steps one batched env of B copies with a batched policy and records everything the learners need.

    Args:
        env: the task's batched env (``task.make_batched_env(B)``); wrapped here in a
            :class:`~wrappers.vector.BatchedIncentiveWrapper` paying through ``incentive``. Seed it with
            :meth:`reset` before the first :meth:`collect`.
        task: the game (agent order, the batched observation rows, masks, designer reward and observation).
        incentive: the designer's batched payment rule (None: pay nothing and log no designer inputs).

    Raises:
        ValueError: the env's agents are not the task's.
        CannotBatch: the env does not expose its copies' random generators.
    """

    def __init__(self, env: BatchedParallelEnv, task: Task, incentive: BatchedIncentivePolicy | None) -> None:
        if tuple(env.possible_agents) != tuple(task.agents):
            raise ValueError(f"batched env agents {list(env.possible_agents)} are not the task's {list(task.agents)}")
        copy_generators(env)
        self.task = task
        self.n_envs = env.n_envs
        self._recorder = Recorder(incentive, unpaid=lambda ctx: np.zeros(ctx.shape))
        self.env = BatchedIncentiveWrapper(env, self._recorder)

    def reset(self, seed: int) -> None:
        """Seed the copies: copy ``b`` with ``seed + b`` (later episodes continue each copy's random stream)."""
        self.env.reset(seed=seed)

    def rng_states(self) -> list[Any]:
        """Each copy's random generator state (None where the game draws no random numbers), for checkpoints:
        the same list as :meth:`RolloutWorker.rng_states <designer.rollout.RolloutWorker.rng_states>`."""
        return [None if g is None else g.bit_generator.state for g in copy_generators(self.env.env)]

    def set_rng_states(self, states: Sequence[Any]) -> None:
        """Restore :meth:`rng_states` output (one state per copy)."""
        for g, state in zip(copy_generators(self.env.env), states, strict=True):
            if g is not None and state is not None:
                g.bit_generator.state = state

    def close(self) -> None:
        self.env.close()

    def collect(self, policy: Policy, epsilon: float,
                generator: torch.Generator | Sequence[torch.Generator]) -> tuple[Batch, list[EpisodeStats]]:
        """Run one episode in every copy with ``policy`` (logits from ``[B, N, *obs]``) and return the batch.

        A copy whose episode is over keeps its last observations as policy input (its sampled actions are
        recorded, as the sequential worker records them, and ignored by the env) and zeros elsewhere.

        With G generators (stacked runs, :mod:`designer.stacked`) the copies are G equal consecutive groups, one
        per run: group g samples from generator g, and only while one of its copies still plays, so each run
        draws exactly the random numbers it draws alone.
        """
        env, task, inner = self.env, self.task, self.env.env
        raw, infos = env.reset()
        raw = np.array(raw)  # ours: the env may reuse its buffers
        masks = task.batched_action_mask(raw, infos)
        steps: list[dict[str, Any]] = []
        finals = np.zeros((self.n_envs, int(np.prod(task.state_shape))), dtype=np.float32)
        totals = np.zeros((self.n_envs, len(task.info_metrics)))
        while not inner.done.all():
            live, active = ~inner.done, inner.active
            obs = task.batched_obs(raw)
            mask_t = None if masks is None else torch.as_tensor(masks)
            with torch.no_grad():
                actions, logp = _sample(policy(torch.as_tensor(obs)), epsilon, mask_t, generator, live)
            new_raw, _rewards, terms, _truncs, infos = env.step(actions.numpy())
            ctx = env.last_context
            if ctx is None:  # pragma: no cover - the wrapper always sets it after a step
                raise RuntimeError("batched incentive wrapper did not record the step context")
            raw = np.where(_rows(active, raw), new_raw, raw)
            step = self._record(ctx, live, self._recorder.take(), infos, terms)
            step.update(obs=obs, next_obs=np.where(_rows(live, obs), task.batched_obs(raw), 0).astype(obs.dtype),
                        actions=actions.numpy(), logp=logp.numpy(), action_mask=masks)
            steps.append(step)
            for k, key in enumerate(task.info_metrics):
                if key in infos:
                    totals[:, k] += sum_over_agents(np.asarray(infos[key], dtype=np.float64), active)
            if masks is not None:
                new_masks = task.batched_action_mask(raw, infos)
                masks = masks if new_masks is None else np.where(_rows(live, masks), new_masks, masks)
            ended = live & inner.done
            if ended.any():
                finals = np.where(ended[:, None], self._final_states(finals), finals)
        batch = batch_from_steps(steps, list(finals))
        return batch, self._stats(totals, action_counts(batch, task.n_actions))

    # ------------------------------------------------------------------ helpers
    def _record(self, ctx: BatchedStepContext, live: NDArray[np.bool_], inputs: BatchedIncentiveInputs | None,
                infos: dict[str, NDArray[Any]], terms: NDArray[np.bool_]) -> dict[str, Any]:
        """The step's arrays that come from the wrapper, the task and the designer (zeros for copies that are
        over, and for agents that did not act)."""
        task, active = self.task, ctx.active
        n_envs = len(live)
        if inputs is None:
            features, slots = np.zeros((n_envs, 0), dtype=np.float32), np.zeros(ctx.shape, dtype=np.int64)
        else:
            features, slots = inputs
        return {
            "env_rewards": np.where(active, ctx.env_rewards, 0.0).astype(np.float32),
            "paid": np.where(active, infos["incentive"], 0.0).astype(np.float32),
            "mask": active.astype(np.float32),
            "step_mask": live.astype(np.float32),
            "terminated": (live & (terms | ~active).all(axis=1)).astype(np.float32),
            "slots": np.where(active, slots, 0).astype(np.int64),
            "designer_reward": np.where(live, task.batched_designer_reward(ctx), 0.0).astype(np.float32),
            "features": np.where(live[:, None], np.asarray(features, dtype=np.float32), 0.0).astype(np.float32),
            "state": np.where(live[:, None], task.batched_state(ctx), 0.0).astype(np.float32),
        }

    def _final_states(self, zeros: NDArray[np.float32]) -> NDArray[np.float32]:
        """Every copy's designer observation now (the env's ``state()``; zeros when it has none)."""
        try:
            return np.asarray(self.env.state(), dtype=np.float32).reshape(self.n_envs, -1)
        except (AttributeError, NotImplementedError):
            return np.zeros_like(zeros)

    def _stats(self, totals: NDArray[np.float64], counts: list[tuple[tuple[int, ...], ...]]) -> list[EpisodeStats]:
        env, keys = self.env, self.task.info_metrics
        return [
            EpisodeStats(
                welfare=float(env.episode_welfare[b]),
                incentives=float(env.episode_cost[b]),
                steps=int(env.episode_steps[b]),
                env_returns=tuple(env.episode_env_rewards[b].tolist()),
                incentive_returns=tuple(env.episode_incentives[b].tolist()),
                info_totals=tuple(zip(keys, totals[b].tolist())),
                action_counts=counts[b],
            )
            for b in range(self.n_envs)
        ]
