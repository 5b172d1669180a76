"""MetaGrad on Cleanup: a designer pays agents by action type (clean / apple / other) so that someone cleans.

Trains CNN actor-critic agents under each designer for a few seeds, prints apples per episode
(and their share of the scripted cleaner + harvester's 38.99), incentives paid and the cleaning rate, and saves
in ``--out``:

- ``trials/cleanup__<method>__<settings>__seed<k>/``: each run's ``log.csv`` (every evaluation) and
  ``checkpoint.pt``, a sweep of :mod:`designer.experiments.sweep` (a finished run with the same settings is
  reused and an interrupted one resumes, so adding seeds or methods to a table only trains the new runs);
- ``summary.json`` and ``results.md``: the table (mean, std and per seed of the last ``--last`` evaluations),
  the settings and the machine;
- ``cleanup_training.png``: apples, incentives paid and cleaning rate over training (mean and each seed).

    python examples/cleanup_metagrad.py --episodes 2000                         # one quick MetaGrad run
    python examples/cleanup_metagrad.py --methods metagrad dual_rl none hand_designed --seeds 0 1 2 \
        --episodes 20000 --jobs 2 --out examples/results/cleanup

Methods: ``metagrad``, ``dual_rl`` and ``none`` (agents alone), plus ``hand_designed``: a fixed table paying
agent 0 one unit per cleaning beam and agent 1 one unit per apple, a reference for what these agents reach under
an incentive known to work. ``--settings paper`` keeps every constant of the paper (one episode per update,
100,000 episodes: hours per run here); ``--settings cpu`` (default) is the short-budget setting, see ``CPU``;
``--shared`` gives the agents the paper's one shared CNN under either setting.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from designer.experiments.aggregate import learning_curves, machine_info, plot_task_curves, spread, sweep_records
from designer.experiments.spec import AlgorithmSpec, Sweep, Variant
from designer.experiments.sweep import run_sweep
from designer.tasks import make_task

SCRIPTED_APPLES = 38.99  # dedicated cleaner + greedy harvester on the 7x7 map (method.md §6.3)
LABELS = {"metagrad": "MetaGrad", "dual_rl": "dual-RL", "none": "no designer", "hand_designed": "hand-designed"}
METHODS = {
    "metagrad": AlgorithmSpec("metagrad"),
    "dual_rl": AlgorithmSpec("dual_rl"),
    "none": AlgorithmSpec("none"),
    "hand_designed": AlgorithmSpec("fixed", {"output": "agent_action_type", "fixed_values": (1.0, 0, 0, 0, 1.0, 0)},
                                   label="hand_designed"),
}
# The short-budget setting: 8 episodes per update (8x fewer updates than the paper for the same experience), so
# larger steps: agents' actor lr 2e-2 (paper 6.73e-4) and critic 4.4e-3 (5.54e-4), MetaGrad designer lr 1e-4
# (1.24e-5) and its critic 1.9e-4 (2.4e-5), dual-RL 9.2e-5 (1.15e-5); independent agents (one CNN each): with the
# paper's shared CNN both agents learn to clean and nobody harvests at this budget; and one incentive per agent and
# action type (6 outputs, not the paper's 3): with one value per type shared by both agents, MetaGrad drives the
# cleaning payment to 2 before the agents respond, both then clean every step, no apple is ever collected and the
# designer's gradient is zero from then on (2 of 5 seeds). Chosen on probes of seeds 0, 1 and 4.
CPU = Variant("cpu", train={"batch_episodes": 8}, learner={"lr": 2e-2, "critic_lr": 4.4e-3, "shared": False},
              designer={"lr": 1e-4, "critic_lr": 1.9e-4, "dual_lr": 9.2e-5, "output": "agent_action_type"})
PAPER = Variant("paper", train={"batch_episodes": 1})
COLUMNS = {"apples": "welfare", "incentives": "incentives", "cleaning_rate": "info/cleaned",
           "waste_cleared": "info/waste_cleared"}
"""Table and plot metric -> ``log.csv`` column (the cleaning rate is beams per agent-step: cleaned / steps)."""


def markdown(table: dict) -> str:
    """The README table: apples (and % of scripted), seeds ≥ 90%, incentives paid and cleaning rate."""
    lines = ["| designer | apples / episode | % of scripted (38.99) | seeds ≥ 90% | incentives paid | cleaning rate |",
             "|---|---|---|---|---|---|"]
    for method, row in table.items():
        n = len(row["apples"]["per_seed"])
        cells = [f"{row[k]['mean']:.{d}f} ± {row[k]['std']:.{d}f}"
                 for k, d in (("apples", 2), ("incentives", 1), ("cleaning_rate", 3))]
        lines.append(f"| {LABELS[method]} | {cells[0]} | {row['percent_of_scripted']:.1f}% | "
                     f"{row['seeds_at_90_percent']}/{n} | {cells[1]} | {cells[2]} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the sweep's worker processes import this file without running it
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", nargs="+", default=["metagrad"], choices=list(METHODS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--episodes", type=int, default=2000, help="training episodes per run (validation included)")
    p.add_argument("--settings", default="cpu", choices=["cpu", "paper"], help="short-budget or paper constants")
    p.add_argument("--shared", action="store_true",
                   help="the paper's shared CNN for both agents (the cpu setting's default: one CNN per agent)")
    p.add_argument("--eval-period", type=int, default=None, help="default: episodes / 40")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--last", type=int, default=5, help="evaluations averaged for the table")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--out", default="runs/cleanup")
    args = p.parse_args()
    args.eval_period = args.eval_period or max(1, args.episodes // 40)
    out = Path(args.out)

    variant = CPU if args.settings == "cpu" else PAPER
    if args.shared:
        variant = replace(variant, label=f"{variant.label}-shared", learner={**variant.learner, "shared": True})
    train = {"episodes": args.episodes, "eval_period": args.eval_period, "eval_episodes": args.eval_episodes}
    sweep = Sweep("cleanup", tasks=["cleanup"], algorithms=[METHODS[m] for m in args.methods], variants=[variant],
                  seeds=args.seeds, train=train, last_k=args.last)
    start = time.perf_counter()
    done = run_sweep(sweep, out / "trials", workers=args.jobs)
    records = sweep_records(done)

    task = make_task("cleanup")
    agent_steps = task.env_kwargs.get("max_steps", 50) * len(task.agents)
    table, curves, runs = {}, {}, []
    for method in args.methods:
        trials = [r for r in records if r.algorithm_label == method]
        episodes, logged = learning_curves(trials, columns=COLUMNS.values())
        values = {k: logged[c] for k, c in COLUMNS.items()}
        values["cleaning_rate"] = values["cleaning_rate"] / agent_steps
        curves[LABELS[method]] = (episodes, values)
        row = {k: spread(v[:, -args.last:].mean(1)) for k, v in values.items()}
        apples = values["apples"][:, -args.last:].mean(1)
        row["percent_of_scripted"] = float(100 * apples.mean() / SCRIPTED_APPLES)
        row["seeds_at_90_percent"] = int((apples >= 0.9 * SCRIPTED_APPLES).sum())
        row["best_evaluation"] = values["apples"].max(1).tolist()
        table[method] = row
        runs += [{"method": method, "seed": r.seed, "reused": r.name in done.skipped,
                  "wall_seconds": r.result.wall_seconds if r.result else None} for r in trials]
    print(markdown(table))
    plot_task_curves(curves, out / "cleanup_training.png", metrics=("apples", "incentives", "cleaning_rate"),
                     titles={"apples": "apples collected per episode", "incentives": "incentives paid per episode",
                             "cleaning_rate": "cleaning rate (beams per agent-step)"}, per_seed=True,
                     references={"apples": [(SCRIPTED_APPLES, "scripted cleaner + harvester"),
                                            (0.9 * SCRIPTED_APPLES, "90% of scripted")]})
    summary = {"args": vars(args), "wall_minutes": (time.perf_counter() - start) / 60, "table": table, "runs": runs,
               "machine": machine_info()}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "results.md").write_text(markdown(table) + "\n")
    print(f"plot saved to {out / 'cleanup_training.png'}; table and settings in {out / 'summary.json'}")
