"""Gather-Trade-Build speed: env-steps per second with random masked actions, against AI Economist's Foundation.

Measures, in one run, the PettingZoo env (one world, dict API), the batched engine
(:class:`incentive_envs.gtb.BatchedGTB`, array API) at several batch sizes and, when its interpreter is given,
ai-economist 1.7.1's ``layout_from_file/simple_wood_and_stone`` with the paper's components and a fixed
US-federal tax (method.md §3.3). One env-step is one world advancing one step with all 4 agents acting. Every
case plays whole episodes of ``--episode-length`` steps (default 1000) with the same sampler (uniform over the
allowed actions of each agent's mask) and times only the ``step`` calls, both in wall-clock time and in this
process's CPU time (``time.process_time``; on a shared, loaded machine other processes stretch the wall time of
whichever run they overlap, and CPU time is the steadier measure). The single env and Foundation are timed
alternately, ``--repeats`` times each, so that both see the same load; the ratio of each pair is reported and
the median ratio is the headline number.

ai-economist needs its own environment (it pins old NumPy/SciPy)::

    python -m venv /work/aie-venv && /work/aie-venv/bin/pip install --no-deps ai-economist==1.7.1
    /work/aie-venv/bin/pip install numpy==1.23.5 scipy==1.10.1 lz4 pycryptodome GPUtil

Run: ``OMP_NUM_THREADS=1 python examples/benchmarks/gtb_speed.py --aie-python /work/aie-venv/bin/python``
(or set ``AIE_PYTHON``; a few minutes); ``--quick`` for a smoke run. Writes ``gtb_speed.json`` next to this
script. This file is also the Foundation worker: ``--aie-worker`` (run by that interpreter) imports only NumPy
and ai-economist and prints its timings as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

FOUNDATION_CONFIG: dict[str, Any] = {
    "scenario_name": "layout_from_file/simple_wood_and_stone",
    "components": [
        ("Build", {"skill_dist": "pareto", "payment_max_skill_multiplier": 3, "build_labor": 10, "payment": 10}),
        ("ContinuousDoubleAuction", {"max_num_orders": 5, "max_bid_ask": 10, "order_labor": 0.25,
                                     "order_duration": 50}),
        ("Gather", {"move_labor": 1, "collect_labor": 1, "skill_dist": "none"}),
        ("PeriodicBracketTax", {"period": 10, "bracket_spacing": "us-federal", "usd_scaling": 1000,
                                "tax_model": "us-federal-single-filer-2018-scaled"}),
    ],
    "env_layout_file": "env-pure_and_mixed-15x15.txt",
    "starting_agent_coin": 10,
    "fixed_four_skill_and_loc": True,
    "n_agents": 4,
    "world_size": [15, 15],
    "multi_action_mode_agents": False,
    "multi_action_mode_planner": True,
    "flatten_observations": True,
    "flatten_masks": True,
}
"""Foundation's configuration of method.md §3.3.1 (the episode length is added per run)."""


def sample_masked(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform over the allowed actions along the last axis."""
    return (rng.random(mask.shape) * mask).argmax(-1)


def time_parallel_env(episodes: int, length: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) env-steps per second of the PettingZoo env, counting only the time spent in ``step``."""
    from incentive_envs import gather_trade_build
    from incentive_envs.economics import US_FEDERAL_2018_RATES

    env = gather_trade_build.parallel_env(max_cycles=length)
    rng = np.random.default_rng(seed)
    agents = env.possible_agents
    steps, spent, cpu = 0, 0.0, 0.0
    for episode in range(episodes):
        _, infos = env.reset(seed=seed + episode)
        env.set_tax_rates(US_FEDERAL_2018_RATES)
        while env.agents:
            mask = np.stack([infos[a]["action_mask"] for a in agents])
            actions = dict(zip(agents, sample_masked(mask, rng).tolist()))
            start, start_cpu = time.perf_counter(), time.process_time()
            _, _, _, _, infos = env.step(actions)
            spent += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            steps += 1
    return steps / spent, steps / cpu


def time_batched(n_envs: int, episodes: int, length: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) env-steps per second of the batched engine (``n_envs`` worlds per step), only ``step``."""
    from incentive_envs.economics import US_FEDERAL_2018_RATES
    from incentive_envs.gtb import BatchedGTB

    sim = BatchedGTB(n_envs)
    sim.set_episode_length(length)
    rng = np.random.default_rng(seed)
    steps, spent, cpu = 0, 0.0, 0.0
    for episode in range(episodes):
        out = sim.reset(seed=seed + episode * n_envs)
        sim.set_tax_rates(US_FEDERAL_2018_RATES)
        while not out.done:
            actions = sample_masked(out.obs.action_mask, rng)
            start, start_cpu = time.perf_counter(), time.process_time()
            out = sim.step(actions)
            spent += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            steps += n_envs
    return steps / spent, steps / cpu


def time_foundation(episodes: int, length: int, seed: int) -> tuple[float, float]:
    """(wall, CPU) env-steps per second of ai-economist's env, only ``step`` (runs in ai-economist's venv)."""
    from ai_economist import foundation  # type: ignore[import-not-found]  # only in its own venv

    env = foundation.make_env_instance(**FOUNDATION_CONFIG, episode_length=length)
    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # Foundation draws from NumPy's global generator
    steps, spent, cpu = 0, 0.0, 0.0
    for _ in range(episodes):
        obs = env.reset()
        done = {"__all__": False}
        while not done["__all__"]:
            actions: dict[str, Any] = {k: int(sample_masked(np.asarray(o["action_mask"]), rng))
                                       for k, o in obs.items() if k != "p"}
            actions["p"] = [0]  # the fixed-tax planner has a single no-op action
            start, start_cpu = time.perf_counter(), time.process_time()
            obs, _, done, _ = env.step(actions)
            spent += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            steps += 1
    return steps / spent, steps / cpu


def run_foundation(python: str, episodes: int, length: int, seed: int) -> tuple[float, float]:
    """One Foundation timing in a child process of ai-economist's interpreter ``python``."""
    cmd = [python, __file__, "--aie-worker", "--episodes", str(episodes), "--episode-length", str(length),
           "--seed", str(seed)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env, cwd=Path(__file__).parent)
    rates = json.loads(done.stdout.strip().splitlines()[-1])
    return float(rates["steps_per_s"]), float(rates["steps_per_cpu_s"])


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


