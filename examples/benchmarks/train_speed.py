"""Training speed of MetaGrad through ``Trainer``: the sequential rollout (B single envs) against the batched one
(``TrainConfig.vectorized``: one batched env, one policy forward and one incentive evaluation per step), and
seeds run one by one against seeds stacked into one program (:class:`designer.experiments.seed_stack.SeedStack`).

    python examples/benchmarks/train_speed.py     # every case
    python examples/benchmarks/train_speed.py --seconds 2 --cases er16 er1x5

Cases: Cleanup 7x7 at B = 8 with the CPU settings of ``examples/cleanup_metagrad.py`` (independent CNN agents,
actor lr 2e-2, critic 4.4e-3, designer lr 1e-4 and critic 1.9e-4, output ``agent_action_type``), and ER(5,2) with
the paper's settings at B = 1 and B = 16; ``er1x5`` is ER(5,2) at B = 1 for 5 seeds: one by one on the
sequential path (the reference) against the 5 seeds stacked (batched rollout of all 5 runs' episodes, one vmapped
meta-step); ``gtb1`` and ``gtb8`` are Gather-Trade-Build with the task's paper settings (the MetaGrad tax
designer, the paper's conv agents and tax network, 100-step episodes) at B = 1 and B = 8, and ``gtb8cpu`` the
same at B = 8 with the documented CPU setting's agents (``agent_net="cpu"``: flat network, no convolutions; the
setting of ``examples/gtb_taxes.py --setting cpu``). Both paths run in the
same process, one after the other, torch on one thread: a warm-up run, then training for about ``--seconds`` each
(two one-episode evaluations included); the rate is training episodes per second (validation episodes count, as
in the budget).

Beside each rate: the physical limit, the network FLOPs of one training episode (counted with
``torch.utils.flop_counter.FlopCounterMode`` around one policy forward and one incentive forward per rollout
step, and one meta-step, which holds the inner update; per iteration of B episodes, divided by B) over the
matmul throughput measured in the same run (a 512 x 512 float32 matmul); and the network limit: the wall time of
those same network calls run back to back at the case's batch sizes (what the networks cost when nothing else
runs; GTB's few-channel convolutions run far below the matmul rate; for ``er1x5``, the stacked program's own
calls: one forward and one vmapped meta-step for all 5 runs, per 5 episodes). Then a short cProfile summary of the
batched path: where the remaining time goes. Writes the cases run into ``train_speed.json`` next to this script
(the rows of other cases are kept, each row with the machine and load it was measured under).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

# The sibling script (this folder is sys.path[0] when the script runs): one description of the machine.
from env_speed import machine_info
from torch.utils.flop_counter import FlopCounterMode

from designer import TrainConfig, Trainer
from designer.experiments.seed_stack import SeedStack
from designer.learners import inner_update
from designer.tasks import make_task

CASES = {"cleanup8": ("Cleanup 7x7", 8), "er1": ("ER(5,2)", 1), "er16": ("ER(5,2)", 16),
         "er1x5": ("ER(5,2) x5 seeds", 1), "gtb1": ("GTB", 1), "gtb8": ("GTB", 8), "gtb8cpu": ("GTB, CPU agents", 8)}
GTB = ("gtb1", "gtb8", "gtb8cpu")
STACKED_SEEDS = 5
Func = tuple[str, int, str]
ROLLOUT = ("designer/batched_rollout.py", "collect")
PARTS = {  # label -> (file suffix, function), parts of the rollout (cumulative time)
    "agent policy forward": ("designer/experiments/trainer.py", "<lambda>"),
    "agent policy forward (stacked runs)": ("designer/experiments/seed_stack.py", "policy"),
    "action sampling": ("designer/batched_rollout.py", "_sample"),
    "designer incentive (inputs + pay)": ("designer/rollout.py", "__call__"),
    "task rules + recording": ("designer/batched_rollout.py", "_record"),
    "incentive wrapper (with env and incentive)": ("wrappers/vector.py", "step"),
    "tax rates wrapper (with env and tax network)": ("wrappers/vector_tax.py", "step"),
}
ENV_FILES = {"cleanup8": "incentive_envs/ssd/vector.py", "gtb1": "incentive_envs/gtb/vector.py",
             "gtb8": "incentive_envs/gtb/vector.py", "gtb8cpu": "incentive_envs/gtb/vector.py"}


def trainer(case: str, vectorized: bool, episodes: int, seed: int = 0) -> Trainer:
    _, b = CASES[case]
    cfg = {"episodes": episodes, "batch_episodes": b, "eval_period": 10**9, "eval_episodes": 1,
           "vectorized": vectorized, "seed": seed}
    if case == "cleanup8":
        task = make_task("cleanup")
        designer = replace(task.designer, lr=1e-4, critic_lr=1.9e-4, output="agent_action_type")
        learner = replace(task.learner, lr=2e-2, critic_lr=4.4e-3, shared=False)
        return Trainer(TrainConfig(task="cleanup", **cfg), designer=designer, learner=learner, task=task)
    if case in GTB:
        net = {"agent_net": "cpu"} if case == "gtb8cpu" else {}
        return Trainer(TrainConfig(task="gather_trade_build", task_kwargs=net, **cfg))
    return Trainer(TrainConfig(task="escape_room", task_kwargs={"n_agents": 5, "min_at_lever": 2}, **cfg))


def _run(case: str, vectorized: bool, episodes: int) -> int:
    """Train ``case`` for ``episodes`` per run; returns the training episodes of all runs. ``er1x5`` with
    ``vectorized`` trains its seeds stacked, else (the reference) one seed (the rate of 5 one after another)."""
    if case == "er1x5" and vectorized:
        runs = [trainer(case, True, episodes, seed) for seed in range(STACKED_SEEDS)]
        SeedStack(runs).train()
        return sum(t.progress.episodes for t in runs)
    t = trainer(case, vectorized, episodes)
    t.train()
    return t.progress.episodes


def episodes_per_second(case: str, vectorized: bool, seconds: float) -> float:
    """Training episodes/s: a warm-up run sizes a run of about ``seconds``, which is then timed (its only
    evaluations, at the start and the end, run one episode each)."""
    b = CASES[case][1]
    t0 = time.perf_counter()
    _run(case, vectorized, 4 * b)
    guess = max(4 * b, int(4 * b * seconds / max(time.perf_counter() - t0, 1e-3)))
    t0 = time.perf_counter()
    episodes = _run(case, vectorized, guess)
    return episodes / (time.perf_counter() - t0)


def _flops(fn: Any) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _seconds(fn: Any, reps: int = 3) -> float:
    """Mean wall time of ``fn`` after one warm-up call."""
    fn()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def flops_per_episode(case: str) -> tuple[dict[str, float], float]:
    """Network FLOPs of one training episode and its parts (per iteration of B episodes, divided by B), and the
    seconds the same network calls take per episode run back to back (no env, no Python around them): the
    network-bound limit at the batch sizes the case uses, whatever their throughput (convolutions on few
    channels run far below the matmul rate)."""
    if case == "er1x5":  # the stacked program's own calls: one forward, one meta-step for all runs
        stack = SeedStack([trainer(case, True, 3, seed) for seed in range(STACKED_SEEDS)])
        for _ in range(3):
            stack.iterate()
        batch, learner, designer = stack.pending, stack.learner, stack.designer
        runs = STACKED_SEEDS
    else:
        t = trainer(case, True, 3 * CASES[case][1])
        t.train()
        batch, learner, designer, runs = t.pending, t.learner, t.designer, 1
    assert batch is not None
    steps = batch.actions.shape[-2]  # lockstep steps the rollout ran (finished copies still go through the policy)

    def policy() -> None:
        with torch.no_grad():
            learner.logits(learner.params, batch.obs[:, :, 0] if runs > 1 else batch.obs[:, 0])

    if case in GTB:  # the tax network runs on the planner's states once per tax period
        calls = len(range(0, steps, t.task.schema.tax_period))
        inputs = batch.state[:, 0]
    else:  # stacked: the runs' rows one after another, as the rollout feeds them
        calls, inputs = steps, batch.features[..., 0, :].reshape(-1, batch.features.shape[-1])

    def incentive() -> None:
        with torch.no_grad():
            designer.net(inputs)

    def inner() -> None:
        rewards, _ = designer.agent_rewards(batch)
        values = None if learner.critic is None else learner.values(batch)
        inner_update(learner, learner.params, learner.opt_state, batch, rewards, values)

    def meta() -> None:
        designer.iterate(learner, lambda params: (batch, []), batch)

    b = int(batch.actions.shape[:-2].numel())  # episodes of the iteration (of every stacked run)
    parts = {"rollout_policy": steps * _flops(policy) / b, "rollout_incentive": calls * _flops(incentive) / b,
             "inner_update": _flops(inner) / b, "meta_step_incl_inner": _flops(meta) / b}
    seconds = (steps * _seconds(policy) + calls * _seconds(incentive) + _seconds(meta, reps=1)) / b
    return {**parts, "total": parts["rollout_policy"] + parts["rollout_incentive"] + parts["meta_step_incl_inner"]}, (
        seconds)


def matmul_flops_per_second(n: int = 512, seconds: float = 1.0) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    for _ in range(3):
        a @ b
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def profile(case: str, seconds: float) -> dict[str, Any]:
    """cProfile of the batched path: the top functions by own time and the shares of the main parts."""
    b = CASES[case][1]
    rate = episodes_per_second(case, True, 0.3) / (STACKED_SEEDS if case == "er1x5" else 1)
    prof = cProfile.Profile()
    prof.enable()
    _run(case, True, max(4 * b, int(rate * seconds)))
    prof.disable()
    stats: dict[Func, Any] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())

    def find(path: str, name: str) -> list[Func]:
        return [f for f in stats if f[2] == name and f[0].endswith(path)]

    def cum(path: str, name: str) -> float:
        return sum(stats[f][3] for f in find(path, name)) / total

    env_file = ENV_FILES.get(case, "incentive_envs/escape_room.py")
    shares = {"rollout (collect)": cum(*ROLLOUT), **{f"  {k}": cum(*v) for k, v in PARTS.items()},
              "  env step (inside the wrapper)": cum(env_file, "step")}
    iterate = find("designer/algorithms/metagrad.py", "iterate")  # the GTB designer's iterate calls it
    collects = find("designer/experiments/trainer.py", "collect") + find("designer/experiments/seed_stack.py",
                                                                         "collect")
    in_iterate = sum(ct for f in collects
                     for caller, (_, _, _, ct) in stats[f][4].items() if caller in iterate)
    shares["updates (meta-step without its rollout)"] = cum("designer/algorithms/metagrad.py", "iterate") - (
        in_iterate / total)
    shares["  inner update (both)"] = cum("designer/learners.py", "inner_update")
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]
    return {"seconds": total, "shares": shares,
            "top_own_time": [{"function": fn if file == "~" else f"{Path(file).name}:{line}({fn})",
                              "share": v[2] / total} for (file, line, fn), v in top]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="timed training per case and path")
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--output", type=Path, default=Path(__file__).with_suffix(".json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    throughput = matmul_flops_per_second()
    rows = []
    for case in args.cases:
        flops, network_seconds = flops_per_episode(case)
        limit = throughput / flops["total"]
        seq = episodes_per_second(case, False, args.seconds)
        vec = episodes_per_second(case, True, args.seconds)
        rows.append({"case": case, "env": CASES[case][0], "batch_episodes": CASES[case][1], "sequential_eps": seq,
                     "batched_eps": vec, "speedup": vec / seq, "flops_per_episode": flops, "limit_eps": limit,
                     "batched_share_of_limit": vec / limit, "network_limit_eps": 1.0 / network_seconds,
                     "batched_share_of_network_limit": vec * network_seconds,
                     "profile": profile(case, min(args.seconds, 5.0))})
    print(f"matmul throughput (1 thread, 512x512 float32): {throughput / 1e9:.1f} GFLOP/s")
    print(f"{'case':12} {'B':>3} {'sequential ep/s':>16} {'batched ep/s':>13} {'speedup':>8} "
          f"{'MFLOP/episode':>14} {'limit ep/s':>11} {'batched/limit':>14} {'network limit':>14} {'batched/net':>12}")
    for r in rows:
        print(f"{r['env']:12} {r['batch_episodes']:3d} {r['sequential_eps']:16.1f} {r['batched_eps']:13.1f} "
              f"{r['speedup']:8.2f} {r['flops_per_episode']['total'] / 1e6:14.1f} {r['limit_eps']:11.0f} "
              f"{100 * r['batched_share_of_limit']:13.1f}% {r['network_limit_eps']:14.1f} "
              f"{100 * r['batched_share_of_network_limit']:11.1f}%")
    for r in rows:
        prof = r["profile"]
        print(f"\n{r['env']} B={r['batch_episodes']}, batched path ({prof['seconds']:.1f} s profiled), "
              "cumulative shares of the time:")
        for label, share in prof["shares"].items():
            print(f"  {100 * share:5.1f}%  {label}")
        print("  top own time: " + ", ".join(f"{t['function']} {100 * t['share']:.0f}%" for t in prof["top_own_time"]))
    machine = {**machine_info(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "load_average": os.getloadavg(), "matmul_flops_per_second": throughput}
    for r in rows:
        r["machine"], r["seconds"] = machine, args.seconds
    write_merged(args.output, rows, machine)
    print(f"\nwrote {args.output}")


def write_merged(path: Path, rows: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    """Write ``rows`` into the JSON at ``path``, replacing the rows of the same cases and keeping the others (in
    ``CASES`` order); each row carries the machine and seconds it was measured with, the top-level ``machine``
    is the latest run's."""
    old = json.loads(path.read_text()).get("results", []) if path.exists() else []
    by_case = {r["case"]: r for r in old} | {r["case"]: r for r in rows}
    order = list(CASES) + sorted(set(by_case) - set(CASES))
    merged = [by_case[c] for c in order if c in by_case]
    path.write_text(json.dumps({"machine": machine, "results": merged}, indent=1) + "\n")


if __name__ == "__main__":
    main()
