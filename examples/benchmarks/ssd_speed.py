"""Speed of the Cleanup / Harvest engine with random actions: single PettingZoo env, batched API, JIT start-up.

Usage: ``python examples/benchmarks/ssd_speed.py [--seconds 3] [--batch-sizes 1 64 256 1024] [--no-startup]``.
Prints a table with the vectorised-NumPy engine's numbers ("before", measured on this machine before the rules
moved into Numba kernels) next to the current ones, and writes ``ssd_speed.json`` (numbers plus machine info)
next to this script. Start-up runs a fresh interpreter twice with an empty ``NUMBA_CACHE_DIR``: the first run
compiles the kernels (cold, once per machine), the second loads them from the cache (warm).
Targets (issue "Cleanup and Harvest"): single env >= 30,000 env-steps/s on the 7x7 map, batched >= 1,000,000
agent-steps/s at B >= 256, observations included. Reference points (not measured here): original SSD
~1,700 env-steps/s, Melting Pot ~540, JaxMARL's simplest batched grid ~540k agent-steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import numba
import numpy as np

from incentive_envs import cleanup, harvest

# The NumPy engine (commit ecab0d7, 2-core shared machine, load average 4.7): (game, api, B) -> rate.
BEFORE: Final[dict[tuple[str, str, int], int]] = {
    ("cleanup 7x7", "single ParallelEnv", 1): 4574,
    ("cleanup 7x7", "BatchedSSD", 1): 10338,
    ("cleanup 7x7", "BatchedSSD", 64): 258394,
    ("cleanup 7x7", "BatchedSSD", 256): 741455,
    ("cleanup 7x7", "BatchedSSD", 1024): 481801,
    ("cleanup large", "BatchedSSD", 64): 231264,
    ("harvest large", "BatchedSSD", 64): 220284,
}

_STARTUP_SCRIPT: Final = """
import time
t0, c0 = time.perf_counter(), time.process_time()
import numpy as np
from incentive_envs import cleanup
env = cleanup.parallel_env()
env.reset(seed=0)
env.step({a: 5 for a in env.agents})
env.state()
batch = cleanup.make_batch(2)
batch.reset(seed=0)
batch.step(np.zeros((2, 2), dtype=np.int64))
batch.spawn_probabilities()
batch.regrowth_probabilities()
print(time.perf_counter() - t0, time.process_time() - c0)
"""


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


def startup() -> dict[str, float]:
    """Wall and CPU seconds from ``import`` to the first step of both APIs, with a cold then a warm JIT cache."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold", "warm"):
            res = subprocess.run([sys.executable, "-c", _STARTUP_SCRIPT], env=env, capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"start-up measurement failed:\n{res.stderr}")
            wall, cpu = (float(x) for x in res.stdout.split())
            out[f"{label}_wall_s"], out[f"{label}_cpu_s"] = round(wall, 2), round(cpu, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--no-startup", action="store_true", help="skip the cold/warm start-up measurement")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("ssd_speed.json"))
    args = parser.parse_args()

    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = [("cleanup 7x7", "single ParallelEnv", 1, "env-steps/s", single_env(args.seconds))]
    for b in args.batch_sizes:
        rows.append(("cleanup 7x7", "BatchedSSD", b, "agent-steps/s", batched(cleanup, b, args.seconds)))
    large = batched(cleanup, 64, args.seconds, map_name="large")
    rows.append(("cleanup large", "BatchedSSD", 64, "agent-steps/s", large))
    rows.append(("harvest large", "BatchedSSD", 64, "agent-steps/s", batched(harvest, 64, args.seconds)))
    load_after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    start = None if args.no_startup else startup()

    print(f"{'game':<14} {'api':<20} {'B':>5} {'before (NumPy)':>15} {'after (Numba)':>15} {'speed-up':>9}  unit")
    results = []
    for game, api, b, unit, rate in rows:
        before = BEFORE.get((game, api, b))
        gain = f"{rate / before:8.1f}x" if before else f"{'-':>9}"
        shown = f"{before:15,}" if before else f"{'-':>15}"
        print(f"{game:<14} {api:<20} {b:>5} {shown} {rate:15,.0f} {gain}  {unit}")
        results.append({"game": game, "api": api, "batch_size": b, "unit": unit, "before": before, "rate": round(rate)})
    if start is not None:
        print(f"start-up to first steps: cold JIT cache {start['cold_wall_s']} s wall / {start['cold_cpu_s']} s CPU")
        print(f"                         warm cache {start['warm_wall_s']} s wall / {start['warm_cpu_s']} s CPU")
    result = {
        "results": results,
        "startup": start,
        "machine": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": [load_before, load_after],
            "note": "2 cores shared with other jobs (load average before and after the rate measurements); "
            "'before' is the NumPy engine measured on this machine at load 4.7",
        },
        "seconds_per_measurement": args.seconds,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
