"""Command line: ``python -m designer train|compare|resume|sweep|aggregate|transfer ...`` (also ``incentive-design``).

``train`` runs one algorithm on one task for one or more seeds; ``compare`` runs several algorithms side by side
and prints the results table (mean ± std over seeds, episodes to 95% of the optimum); ``resume`` continues a
checkpoint in its folder; ``transfer`` trains SB3 agents under a frozen learned incentive (needs the ``sb3`` extra).

A run folder that already holds a run is refused unless ``--overwrite``; a folder another process is writing is
refused at once, naming that process (see :mod:`designer.experiments.runfolder`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from designer.batched_rollout import CannotBatch
from designer.config import DesignerConfig, TrainConfig
from designer.experiments.aggregate import write_results
from designer.experiments.checkpoint import load_checkpoint
from designer.experiments.comparison import can_plot, plot_run, report, results_table, write_report
from designer.experiments.runfolder import RunFolderLocked, check_new_run
from designer.experiments.seed_stack import SeedStack
from designer.experiments.spec import Sweep, check_finite
from designer.experiments.sweep import run_sweep
from designer.experiments.trainer import Trainer
from designer.extras import MissingExtra, require
from designer.learners import LearnerConfig
from designer.presets import PRESETS, apply_preset, preset_names
from designer.registry import algorithm_entry, algorithm_names
from designer.stacked import CannotStack
from designer.task import Task
from designer.tasks import import_task_module, make_task, task_names

__all__ = ["build_parser", "main", "run_compare"]


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (argparse names the flag in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


_POSITIVE, _NON_NEGATIVE = _int_at_least(1), _int_at_least(0)


def _checkpoint_file(text: str) -> str:
    """An existing checkpoint file (argparse names the flag when it is not)."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"no checkpoint file at {text!r}")
    return text


def _json_dict(flag: str) -> Callable[[str], dict[str, Any]]:
    """An argparse ``type``: a JSON object with finite numbers (argparse names ``flag`` in its error)."""
    def parse(text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise argparse.ArgumentTypeError(f"not valid JSON ({err.msg} at character {err.pos}): {text!r}") from None
        if not isinstance(value, dict):
            raise argparse.ArgumentTypeError(f"must be a JSON object like '{{\"key\": 1}}', got {text!r}")
        try:
            check_finite(flag, value)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return value

    return parse


def _task_arg(text: str) -> str:
    """An argparse ``type`` for ``--task``: a known task, or ``package.module:factory`` (the module is imported)."""
    if ":" in text:
        try:
            import_task_module(text.rpartition(":")[0])
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return text
    if text not in task_names():
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; choose from {sorted(task_names())} or name your "
                                         "own as package.module:factory")
    return text


ER_DEFAULTS = {"n_agents": 5, "min_at_lever": 2}
"""Escape Room's N and M when ``--n-agents`` / ``--min-at-lever`` are not given."""