def row(case: str, n_envs: int, runs: list[tuple[float, float]]) -> dict[str, Any]:
    """One result row: every repeat's (wall, CPU) rate and their medians."""
    wall, cpu = [w for w, _ in runs], [c for _, c in runs]
    return {"case": case, "n_envs": n_envs, "wall_runs": wall, "cpu_runs": cpu,
            "median_steps_per_s": statistics.median(wall), "median_steps_per_cpu_s": statistics.median(cpu)}


def foundation_version(python: str) -> str:
    code = "import importlib.metadata as m; print(m.version('ai-economist'), m.version('numpy'))"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1, help="episodes per timing of the single env")
    parser.add_argument("--episode-length", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--aie-python", default=os.environ.get("AIE_PYTHON"),
                        help="python of a venv with ai-economist 1.7.1 (default: $AIE_PYTHON); omitted: not measured")
    parser.add_argument("--aie-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    if args.aie_worker:
        wall, cpu = time_foundation(args.episodes, args.episode_length, args.seed)
        print(json.dumps({"steps_per_s": wall, "steps_per_cpu_s": cpu}))
        return
    episodes, repeats, length = (1, 1, 100) if args.quick else (args.episodes, args.repeats, args.episode_length)

    info = machine_info()
    info["omp_num_threads"] = os.environ.get("OMP_NUM_THREADS")
    if args.aie_python:
        info["ai_economist_and_its_numpy"] = foundation_version(args.aie_python)
    time_parallel_env(1, 20, args.seed)  # warm-up (imports, compilation, allocations)
    ours: list[tuple[float, float]] = []
    theirs: list[tuple[float, float]] = []
    for r in range(repeats):
        ours.append(time_parallel_env(episodes, length, args.seed + r))
        if args.aie_python:
            theirs.append(run_foundation(args.aie_python, episodes, length, args.seed + r))
    rows = [row("PettingZoo ParallelEnv (dict API)", 1, ours)]
    if theirs:
        rows.append(row("ai-economist 1.7.1 Foundation env", 1, theirs))
    for b in args.batch_sizes:
        eps = max(1, episodes * 4 // b) if b > 1 else episodes
        time_batched(b, 1, 20, args.seed)
        rows.append(row(f"BatchedGTB engine, B={b}", b, [time_batched(b, eps, length, args.seed + r)
                                                         for r in range(repeats)]))

    info["load_average_at_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    print(f"Gather-Trade-Build speed, episode length {length}, step time only, random masked actions "
          f"({info['cpu']}, {info['logical_cpus']} CPUs, load {info['load_average_at_start']})")
    base = rows[1] if theirs else None
    print(f"{'case':36s} {'wall steps/s':>13s} {'CPU steps/s':>12s} {'x Foundation (wall, CPU)':>25s}   (medians)")
    for res in rows:
        ratio = (f"{res['median_steps_per_s'] / base['median_steps_per_s']:12.1f} "
                 f"{res['median_steps_per_cpu_s'] / base['median_steps_per_cpu_s']:12.1f}") if base else f"{'-':>25s}"
        print(f"{res['case']:36s} {res['median_steps_per_s']:13,.0f} {res['median_steps_per_cpu_s']:12,.0f} {ratio}")
    result: dict[str, Any] = {"machine": info, "episode_length": length, "episodes": episodes, "repeats": repeats,
                              "results": rows}
    if theirs:
        result["single_env_over_foundation"] = {}
        for clock, k in (("wall", 0), ("cpu", 1)):
            ratios = [a[k] / b[k] for a, b in zip(ours, theirs)]
            result["single_env_over_foundation"][clock] = {"per_repeat": ratios, "median": statistics.median(ratios)}
            print(f"single env / Foundation ({clock} time), per repeat: {' '.join(f'{x:.1f}' for x in ratios)}; "
                  f"median {statistics.median(ratios):.1f}x")
    if not args.quick:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
