"""Black-box principals against MetaGrad, dual-RL and no designer, on equal terms: one sweep per game.

Every designer is a trial of one :mod:`designer.experiments.sweep` per game with the same agent-episode budget
(the fair x-axis: MetaGrad's training and validation episodes and a principal's rounds are counted alike), the
same agents' settings and the same evaluations (``log.csv`` rows by agent episodes consumed), so
:mod:`designer.experiments.aggregate` summarises them alike. The principals (:mod:`designer.principal`) are
the bandits over a grid of constant parameters (epsilon-greedy, UCB, Thompson sampling), Bayesian optimisation
(Optuna's GP sampler, the ``principals`` extra), a scripted stand-in for an LLM policymaker
(:func:`designer.principal.function.hill_climb` through the callable principal) and SB3's PPO learning the
designer's policy over the run (:func:`designer.principal.sb3.run_sb3_principal`, the ``sb3`` extra).
Output, under ``--out``::

    <game>/trials/<trial>/     each trial's log.csv, result.json, trial.json (principals: rounds.csv)
    <game>/results.md          the tables (mean ± std, IQM with a bootstrap 95% CI, every seed's values)
    <game>/curves.png          welfare and designer net against agent episodes (mean ± std over seeds)
    summary.json               per game and designer: final welfare, incentives and net (mean, std, per seed)
    results.md                 every game's table

Finished trials are reused when the command runs again (an interrupted principal trial runs again from its
start, a trainer trial continues its checkpoint), so adding seeds or designers only runs the new trials::

    python examples/compare_principals.py --games er52 --episodes 600 --seeds 0 1   # a quick look
    python examples/compare_principals.py --games er52 er_contextual cleanup --seeds 0 1 2 3 4 \\
        --out examples/results/principals
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from designer.experiments.aggregate import (
    GroupSummary,
    MetricSummary,
    learning_curves,
    machine_info,
    markdown_tables,
    plot_task_curves,
    spread,
    summarize_records,
    sweep_records,
)
from designer.experiments.spec import AlgorithmSpec, Sweep, TaskSpec, Variant
from designer.experiments.sweep import run_sweep

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cleanup_metagrad import CPU  # the Cleanup table's short-budget settings

TRAINER_DESIGNERS = ("metagrad", "dual_rl", "none")
PRINCIPALS: dict[str, dict[str, Any]] = {
    "epsilon_greedy": {"name": "epsilon_greedy", "options": {"epsilon": 0.1}},
    "ucb": {"name": "ucb", "options": {"c": 2.0}},
    "thompson": {"name": "thompson", "options": {"prior_std": 10.0, "noise_std": 5.0}},
    "bo_gp": {"name": "optuna", "options": {"sampler": "gp", "n_startup_trials": 5}},
    "scripted_llm": {"name": "callable", "options": {"policy": "designer.principal.function:hill_climb",
                                                     "last": 10, "name": "scripted_llm"}},
    # SB3's PPO on the designer env, one run of agents: an update every 8 rounds (ER: 7 updates in 60 rounds)
    "sb3_ppo": {"name": "sb3", "options": {"algorithm": "PPO", "n_steps": 8, "batch_size": 8, "n_epochs": 4}},
}
"""Principal label -> its sweep settings (rounds and grid levels are the game's)."""


@dataclass(frozen=True)
class Game:
    """One game of the comparison and its budget.

    Attributes:
        task: the sweep task (its label names the trials and the table).
        variant: settings every designer shares (agents, incentive output, batch).
        episodes: agent episodes per run (the default of ``--episodes``).
        eval_period: evaluate every this many agent episodes.
        episodes_per_step: a principal's round.
        levels: grid values per parameter of the bandits.
        objective: what the principals maximise (``DesignerEnvConfig.objective``): the game's designer objective,
            as MetaGrad's (Escape Room: welfare minus incentives paid; Cleanup: apples, no incentive cost).
    """

    task: TaskSpec
    variant: Variant = field(default_factory=Variant)
    episodes: int = 3000
    eval_period: int = 100
    episodes_per_step: int = 50
    levels: int = 3
    objective: str = "net"


GAMES: dict[str, Game] = {
    "er52": Game(TaskSpec("escape_room", {"n_agents": 5, "min_at_lever": 2}, label="er_n5_m2")),
    # the lever's place changes every episode: constant parameters pay by role (lever place, start, door, other)
    "er_contextual": Game(TaskSpec("escape_room_contextual", {"n_agents": 5, "min_at_lever": 2},
                                   label="er_contextual"),
                          Variant("roles", designer={"output": "action_type"}), levels=2),
    "cleanup": Game(TaskSpec("cleanup", label="cleanup"), replace(CPU, train={**CPU.train, "vectorized": True}),
                    episodes=2000, eval_period=200, episodes_per_step=80, levels=2, objective="welfare"),
}


def algorithms(game: Game, designers: list[str]) -> list[AlgorithmSpec]:
    """The sweep entries of ``designers`` on ``game``."""
    out = []
    for name in designers:
        if name in TRAINER_DESIGNERS:
            out.append(AlgorithmSpec(name))
            continue
        settings = {**PRINCIPALS[name], "episodes_per_step": game.episodes_per_step, "objective": game.objective}
        if name in ("epsilon_greedy", "ucb", "thompson"):
            settings["options"] = {**settings["options"], "levels": game.levels}
        out.append(AlgorithmSpec("principal", principal=settings, label=name))
    return out


def compact_table(groups: list[GroupSummary], finals: dict[str, dict[str, Any]],
                  over_training: dict[str, MetricSummary]) -> str:
    """The README table: final welfare and net (mean ± sample std, IQM [bootstrap 95% CI]), incentives paid,
    the mean net over all evaluations (sample efficiency) and every seed's final welfare and net."""
    lines = ["| designer | welfare (mean ± std) | welfare IQM [95% CI] | net (mean ± std) | net IQM [95% CI] | "
             "incentives paid | net over training | welfare per seed | net per seed |", "|---" * 9 + "|"]

    def cell(s: MetricSummary) -> tuple[str, str]:
        return f"{s.mean:.2f} ± {s.std or 0:.2f}", f"{s.iqm:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"

    for g in groups:
        name, m = g.algorithm_label, g.metrics
        per_seed = [", ".join(f"{v:.2f}" for v in finals[name][k]["per_seed"]) for k in ("welfare", "net")]
        cells = [name, *cell(m["welfare"]), *cell(m["net"]), cell(m["incentives"])[0],
                 cell(over_training[name])[0], *per_seed]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run_game(key: str, game: Game, designers: list[str], seeds: list[int], episodes: int | None, last: int,
             eval_episodes: int, workers: int, out: Path) -> dict[str, Any]:
    """Run (or resume) one game's sweep; write its table and plot; returns its summary."""
    budget = episodes or game.episodes
    sweep = Sweep(key, tasks=[game.task], algorithms=algorithms(game, designers), variants=[game.variant],
                  seeds=seeds, train={"episodes": budget, "eval_period": game.eval_period,
                                      "eval_episodes": eval_episodes}, last_k=last)
    start = time.perf_counter()
    done = run_sweep(sweep, out / key / "trials", workers=workers)
    records = sweep_records(done)
    groups = summarize_records(records)
    finals, curves = {}, {}
    for g in groups:
        mine = [r for r in records if r.algorithm_label == g.algorithm_label]
        finals[g.algorithm_label] = {m: spread([getattr(r.result, m) for r in mine]) for m in
                                     ("welfare", "incentives", "net")}
        finals[g.algorithm_label]["wall_seconds"] = spread([r.result.wall_seconds for r in mine if r.result])
        curves[g.algorithm_label] = learning_curves(mine, columns=("welfare", "net"))
    optimum = groups[0].optimum
    title = f"{game.task.label}: {budget} agent episodes per run"
    plot = plot_task_curves(curves, out / key / "curves.png", optimum=optimum, title=title,
                            metrics=("welfare", "net"), xlabel="agent episodes consumed")
    over = {name: MetricSummary.of(v["net"].mean(1), reps=10_000, confidence=0.95, seed=0)
            for name, (_, v) in curves.items()}
    table = (f"{compact_table(groups, finals, over)}\n\nFinal values: each run's mean over its last {last} "
             f"evaluations of {eval_episodes} episodes (seeds {', '.join(map(str, seeds))}); net over training: each "
             f"run's mean net over all its evaluations; ± is the sample std over seeds.\n\n"
             f"{markdown_tables(groups)}")
    (out / key / "results.md").write_text(table)
    print(table)
    return {"task": game.task.label, "task_kwargs": dict(game.task.task_kwargs), "variant": game.variant.label,
            "episodes": budget, "eval_period": game.eval_period, "episodes_per_step": game.episodes_per_step,
            "levels": game.levels, "objective": game.objective, "optimum": optimum,
            "wall_minutes_this_run": (time.perf_counter() - start) / 60,
            "reused": list(done.skipped), "final": finals, "plot": str(plot.relative_to(out)),
            "net_over_training": {name: spread(v["net"].mean(1)) for name, (_, v) in curves.items()}}


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison; returns the output folder (``results.md``, ``summary.json``, one folder per game)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--games", nargs="+", choices=list(GAMES), default=list(GAMES))
    p.add_argument("--designers", nargs="+", choices=[*TRAINER_DESIGNERS, *PRINCIPALS],
                   default=[*TRAINER_DESIGNERS, *PRINCIPALS])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    p.add_argument("--episodes", type=int, default=None, help="agent episodes per run (default: the game's)")
    p.add_argument("--cleanup-seeds", nargs="+", type=int, default=None, help="Cleanup's seeds (default: --seeds)")
    p.add_argument("--last", type=int, default=5, help="evaluations averaged for the final values")
    p.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation")
    p.add_argument("--jobs", type=int, default=1, help="trials in parallel (processes)")
    p.add_argument("--out", default="runs/principals")
    args = p.parse_args(argv)
    command = " ".join(["python", "examples/compare_principals.py", *(sys.argv[1:] if argv is None else argv)])
    out = Path(args.out)
    path = out / "summary.json"
    summary: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    summary.setdefault("games", {})
    for key in args.games:
        seeds = args.cleanup_seeds if key == "cleanup" and args.cleanup_seeds else args.seeds
        summary["games"][key] = run_game(key, GAMES[key], args.designers, seeds, args.episodes, args.last,
                                         args.eval_episodes, args.jobs, out)
        summary["games"][key]["command"] = command
        summary["games"][key]["machine"] = machine_info()
        summary["games"][key]["date"] = time.strftime("%Y-%m-%d")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1))
    tables = [f"## {key}\n\n{(out / key / 'results.md').read_text()}" for key in summary["games"]
              if (out / key / "results.md").exists()]
    (out / "results.md").write_text("\n".join(tables))
    print(f"tables in {out / 'results.md'}, plots in {out}/<game>/curves.png, numbers in {path}")
    return out


if __name__ == "__main__":  # sweep worker processes import this file without running it
    main()