def _task_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(args.task_kwargs)
    if args.task == "escape_room":
        kwargs.setdefault("n_agents", args.n_agents or ER_DEFAULTS["n_agents"])
        kwargs.setdefault("min_at_lever", args.min_at_lever or ER_DEFAULTS["min_at_lever"])
    return kwargs


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults in ``--help`` (left out where there is none to show) and the description's line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, False, "", argparse.SUPPRESS):
            return action.help
        return super()._get_help_string(action)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", default="escape_room", type=_task_arg, metavar="TASK",
                   help=f"the game: one of {', '.join(sorted(task_names()))}, or your own as package.module:factory "
                        "(or path/to/file.py:factory; factory returns a designer Task or a PettingZoo ParallelEnv)")
    p.add_argument("--n-agents", type=_POSITIVE, default=None,
                   help=f"Escape Room N (only with --task escape_room; default {ER_DEFAULTS['n_agents']})")
    p.add_argument("--min-at-lever", type=_POSITIVE, default=None,
                   help=f"Escape Room M (only with --task escape_room; default {ER_DEFAULTS['min_at_lever']})")
    p.add_argument("--task-kwargs", type=_json_dict("--task-kwargs"), default={}, metavar="JSON",
                   help="JSON object of the task factory's keyword arguments, e.g. '{\"max_cycles\": 5}'")
    p.add_argument("--preset", default="task", choices=preset_names(),
                   help="agent and designer settings: the task's own, or a preset (small_game: tuned on small "
                        "social dilemmas; see designer.presets)")
    p.add_argument("--episodes", type=_POSITIVE, default=None,
                   help=f"training episodes (default: {DEFAULT_EPISODES_HELP})")
    p.add_argument("--batch-episodes", type=_POSITIVE, default=None,
                   help="episodes per inner update (B; default: the preset's, else 1)")
    p.add_argument("--vectorized", action="store_true",
                   help="collect the B episodes with the batched rollout (one batched env; same results within "
                        "float rounding; faster for B > 1)")
    p.add_argument("--seeds", type=_NON_NEGATIVE, nargs="+", default=[0], help="one run per seed")
    p.add_argument("--stack", choices=("auto", "on", "off"), default="auto",
                   help="train the seeds of an algorithm as one stacked program (vectorized across seeds: the "
                        "same runs within float rounding): 'auto' where the designer, agents and game allow it and "
                        "their networks are MLPs (where it was measured faster), 'on' also with conv networks, "
                        "'off' one by one")
    p.add_argument("--workers", type=_POSITIVE, default=1,
                   help="processes to spread each algorithm's seeds over (e.g. 2 on a 2-core machine)")
    p.add_argument("--eval-period", type=_POSITIVE, default=100, help="evaluate every this many training episodes")
    p.add_argument("--eval-episodes", type=_POSITIVE, default=10, help="episodes per evaluation")
    p.add_argument("--agents-from", type=_checkpoint_file, default=None, metavar="CHECKPOINT",
                   help="start the agents from this checkpoint's (same task and learner settings): the paper's "
                        "two-phase curriculum, phase 2 from the phase-1 agents")
    p.add_argument("--checkpoint-period", type=_NON_NEGATIVE, default=0,
                   help="save checkpoint.pt every this many episodes (0: only at the end)")
    p.add_argument("--out", default="runs", help="output folder (logs, checkpoints, plots)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the files of earlier runs in the run folders (default: refuse such folders)")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard logs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none when stderr is not "
                                                              "a terminal)")
    p.add_argument("--designer-json", type=_json_dict("--designer-json"), default={}, metavar="JSON",
                   help="JSON object of DesignerConfig overrides, e.g. '{\"lr\": 0.01}'")
    p.add_argument("--learner-json", type=_json_dict("--learner-json"), default={}, metavar="JSON",
                   help="JSON object of LearnerConfig overrides, e.g. '{\"lr\": 0.005}'")


def _algorithms_help() -> str:
    """One line per registered algorithm, for ``--help``."""
    return "; ".join(f"{name}: {algorithm_entry(name).summary}" for name in algorithm_names())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m designer", description=__doc__, formatter_class=_HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=_HelpFormatter)

    p_train = command("train", "train one algorithm")
    _add_common(p_train)
    p_train.add_argument("--algorithm", default="metagrad", choices=algorithm_names(), help=_algorithms_help())
    p_cmp = command("compare", "train several algorithms and print the results table")
    _add_common(p_cmp)
    p_cmp.add_argument("--algorithms", nargs="+", default=["metagrad", "none"], choices=algorithm_names(),
                       help=_algorithms_help())
    p_rep = command("report", "results table and plot from the run folders of earlier train/compare runs")
    p_rep.add_argument("folder", help="a task folder written by train/compare, e.g. runs/er_n5_m2")
    p_rep.add_argument("--algorithms", nargs="+", default=None, help="subset and order of the algorithm folders")
    p_res = command("resume", "continue a checkpoint in its folder, then print its table and refresh its plots")
    p_res.add_argument("checkpoint", help="a checkpoint.pt written by train/compare (or solved.pt with --overwrite)")
    p_res.add_argument("--episodes", type=_POSITIVE, default=None, help="new total budget (default: the stored one)")
    p_res.add_argument("--overwrite", action="store_true",
                       help="allow resuming a file other than the folder's checkpoint.pt (rolls the run back)")
    p_res.add_argument("--no-progress", action="store_true", help="no progress bar")
    for adder in (add_sweep_subcommand, add_aggregate_subcommand):
        adder(sub).formatter_class = _HelpFormatter
    try:
        _require_sb3()
    except MissingExtra:  # still listed; running it says which extra to install
        stub = sub.add_parser("transfer", prefix_chars="\0", add_help=False,
                              help="train SB3 agents under a frozen learned incentive (needs the sb3 extra)")
        stub.add_argument("args", nargs=argparse.REMAINDER)
    else:
        from designer.sb3 import add_transfer_subcommand

        add_transfer_subcommand(sub)
    return parser


