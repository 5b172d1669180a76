"""Gather-Trade-Build speed: env-steps per second with random masked actions.

Measures the PettingZoo env (one world, dict API, the actions sampled from ``infos[agent]["action_mask"]``) and
the batched engine (:class:`incentive_envs.gtb.BatchedGTB`, array API) at several batch sizes. One env-step is
one world advancing one step with all 4 agents acting. Each case runs whole 100-step episodes; the best of
``--repeats`` timings is reported (the machines are shared, the best run is the least disturbed one) together
with the median, both in wall-clock time and in this process's CPU time (``time.process_time``; on a busy
shared machine the CPU-time rate is the better estimate of the speed on an idle one).

Run: ``python examples/benchmarks/gtb_speed.py`` (about a minute); ``--quick`` for a smoke run.
Writes ``gtb_speed.json`` next to this script.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from incentive_envs import gather_trade_build
from incentive_envs.economics import US_FEDERAL_2018_RATES
from incentive_envs.gtb import BatchedGTB

FOUNDATION_REFERENCE = 600  # env-steps/s of AI Economist's GTB on these machines (project brief)


def sample_masked(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform over the allowed actions along the last axis."""
    return (rng.random(mask.shape) * mask).argmax(-1)


def time_parallel_env(episodes: int, seed: int) -> tuple[float, float]:
    env = gather_trade_build.parallel_env()
    rng = np.random.default_rng(seed)
    _, infos = env.reset(seed=seed)
    steps = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(episodes):
        _, infos = env.reset()
        env.set_tax_rates(US_FEDERAL_2018_RATES)
        agents = env.possible_agents
        while env.agents:
            mask = np.stack([infos[a]["action_mask"] for a in agents])
            actions = dict(zip(agents, sample_masked(mask, rng).tolist()))
            _, _, _, _, infos = env.step(actions)
            steps += 1
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def time_batched(n_envs: int, episodes: int, seed: int) -> tuple[float, float]:
    sim = BatchedGTB(n_envs)
    rng = np.random.default_rng(seed)
    sim.reset(seed=seed)
    steps = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(episodes):
        out = sim.reset()
        sim.set_tax_rates(US_FEDERAL_2018_RATES)
        while not out.done:
            out = sim.step(sample_masked(out.obs.action_mask, rng))
            steps += n_envs
    return steps / (time.perf_counter() - start), steps / (time.process_time() - cpu)


def machine_info() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=20, help="episodes per timing of the single env")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    episodes, repeats = (2, 1) if args.quick else (args.episodes, args.repeats)

    info = machine_info()
    cases: list[tuple[str, int, Any]] = [
        ("PettingZoo ParallelEnv (dict API)", 1, lambda: time_parallel_env(episodes, 0))
    ]
    for b in args.batch_sizes:
        eps = max(1, episodes * 4 // b) if b > 1 else episodes  # keep each timing at a similar wall time
        cases.append((f"BatchedGTB engine, B={b}", b, lambda b=b, eps=eps: time_batched(b, eps, 0)))

    rows = []
    for name, b, run in cases:
        run()  # warm-up (imports, allocations)
        wall, cpu = zip(*(run() for _ in range(repeats)))
        rows.append({"case": name, "n_envs": b, "best_steps_per_s": max(wall),
                     "median_steps_per_s": statistics.median(wall), "best_steps_per_cpu_s": max(cpu),
                     "wall_runs": list(wall), "cpu_runs": list(cpu)})

    info["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"Gather-Trade-Build speed, random masked actions ({info['cpu']}, {info['logical_cpus']} CPUs, "
          f"load {info['load_average_at_start']})")
    print(f"{'case':36s} {'best steps/s':>13s} {'median':>9s} {'per CPU-s':>10s} {'x AI Economist':>15s}")
    for row in rows:
        print(f"{row['case']:36s} {row['best_steps_per_s']:13,.0f} {row['median_steps_per_s']:9,.0f} "
              f"{row['best_steps_per_cpu_s']:10,.0f} {row['best_steps_per_s'] / FOUNDATION_REFERENCE:15.1f}")
    if not args.quick:
        args.out.write_text(json.dumps({"machine": info, "foundation_reference_steps_per_s": FOUNDATION_REFERENCE,
                                        "episodes": episodes, "repeats": repeats, "results": rows}, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
