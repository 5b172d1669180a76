"""The ``gather_trade_build`` task: the paper's agents and designers on the economy (method.md §2.5, §5.3), and
the evaluation report of a trained run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from designer.batch import Batch
from designer.config import DesignerConfig
from designer.learners import LearnerConfig
from designer.registry import DesignerFactory, register_task
from designer.task import Task
from designer.tasks.gather_trade_build.designers import (
    TaxDualRLDesigner,
    TaxMetaGradDesigner,
    tax_model_designer,
)
from designer.tasks.gather_trade_build.game import GTBTask, GTBTaxOptions
from designer.tasks.gather_trade_build.records import tax_report

__all__ = ["TAX_DESIGNERS", "evaluate_taxes", "gtb_task"]

TAX_DESIGNERS: Final[Mapping[str, DesignerFactory]] = {
    "metagrad": TaxMetaGradDesigner,
    "metagrad_m2": TaxMetaGradDesigner,
    "dual_rl": TaxDualRLDesigner,
    "fixed": tax_model_designer,
    "none": tax_model_designer,
}
"""The task's own implementation of each registered algorithm it supports."""

@register_task("gather_trade_build")
def gtb_task(
    max_cycles: int = 100,
    layout: str = "env-pure_and_mixed-15x15",
    tax_model: str = "free_market",
    anneal_cap: bool = False,
    initial_max_tax_rate: float = 0.1,
    n_episodes_reach_max_rate: int = 8000,
    planner_epsilon_iters: int = 5000,
    agent_net: str = "paper",
    **env_kwargs: Any,
) -> GTBTask:
    """Gather-Trade-Build with the paper's shared PPO agents and MetaGrad tax designer.

    Agents: one shared policy over the flat observation (``SpatialFlatNet``, 128-128, masked softmax),
    PPO with the Adam-step replica, entropy 0.184, lr 3.3e-4, critic lr 1.67e-5 (feed-forward critic on the
    same trunk; the paper's LSTM critic is not reproduced), clip 0.01, GAE 0.98, epsilon 0.5 -> 0.05 over 5000
    updates (``config_foundation_ppo``). Designer: tax network 256-256, Adam 1.82e-5, critic lr 8.64e-4, tau
    0.0158, GAE 0.98, reward ``0.01 * productivity * equality`` after each step. The dual-RL planner uses
    entropy 0.451, lr 5.77e-4 and 256-256 layers. ``tax_model``/``anneal_cap`` and the cap schedule configure the
    fixed baselines and the planner, ``planner_epsilon_iters`` the planner's exploration schedule
    (:class:`GTBTaxOptions`); ``agent_net="cpu"`` drops the agents' conv layers (a documented CPU setting, not
    the paper's); other keyword arguments go to the env.
    """
    options = GTBTaxOptions(tax_model=tax_model, anneal_cap=anneal_cap, initial_max_tax_rate=initial_max_tax_rate,
                            n_episodes_reach_max_rate=n_episodes_reach_max_rate,
                            planner_epsilon_iters=planner_epsilon_iters, agent_net=agent_net)
    kwargs = {"max_cycles": max_cycles, "layout": layout, **env_kwargs}
    if kwargs.get("observation_mode", "flat") != "flat":
        raise ValueError("the GTB task reads flat observations; observation_mode must be 'flat'")
    return GTBTask(
        options,
        kwargs,
        TAX_DESIGNERS,
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
    )


class _Evaluates(Protocol):
    task: Task

    def evaluate_batch(self, n_episodes: int, seed: int) -> tuple[Batch, list[Any]]: ...


def evaluate_taxes(trainer: _Evaluates, n_episodes: int = 20, seed: int = 0) -> dict[str, Any]:
    """:func:`~designer.tasks.gather_trade_build.records.tax_report` of ``n_episodes`` fresh evaluation episodes
    of a trained GTB trainer (its ``evaluate_batch``: no exploration, training RNGs untouched)."""
    task = trainer.task
    if not isinstance(task, GTBTask):
        raise ValueError(f"evaluate_taxes needs the gather_trade_build task, got {task.name!r}")
    batch, _ = trainer.evaluate_batch(n_episodes, seed)
    return tax_report(batch, task.schema)