def _require_sb3() -> None:
    for module, package in (("stable_baselines3", "stable-baselines3"), ("supersuit", "SuperSuit")):
        require(module, "sb3", "the transfer command", package)


DEFAULT_EPISODES = {"escape_room": 20000}
DEFAULT_EPISODES_HELP = "20000 for escape_room, else 5000"


class UsageError(ValueError):
    """Arguments that parse but do not fit together; ``main`` reports it as an argparse error naming ``flag``."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"argument {flag}: {message}")


def _overrides(overrides: dict[str, Any], config: object, flag: str) -> dict[str, Any]:
    """The JSON dict of ``flag`` as config overrides: unknown field names raise, lists become tuples."""
    known = {f.name for f in fields(config)}  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(flag, f"unknown field(s) {unknown}; {type(config).__name__} has {sorted(known)}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


def _designer_config(args: argparse.Namespace, algorithm: str, base: DesignerConfig) -> DesignerConfig:
    """The task's designer settings for ``algorithm`` with its registered defaults and ``--designer-json``."""
    overrides = _overrides(args.designer_json, base, "--designer-json")
    entry = algorithm_entry(algorithm)
    for name, value in entry.defaults.items():
        overrides.setdefault(name, value)
    missing = [name for name in entry.required if name not in overrides]
    if missing:
        example = ", ".join(f'\"{name}\": [...]' for name in missing)
        raise UsageError("--designer-json", f"algorithm {algorithm} needs --designer-json '{{{example}}}'")
    try:
        return replace(base, algorithm=algorithm, **overrides)
    except (TypeError, ValueError) as err:
        raise UsageError("--designer-json", str(err)) from err


def _learner_config(args: argparse.Namespace, base: LearnerConfig) -> LearnerConfig:
    """The task's agent learner with the ``--learner-json`` overrides (lists become tuples, as in the configs)."""
    try:
        return replace(base, **_overrides(args.learner_json, base, "--learner-json"))
    except (TypeError, ValueError) as err:
        raise UsageError("--learner-json", str(err)) from err


def _task(args: argparse.Namespace) -> Task:
    """The task ``--task`` / ``--task-kwargs`` / ``--preset`` name; a task that cannot be built is a usage error."""
    if args.task != "escape_room":
        for flag, value in (("--n-agents", args.n_agents), ("--min-at-lever", args.min_at_lever)):
            if value is not None:
                raise UsageError(flag, f"applies only to --task escape_room, not {args.task!r}; pass the game's "
                                       "own arguments with --task-kwargs")
    try:
        task = make_task(args.task, **_task_kwargs(args))
    except (KeyError, TypeError, ValueError) as err:
        raise UsageError("--task-kwargs" if args.task_kwargs else "--task", str(err).strip('"')) from err
    return apply_preset(task, args.preset)


def _batch_episodes(args: argparse.Namespace, task: Task) -> int:
    """``--batch-episodes``, else the task's preset's (1 for the task's own settings)."""
    if args.batch_episodes is not None:
        return int(args.batch_episodes)
    return PRESETS[task.preset].batch_episodes if task.preset in PRESETS else 1


