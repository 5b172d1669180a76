"""Gather-Trade-Build taxes: MetaGrad vs dual-RL vs free market, US federal and Saez, on a small CPU budget.

Trains the same shared PPO agents under each tax designer for a few seeds (a sweep per designer in
``--out/trials/<designer>``: finished runs are reused, interrupted ones resume), evaluates the final agents (no
exploration) and prints the paper's headline table (productivity, equality, their product: mean ± std over seeds,
the IQM with its 95% bootstrap interval, per-seed values). Saves in ``--out``: ``results.json`` (every number per
run, training curves included), ``summary.json`` (the table per seed, settings, machine), ``results.md`` (the
table) and the behavioural analysis of ``examples/gtb_analysis.py`` (schedules against US federal and Saez,
income, labour, houses and trades by skill, the economy over training, schedules over training, rates by period).

    python examples/gtb_taxes.py --episodes 1200 --seeds 0 1 2 --jobs 1 --out runs/gtb_taxes
    python examples/gtb_taxes.py --smoke            # a few episodes, to check the script runs
    python examples/gtb_taxes.py --methods "flat 50%" --episodes 1200 --out runs/gtb_flat50   # control
    python examples/gtb_taxes.py --phase1-episodes 2000 --flat-grid --episodes 2000 --seeds 0 1 2 3 4

``--phase1-episodes N`` runs the paper's two-phase curriculum: each seed's agents first train for N episodes under
the free market with the paper's phase-1 settings (``PHASE1``; ``--out/trials/phase1``), and every designer's
phase 2 starts from those agents (``TrainConfig.agents_from``) with the paper's curriculum settings
(``CURRICULUM``: the agents' smaller rates, MetaGrad's lr 2.03e-4 unless ``--designer-lr``; exploration at its
final 0.05), so all designers face the same agents. Not reproduced: the curriculum's LSTM actor and critic.
``--flat-grid`` adds flat rates 0%, 10%, ..., 90% and a "best flat" row: the grid point with the highest
equality x productivity. The grid trains from the 50% control outwards (50%, 40%, 60%, ...), so an interrupted
grid is still centred on the control; the table lists designers in the usual order whatever the order they ran in.

``--setting cpu`` (both phases) swaps the paper's conv agents for the task's flat agent network
(``agent_net="cpu"``) and trains on 8 episodes per update with the batched rollout: ~3x the episodes per second
of the paper's setting on this CPU, and on a 3,200-episode probe of phase 1 (seed 0) welfare rose at least as fast
per episode. ``--phase2-agents phase1`` keeps phase 1's agent settings in phase 2 (the curriculum's ~70x lower
rates are for the paper's 200,000 episodes: over a few thousand the agents would hardly respond to the taxes) and
MetaGrad's lr at ``DESIGNER_LR``.

Budgets are ~100x shorter than the paper's 200,000 episodes, so schedules scale with ``--episodes``: the agents'
and the dual-RL planner's exploration anneal over the whole budget and the planner's rate cap reaches 1 after a
third of it. The MetaGrad tax network's Adam lr defaults to ``DESIGNER_LR`` = 3e-4 (``--designer-lr``), ~16x the
paper's 1.82e-5, which barely moves the rates in a few hundred episodes. Chosen on short probes (seed 7, not an
evaluation seed): 1.82e-4 moves them slowly, 3e-4 moves them within the first few hundred episodes, and 5e-4 or
1e-3 saturate brackets at 0 or 1 within 150-250 episodes. The dual-RL planner keeps the paper's lr
(``--planner-lr``; 2e-3 looked no different on a 500-episode probe). ``--eval-period`` defaults to a fiftieth of
the budget: 50 points per schedule curve, each the mean over the training episodes before it. Its 51 evaluations
of 5 episodes took 6% (MetaGrad) and 7% (free market) of a 1,200-episode run's wall time, the former 5 under 1%.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
from gtb_analysis import draw  # the sibling script (this folder is sys.path[0] when the script runs)

from designer import Trainer
from designer.experiments.aggregate import (
    MetricSummary,
    TrialRecord,
    bootstrap_ci,
    learning_curves,
    machine_info,
    spread,
    sweep_records,
)
from designer.experiments.spec import AlgorithmSpec, Sweep, TaskSpec, Variant
from designer.experiments.sweep import run_sweep
from designer.tasks.gather_trade_build import evaluate_taxes
from designer.tasks.gather_trade_build.designers import economy_metric_names
from incentive_envs.gtb import GTBSchema

METHODS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "free market": ("none", {"tax_model": "free_market"}, {}),
    "US federal": ("none", {"tax_model": "us_federal"}, {}),
    "Saez": ("none", {"tax_model": "saez"}, {}),
    "dual-RL": ("dual_rl", {}, {}),
    "MetaGrad": ("metagrad", {}, {}),
    # a control, not run by default: MetaGrad's untrained tax network sets every rate near sigmoid(0) = 0.5
    **{f"flat {10 * k}%": ("fixed", {}, {"fixed_values": (k / 10,) * 7}) for k in range(10)},
}
"""Method -> (designer algorithm, task keyword arguments, designer config overrides)."""
def _rate(method: str) -> float:
    """A flat method's rate: ``"flat 40%"`` -> 0.4."""
    return int(method.split()[1].rstrip("%")) / 100


