"""Policy, critic and incentive networks used by the designer and its learners.

Agents are either *independent* (one parameter set per agent) or *shared* (one set for all). Both are one
module: layers carry a leading "member" dimension of size ``n_members`` (N for independent agents, 1 for
shared), and inputs are laid out ``[..., N, features]``, so a single ``functional_call`` evaluates every
agent at once and the gradient of the summed loss is each agent's own gradient.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    "AgentNet",
    "EnsembleLinear",
    "ImageIncentiveNet",
    "IncentiveMLP",
    "ValueMLP",
    "build_trunk",
]


class EnsembleLinear(nn.Module):
    """``n_members`` independent linear maps applied to ``x[..., n_members or 1, in]``.

    Initialisation matches ``nn.Linear`` (Kaiming-uniform weights, uniform bias) per member, unless
    ``init_std`` is given (normal weights with that std and zero bias, as the paper's single-layer policy).
    """

    def __init__(
        self,
        n_members: int,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.n_members, self.in_features, self.out_features = n_members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(n_members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(n_members, out_features)) if bias else None
        bound = 1.0 / math.sqrt(in_features)
        with torch.no_grad():
            if init_std is None:
                self.weight.uniform_(-bound, bound)
                if self.bias is not None:
                    self.bias.uniform_(-bound, bound)
            else:
                self.weight.normal_(0.0, init_std)
                if self.bias is not None:
                    self.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] == self.n_members:
            out = torch.einsum("...mi,mio->...mo", x, self.weight)
        elif self.n_members == 1:
            out = torch.einsum("...mi,io->...mo", x, self.weight[0])
        else:
            raise ValueError(f"input has {x.shape[-2]} members on dim -2, layer has {self.n_members}")
        if self.bias is not None:
            out = out + (self.bias if x.shape[-2] == self.n_members else self.bias[0])
        return out


def build_trunk(
    obs_shape: Sequence[int], conv_channels: Sequence[int], kernel: int
) -> tuple[nn.Module | None, int]:
    """A shared convolutional trunk for image observations ``(H, W, C)`` (or ``None`` for flat observations).

    Returns the trunk and the size of its flattened output (the flat observation size when there is none).
    """
    if len(obs_shape) == 1:
        return None, int(obs_shape[0])
    if len(obs_shape) != 3:
        raise ValueError(f"observations must be flat or (H, W, C) images, got shape {tuple(obs_shape)}")
    h, w, c = (int(s) for s in obs_shape)
    layers: list[nn.Module] = []
    for out_c in conv_channels:
        layers += [nn.Conv2d(c, out_c, kernel, padding="same"), nn.ReLU()]
        c = out_c
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), c * h * w


class AgentNet(nn.Module):
    """Actor (logits) for all agents at once: obs ``[..., N, *obs_shape]`` -> logits ``[..., N, n_actions]``.

    Flat observations go through per-member MLP layers (``EnsembleLinear``); image observations first go through
    a conv trunk, one per member (a single one shared by every agent with ``n_members == 1``), then the MLP
    head. ``hidden=()`` with ``bias=False`` and ``init_std`` gives the paper's linear softmax policy.
    """

    def __init__(
        self,
        n_members: int,
        obs_shape: Sequence[int],
        n_actions: int,
        hidden: Sequence[int] = (64, 32),
        *,
        conv_channels: Sequence[int] = (),
        kernel: int = 3,
        obs_scale: float = 1.0,
        bias: bool = True,
        init_std: float | None = None,
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.obs_scale = float(obs_scale)
        self.n_members = n_members
        self.trunk, size = build_trunk(self.obs_shape, conv_channels, kernel)
        if self.trunk is not None and n_members > 1:
            trunks = [self.trunk]
            for _ in range(n_members - 1):
                trunk, _ = build_trunk(self.obs_shape, conv_channels, kernel)
                trunks += [trunk] if trunk is not None else []
            self.trunk = nn.ModuleList(trunks)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [EnsembleLinear(n_members, size, h), nn.ReLU()]
            size = h
        layers.append(EnsembleLinear(n_members, size, n_actions, bias=bias, init_std=init_std))
        self.head = nn.Sequential(*layers)

    def features(self, obs: Tensor) -> Tensor:
        """Flat per-agent features ``[..., N, F]`` (conv trunk applied to images)."""
        x = obs.to(torch.get_default_dtype() if not obs.is_floating_point() else obs.dtype) * self.obs_scale
        if self.trunk is None:
            return x
        lead = x.shape[: -len(self.obs_shape)]
        if isinstance(self.trunk, nn.ModuleList):
            if lead[-1] != self.n_members:
                raise ValueError(f"observations have {lead[-1]} agents on dim -{len(self.obs_shape) + 1}, "
                                 f"the policy has {self.n_members} members")
            parts = [trunk(x[..., m, :, :, :].reshape(-1, *self.obs_shape).permute(0, 3, 1, 2))
                     for m, trunk in enumerate(self.trunk)]
            return torch.stack(parts, 1).reshape(*lead, -1)
        img = x.reshape(-1, *self.obs_shape).permute(0, 3, 1, 2)
        return self.trunk(img).reshape(*lead, -1)

    def forward(self, obs: Tensor) -> Tensor:
        return self.head(self.features(obs))


class ValueMLP(nn.Module):
    """State-value network ``[..., *obs_shape] -> [...]`` (optional conv trunk for images)."""

    def __init__(
        self,
        obs_shape: Sequence[int],
        hidden: Sequence[int] = (64, 64),
        *,
        conv_channels: Sequence[int] = (),
        kernel: int = 3,
        obs_scale: float = 1.0,
    ) -> None:
        super().__init__()
        self.obs_shape = tuple(int(s) for s in obs_shape)
        self.obs_scale = float(obs_scale)
        self.trunk, size = build_trunk(self.obs_shape, conv_channels, kernel)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, 1))
        self.head = nn.Sequential(*layers)

    def forward(self, obs: Tensor) -> Tensor:
        x = obs.to(torch.get_default_dtype() if not obs.is_floating_point() else obs.dtype) * self.obs_scale
        lead = x.shape[: -len(self.obs_shape)]
        if self.trunk is not None:
            x = self.trunk(x.reshape(-1, *self.obs_shape).permute(0, 3, 1, 2))
        else:
            x = x.reshape(-1, self.obs_shape[0])
        return self.head(x).reshape(lead)


class IncentiveMLP(nn.Module):
    """The paper's ``incentive_mlp``: features -> Dense 64 ReLU -> Dense 16 ReLU -> Dense(n_out, no bias) -> sigmoid.

    Outputs lie in (0, 1); the incentive wrapper multiplies them by the designer's scale (2 in the paper).
    """

    def __init__(self, in_features: int, n_out: int, hidden: Sequence[int] = (64, 16)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        size = in_features
        for h in hidden:
            layers += [nn.Linear(size, h), nn.ReLU()]
            size = h
        layers.append(nn.Linear(size, n_out, bias=False))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(self.net(x))


class ImageIncentiveNet(nn.Module):
    """The paper's ``incentive_ssd`` over flat features ``[image (H*W*C), flags (k)]``.

    image -> conv 6@3x3 ReLU -> flatten -> Dense 64 ReLU -> concat flags -> Dense 64 ReLU -> Dense(n_out, no
    bias) -> sigmoid. Taking one flat vector keeps the incentive wrapper's feature contract simple.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        n_flags: int,
        n_out: int,
        *,
        conv_channels: Sequence[int] = (6,),
        hidden: int = 64,
        obs_scale: float = 1.0 / 256.0,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.image_size = math.prod(self.image_shape)
        self.n_flags = int(n_flags)
        self.obs_scale = float(obs_scale)
        if len(self.image_shape) != 3:
            raise ValueError(f"image_shape must be (H, W, C), got {self.image_shape}")
        trunk, size = build_trunk(self.image_shape, conv_channels, 3)
        self.trunk: nn.Module = trunk if trunk is not None else nn.Flatten()
        self.fc_image = nn.Sequential(nn.Linear(size, hidden), nn.ReLU())
        self.fc_joint = nn.Sequential(nn.Linear(hidden + self.n_flags, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, n_out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[:-1]
        img = x[..., : self.image_size].reshape(-1, *self.image_shape).permute(0, 3, 1, 2) * self.obs_scale
        flags = x[..., self.image_size :].reshape(-1, self.n_flags)
        h = self.fc_image(self.trunk(img))
        h = self.fc_joint(torch.cat([h, flags], dim=-1))
        return torch.sigmoid(self.out(h)).reshape(*lead, -1)