def _run_dir(args: argparse.Namespace, algorithm: str, seed: int) -> Path:
    return Path(args.out) / _run_name(args.task, _task_kwargs(args)) / algorithm / f"seed{seed}"


def build_trainer(args: argparse.Namespace, algorithm: str, seed: int, vectorized: bool | None = None) -> Trainer:
    """The trainer of ``algorithm`` with ``seed`` as the parsed arguments say (``<out>/<task>/<algo>/seed<k>``);
    ``vectorized`` overrides ``--vectorized``."""
    kwargs = _task_kwargs(args)
    task = _task(args)
    episodes = args.episodes if args.episodes is not None else DEFAULT_EPISODES.get(args.task, 5000)
    out = _run_dir(args, algorithm, seed)
    cfg = TrainConfig(
        task=args.task, task_kwargs=kwargs, episodes=episodes, batch_episodes=_batch_episodes(args, task), seed=seed,
        eval_period=args.eval_period, eval_episodes=args.eval_episodes, checkpoint_period=args.checkpoint_period,
        agents_from=args.agents_from,
        out_dir=str(out), tensorboard=args.tensorboard, progress=not args.no_progress,
        vectorized=args.vectorized if vectorized is None else vectorized,
    )
    return Trainer(cfg, designer=_designer_config(args, algorithm, task.designer),
                   learner=_learner_config(args, task.learner), task=task, overwrite=args.overwrite)


def run_one(args: argparse.Namespace, algorithm: str, seed: int) -> Trainer:
    """Train ``algorithm`` with ``seed`` as the parsed arguments say; writes to ``<out>/<task>/<algo>/seed<k>``."""
    trainer = build_trainer(args, algorithm, seed)
    _train(trainer)
    plot_run(trainer, _run_dir(args, algorithm, seed) / "learning_curve.png")
    return trainer


def run_seeds(args: argparse.Namespace, algorithm: str, seeds: Sequence[int]) -> list[Trainer]:
    """Train ``algorithm`` for every seed in this process: as one stacked program
    (:class:`~designer.experiments.seed_stack.SeedStack`) as ``--stack`` says and the designer, agents and game
    allow, else one by one, saying why."""
    if args.stack != "off" and len(seeds) > 1:
        try:
            trainers = [build_trainer(args, algorithm, seed, vectorized=True) for seed in seeds]
            stack = SeedStack(trainers)
            if args.stack == "auto" and not stack.mlp_only:
                raise CannotStack("conv networks: stacking them was measured slower than one by one here; "
                                  "--stack on forces it")
        except (CannotStack, CannotBatch) as err:
            print(f"{algorithm}: seeds {list(seeds)} train one by one ({err})")
        else:
            try:
                stack.train()
            except KeyboardInterrupt:
                raise Interrupted(*trainers) from None
            for seed, trainer in zip(seeds, trainers):
                plot_run(trainer, _run_dir(args, algorithm, seed) / "learning_curve.png")
            return trainers
    return [run_one(args, algorithm, seed) for seed in seeds]


def _run_seeds_in_worker(args: argparse.Namespace, algorithm: str, seeds: list[int]) -> None:
    run_seeds(args, algorithm, seeds)


def run_algorithm(args: argparse.Namespace, algorithm: str) -> list[Trainer]:
    """Every seed of ``algorithm``; with ``--workers k`` the seeds are split into k groups trained in parallel
    processes, and the finished runs are read back from their checkpoints."""
    seeds = list(args.seeds)
    groups = [seeds[i::args.workers] for i in range(min(args.workers, len(seeds)))]
    if len(groups) <= 1:
        return run_seeds(args, algorithm, seeds)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=len(groups), mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in [pool.submit(_run_seeds_in_worker, args, algorithm, group) for group in groups]:
            future.result()
    return [Trainer.resume(_run_dir(args, algorithm, seed) / "checkpoint.pt", out_dir=None) for seed in seeds]


