"""Wrap any env with a designer's incentive: a stock PettingZoo game and Escape Room, a dozen lines each.

Plays seeded episodes with random (legal) actions and prints social welfare against incentives paid.

    python examples/wrap_any_env.py --episodes 3 --seed 0

The stock game (tictactoe) needs ``pygame``, which every stock PettingZoo env imports; without it that part
is skipped with a note.
"""

from __future__ import annotations

import argparse
import importlib.util

import numpy as np

from incentive_envs.escape_room import LEVER
from incentive_envs.escape_room import parallel_env as escape_room
from wrappers import ActionTable, StepContext, incentive


def escape_room_episode(seed: int) -> dict[str, float]:
    # The paper's action-indexed incentive: 2 coins for pulling the lever; past 20 coins an episode the
    # payments are scaled down to fit.
    env = incentive(
        escape_room(n_agents=5, min_at_lever=2),
        ActionTable([2.0, 0.0, 0.0]),
        budget_per_episode=20.0,
        on_budget="scale",
    )
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    while env.agents:
        # a crude population: each agent heads for the lever with probability 0.4, else anywhere
        env.step({a: LEVER if rng.random() < 0.4 else int(rng.integers(3)) for a in env.agents})
    return env.episode_stats()


def pay_for_the_centre(ctx: StepContext) -> dict[str, float]:
    """Tictactoe: 0.5 to a player who takes the centre square (cell 4)."""
    return {a: 0.5 for a in ctx.agents if int(ctx.actions[a]) == 4}


def tictactoe_episode(seed: int) -> dict[str, float]:
    import pettingzoo

    env = incentive(pettingzoo.make("aec", "classic/tictactoe-v3"), pay_for_the_centre)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _agent in env.agent_iter():
        obs, _reward, terminated, truncated, _info = env.last()
        legal = np.flatnonzero(obs["action_mask"])
        env.step(None if terminated or truncated else int(rng.choice(legal)))
    return env.episode_stats()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    games = {"escape_room(5, 2)": escape_room_episode, "tictactoe": tictactoe_episode}
    print(f"{'env':<18} {'episode':>7} {'welfare':>9} {'paid':>7} {'net':>9} {'steps':>5}")
    for name, play in games.items():
        for episode in range(args.episodes):
            if name == "tictactoe" and importlib.util.find_spec("pygame") is None:
                print(f"{name:<18} skipped: PettingZoo's stock envs need pygame (pip install pygame)")
                break
            stats = play(args.seed + episode)
            print(
                f"{name:<18} {episode:>7} {stats['welfare']:>9.2f} {stats['incentives_paid']:>7.2f} "
                f"{stats['designer_net']:>9.2f} {int(stats['steps']):>5}"
            )


if __name__ == "__main__":
    main()
