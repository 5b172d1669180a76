"""Speed of the batched multi-agent envs: each game's native batch against ``batch_of`` (B single envs).

    python examples/benchmarks/batched_env_speed.py                       # ER(5,2), IPD, Cleanup, GTB at B = 1, 16, 256
    python examples/benchmarks/batched_env_speed.py --seconds 0.5 --batch-sizes 1 16 --games ipd

Both paths run in the same process, one after the other, on the same random actions (drawn before timing, valid
for every agent) with each game's default parameters. A measurement steps the batch for ``--seconds`` of wall
time and resets it whenever every copy is done (reset time included, construction and one warm-up step not).
The rate is env-steps/s: copies stepped per second, counting only copies not yet done (Escape Room's copies
finish at different steps and then wait for the common reset; the other games end all copies together).
Writes ``batched_env_speed.json`` next to this script (``--output`` to change) with the machine it ran on.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

# The sibling script (this folder is sys.path[0] when the script runs): one description of the machine.
from env_speed import machine_info

import incentive_envs
from incentive_envs.vector import BatchedParallelEnv, batch_of

GAMES = ("escape_room", "ipd", "cleanup", "gather_trade_build")  # ER(5, 2) is escape_room's default
LABELS = {"escape_room": "ER(5,2)", "ipd": "IPD", "cleanup": "Cleanup 7x7", "gather_trade_build": "GTB"}
POOL = 64  # pre-drawn joint actions, cycled through


def rate(batch: BatchedParallelEnv, seconds: float, seed: int) -> float:
    """Env-steps per second of ``batch`` (see the module docstring)."""
    rng = np.random.default_rng(seed)
    counts = np.array(batch.action_counts)
    pool = (rng.random((POOL, batch.n_envs, batch.n_agents)) * counts).astype(np.int64)
    batch.reset(seed=seed)
    batch.step(pool[0])  # warm-up (first-call costs, Numba's cache load)
    batch.reset(seed=seed)
    steps, k = 0, 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        done = batch.done
        if done.all():
            batch.reset()
            continue
        batch.step(pool[k % POOL])
        steps += int(done.size - np.count_nonzero(done))
        k += 1
    return steps / elapsed


def makers(name: str) -> dict[str, Callable[[int], BatchedParallelEnv]]:
    module = {e.name: e for e in incentive_envs.ENVS}[name].load()
    return {
        "native": lambda b: incentive_envs.make_batched(name, b),
        "batch_of": lambda b: batch_of(functools.partial(module.parallel_env), b),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=list(GAMES), choices=[e.name for e in incentive_envs.ENVS])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 16, 256])
    parser.add_argument("--seconds", type=float, default=2.0, help="wall time per measurement (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    if not args.seconds > 0 or min(args.batch_sizes) < 1:
        raise SystemExit("--seconds must be > 0 and every batch size >= 1")

    header = f"{'game':<12} {'B':>5} {'native env-steps/s':>19} {'batch_of env-steps/s':>21} {'speed-up':>9}"
    print(header)
    print("-" * len(header))
    rows: list[dict[str, Any]] = []
    for name in args.games:
        for b in args.batch_sizes:
            measured = {}
            for path, make in makers(name).items():
                batch = make(b)
                measured[path] = rate(batch, args.seconds, args.seed)
                batch.close()
            row = {"game": LABELS.get(name, name), "env": name, "batch_size": b, "unit": "env-steps/s",
                   "native": round(measured["native"]), "batch_of": round(measured["batch_of"]),
                   "speed_up": round(measured["native"] / measured["batch_of"], 2)}
            rows.append(row)
            print(f"{row['game']:<12} {b:>5} {row['native']:>19,} {row['batch_of']:>21,} "
                  f"{row['speed_up']:>8.1f}x", flush=True)

    machine = {**machine_info(), "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()]}
    report = {
        "machine": machine,
        "settings": {"seconds_per_measurement": args.seconds, "seed": args.seed, "action_pool": POOL,
                     "game_parameters": "defaults (escape_room: N=5, M=2, 5 steps; ipd: 100 rounds; cleanup: 7x7, "
                                        "2 agents, 50 steps; gather_trade_build: 15x15, 4 agents, 100 steps)"},
        "results": rows,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