def _run_name(task: str, kwargs: dict[str, Any]) -> str:
    """The task's folder name: ``er_n5_m2`` for Escape Room, the factory's name for ``module:factory``."""
    if task == "escape_room":
        return f"er_n{kwargs.get('n_agents', 5)}_m{kwargs.get('min_at_lever', 2)}"
    return Path(task.rpartition(":")[2]).name


def run_compare(args: argparse.Namespace, algorithms: Sequence[str]) -> dict[str, list[Trainer]]:
    """Train every algorithm and seed, then write the report. Before anything trains, bad config overrides are
    named and folders holding earlier runs refused (unless ``args.overwrite``)."""
    task = _task(args)
    for algo in algorithms:
        _designer_config(args, algo, task.designer)
        _learner_config(args, task.learner)
        for seed in args.seeds:
            check_new_run(_run_dir(args, algo, seed), args.overwrite, "--overwrite")
    results = {algo: run_algorithm(args, algo) for algo in algorithms}
    write_report(results, Path(args.out) / _run_name(args.task, _task_kwargs(args)))
    return results


def add_sweep_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``sweep`` to a ``python -m designer`` subparsers object."""
    parser = subparsers.add_parser(
        "sweep", help="run or resume a grid of tasks x algorithms x variants x seeds (locally or on Ray)",
        description="Run a sweep from a JSON spec, or resume the sweep stored in a sweep folder.",
    )
    parser.add_argument("spec", help="a JSON sweep spec, or an existing sweep folder (holding sweep.json) to resume")
    parser.add_argument("--out", default=None, help="sweep folder (default: runs/sweeps/<name>, or SPEC if a folder)")
    parser.add_argument("--runner", default="local", choices=("local", "ray"),
                        help="where trials run: local processes, or a Ray cluster (the ray extra)")
    parser.add_argument("--workers", type=_POSITIVE, default=1, help="local runner: parallel trial processes")
    parser.add_argument("--stack", choices=("auto", "on", "off"), default="auto",
                        help="local runner: train each configuration's seeds as one stacked program ('auto': where "
                             "the networks are MLPs; 'on': also conv networks; 'off': trial by trial)")
    parser.add_argument("--address", default=None, help='ray runner: cluster address ("auto" on a cluster node)')
    parser.add_argument("--num-cpus", type=_POSITIVE, default=None, help="ray runner without --address: local CPUs")
    parser.add_argument("--max-retries", type=_NON_NEGATIVE, default=None, help="override the spec's max_retries")
    parser.add_argument("--no-aggregate", action="store_true", help="skip writing result tables and plots")
    parser.set_defaults(func=run_sweep_cli)
    return parser


def run_sweep_cli(args: argparse.Namespace) -> int:
    """Run the ``sweep`` subcommand; returns 1 when any trial failed, else 0."""
    spec = Path(args.spec)
    if spec.is_dir():
        if not (spec / "sweep.json").is_file():
            raise SystemExit(f"{spec} is a folder without sweep.json; pass a JSON spec file to start a sweep")
        sweep = Sweep.from_json(spec / "sweep.json")
        out = Path(args.out) if args.out else spec
    else:
        sweep = Sweep.from_json(spec)
        out = Path(args.out) if args.out else Path("runs") / "sweeps" / sweep.name
    if args.max_retries is not None:
        sweep = replace(sweep, max_retries=args.max_retries)
    summary = run_sweep(sweep, out, runner=args.runner, workers=args.workers, address=args.address,
                        num_cpus=args.num_cpus, stack=args.stack)
    print(summary.table())
    if not args.no_aggregate:
        for kind, path in write_results(out, plots=can_plot()).items():
            print(f"{kind}: {path}")
    if summary.failed:
        print(f"{len(summary.failed)} trial(s) failed: {', '.join(summary.failed)} (see their error.txt)")
        return 1
    return 0


def add_aggregate_subcommand(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``aggregate`` to a ``python -m designer`` subparsers object."""
    parser = subparsers.add_parser(
        "aggregate", help="sweep folder -> result tables (Markdown, CSV) and learning-curve plots",
        description="Summarise a sweep folder: mean ± std and IQM with bootstrap 95% intervals over seeds.",
    )
    parser.add_argument("sweep_dir", help="a folder written by `python -m designer sweep`")
    parser.add_argument("--out", default=None, help="output folder (default: SWEEP_DIR/results)")
    parser.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval mass")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.set_defaults(func=run_aggregate_cli)
    return parser


