"""The paper's Gather-Trade-Build networks over the flat vectors the rollout logs (method.md §2.5, §5.3).

Agents read ``[spatial (9, 11, 11) | flat (138) | mask (50)]`` and the planner ``[map (8, 15, 15) | features]``
(:class:`incentive_envs.gtb.GTBSchema` gives the shapes); every network keeps any leading dims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from designer.learners import NetFactory
from incentive_envs.gtb import GTBSchema

__all__ = ["PlannerNet", "SpatialFlatNet", "StateCritic", "TaxNet", "agent_net_factory"]


def _conv_trunk(channels: int, conv: Sequence[int], kernel: int) -> tuple[nn.Module, int]:
    layers: list[nn.Module] = []
    for out_c in conv:
        layers += [nn.Conv2d(channels, out_c, kernel, padding="same"), nn.ReLU()]
        channels = out_c
    return nn.Sequential(*layers, nn.Flatten()), channels


class SpatialFlatNet(nn.Module):
    """The paper's image+vector network (``actor_image_vec``/``tax_image_vec``) over one flat input vector.

    ``x = [image (C, H, W) flattened | vector (F) | ignored tail]`` -> 2 conv 6@5x5 SAME ReLU on the image ->
    flatten -> Dense(F) ReLU -> concat vector -> hidden Dense ReLU layers -> Dense(n_out) (bias optional).
    Any leading dims are kept: ``[..., D] -> [..., n_out]``.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        vector_size: int,
        n_out: int,
        hidden: Sequence[int],
        *,
        conv: Sequence[int] = (6, 6),
        kernel: int = 5,
        out_bias: bool = True,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.image_size = math.prod(self.image_shape)
        self.vector_size = int(vector_size)
        self.trunk, ch = _conv_trunk(self.image_shape[0], conv, kernel)
        self.has_conv = bool(conv)
        self.image_dense = nn.Sequential(nn.Linear(ch * self.image_size // self.image_shape[0], self.vector_size),
                                         nn.ReLU())
        layers: list[nn.Module] = []
        size = 2 * self.vector_size
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, n_out, bias=out_bias))
        self.head = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        x = x.reshape(-1, x.shape[-1])
        # channels-last images: oneDNN's convolutions with these few channels run forward + backward ~1.6x faster
        # on a training batch (the layout changes no value, only the order of the sums)
        image = x[:, : self.image_size]  # the (C, H, W) image flattened: what the trunk's Flatten gives without conv
        if self.has_conv:
            image = self.trunk(image.reshape(-1, *self.image_shape).contiguous(memory_format=torch.channels_last))
        vector = x[:, self.image_size : self.image_size + self.vector_size]
        h = torch.cat([self.image_dense(image), vector], dim=-1)
        return self.head(h).reshape(*lead, -1)


class PlannerNet(SpatialFlatNet):
    """:class:`SpatialFlatNet` on the planner's state ``[map (8, H, W) | features]``."""

    def __init__(self, schema: GTBSchema, n_out: int, hidden: Sequence[int], out_bias: bool = True) -> None:
        super().__init__(schema.map_shape, schema.state_flat, n_out, hidden, out_bias=out_bias)


class TaxNet(nn.Module):
    """The MetaGrad tax function: :class:`PlannerNet` -> Dense(K, no bias) -> sigmoid = K marginal rates in [0, 1]."""

    def __init__(self, schema: GTBSchema, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        self.body = PlannerNet(schema, schema.n_brackets, hidden, out_bias=False)

    def forward(self, state: Tensor) -> Tensor:
        return torch.sigmoid(self.body(state))


class StateCritic(nn.Module):
    """Value of the planner's state: :class:`PlannerNet` with one output, ``[..., S] -> [...]``."""

    def __init__(self, schema: GTBSchema, hidden: Sequence[int]) -> None:
        super().__init__()
        self.body = PlannerNet(schema, 1, hidden)

    def forward(self, state: Tensor) -> Tensor:
        return self.body(state).squeeze(-1)


AGENT_CONV = {"paper": (6, 6), "cpu": ()}
"""The agents' conv trunk per ``agent_net`` setting: the paper's two 6@5x5 layers, or none (``"cpu"``: the
11x11 view flattened into the dense layer, as EconoJax's flat observations; several times cheaper on a CPU)."""


def agent_net_factory(schema: GTBSchema, agent_net: str = "paper") -> NetFactory:
    """Shared actor/critic for the agents' flat observation (the mask tail is not an input; it masks)."""
    if agent_net not in AGENT_CONV:
        raise ValueError(f"agent_net must be one of {sorted(AGENT_CONV)}, got {agent_net!r}")

    def make(members: int, n_out: int, hidden: tuple[int, ...], is_critic: bool) -> nn.Module:
        if members != 1:
            raise ValueError("GTB agents share one policy (LearnerConfig.shared=True)")
        return SpatialFlatNet(schema.spatial_shape, schema.flat_size, n_out, hidden, conv=AGENT_CONV[agent_net])

    return make
