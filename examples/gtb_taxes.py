"""Gather-Trade-Build taxes: MetaGrad vs dual-RL vs free market, US federal and Saez, on a small CPU budget.

Trains the same shared PPO agents under each tax designer for a few seeds, evaluates the final agents (actions
sampled without exploration) and prints the paper's headline table (productivity, equality and their product,
mean ± std over seeds). Saves, in ``--out``:

- ``results.json``: every number below, per run (schedules, evaluation details);
- ``summary.json``: the table (mean, std, per seed), the settings and the machine;
- ``schedules.png``: the tax rate of each bracket over training (MetaGrad and dual-RL, mean over seeds);
- ``income_by_skill.png``: per-episode income before tax and after tax and redistribution, by skill;
- ``rates_by_period.png``: the final evaluation's rate per bracket in each tax period.

    python examples/gtb_taxes.py --episodes 300 --seeds 0 1 2 --jobs 2 --out runs/gtb_taxes
    python examples/gtb_taxes.py --smoke            # a few episodes, to check the script runs
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "free market": ("none", {"tax_model": "free_market"}),
    "US federal": ("none", {"tax_model": "us_federal"}),
    "Saez": ("none", {"tax_model": "saez"}),
    "dual-RL": ("dual_rl", {}),
    "MetaGrad": ("metagrad", {}),
}


def run(method: str, seed: int, episodes: int, eval_episodes: int) -> dict[str, Any]:
    """Train one designer for ``episodes`` episodes and evaluate the final agents and designer."""
    import torch

    from designer import TrainConfig, Trainer
    from designer.gtb import evaluate_taxes, schedule_of
    from designer.tasks import make_task

    torch.set_num_threads(1)
    algorithm, task_kwargs = METHODS[method]
    # the rate cap of the dual-RL planner reaches 1 after a third of the budget (paper: 8,000 of 200,000)
    task_kwargs = {**task_kwargs, "n_episodes_reach_max_rate": max(1, episodes // 3)}
    task = make_task("gather_trade_build", **task_kwargs)
    # exploration anneals 0.5 -> 0.05 over the budget (paper: over 5,000 of 200,000 episodes)
    learner = replace(task.learner, epsilon_iters=episodes)
    cfg = TrainConfig(task="gather_trade_build", task_kwargs=task_kwargs, episodes=episodes, seed=seed,
                      eval_period=max(1, episodes // 4), eval_episodes=5)
    trainer = Trainer(cfg, designer=replace(task.designer, algorithm=algorithm), learner=learner, task=task)
    layout = task.features.layout
    schedule: list[list[float]] = []

    def record(t: Trainer) -> None:
        if t.pending is not None:
            schedule.append(schedule_of(t.pending, layout).mean(0).tolist())

    start = time.perf_counter()
    trainer.train(callback=record)
    wall = time.perf_counter() - start
    report = evaluate_taxes(trainer, eval_episodes, seed=10_000 + seed)
    return {
        "method": method,
        "seed": seed,
        "episodes": trainer.progress.episodes,
        "wall_seconds": wall,
        "seconds_per_episode": wall / max(1, trainer.progress.episodes),
        "schedule": schedule,
        "curve": [(h.episode, h.welfare) for h in trainer.progress.history],
        **{k: np.asarray(v).tolist() for k, v in report.items()},
    }


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table: final productivity, equality and their product (mean ± std over seeds)."""
    lines = ["| designer | productivity | equality | equality · productivity | seeds | s/episode |",
             "|---|---|---|---|---|---|"]
    for method in METHODS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        cells = []
        for key in ("productivity", "equality", "equality_times_productivity"):
            per_seed = np.array([np.mean(r[key]) for r in runs])
            digits = 3 if key == "equality" else 1
            cells.append(f"{per_seed.mean():.{digits}f} ± {per_seed.std():.{digits}f}")
        speed = np.mean([r["seconds_per_episode"] for r in runs])
        lines.append(f"| {method} | {' | '.join(cells)} | {len(runs)} | {speed:.2f} |")
    return "\n".join(lines)


