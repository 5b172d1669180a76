"""The Gather-Trade-Build ``agent_net="cpu"`` setting: the agents' network without its conv layers."""

from __future__ import annotations

import pytest
import torch

from designer import TrainConfig, Trainer
from designer.tasks import make_task
from designer.tasks.gather_trade_build.networks import SpatialFlatNet


def test_cpu_agents_have_no_conv_and_the_same_interface() -> None:
    paper, cpu = (make_task("gather_trade_build", agent_net=net) for net in ("paper", "cpu"))
    a, b = (Trainer(TrainConfig(task="gather_trade_build", task_kwargs={"agent_net": net}, episodes=1), task=task)
            for net, task in (("paper", paper), ("cpu", cpu)))
    assert any(isinstance(m, torch.nn.Conv2d) for m in a.learner.net.modules())
    assert not any(isinstance(m, torch.nn.Conv2d) for m in b.learner.net.modules())
    assert a.learner.params.keys() != b.learner.params.keys()
    obs = torch.rand(3, len(paper.agents), *paper.obs_shape)
    assert a.learner.logits(a.learner.params, obs).shape == b.learner.logits(b.learner.params, obs).shape
    with pytest.raises(ValueError, match="agent_net must be one of"):
        make_task("gather_trade_build", agent_net="tiny")


def test_no_conv_forward_is_the_flattened_image_through_the_dense_layer() -> None:
    """Without conv layers the image goes to the dense layer as the (C, H, W) flattening of the input slice."""
    torch.manual_seed(0)
    net = SpatialFlatNet((3, 4, 5), 7, 2, (8,), conv=())
    x = torch.rand(6, 3 * 4 * 5 + 7 + 4)
    image = x[:, :60].reshape(-1, 3, 4, 5).flatten(1)
    expected = net.head(torch.cat([net.image_dense(image), x[:, 60:67]], -1))
    torch.testing.assert_close(net(x), expected, rtol=0, atol=0)
