"""Gather-Trade-Build map layouts: where the wood and stone sources and the water are.

A layout is a text file with one map row per line. ``W`` is a wood source, ``S`` a stone source, ``@`` water;
``.`` or a space is open ground. Foundation's own ``map_txt`` files (rows separated by ``;`` on one line) are
read as well, so any of its layouts can be used unchanged.

Packaged layouts (``incentive_envs/gtb/maps/``):

- ``env-pure_and_mixed-15x15``: the map of every GTB experiment in the paper (method.md §3.3.3);
- ``env-pure_and_mixed-25x25``: Foundation's larger variant of the same design.
"""

from __future__ import annotations

import dataclasses
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_LAYOUT", "MapLayout", "load_layout", "packaged_layouts", "parse_layout"]

DEFAULT_LAYOUT: Final = "env-pure_and_mixed-15x15"
_SYMBOLS: Final = {"W": "wood", "S": "stone", "@": "water", ".": None, " ": None}


@dataclasses.dataclass(frozen=True, eq=False)
class MapLayout:
    """Static map: boolean ``(H, W)`` masks of stone sources, wood sources and water.

    Sources hold one unit of their resource at reset and regrow after being collected; water is impassable.
    """

    name: str
    stone: NDArray[np.bool_]
    wood: NDArray[np.bool_]
    water: NDArray[np.bool_]

    def __post_init__(self) -> None:
        shapes = {self.stone.shape, self.wood.shape, self.water.shape}
        if len(shapes) != 1 or self.stone.ndim != 2:
            raise ValueError(f"layout {self.name!r}: masks must share one 2-D shape, got {sorted(shapes)}")
        overlap = (self.stone.astype(int) + self.wood + self.water) > 1
        if overlap.any():
            r, c = np.argwhere(overlap)[0]
            raise ValueError(f"layout {self.name!r}: tile ({r}, {c}) has more than one of stone/wood/water")
        for m in (self.stone, self.wood, self.water):
            m.setflags(write=False)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.stone.shape[0]), int(self.stone.shape[1]))

    def corners(self) -> tuple[tuple[int, int], ...]:
        """Fixed start tiles by skill rank (worst first): top-right, bottom-left, top-left, bottom-right."""
        h, w = self.shape
        return ((0, w - 1), (h - 1, 0), (0, 0), (h - 1, w - 1))

    def render(self) -> str:
        """The layout in the packaged text format."""
        grid = np.full(self.shape, ".", dtype="<U1")
        grid[self.wood], grid[self.stone], grid[self.water] = "W", "S", "@"
        return "\n".join("".join(row) for row in grid)


def parse_layout(text: str, name: str = "<text>") -> MapLayout:
    """Parse a layout from text (one row per line, or Foundation's ``;``-separated rows).

    Raises:
        ValueError: ragged rows, an unknown symbol, or an empty map.
    """
    sep = ";" if ";" in text else "\n"
    rows = [row.strip("\r\n") for row in text.split(sep)]
    while rows and rows[-1] == "":
        rows.pop()
    if not rows:
        raise ValueError(f"layout {name!r} is empty")
    width = len(rows[0])
    for r, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"layout {name!r}: row {r} has {len(row)} tiles, row 0 has {width}")
        bad = sorted(set(row) - set(_SYMBOLS))
        if bad:
            raise ValueError(f"layout {name!r}: row {r} has unknown symbols {bad}; expected one of 'WS@. '")
    grid = np.array([list(row) for row in rows])
    return MapLayout(name=name, stone=grid == "S", wood=grid == "W", water=grid == "@")


def packaged_layouts() -> list[str]:
    """Names of the layouts shipped with the package."""
    folder = resources.files("incentive_envs.gtb").joinpath("maps")
    return sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))


def load_layout(layout: str | Path | MapLayout = DEFAULT_LAYOUT) -> MapLayout:
    """A packaged layout by name, a layout file by path, or ``layout`` itself if already parsed.

    Raises:
        ValueError: the name is neither packaged nor an existing file.
    """
    if isinstance(layout, MapLayout):
        return layout
    name = str(layout)
    if name in packaged_layouts():
        text = (resources.files("incentive_envs.gtb") / "maps" / f"{name}.txt").read_text()
        return parse_layout(text, name)
    path = Path(name)
    if path.is_file():
        return parse_layout(path.read_text(), path.stem)
    raise ValueError(f"unknown layout {name!r}: not a packaged layout {packaged_layouts()} and not a file")
