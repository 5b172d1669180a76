"""Train the MetaGrad designer on Escape Room and compare it with agents that have no designer.

Usage: ``python examples/train_metagrad_er.py [--n-agents 3] [--min-at-lever 2] [--episodes 10000] [--seed 0]``.
Prints the final evaluation of both runs and saves a learning-curve PNG (path printed at the end).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from designer import DesignerConfig, TrainConfig, Trainer
from designer.experiments.plots import plot_learning_curves


@dataclass
class Args:
    n_agents: int = 3
    """N: agents in the room"""
    min_at_lever: int = 2
    """M: agents that must pull the lever to open the door"""
    episodes: int = 10000
    """training episodes per run"""
    seed: int = 0
    out: str = "runs/example_er"
    """folder for logs, checkpoints and the plot"""
    overwrite: bool = False
    """replace the runs of an earlier call in --out (a run folder is never overwritten silently)"""


def parse() -> Args:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in vars(Args()).items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(default), default=default)
    return Args(**vars(parser.parse_args()))


if __name__ == "__main__":
    args = parse()
    task_kwargs = {"n_agents": args.n_agents, "min_at_lever": args.min_at_lever}
    runs = {}
    for algorithm in ("metagrad", "none"):
        # one run per algorithm, same seed: same agent initialisation and env randomness
        config = TrainConfig(task="escape_room", task_kwargs=task_kwargs, episodes=args.episodes, seed=args.seed,
                             eval_period=max(args.episodes // 50, 1), out_dir=f"{args.out}/{algorithm}", progress=True)
        trainer = Trainer(config, designer=DesignerConfig(algorithm=algorithm), overwrite=args.overwrite)
        trainer.train()
        runs[algorithm] = [trainer]
        last = trainer.progress.history[-1]
        print(f"{algorithm:9s} welfare {last.welfare:6.2f} (optimum {trainer.task.optimum:.0f}), "
              f"incentives paid {last.incentives:5.2f}, designer net {last.net:6.2f}")
    plot = plot_learning_curves(runs, Path(args.out) / "learning_curves.png", optimum=runs["none"][0].task.optimum)
    print(f"plot saved to {plot}")
