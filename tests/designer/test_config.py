"""The configs are strictly typed and validated at construction (issue #16), and survive their JSON round trip."""

from __future__ import annotations

import json
import math

import pytest
import torch

from designer.config import MAX_SEED, DesignerConfig, TrainConfig, config_from_dict, config_to_dict
from designer.learners import LearnerConfig

INF, NAN = math.inf, math.nan


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        # a string is not a bool, an int is not a bool
        (DesignerConfig, {"pipeline": "no"}, "pipeline must be a bool"),
        (DesignerConfig, {"use_critic": 1}, "use_critic must be a bool"),
        (LearnerConfig, {"shared": "yes"}, "shared must be a bool"),
        (TrainConfig, {"progress": "false"}, "progress must be a bool"),
        # a bool is not an int nor a float
        (TrainConfig, {"episodes": True}, "episodes must be an int"),
        (TrainConfig, {"seed": False}, "seed must be an int"),
        (LearnerConfig, {"epsilon_iters": True}, "epsilon_iters must be an int"),
        (LearnerConfig, {"kernel": True}, "kernel must be an int"),
        (DesignerConfig, {"lr": True}, "lr must be a finite number"),
        (LearnerConfig, {"lr": True}, "lr must be a finite number"),
        (DesignerConfig, {"cost_weight": True}, "cost_weight must be a finite number or None"),
        # a float or a string is not an int; a string is not a number
        (TrainConfig, {"episodes": 10.0}, "episodes must be an int"),
        (TrainConfig, {"seed": "0"}, "seed must be an int"),
        (LearnerConfig, {"gamma": "0.9"}, "gamma must be a finite number"),
        (DesignerConfig, {"max_grad_norm": "1"}, "max_grad_norm must be a finite number or None"),
        # NaN and infinities are rejected wherever a finite number is meant
        (LearnerConfig, {"entropy_coef": INF}, "entropy_coef must be a finite number"),
        (LearnerConfig, {"entropy_coef": NAN}, "entropy_coef must be a finite number"),
        (LearnerConfig, {"linear_init_std": INF}, "linear_init_std must be a finite number or None"),
        (LearnerConfig, {"adam_betas": (0.9, NAN)}, "adam_betas"),
        (DesignerConfig, {"dual_entropy": INF}, "dual_entropy must be a finite number"),
        (DesignerConfig, {"amd_clip": INF}, "amd_clip must be a finite number"),
        (DesignerConfig, {"fixed_values": (1.0, INF)}, "fixed_values"),
        # tuples: the right container, element type and length; layer sizes >= 1
        (DesignerConfig, {"hidden": (0,)}, "hidden"),
        (DesignerConfig, {"critic_hidden": (64, -1)}, "critic_hidden"),
        (DesignerConfig, {"dual_hidden": (64.0,)}, "dual_hidden"),
        (DesignerConfig, {"hidden": [64, 16]}, "hidden must be a tuple"),
        (DesignerConfig, {"hidden": 64}, "hidden must be a tuple"),
        (DesignerConfig, {"hidden": (True,)}, "hidden"),
        (DesignerConfig, {"dual_values": (0.0, "1.1")}, "dual_values"),
        (LearnerConfig, {"hidden": (0,)}, "hidden"),
        (LearnerConfig, {"critic_hidden": (0,)}, "critic_hidden"),
        (LearnerConfig, {"conv_channels": (8, 0)}, "conv_channels"),
        (LearnerConfig, {"kernel": 0}, "kernel"),
        (LearnerConfig, {"adam_betas": (0.9,)}, "adam_betas must be a tuple of 2"),
        (LearnerConfig, {"adam_betas": (0.9, 0.99, 0.999)}, "adam_betas must be a tuple of 2"),
        # Literal fields against their choices (and their type)
        (DesignerConfig, {"output": "actions"}, "output must be one of"),
        (DesignerConfig, {"dual_mode": None}, "dual_mode must be one of"),
        (LearnerConfig, {"optimizer": "rmsprop"}, "optimizer must be one of"),
        (LearnerConfig, {"kind": 1}, "kind must be one of"),
        # strings, optional strings and dicts
        (DesignerConfig, {"algorithm": 5}, "algorithm must be a string"),
        (TrainConfig, {"task": None}, "task must be a string"),
        (TrainConfig, {"out_dir": 3}, "out_dir must be a string or None"),
        (TrainConfig, {"task_kwargs": [("n_agents", 5)]}, "task_kwargs must be a dict"),
        (TrainConfig, {"task_kwargs": {5: 5}}, "task_kwargs"),
        # the seed fits the RNGs it seeds
        (TrainConfig, {"seed": 2**70}, "seed must be"),
        (TrainConfig, {"seed": MAX_SEED + 1}, "seed must be"),
        (TrainConfig, {"seed": -1}, "seed must be"),
    ],
)
def test_configs_reject_mistyped_fields_at_construction(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_messages_name_the_value():
    with pytest.raises(ValueError, match=r"pipeline must be a bool, got 'no' \(str\)"):
        DesignerConfig(pipeline="no")


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (DesignerConfig, {"lr": 1, "scale": 2, "gamma": 1, "amd_clip": 10, "cost_weight": 0, "max_grad_norm": 5}),
        (DesignerConfig, {"algorithm": "fixed", "fixed_values": (1, 0, 0), "dual_values": (0, 1)}),
        (DesignerConfig, {"cost_weight": None, "max_grad_norm": None, "hidden": (), "output": "agent"}),
        (LearnerConfig, {"lr": 1, "entropy_coef": 0, "adam_betas": (0, 0.5), "linear_init_std": 1}),
        (LearnerConfig, {"shared": True, "hidden": (), "conv_channels": (6,), "kernel": 1, "kind": "ppo"}),
        (TrainConfig, {"seed": MAX_SEED, "task_kwargs": {"n_agents": 3, "nested": [1, 2]}, "out_dir": "x"}),
    ],
)
def test_ints_for_floats_and_other_valid_values_are_accepted(cls, kwargs):
    cfg = cls(**kwargs)
    assert all(getattr(cfg, k) == v for k, v in kwargs.items())


