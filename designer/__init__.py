"""Incentive designers that learn by differentiating through the agents' learning (MetaGrad), and baselines.

Quick use::

    from designer import TrainConfig, train
    trainer = train(TrainConfig(task="escape_room", task_kwargs={"n_agents": 3, "min_at_lever": 2},
                                episodes=8000, seed=0))
    print(trainer.progress.history[-1])

The command line does the same: ``python -m designer train --task escape_room --n-agents 3 --min-at-lever 2``.
"""

from __future__ import annotations

from typing import Any

from designer.algorithms import (
    AMDDesigner,
    Designer,
    DualRLDesigner,
    FixedDesigner,
    MetaGradDesigner,
    NoDesigner,
    make_designer,
)
from designer.batch import Batch
from designer.checkpoint import load_checkpoint, save_checkpoint
from designer.config import DesignerConfig, TrainConfig
from designer.learners import AgentLearner, LearnerConfig, inner_update
from designer.tasks import TASKS, Task, make_task
from designer.trainer import EvalResult, Trainer, train

__all__ = [
    "TASKS",
    "AMDDesigner",
    "AgentLearner",
    "Batch",
    "Designer",
    "DesignerConfig",
    "DualRLDesigner",
    "EvalResult",
    "FixedDesigner",
    "LearnerConfig",
    "MetaGradDesigner",
    "NoDesigner",
    "Task",
    "TrainConfig",
    "Trainer",
    "inner_update",
    "load_checkpoint",
    "load_incentive",
    "make_designer",
    "make_task",
    "save_checkpoint",
    "train",
]


def load_incentive(path: str) -> Any:
    """The frozen incentive function of a trained designer checkpoint (for SB3 transfer or any wrapper).

    Returns the designer's incentive function (a ``wrappers.ModuleIncentive`` for MetaGrad/AMD) with its
    network in eval mode and gradients off; ``None`` for designers that pay nothing.
    """
    trainer = Trainer.resume(path)
    fn = trainer.designer.incentive
    for module in (getattr(trainer.designer, "net", None), getattr(trainer.designer, "policy", None)):
        if module is not None:
            module.eval()
            module.requires_grad_(False)
    return fn
