"""Compare black-box principals on a designer environment: one command, a CSV per run, a summary CSV and a table.

Every principal runs on :class:`designer.principal.DesignerEnv` for the same agent-episode budget (the fair x-axis:
each round costs ``--episodes-per-step`` agent episodes) over the given seeds, through
:func:`designer.principal.run_principal`. Output, under ``--out/<task>``::

    <principal>/seed<s>/rounds.csv   one row per round (parameters, reward, outcome, agent episodes)
    summary.csv                      one row per principal and seed
    results.md                       the table: mean +- std over seeds of the last rounds' reward and welfare

    python examples/compare_principals.py --task escape_room --budget 2000 --episodes-per-step 50 --seeds 0 1 2 3 4
    python examples/compare_principals.py --task escape_room_contextual --output action_type

The Bayesian-optimisation principal (``bo``) needs the ``principals`` extra; without it it is left out, saying so.
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from designer.extras import MissingExtra
from designer.principal import (
    UCB,
    CallablePrincipal,
    DesignerEnv,
    DesignerEnvConfig,
    EpsilonGreedy,
    OptunaPrincipal,
    Principal,
    Round,
    ThompsonSampling,
    run_principal,
)


def _hill_climb(summary: str) -> list[float]:
    """A scripted stand-in for an LLM policymaker: from the JSON history, raise every payment by a quarter of its
    range while the reward improves, else go back to the best parameters seen."""
    data = json.loads(summary)
    lows = np.array([p["low"] for p in data["parameters"]])
    highs = np.array([p["high"] for p in data["parameters"]])
    rounds = data["rounds"]
    if not rounds:
        return lows.tolist()
    best = max(rounds, key=lambda r: r["reward"])
    last = np.array(rounds[-1]["parameters"])
    if rounds[-1] is best:
        return np.minimum(last + (highs - lows) / 4, highs).tolist()
    return list(best["parameters"])


PRINCIPALS: dict[str, Callable[[int], Principal]] = {
    "epsilon_greedy": lambda levels: EpsilonGreedy(epsilon=0.1, levels=levels),
    "ucb": lambda levels: UCB(c=2.0, levels=levels),
    "thompson": lambda levels: ThompsonSampling(prior_std=10.0, noise_std=5.0, levels=levels),
    "bo": lambda levels: OptunaPrincipal(sampler="gp"),
    "scripted_llm": lambda levels: CallablePrincipal(_hill_climb, last=10, name="scripted_llm"),
}


@dataclass
class Args:
    """The comparison (see ``--help``)."""

    task: str = "escape_room"
    task_kwargs: dict[str, Any] = field(default_factory=dict)
    principals: list[str] = field(default_factory=lambda: list(PRINCIPALS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: int = 1000
    episodes_per_step: int = 50
    levels: int = 3
    output: str | None = None
    objective: str = "net"
    last: int = 3
    out: str = "runs/principals"


def parse_args(argv: list[str] | None = None) -> Args:
    d = Args()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", default=d.task, help="task name (designer.tasks.make_task)")
    p.add_argument("--task-kwargs", type=json.loads, default=d.task_kwargs, help="task keyword arguments, JSON")
    p.add_argument("--principals", nargs="+", choices=list(PRINCIPALS), default=d.principals)
    p.add_argument("--seeds", nargs="+", type=int, default=d.seeds)
    p.add_argument("--budget", type=int, default=d.budget, help="agent episodes per run")
    p.add_argument("--episodes-per-step", type=int, default=d.episodes_per_step, help="agent episodes per round")
    p.add_argument("--levels", type=int, default=d.levels, help="grid values per parameter (bandits)")
    p.add_argument("--output", default=d.output, help="incentive output (default: the task's)")
    p.add_argument("--objective", default=d.objective, choices=["net", "welfare", "designer"])
    p.add_argument("--last", type=int, default=d.last, help="rounds averaged for the final score")
    p.add_argument("--out", default=d.out, help="output folder")
    return Args(**{k.replace("-", "_"): v for k, v in vars(p.parse_args(argv)).items()})


def _score(rounds: list[Round], key: str, last: int) -> float:
    values = [r.reward if key == "reward" else float(r.outcome.get(key, np.nan)) for r in rounds[-last:]]
    return float(np.mean(values))


def main(argv: list[str] | None = None) -> Path:
    """Run the comparison; returns the folder holding ``summary.csv`` and ``results.md``."""
    args = parse_args(argv)
    folder = Path(args.out) / args.task
    config = DesignerEnvConfig(task=args.task, task_kwargs=args.task_kwargs, episodes_per_step=args.episodes_per_step,
                               horizon=max(1, args.budget // args.episodes_per_step), output=args.output,
                               objective=args.objective)  # type: ignore[arg-type]
    env = DesignerEnv(config)
    rows: list[dict[str, Any]] = []
    for name in args.principals:
        for seed in args.seeds:
            try:
                principal = PRINCIPALS[name](args.levels)
            except MissingExtra as err:
                print(f"{name}: left out ({err})")
                break
            if isinstance(principal, CallablePrincipal):
                principal.parameter_names = env.parameter_names
            rounds = run_principal(env, principal, args.budget, seed=seed,
                                   csv_path=folder / name / f"seed{seed}" / "rounds.csv")
            rows.append({"principal": name, "seed": seed, "rounds": len(rounds),
                         "agent_episodes": rounds[-1].total_agent_episodes,
                         "final_reward": _score(rounds, "reward", args.last),
                         "final_welfare": _score(rounds, "welfare", args.last),
                         "final_incentives": _score(rounds, "incentives", args.last),
                         "best_reward": max(r.reward for r in rounds),
                         "best_parameters": json.dumps([round(p, 4) for p in max(rounds, key=lambda r: r.reward)
                                                        .parameters])})
    env.close()
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "summary.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = [f"{args.task} {json.dumps(args.task_kwargs)}: {args.objective} reward, mean +- std over seeds of the "
             f"last {args.last} rounds; {args.episodes_per_step} agent episodes per round", "",
             "| principal | seeds | agent episodes | reward | welfare | incentives | best round |",
             "|---|---|---|---|---|---|---|"]
    for name in dict.fromkeys(r["principal"] for r in rows):
        mine = [r for r in rows if r["principal"] == name]

        def cell(key: str, mine: list[dict[str, Any]] = mine) -> str:
            values = np.array([r[key] for r in mine], dtype=float)
            return f"{values.mean():.2f} ± {values.std():.2f}"

        table.append(f"| {name} | {len(mine)} | {mine[0]['agent_episodes']} | {cell('final_reward')} | "
                     f"{cell('final_welfare')} | {cell('final_incentives')} | {cell('best_reward')} |")
    (folder / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    return folder


if __name__ == "__main__":
    main()
