"""ASCII maps of the sequential social dilemmas, and the parser that validates any user map.

Legend (row 0 at the top):

| char | meaning                                                                 | games    |
|------|-------------------------------------------------------------------------|----------|
| ``@`` | wall: blocks moves and beams                                           | both     |
| `` `` | empty floor                                                            | both     |
| ``P`` | agent spawn point (empty floor)                                        | both     |
| ``A`` | apple at reset, and an apple regrowth cell                             | Harvest  |
| ``B`` | apple spawn cell, empty at reset                                       | Cleanup  |
| ``H`` | waste at reset (a potential waste cell)                                | Cleanup  |
| ``R`` | river: clean water at reset (a potential waste cell)                   | Cleanup  |
| ``S`` | stream: decorative water, walkable, never polluted                     | Cleanup  |

The paper's 7x7 map and the LIO 10x10 map come from Yang et al.'s code (method.md §3.2.1, §3.2.7); the large
Cleanup and Harvest maps are the ones of the SSD repository (``social_dilemmas/maps.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CLEANUP_10X10_SYM",
    "CLEANUP_LARGE",
    "CLEANUP_SMALL_SYM",
    "GAME_CHARS",
    "HARVEST_LARGE",
    "ParsedMap",
    "parse_map",
]

CLEANUP_SMALL_SYM: Final[tuple[str, ...]] = (
    "@@@@@@@",
    "@H  PB@",
    "@H   B@",
    "@    B@",
    "@    B@",
    "@ P  B@",
    "@@@@@@@",
)

CLEANUP_10X10_SYM: Final[tuple[str, ...]] = (
    "@@@@@@@@@@",
    "@HH   P B@",
    "@RR    BB@",
    "@HH     B@",
    "@RR    BB@",
    "@HH P   B@",
    "@RR    BB@",
    "@HH     B@",
    "@RRP   BB@",
    "@@@@@@@@@@",
)

CLEANUP_LARGE: Final[tuple[str, ...]] = (
    "@@@@@@@@@@@@@@@@@@",
    "@HHHHHH     BBBBB@",
    "@RRRRRR      BBBB@",
    "@HHHHHH     BBBBB@",
    "@RRRRR  P    BBBB@",
    "@HHHHH    P BBBBB@",
    "@RRRRR       BBBB@",
    "@HHHHH      BBBBB@",
    "@SSSSSSHHHHHHBBBB@",
    "@SSSSSSHHHHHHBBBB@",
    "@HHHHH   P P BBBB@",
    "@RRRRR   P  BBBBB@",
    "@HHHHHH    P BBBB@",
    "@RRRRRR P   BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRR    P  BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR  P P BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRR       BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRRR      BBBBB@",
    "@HHHHH       BBBB@",
    "@RRRR       BBBBB@",
    "@@@@@@@@@@@@@@@@@@",
)

HARVEST_LARGE: Final[tuple[str, ...]] = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@ A A  AAA  AAA  A A    A AA   AA AA @",
    "@  A A  AAA    A A  AAA    AAA  A    @",
    "@   AAA  A      AAA  A    AAAA       @",
    "@ P  A       A  A AAA    A  A      P @",
    "@A  AAA  A  A  AAA A    AAAA     P   @",
    "@    A A   AAA  A A      A AA   A  P @",
    "@     AAA   A A  AAA      AA   AAA P @",
    "@ A    A     AAA  A  P          A    @",
    "@       P     A         P  P P     P @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)

GAME_CHARS: Final[dict[str, frozenset[str]]] = {
    "cleanup": frozenset("@ PBHRS"),
    "harvest": frozenset("@ PA"),
}


@dataclass(frozen=True)
class ParsedMap:
    """A validated map as a character array plus the cell lists the engine needs (row-major order)."""

    chars: NDArray[np.str_]
    spawn_points: tuple[tuple[int, int], ...]
    apple_cells: tuple[tuple[int, int], ...]
    waste_cells: tuple[tuple[int, int], ...]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.chars.shape[0]), int(self.chars.shape[1])


def parse_map(ascii_map: Sequence[str], game: str, n_agents: int) -> ParsedMap:
    """Validate ``ascii_map`` for ``game`` and return its cells.

    Raises:
        ValueError: the map is empty or ragged, has a character the game does not know (row, column and
            character are named), has fewer spawn points than ``n_agents``, or has no apple cell.
    """
    if game not in GAME_CHARS:
        raise ValueError(f"game must be one of {sorted(GAME_CHARS)}, got {game!r}")
    if isinstance(ascii_map, str) or not isinstance(ascii_map, Sequence):
        raise ValueError(f"ascii_map must be a sequence of row strings, got {type(ascii_map).__name__}")
    rows = list(ascii_map)
    if not rows or any(not isinstance(r, str) for r in rows):
        raise ValueError("ascii_map must be a non-empty sequence of strings")
    width = len(rows[0])
    if width == 0:
        raise ValueError("ascii_map rows must not be empty")
    for i, row in enumerate(rows):
        if len(row) != width:
            raise ValueError(f"ascii_map is ragged: row {i} has length {len(row)}, row 0 has {width}")
    allowed = GAME_CHARS[game]
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            if ch not in allowed:
                raise ValueError(
                    f"ascii_map has unknown character {ch!r} at row {i}, column {j} for {game}; "
                    f"allowed: {''.join(sorted(allowed))!r}"
                )
    chars = np.array([list(r) for r in rows], dtype="<U1")
    cells = [(i, j) for i in range(len(rows)) for j in range(width)]
    spawn = tuple(c for c in cells if chars[c] == "P")
    apple_char = "A" if game == "harvest" else "B"
    apples = tuple(c for c in cells if chars[c] == apple_char)
    waste = tuple(c for c in cells if chars[c] in ("H", "R"))
    if len(spawn) < n_agents:
        raise ValueError(f"ascii_map has {len(spawn)} spawn points ('P') but n_agents={n_agents} need one each")
    if not apples:
        raise ValueError(f"ascii_map has no apple cell ({apple_char!r}) for {game}")
    return ParsedMap(chars=chars, spawn_points=spawn, apple_cells=apples, waste_cells=waste)