def run_aggregate_cli(args: argparse.Namespace) -> int:
    """Run the ``aggregate`` subcommand: write the files, print the Markdown tables."""
    written = write_results(args.sweep_dir, args.out, reps=args.reps, confidence=args.confidence, seed=args.seed,
                            plots=not args.no_plots and can_plot())
    print(written["table"].read_text())
    for kind, path in written.items():
        print(f"{kind}: {path}")
    return 0


class Interrupted(Exception):
    """Ctrl-C during a run (or stacked runs): each run's folder's last checkpoint (if any) and how to continue it."""

    def __init__(self, *trainers: Trainer) -> None:
        super().__init__("\n".join(self._line(t) for t in trainers))

    @staticmethod
    def _line(trainer: Trainer) -> str:
        folder = trainer.out_dir
        ckpt = None if folder is None else folder / "checkpoint.pt"
        if ckpt is not None and ckpt.exists():
            episodes = load_checkpoint(ckpt)["progress"]["episodes"]
            return (f"interrupted at episode {trainer.progress.episodes} of {trainer.config.episodes}; last "
                    f"checkpoint: {ckpt} (episode {episodes}); continue with:\n  python -m designer resume {ckpt}")
        return (f"interrupted at episode {trainer.progress.episodes} of {trainer.config.episodes}; no "
                "checkpoint was written yet (--checkpoint-period N saves one every N episodes)")


def _train(trainer: Trainer) -> None:
    """``trainer.train()``, turning Ctrl-C into :class:`Interrupted` naming the run's last checkpoint."""
    try:
        trainer.train()
    except KeyboardInterrupt:
        raise Interrupted(trainer) from None


def resume(checkpoint: Path, episodes: int | None = None, *, overwrite: bool = False,
           progress: bool = True) -> Trainer:
    """Continue a checkpoint in its folder, then print its results table and refresh its learning curve (and,
    for a run of a ``train``/``compare`` folder, that folder's table and comparison plot)."""
    overrides: dict[str, Any] = {"progress": progress}
    if episodes is not None:
        overrides["episodes"] = episodes
    trainer = Trainer.resume(checkpoint, overwrite=overwrite, **overrides)
    _train(trainer)
    folder = Path(checkpoint).resolve().parent
    plot_run(trainer, folder / "learning_curve.png")
    task_folder = folder.parent.parent
    if folder.name.startswith("seed") and (task_folder / "results.md").exists():
        report(task_folder)  # prints the whole task's table
    else:
        print(results_table({trainer.designer_config.algorithm: [trainer]}, _run_name(trainer.task.name, {})))
    return trainer


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (130 after Ctrl-C, naming the checkpoint to resume)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except UsageError as err:
        parser.error(str(err))
    except Interrupted as err:
        print(f"\n{err}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except (RunFolderLocked, FileExistsError, MissingExtra) as err:  # folder in use or taken, extra missing
        raise SystemExit(f"error: {err}") from err


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        run_compare(args, [args.algorithm])
    elif args.command == "compare":
        run_compare(args, args.algorithms)
    elif args.command == "resume":
        resume(Path(args.checkpoint), args.episodes, overwrite=args.overwrite, progress=not args.no_progress)
    elif args.command == "report":
        report(Path(args.folder), args.algorithms)
    elif args.command in ("sweep", "aggregate"):
        return int(args.func(args))
    elif args.command == "transfer":
        _require_sb3()
        from designer.sb3 import run_transfer

        run_transfer(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
