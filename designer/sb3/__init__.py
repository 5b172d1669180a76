"""Off-the-shelf stable-baselines3 agents under incentives: independent learners and transfer evaluation.

A designer is only useful if standard RL agents respond to its incentive. This subpackage trains SB3 agents
from scratch under a FROZEN incentive (a designer checkpoint via ``designer.load_incentive``, or a hand-made
``ActionTable``) and without it, and reports welfare, incentives paid and the designer's net return:

- :class:`IndependentSB3` (``independent.py``): one SB3 on-policy model (PPO/A2C) per agent, stepped in
  lockstep on copies of any PettingZoo ``ParallelEnv``; the parameter-sharing alternative is the env adaptor
  :func:`wrappers.sb3.make_sb3_vec_env`.
- :func:`transfer_eval`, :func:`compare_transfer`, :func:`evaluate_agents`, :class:`EpisodeTracker`
  (``transfer.py``): train and evaluate per seed, with vs without the incentive; the ``transfer`` sub-command
  of ``python -m designer`` (:func:`add_transfer_subcommand`, :func:`run_transfer`).
- :class:`TransferResult`, :class:`EvalRow` (``results.py``): per-seed rows, training curves, CSVs and plot.

Needs the ``sb3`` extra (``pip install "incentive-design[sb3]"``: stable-baselines3 and SuperSuit); the rest of
``designer`` does not import it.

Example::

    from designer.sb3 import compare_transfer
    from incentive_envs import ipd
    from wrappers import ActionTable

    result = compare_transfer(ipd.parallel_env, ActionTable([2.5, 0.0]), total_timesteps=8_000, seeds=[0, 1, 2])
    print(result.table())
"""

from __future__ import annotations

from designer.sb3.independent import IndependentSB3
from designer.sb3.results import EvalRow, TransferResult
from designer.sb3.transfer import (
    DEFAULT_PPO_KWARGS,
    EpisodeTracker,
    add_transfer_subcommand,
    compare_transfer,
    evaluate_agents,
    run_transfer,
    transfer_eval,
)

__all__ = [
    "DEFAULT_PPO_KWARGS",
    "EpisodeTracker",
    "EvalRow",
    "IndependentSB3",
    "TransferResult",
    "add_transfer_subcommand",
    "compare_transfer",
    "evaluate_agents",
    "run_transfer",
    "transfer_eval",
]