DEFAULT_METHODS = ("free market", "US federal", "Saez", "dual-RL", "MetaGrad")
PHASE1 = {"entropy_coef": 0.187, "lr": 7.85e-4, "critic_lr": 1.74e-4, "ppo_clip": 0.2197, "target_tau": 0.114,
          "epsilon_start": 0.0, "epsilon_end": 0.0}
"""The agents in the paper's phase 1 (``config_foundation_free_market``, method.md §5.3): no exploration mixing."""
CURRICULUM = {"learner": {"entropy_coef": 0.0316, "lr": 1.09e-5, "critic_lr": 1.14e-5, "ppo_clip": 0.0308,
                          "target_tau": 0.021, "epsilon_start": 0.05, "epsilon_end": 0.05},
              "metagrad": {"lr": 2.03e-4, "critic_lr": 1e-5, "critic_tau": 0.0573}}
"""The paper's phase 2 after the free-market phase 1 (``config_foundation_ppo_curriculum``, method.md §5.3)."""
CPU_SETTING = {"task_kwargs": {"agent_net": "cpu"}, "train": {"batch_episodes": 8, "vectorized": True}}
"""``--setting cpu``: the agents' flat network (no convolutions), 8 episodes per update on the batched rollout."""
DESIGNER_LR = 3e-4
"""MetaGrad's tax-network Adam lr for budgets of ~1,000 episodes (the paper's 1.82e-5 is for 200,000; see above)."""
KEYS = ("productivity", "equality", "equality_times_productivity")


def summary_of(values: list[float]) -> dict[str, Any]:
    """Mean, std (ddof 0, as :func:`spread`) and per-seed values, with the IQM and its 95% bootstrap interval."""
    stats = MetricSummary.of(values, reps=10_000, confidence=0.95, seed=0)
    return {**spread(values), "iqm": stats.iqm, "ci_low": stats.ci_low, "ci_high": stats.ci_high}


