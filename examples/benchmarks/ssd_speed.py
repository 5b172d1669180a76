"""Speed of the Cleanup engine with random actions: single PettingZoo env and the batched NumPy API.

Usage: ``python examples/benchmarks/ssd_speed.py [--seconds 3] [--batch-sizes 1 64 256 1024]``.
Prints a table and writes ``ssd_speed.json`` (numbers plus machine info) next to this script.
Reference points (not measured here): original SSD ~1,700 env-steps/s, Melting Pot ~540,
JaxMARL's simplest batched grid ~540k agent-steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from incentive_envs import cleanup, harvest


def single_env(seconds: float, **params: object) -> float:
    """Env-steps per second through ``ParallelEnv.step`` (validation, observations, infos included)."""
    env = cleanup.parallel_env(**params)
    env.reset(seed=0)
    n_act = env.action_space("agent_0").n
    acts = np.random.default_rng(0).integers(0, n_act, size=(100_000, len(env.possible_agents))).tolist()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for row in acts[steps % 90_000 : steps % 90_000 + 1000]:
            if not env.agents:
                env.reset()
            env.step(dict(zip(env.possible_agents, row)))
        steps += 1000
    return steps / (time.perf_counter() - start)


def batched(module: object, batch_size: int, seconds: float, **params: object) -> float:
    """Agent-steps per second of ``BatchedSSD.step`` (observations included), resets included."""
    engine = module.make_batch(batch_size, **params)  # type: ignore[attr-defined]
    engine.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, engine.n_actions, size=(64, batch_size, engine.n_agents))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _, _, done, _ = engine.step(acts[steps % 64])
        steps += 1
        if done[0]:
            engine.reset()
    return steps * batch_size * engine.n_agents / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ssd_speed.json"))
    args = parser.parse_args()

    rows = [("cleanup 7x7", "single ParallelEnv", 1, "env-steps/s", single_env(args.seconds))]
    for b in args.batch_sizes:
        rows.append(("cleanup 7x7", "BatchedSSD", b, "agent-steps/s", batched(cleanup, b, args.seconds)))
    large = batched(cleanup, 64, args.seconds, map_name="large")
    rows.append(("cleanup large", "BatchedSSD", 64, "agent-steps/s", large))
    rows.append(("harvest large", "BatchedSSD", 64, "agent-steps/s", batched(harvest, 64, args.seconds)))

    print(f"{'game':<14} {'api':<20} {'B':>5} {'rate':>14}  unit")
    for game, api, b, unit, rate in rows:
        print(f"{game:<14} {api:<20} {b:>5} {rate:>14,.0f}  {unit}")
    result = {
        "results": [{"game": g, "api": a, "batch_size": b, "unit": u, "rate": round(r)} for g, a, b, u, r in rows],
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "note": "2 shared cores; other jobs were running, so treat the numbers as lower bounds",
        },
        "seconds_per_measurement": args.seconds,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