def summary(results: list[dict[str, Any]], args: dict[str, Any], wall: float) -> dict[str, Any]:
    """The table's numbers per designer (mean, std and per-seed values), with the run's settings and machine."""
    import os
    import platform

    out: dict[str, Any] = {"args": args, "wall_minutes": wall / 60, "machine": {
        "platform": platform.platform(), "python": platform.python_version(), "logical_cpus": os.cpu_count(),
        "load_average": os.getloadavg()}, "designers": {}}
    for method in METHODS:
        runs = [r for r in results if r["method"] == method]
        if not runs:
            continue
        row: dict[str, Any] = {"seconds_per_episode": float(np.mean([r["seconds_per_episode"] for r in runs]))}
        for key in ("productivity", "equality", "equality_times_productivity"):
            per_seed = [float(np.mean(r[key])) for r in runs]
            row[key] = {"mean": float(np.mean(per_seed)), "std": float(np.std(per_seed)), "per_seed": per_seed}
        row["mean_rates"] = np.mean([np.mean(r["rates"], axis=(0, 1)) for r in runs], axis=0).tolist()
        out["designers"][method] = row
    return out


def plots(results: list[dict[str, Any]], out: Path) -> list[Path]:
    """The learned schedules over training, income before/after tax by skill, and rates per period."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    learned = [m for m in ("MetaGrad", "dual-RL") if any(r["method"] == m for r in results)]
    fig, axes = plt.subplots(1, max(1, len(learned)), figsize=(6 * max(1, len(learned)), 4), squeeze=False)
    for ax, method in zip(axes[0], learned):
        runs = [np.array(r["schedule"]) for r in results if r["method"] == method and r["schedule"]]
        n = min(len(s) for s in runs)
        mean = np.mean([s[:n] for s in runs], axis=0)
        for b in range(mean.shape[1]):
            ax.plot(mean[:, b], label=f"bracket {b}")
        ax.set(title=f"{method}: training schedule (mean over seeds)", xlabel="iteration", ylabel="marginal rate",
               ylim=(0, 1))
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    paths.append(out / "schedules.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    methods = [m for m in METHODS if any(r["method"] == m for r in results)]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.6), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        runs = [r for r in results if r["method"] == method]
        pre = np.mean([r["income_by_skill"] for r in runs], axis=0)
        post = np.mean([np.array(r["income_by_skill"]) - r["tax_by_skill"] + np.array(r["lump_sum_by_skill"])
                        for r in runs], axis=0)
        x = np.arange(len(pre))
        ax.bar(x - 0.2, pre, 0.4, label="before tax")
        ax.bar(x + 0.2, post, 0.4, label="after tax + lump sum")
        ax.set(title=method, xlabel="skill rank (0 = lowest)", xticks=x)
    axes[0][0].set_ylabel("taxed income per episode (coin)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    paths.append(out / "income_by_skill.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), sharey=True, squeeze=False)
    for ax, method in zip(axes[0], methods):
        rates = np.concatenate([np.array(r["rates"]) for r in results if r["method"] == method])  # [E, P, K]
        ax.imshow(rates.mean(0).T, vmin=0, vmax=1, aspect="auto", cmap="viridis", origin="lower")
        ax.set(title=method, xlabel="tax period")
    axes[0][0].set_ylabel("bracket")
    fig.tight_layout()
    paths.append(out / "rates_by_period.png")
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=300, help="training episodes per run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--eval-episodes", type=int, default=20, help="final evaluation episodes per run")
    p.add_argument("--jobs", type=int, default=1, help="runs in parallel (processes)")
    p.add_argument("--out", default="runs/gtb_taxes")
    p.add_argument("--smoke", action="store_true", help="4 episodes, 1 seed, 2 eval episodes")
    args = p.parse_args()
    if args.smoke:
        args.episodes, args.seeds, args.eval_episodes = 4, [0], 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(m, s, args.episodes, args.eval_episodes) for s in args.seeds for m in args.methods]
    start = time.perf_counter()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(run, *zip(*jobs)))
    else:
        results = [run(*job) for job in jobs]
    wall = time.perf_counter() - start
    (out / "results.json").write_text(json.dumps({"args": vars(args), "wall_seconds": wall, "runs": results}))
    (out / "summary.json").write_text(json.dumps(summary(results, vars(args), wall), indent=1))
    print(table(results))
    print(f"\n{len(results)} runs, {args.episodes} episodes each, {wall / 60:.1f} min wall")
    for path in plots(results, out):
        print(f"saved {path}")
    print(f"saved {out / 'results.json'}")


if __name__ == "__main__":
    main()