def paired_against(method: str, designers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``method`` minus every other designer in equality x productivity, seed by seed (every designer's phase 2
    starts from the same seed's phase-1 agents, so the seeds pair): the mean difference, its 95% bootstrap interval
    and the number of seeds where ``method`` is higher."""
    key, ours = "equality_times_productivity", designers[method]
    mine = dict(zip(ours["seeds"], ours[key]["per_seed"]))
    out = {}
    for other, row in designers.items():
        if other == method or "chosen" in row:  # the "best flat" row repeats a grid point
            continue
        diffs = np.array([mine[s] - v for s, v in zip(row["seeds"], row[key]["per_seed"]) if s in mine])
        if diffs.size:
            low, high = bootstrap_ci(diffs, lambda a: a.mean(1), reps=10_000, confidence=0.95, seed=0)
            out[other] = {"mean": float(diffs.mean()), "ci_low": low, "ci_high": high, "per_seed": diffs.tolist(),
                          "higher": int((diffs > 0).sum()), "seeds": int(diffs.size)}
    return out


def economy_curve(trial: TrialRecord, schema: GTBSchema) -> dict[str, list[float]] | None:
    """The tax designer's logged economy of the training episodes (:func:`economy_metric_names`) over training;
    None for runs logged before those columns existed."""
    names = economy_metric_names(schema)
    try:
        x, logged = learning_curves([trial], columns=[f"train/{k}" for k in names])
    except ValueError:
        return None
    return {"episodes": x.astype(int).tolist(), **{k: logged[f"train/{k}"][0].tolist() for k in names}}

if __name__ == "__main__":  # the sweep's worker processes import this file without running it
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=300, help="training episodes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS), choices=list(METHODS))
    p.add_argument("--eval-episodes", type=int, default=20, help="final evaluation episodes per run")
    p.add_argument("--eval-period", type=int, default=None, help="default: episodes / 50 (the schedules' points)")
    p.add_argument("--jobs", type=int, default=1, help="runs of one designer in parallel (processes)")
    p.add_argument("--designer-lr", type=float, default=None, help=f"MetaGrad tax network's Adam lr (default "
                   f"{DESIGNER_LR:g}, scaled for short budgets (paper 1.82e-5 for 200,000 episodes); with "
                   f"--phase1-episodes the paper's curriculum value {CURRICULUM['metagrad']['lr']:g})")
    p.add_argument("--planner-lr", type=float, default=None, help="dual-RL planner's Adam lr (default 5.77e-4, paper)")
    p.add_argument("--out", default="runs/gtb_taxes")
    p.add_argument("--phase1-episodes", type=int, default=0, help="the paper's curriculum: agents first train this "
                   "many episodes under the free market, every designer's phase 2 starts from them (0: no phase 1)")
    p.add_argument("--setting", choices=("paper", "cpu"), default="paper", help="paper: the paper's conv agents, "
                   "one episode per update; cpu: CPU_SETTING (flat agents' network, 8 episodes per update on the "
                   "batched rollout: ~3x the episodes per second, in both phases)")
    p.add_argument("--phase2-agents", choices=("curriculum", "phase1"), default="curriculum", help="the agents' "
                   "settings in phase 2: the paper's curriculum (rates ~70x lower than phase 1's, for 200,000 "
                   "episodes) or phase 1's own (agents keep learning as fast as in phase 1; for short budgets)")
    p.add_argument("--flat-grid", action="store_true", help="also flat rates 0%%, 10%%, ..., 90%% and the best of them")
    p.add_argument("--smoke", action="store_true", help="4 episodes, 1 seed, 2 eval episodes")
    args = p.parse_args()
    if args.smoke:
        args.episodes, args.seeds, args.eval_episodes = 4, [0], 2
    args.eval_period = args.eval_period or max(1, args.episodes // 50)
    flat = sorted((m for m in METHODS if m.startswith("flat ")), key=lambda m: abs(_rate(m) - 0.5) + _rate(m) / 100
                  ) if args.flat_grid else []
    out, methods = Path(args.out), [m for m in METHODS if m in args.methods or m in flat]
    setting: dict[str, dict[str, Any]] = CPU_SETTING if args.setting == "cpu" else {"task_kwargs": {}, "train": {}}
    train: dict[str, Any] = {"episodes": args.episodes, "eval_period": args.eval_period, "eval_episodes": 5,
                             **setting["train"]}
    learner: dict[str, Any] = {"epsilon_iters": args.episodes}  # exploration anneals over the run
    metagrad = {"lr": args.designer_lr or DESIGNER_LR}
    if args.phase1_episodes:  # phase 1: each seed's agents under the free market; phase 2 starts from them
        n1 = args.phase1_episodes
        phase1 = Sweep("phase1", tasks=[TaskSpec("gather_trade_build", {"tax_model": "free_market",
                                                                          **setting["task_kwargs"]}, label="gtb")],
                       algorithms=[AlgorithmSpec("none", {}, "phase1")], variants=[Variant(learner=PHASE1)],
                       seeds=args.seeds, train={"episodes": n1, "eval_period": max(1, n1 // 50), "eval_episodes": 5,
                                                "checkpoint_period": max(1, n1 // 50), **setting["train"]})
        first = run_sweep(phase1, out / "trials" / "phase1", workers=args.jobs)
        if not first.ok:
            raise SystemExit(f"phase 1 failed: {first.failed}")
        # as given (relative to the working directory when --out is): the sweep folder can move between machines
        train["agents_from"] = str(out / "trials" / "phase1" / "gtb__phase1__default__seed{seed}" / "checkpoint.pt")
        if args.phase2_agents == "curriculum":
            learner = dict(CURRICULUM["learner"])
            metagrad = {**CURRICULUM["metagrad"], **({"lr": args.designer_lr} if args.designer_lr else {})}
        else:  # phase 1's agents keep their settings; the designer's lr as for short budgets
            learner = dict(PHASE1)

    # exploration anneals 0.5 -> 0.05 over the budget (paper: over 5,000 of 200,000 episodes), the dual-RL
    # planner's too, and its rate cap reaches 1 after a third of the budget (paper: 8,000)
    anneal = {"n_episodes_reach_max_rate": max(1, args.episodes // 3), "planner_epsilon_iters": args.episodes}
    lrs = {"metagrad": metagrad, "dual_rl": {"dual_lr": args.planner_lr} if args.planner_lr else {}}
    header = ["| designer | productivity | equality | equality · productivity | IQM [95% CI] | per seed | s/episode |",
              "|---" * 7 + "|"]
    lines: dict[str, str] = {}
    start, results, designers = time.perf_counter(), [], {}
    for method in [m for m in methods if m not in flat] + flat:  # the grid in its training order
        algorithm, task_kwargs, designer = METHODS[method]
        label = re.sub(r"[^A-Za-z0-9]+", "-", method).strip("-")
        sweep = Sweep(label, tasks=[TaskSpec("gather_trade_build", {**task_kwargs, **anneal, **setting["task_kwargs"]},
                                             label="gtb")],
                      algorithms=[AlgorithmSpec(algorithm, {**designer, **lrs.get(algorithm, {})}, label)],
                      variants=[Variant(learner=learner)], seeds=args.seeds, train=train)
        runs = []
        for trial in sweep_records(run_sweep(sweep, out / "trials" / label, workers=args.jobs)):
            trainer = Trainer.resume(trial.path / "checkpoint.pt", out_dir=None)  # evaluation only: writes nothing
            report = evaluate_taxes(trainer, args.eval_episodes, seed=10_000 + trial.seed)
            brackets = [f"train/rate_{b}" for b in range(report["rates"].shape[-1])]
            x, logged = learning_curves([trial], columns=("welfare", *brackets))
            rates = np.stack([logged[b][0] for b in brackets], 1)  # [evaluations, K]; NaN before any iteration
            trained, live = np.isfinite(rates).all(1), getattr(trainer.designer, "live_units", None)
            wall, episodes = trial.result.wall_seconds, trainer.progress.episodes
            runs.append({
                "method": method, "seed": trial.seed, "episodes": episodes, "wall_seconds": wall,
                "seconds_per_episode": wall / episodes, "schedule": rates[trained].tolist(),
                "schedule_episodes": x[trained].astype(int).tolist(),
                "curve": [(int(e), w) for e, w in zip(x, logged["welfare"][0].tolist())],
                "active_units": live(trainer.pending.state) if live and trainer.pending is not None else None,
                "economy_curve": economy_curve(trial, trainer.task.schema),
                **{key: np.asarray(v).tolist() for key, v in report.items()},
            })
            print(f"[{(time.perf_counter() - start) / 60:.1f} min] {method} seed {trial.seed}: {wall / episodes:.3f} "
                  f"s/episode, equality * productivity {np.mean(report['equality_times_productivity']):.1f}")
        results += runs
        per_seed = [np.mean(r["rates"], axis=(0, 1)).tolist() for r in runs]
        row = designers[method] = {"seconds_per_episode": float(np.mean([r["seconds_per_episode"] for r in runs])),
                                   **{key: summary_of([np.mean(r[key]) for r in runs]) for key in KEYS},
                                   "mean_rates": np.mean(per_seed, axis=0).tolist(), "mean_rates_per_seed": per_seed,
                                   "seeds": [r["seed"] for r in runs],
                                   "episodes_per_seed": [r["episodes"] for r in runs],
                                   "wall_seconds_per_seed": [r["wall_seconds"] for r in runs]}
        if method == "MetaGrad":  # with every unit dead, all rates sit at sigmoid(0) = 0.5
            row["active_units_per_seed"] = [r["active_units"] for r in runs]
        cells = " | ".join(f"{row[key]['mean']:.{d}f} ± {row[key]['std']:.{d}f}" for key, d in zip(KEYS, (1, 3, 1)))
        eqp = row["equality_times_productivity"]
        lines[method] = (f"| {method} | {cells} | {eqp['iqm']:.1f} [{eqp['ci_low']:.1f}, {eqp['ci_high']:.1f}] | "
                         f"{', '.join(f'{v:.1f}' for v in eqp['per_seed'])} | {row['seconds_per_episode']:.2f} |")
    table, designers = header + [lines[m] for m in methods], {m: designers[m] for m in methods}
    if flat:  # the strongest flat rate, chosen on the same seeds (an honest baseline, said to be so chosen)
        best = max(flat, key=lambda m: designers[m]["equality_times_productivity"]["mean"])
        designers["best flat"] = {**designers[best], "chosen": best}
        table.append(lines[best].replace(f"| {best} |", f"| best flat ({best}, chosen on these seeds) |", 1))
    comparison = paired_against("MetaGrad", designers) if "MetaGrad" in designers else {}
    if comparison:
        table += ["", "| equality · productivity, paired by seed | mean difference [95% CI] | seeds where MetaGrad "
                      "is higher |", "|---|---|---|"]
        table += [f"| MetaGrad minus {m} | {c['mean']:+.1f} [{c['ci_low']:+.1f}, {c['ci_high']:+.1f}] | "
                  f"{c['higher']} of {c['seeds']} |" for m, c in comparison.items()]
    wall = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps({"args": vars(args), "wall_seconds": wall, "runs": results}))
    settings = {"learner": learner, "metagrad": metagrad, "phase1": PHASE1 if args.phase1_episodes else None,
                "setting": setting}
    summary = {"args": vars(args), "settings": settings, "wall_minutes": wall / 60, "machine": machine_info(),
               "designers": designers, "paired_against_MetaGrad": comparison}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table) + f"\n\n{len(results)} runs, {args.episodes} episodes each, {wall / 60:.1f} min wall")
    for path in draw(out):  # the behavioural analysis (rerun alone: python examples/gtb_analysis.py <out>)
        print(f"saved {path}")
    print(f"saved {out / 'results.json'}, {out / 'summary.json'}, {out / 'results.md'}")
