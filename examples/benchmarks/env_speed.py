"""Env throughput for every registered game: parallel API, AEC API and the Gymnasium joint-action view.

Random actions are drawn before timing (from seeded spaces), so the numbers measure the env, not the sampler.
Each measurement runs single-threaded on one env for ``--seconds`` of wall time, resetting whenever an
episode ends (reset time is included, construction is not).

    python examples/benchmarks/env_speed.py                      # every game, 2 s per measurement
    python examples/benchmarks/env_speed.py --envs ipd,escape_room --seconds 0.5

Writes ``env_speed.json`` next to this script (``--output`` to change) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium

import incentive_envs
from incentive_envs import EnvEntry

POOL = 4096  # pre-generated actions per agent, cycled through
CHECK_EVERY = 64  # steps between clock reads


@dataclass
class Result:
    env: str
    n_agents: int
    parallel_env_steps_per_s: float
    parallel_agent_steps_per_s: float
    aec_agent_steps_per_s: float
    aec_env_steps_per_s: float
    gym_joint_env_steps_per_s: float


def action_pool(space: Any, seed: int) -> list[Any]:
    space.seed(seed)
    return [space.sample() for _ in range(POOL)]


def timed(seconds: float, body: Callable[[], int]) -> tuple[int, float]:
    """Call ``body`` (which does ``CHECK_EVERY`` steps and returns a count) until ``seconds`` have passed."""
    total, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        total += body()
    return total, elapsed


def bench_parallel(mod: Any, seconds: float, seed: int) -> tuple[float, float]:
    env = mod.parallel_env()
    pools = {a: action_pool(env.action_space(a), seed + i) for i, a in enumerate(env.possible_agents)}
    env.reset(seed=seed)
    state = {"i": 0, "agent_steps": 0}

    def body() -> int:
        i, agent_steps = state["i"], 0
        for _ in range(CHECK_EVERY):
            if not env.agents:
                env.reset()
            live = env.agents
            env.step({a: pools[a][i % POOL] for a in live})
            agent_steps += len(live)
            i += 1
        state["i"] = i
        state["agent_steps"] += agent_steps
        return CHECK_EVERY

    steps, elapsed = timed(seconds, body)
    return steps / elapsed, state["agent_steps"] / elapsed


def bench_aec(mod: Any, seconds: float, seed: int) -> tuple[float, float]:
    env = mod.env()
    n = len(env.possible_agents)
    pools = {a: action_pool(env.action_space(a), seed + i) for i, a in enumerate(env.possible_agents)}
    env.reset(seed=seed)
    state = {"i": 0, "it": iter(env.agent_iter())}

    def body() -> int:
        i, it = state["i"], state["it"]
        for _ in range(CHECK_EVERY):
            agent = next(it, None)
            if agent is None:
                env.reset()
                it = iter(env.agent_iter())
                agent = next(it)
            done = env.terminations[agent] or env.truncations[agent]
            env.step(None if done else pools[agent][i % POOL])
            i += 1
        state["i"], state["it"] = i, it
        return CHECK_EVERY

    turns, elapsed = timed(seconds, body)
    return turns / elapsed, turns / n / elapsed


def bench_gym_joint(entry: EnvEntry, seconds: float, seed: int) -> float:
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}-v0")  # as users get it: checker + order wrappers
    pool = action_pool(env.action_space, seed)
    env.reset(seed=seed)
    state = {"i": 0}

    def body() -> int:
        i = state["i"]
        for _ in range(CHECK_EVERY):
            _, _, term, trunc, _ = env.step(pool[i % POOL])
            if term or trunc:
                env.reset()
            i += 1
        state["i"] = i
        return CHECK_EVERY

    steps, elapsed = timed(seconds, body)
    return steps / elapsed


def machine_info() -> dict[str, Any]:
    versions = {p: importlib.metadata.version(p) for p in ("numpy", "gymnasium", "pettingzoo")}
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def select(names: str | None) -> list[EnvEntry]:
    available = [e for e in incentive_envs.ENVS if importlib.util.find_spec(e.module) is not None]
    if names is None:
        return available
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    by_name = {e.name: e for e in available}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown envs {unknown}; available: {sorted(by_name)}")
    return [by_name[n] for n in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", help="comma-separated game names (default: every registered game)")
    parser.add_argument("--seconds", type=float, default=2.0, help="wall time per measurement (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    if not args.seconds > 0:
        raise SystemExit(f"--seconds must be > 0, got {args.seconds}")

    results = []
    header = f"{'env':<20} {'agents':>6} {'par env/s':>11} {'par agent/s':>12} {'aec agent/s':>12} "
    header += f"{'aec env/s':>11} {'gym env/s':>11}"
    print(header)
    print("-" * len(header))
    for entry in select(args.envs):
        mod = entry.load()
        par_env, par_agent = bench_parallel(mod, args.seconds, args.seed)
        aec_agent, aec_env = bench_aec(mod, args.seconds, args.seed)
        gym_env = bench_gym_joint(entry, args.seconds, args.seed)
        n = len(mod.parallel_env().possible_agents)
        r = Result(entry.name, n, par_env, par_agent, aec_agent, aec_env, gym_env)
        results.append(r)
        print(
            f"{r.env:<20} {n:>6} {par_env:>11,.0f} {par_agent:>12,.0f} {aec_agent:>12,.0f} "
            f"{aec_env:>11,.0f} {gym_env:>11,.0f}",
            flush=True,
        )

    report = {
        "machine": machine_info(),
        "settings": {"seconds_per_measurement": args.seconds, "seed": args.seed, "action_pool": POOL},
        "results": [asdict(r) for r in results],
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