def test_largest_seed_seeds_torch_with_the_trainers_offsets():
    """The trainer seeds torch generators with ``seed``, ``seed + 1`` and ``seed + 2``: all must fit."""
    for offset in range(3):
        torch.Generator().manual_seed(TrainConfig(seed=MAX_SEED).seed + offset)


@pytest.mark.parametrize(
    "cfg",
    [
        DesignerConfig(),
        DesignerConfig(algorithm="fixed", fixed_values=(1.5, 0.0, 0.0), cost_weight=0.5, max_grad_norm=1.0),
        LearnerConfig(),
        LearnerConfig(kind="ppo", optimizer="adam", linear_init_std=0.1, conv_channels=(6,), hidden=()),
        TrainConfig(task_kwargs={"n_agents": 5, "min_at_lever": 2}, out_dir="runs", seed=123),
    ],
)
def test_json_round_trip(cfg):
    data = json.loads(json.dumps(config_to_dict(cfg)))
    assert config_from_dict(type(cfg), data) == cfg


def test_json_with_ints_for_floats_rebuilds():
    """A hand-written or older JSON may store ``1`` for ``1.0``; lists become tuples."""
    data = json.loads('{"lr": 1, "gamma": 1, "fixed_values": [1, 0, 0], "algorithm": "fixed", "hidden": [8]}')
    cfg = config_from_dict(DesignerConfig, data)
    assert cfg.lr == 1.0 and cfg.fixed_values == (1.0, 0.0, 0.0) and cfg.hidden == (8,)
    learner = config_from_dict(LearnerConfig, {"adam_betas": [0, 0.9], "lr": 1})
    assert learner.adam_betas == (0, 0.9)
    with pytest.raises(ValueError, match="hidden"):
        config_from_dict(DesignerConfig, {"hidden": [8.5]})
