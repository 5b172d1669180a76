"""Write one Cleanup episode to an animated GIF (Pillow): agent_0 cleans, agent_1 harvests greedily.

Usage: ``python examples/cleanup_gif.py [--out cleanup.gif] [--seed 0] [--scale 24] [--random]``.
Pillow comes with the ``plot`` extra (``pip install "incentive-design[plot]"``).
Purple: agent_0, blue: agent_1, brown: waste, light blue: river, cyan: cleaning beam, green: apples.
"""

from __future__ import annotations

import argparse
from collections import deque
from pathlib import Path

import numpy as np

from designer.extras import MissingExtra, require
from incentive_envs import cleanup
from incentive_envs.ssd.engine import APPLE, WALL

LEFT, RIGHT, UP, DOWN, STAY, CLEAN = range(6)


def greedy_step(cells: np.ndarray, start: tuple[int, int], blocked: tuple[int, int]) -> int:
    """First move of a shortest path to the nearest apple (walls and the other agent block), else stay."""
    first = {start: STAY}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if cells[r, c] == APPLE and (r, c) != start:
            return first[(r, c)]
        for dr, dc, act in ((0, -1, LEFT), (0, 1, RIGHT), (-1, 0, UP), (1, 0, DOWN)):
            nxt = (r + dr, c + dc)
            if nxt not in first and cells[nxt] != WALL and nxt != blocked:
                first[nxt] = act if (r, c) == start else first[(r, c)]
                queue.append(nxt)
    return STAY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("cleanup.gif"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=int, default=24, help="pixels per cell")
    parser.add_argument("--random", action="store_true", help="uniformly random actions instead")
    args = parser.parse_args()
    try:
        image = require("PIL.Image", "plot", "cleanup_gif.py", "Pillow")
    except MissingExtra as err:
        raise SystemExit(f"error: {err}") from err

    env = cleanup.parallel_env(render_mode="rgb_array", render_scale=args.scale)
    env.reset(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    frames = [env.render()]
    total = {a: 0.0 for a in env.possible_agents}
    while env.agents:
        if args.random:
            actions = {a: int(rng.integers(env.action_space(a).n)) for a in env.agents}
        else:
            cells = env.engine.cell_grid()[0]
            pos = [tuple(p) for p in env.engine.positions()[0].tolist()]
            actions = {"agent_0": CLEAN, "agent_1": greedy_step(cells, pos[1], pos[0])}
        _, rewards, *_ = env.step(actions)
        for agent, r in rewards.items():
            total[agent] += r
        frames.append(env.render())
    images = [image.fromarray(f) for f in frames]
    images[0].save(args.out, save_all=True, append_images=images[1:], duration=150, loop=0)
    print(f"wrote {args.out} ({len(frames)} frames); apples: {total}")


if __name__ == "__main__":
    main()
