"""Play Escape Room: one seeded random episode through PettingZoo, then the same actions through Gymnasium.

Run: ``python examples/play_env.py``. Both APIs drive the same game, so both report the same social welfare.
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pettingzoo

import incentive_envs  # noqa: F401  (registers the games with both registries)

SEED = 0
KWARGS = {"n_agents": 3, "min_at_lever": 1, "render_mode": "ansi"}

# PettingZoo parallel API: every live agent acts each step.
env = pettingzoo.make("parallel", "incentive_envs/escape_room-v0", **KWARGS)
env.reset(seed=SEED)
for i, agent in enumerate(env.possible_agents):
    env.action_space(agent).seed(SEED + i)
print(env.render())
played, welfare = [], 0.0
while env.agents:
    actions = {agent: int(env.action_space(agent).sample()) for agent in env.agents}
    played.append([actions[agent] for agent in env.possible_agents])
    _, rewards, terminations, truncations, _ = env.step(actions)
    welfare += sum(rewards.values())
    print(env.render(), "| rewards", rewards)
print(f"welfare (pettingzoo) {welfare:g}")

# Gymnasium joint-action view: one MultiDiscrete action for all agents, reward = welfare of the step.
genv = gymnasium.make("incentive_envs/EscapeRoom-v0", **KWARGS)
genv.reset(seed=SEED)
total = 0.0
for joint in played:
    _, reward, terminated, truncated, info = genv.step(np.array(joint))
    total += float(reward)
    print(genv.render(), "| rewards", info["rewards"])
print(f"welfare (gymnasium) {total:g}")
