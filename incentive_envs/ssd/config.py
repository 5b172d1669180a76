"""Configuration of the Cleanup / Harvest engine: one frozen dataclass, validated on construction, plus presets."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from incentive_envs.ssd import maps
from incentive_envs.validation import check_positive_int, check_probability

__all__ = ["CLEANUP_PRESETS", "HARVEST_PRESETS", "SSDConfig", "make_config"]

HARVEST_SPAWN_PROBS: Final = (0.0, 0.005, 0.02, 0.05)  # SSD harvest.py SPAWN_PROB, by neighbouring apples


@dataclass(frozen=True)
class SSDConfig:
    """Every rule parameter of one Cleanup or Harvest game (see ``incentive_envs.cleanup`` for the rules).

    Attributes:
        game: ``"cleanup"`` or ``"harvest"``.
        ascii_map: the map rows (legend in :mod:`incentive_envs.ssd.maps`).
        n_agents: number of agents (at most the number of spawn points).
        max_steps: episode length; every episode is truncated after exactly this many steps.
        view_radius: agents see a ``(2r+1, 2r+1)`` egocentric window.
        rotation: if True, agents have an orientation, moves are relative to it, two turn actions exist and
            the view is rotated so that the agent faces up. If False, orientation stays UP.
        random_spawn: spawn points drawn at random (SSD) instead of the fixed assignment of the paper.
        random_orientation: initial orientation drawn at random (SSD) instead of UP.
        penalty_beam: adds the "fire" action (tagging beam).
        beam_length: cells covered by each lane of a beam (SSD: 5).
        beam_width: 1 (centre lane only) or 3 lanes.
        fire_cost: reward paid by the agent that fires the penalty beam (SSD: 1).
        hit_penalty: reward lost by an agent hit by a penalty beam (SSD: 50).
        timeout_steps: steps a hit agent is removed from the map (0 = never removed, as in SSD).
        clean_cost: reward paid for firing the cleaning beam (paper: 0).
        apple_respawn_prob, threshold_depletion, threshold_restoration, waste_spawn_prob: Cleanup's
            pollution dynamics (method.md §3.2.3).
        harvest_spawn_probs: Harvest regrowth probability by the number of apples in the neighbourhood
            (index ``min(count, len - 1)``).
        apple_radius: Harvest neighbourhood: offsets ``(dr, dc)`` with ``dr**2 + dc**2 <= apple_radius``
            (SSD compares the squared distance with the radius itself, so radius 2 is the 3x3 square).
    """

    game: str = "cleanup"
    ascii_map: tuple[str, ...] = maps.CLEANUP_SMALL_SYM
    n_agents: int = 2
    max_steps: int = 50
    view_radius: int = 4
    rotation: bool = False
    random_spawn: bool = False
    random_orientation: bool = False
    penalty_beam: bool = False
    beam_length: int = 5
    beam_width: int = 3
    fire_cost: float = 1.0
    hit_penalty: float = 50.0
    timeout_steps: int = 0
    clean_cost: float = 0.0
    apple_respawn_prob: float = 0.5
    threshold_depletion: float = 0.6
    threshold_restoration: float = 0.0
    waste_spawn_prob: float = 0.5
    harvest_spawn_probs: tuple[float, ...] = HARVEST_SPAWN_PROBS
    apple_radius: int = 2

    def __post_init__(self) -> None:
        if self.game not in maps.GAME_CHARS:
            raise ValueError(f"game must be one of {sorted(maps.GAME_CHARS)}, got {self.game!r}")
        if not isinstance(self.ascii_map, str):  # a bare string is rejected by parse_map below
            object.__setattr__(self, "ascii_map", tuple(self.ascii_map))
        check_positive_int("n_agents", self.n_agents, 1)
        check_positive_int("max_steps", self.max_steps, 1)
        check_positive_int("view_radius", self.view_radius, 0)
        check_positive_int("beam_length", self.beam_length, 1)
        check_positive_int("timeout_steps", self.timeout_steps, 0)
        check_positive_int("apple_radius", self.apple_radius, 0)
        if self.random_orientation and not self.rotation:
            raise ValueError("random_orientation=True needs rotation=True (without rotation agents always face up)")
        if self.beam_width not in (1, 3):
            raise ValueError(f"beam_width must be 1 or 3, got {self.beam_width!r}")
        for name in ("rotation", "random_spawn", "random_orientation", "penalty_beam"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("fire_cost", "hit_penalty", "clean_cost"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        for name in ("apple_respawn_prob", "threshold_depletion", "threshold_restoration", "waste_spawn_prob"):
            check_probability(name, getattr(self, name))
        if self.threshold_restoration > self.threshold_depletion:
            raise ValueError(
                f"threshold_restoration ({self.threshold_restoration}) must be <= threshold_depletion "
                f"({self.threshold_depletion})"
            )
        probs = tuple(self.harvest_spawn_probs)
        if not probs:
            raise ValueError("harvest_spawn_probs must not be empty")
        for k, p in enumerate(probs):
            check_probability(f"harvest_spawn_probs[{k}]", p)
        object.__setattr__(self, "harvest_spawn_probs", tuple(float(p) for p in probs))
        self.parsed_map()  # validates the map against the game and the agent count

    def parsed_map(self) -> maps.ParsedMap:
        """The validated map (raises ``ValueError`` on a bad map)."""
        return maps.parse_map(self.ascii_map, self.game, self.n_agents)

    @property
    def action_names(self) -> tuple[str, ...]:
        """Action ids in order: moves, stay, [turns], [fire], [clean] (SSD's ids when everything is on)."""
        names = ["left", "right", "up", "down", "stay"]
        if self.rotation:
            names += ["turn_clockwise", "turn_counterclockwise"]
        if self.penalty_beam:
            names.append("fire")
        if self.game == "cleanup":
            names.append("clean")
        return tuple(names)


CLEANUP_PRESETS: Final[dict[str, dict[str, Any]]] = {
    # Yang et al. 2022 / LIO "cleanup_small_sym" (method.md §3.2.4).
    "small": {},
    # LIO "cleanup_10x10_sym" (method.md §3.2.7).
    "10x10": {
        "ascii_map": maps.CLEANUP_10X10_SYM,
        "n_agents": 3,
        "view_radius": 7,
        "apple_respawn_prob": 0.3,
        "threshold_depletion": 0.4,
    },
    # SSD's original Cleanup: rotation, random spawns, penalty beam, SSD's constants.
    "large": {
        "ascii_map": maps.CLEANUP_LARGE,
        "n_agents": 5,
        "max_steps": 1000,
        "view_radius": 7,
        "rotation": True,
        "random_spawn": True,
        "random_orientation": True,
        "penalty_beam": True,
        "apple_respawn_prob": 0.05,
        "threshold_depletion": 0.4,
    },
}

HARVEST_PRESETS: Final[dict[str, dict[str, Any]]] = {
    # SSD's original Harvest; the 25-step time-out follows Perolat et al. 2017 (SSD itself has none).
    "large": {
        "game": "harvest",
        "ascii_map": maps.HARVEST_LARGE,
        "n_agents": 5,
        "max_steps": 1000,
        "view_radius": 7,
        "rotation": True,
        "random_spawn": True,
        "random_orientation": True,
        "penalty_beam": True,
        "timeout_steps": 25,
    },
}


def make_config(game: str, map_name: str, ascii_map: Sequence[str] | None = None, **overrides: Any) -> SSDConfig:
    """Preset ``map_name`` of ``game`` with ``overrides`` applied (``ascii_map`` replaces the preset's map).

    Raises:
        ValueError: unknown game or preset, or an invalid parameter.
        TypeError: an unknown parameter name.
    """
    presets = {"cleanup": CLEANUP_PRESETS, "harvest": HARVEST_PRESETS}.get(game)
    if presets is None:
        raise ValueError(f"game must be 'cleanup' or 'harvest', got {game!r}")
    if map_name not in presets:
        raise ValueError(f"unknown {game} map_name {map_name!r}; known: {sorted(presets)}")
    fields = {f.name for f in dataclasses.fields(SSDConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown or "game" in overrides:
        raise TypeError(f"unknown {game} parameter(s) {unknown or ['game']}; known: {sorted(fields - {'game'})}")
    params = {"game": game, **presets[map_name], **overrides}
    if ascii_map is not None:
        params["ascii_map"] = ascii_map
    return SSDConfig(**params)
