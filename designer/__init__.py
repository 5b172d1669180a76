"""Incentive designers that learn by differentiating through the agents' learning (MetaGrad), and baselines.

Quick use::

    from designer import TrainConfig, train
    trainer = train(TrainConfig(task="escape_room", task_kwargs={"n_agents": 3, "min_at_lever": 2},
                                episodes=8000, seed=0))
    print(trainer.progress.history[-1])

The command line does the same: ``python -m designer train --task escape_room --n-agents 3 --min-at-lever 2``.

Layout: the method (``config``, ``learners``, ``networks``, ``batch``, ``rollout``, and the designer
``algorithms`` behind the one ``registry``), one module per game in ``tasks``, the experiment tooling (trainer,
checkpoints, sweeps, aggregation, plots, CLI) in ``experiments``, and SB3 transfer in ``sb3`` (needs the ``sb3``
extra).
"""

from __future__ import annotations

from designer.algorithms import (
    AMDDesigner,
    Designer,
    DualRLDesigner,
    FixedDesigner,
    MetaGradDesigner,
    NoDesigner,
)
from designer.batch import Batch
from designer.config import DesignerConfig, TrainConfig
from designer.experiments.checkpoint import load_checkpoint, save_checkpoint
from designer.experiments.records import EvalResult
from designer.experiments.trainer import Trainer, load_incentive, train
from designer.learners import AgentLearner, LearnerConfig, inner_update
from designer.registry import algorithm_names, make_designer, register_algorithm, register_task
from designer.rollout import IncentivePolicy
from designer.tasks import TASKS, Task, make_task, task_names

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
    "IncentivePolicy",
    "LearnerConfig",
    "MetaGradDesigner",
    "NoDesigner",
    "Task",
    "TrainConfig",
    "Trainer",
    "algorithm_names",
    "inner_update",
    "load_checkpoint",
    "load_incentive",
    "make_designer",
    "make_task",
    "register_algorithm",
    "register_task",
    "save_checkpoint",
    "task_names",
    "train",
]
