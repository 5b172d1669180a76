"""Sweeps: a grid of tasks x algorithms x config variants x seeds, run locally or on Ray Tune, resumable.

A :class:`Sweep` expands into :class:`Trial` s, each one run of the ordinary :class:`~designer.trainer.Trainer`
writing its usual ``log.csv`` and ``checkpoint.pt`` under ``<sweep_dir>/<trial.name>/``, next to

- ``trial.json``: the fully resolved configs (written before anything runs, so pending trials are visible);
- ``result.json``: written when the trial ends: status ``"ok"`` or ``"failed"``, the mean of the last ``last_k``
  evaluations of welfare / incentives / designer net, episodes to 95% of the optimum, wall time, attempts and
  the errors of failed attempts;
- ``error.txt``: the full traceback of every failed attempt (appended, never deleted).

Running a sweep again resumes it: trials with an ``"ok"`` ``result.json`` are skipped, trials with a checkpoint
continue from it (bit-exactly, see :meth:`Trainer.resume`), the rest start over. A trial that raises is retried up
to ``max_retries`` times, then recorded as failed and listed in the summary. Trials are deterministic per seed,
so the local runner and the Ray runner write identical logs.

Spec files are JSON (see :meth:`Sweep.from_dict`)::

    {
      "name": "er_small",
      "tasks": [{"task": "escape_room", "task_kwargs": {"n_agents": 2, "min_at_lever": 1}, "label": "er_n2_m1"},
                "ipd"],
      "algorithms": ["metagrad", "none", {"algorithm": "amd", "designer": {"output": "agent"}}],
      "variants": [{"label": "default"}, {"label": "lr3e-3", "designer": {"lr": 0.003}}],
      "seeds": 5,
      "train": {"episodes": 20000, "eval_period": 100, "checkpoint_period": 1000},
      "max_retries": 1,
      "last_k": 5
    }
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designer.config import DesignerConfig, TrainConfig, config_from_dict, config_to_dict
from designer.experiments.trainer import Trainer
from designer.learners import LearnerConfig
from designer.registry import algorithm_names
from designer.tasks import Task, make_task, task_names

__all__ = [
    "AlgorithmSpec",
    "Sweep",
    "SweepSummary",
    "TaskSpec",
    "Trial",
    "TrialResult",
    "Variant",
    "execute_trial",
    "prepare_sweep",
    "read_result",
    "run_sweep",
]

# Per-trial fields the sweep sets itself; a spec may not override them through "train".
_RESERVED_TRAIN = ("task", "task_kwargs", "seed", "out_dir", "progress")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_TRAINABLE_CPUS = 1


def _check_label(kind: str, label: str) -> str:
    if not isinstance(label, str) or not _LABEL.match(label) or "__" in label:
        raise ValueError(
            f"{kind} label must be letters, digits, '.', '_' or '-' (no '__', not starting with a symbol), "
            f"got {label!r}"
        )
    return label


def _check_overrides(kind: str, cls: type[Any], overrides: Mapping[str, Any], reserved: Sequence[str] = ()) -> None:
    if not isinstance(overrides, Mapping):
        raise TypeError(f"{kind} overrides must be a dict, got {type(overrides).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"{kind}: unknown {cls.__name__} fields {unknown}")
    clash = sorted(set(overrides) & set(reserved))
    if clash:
        raise ValueError(f"{kind}: {clash} are set per trial by the sweep and cannot be overridden")


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(value)).strip("-") or "x"


@dataclass(frozen=True)
class TaskSpec:
    """A task of the grid: its registered name, keyword arguments and the label used in trial names."""

    task: str
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if self.task not in task_names():
            raise KeyError(f"unknown task {self.task!r}; known tasks: {sorted(task_names())}")
        if not isinstance(self.task_kwargs, Mapping):
            raise TypeError(f"task_kwargs of {self.task!r} must be a dict, got {type(self.task_kwargs).__name__}")
        object.__setattr__(self, "task_kwargs", dict(self.task_kwargs))
        if not self.label:
            suffix = "".join(f"_{k}{_slug(v)}" for k, v in sorted(self.task_kwargs.items()))
            object.__setattr__(self, "label", self.task + suffix)
        _check_label("task", self.label)


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm of the grid, with designer overrides that belong to it (e.g. AMD's ``output="agent"``)."""

    algorithm: str
    designer: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if self.algorithm not in algorithm_names():
            raise ValueError(f"algorithm must be one of {algorithm_names()}, got {self.algorithm!r}")
        _check_overrides(f"algorithm {self.algorithm!r}", DesignerConfig, self.designer, ("algorithm",))
        object.__setattr__(self, "designer", dict(self.designer))
        object.__setattr__(self, "label", _check_label("algorithm", self.label or self.algorithm))


@dataclass(frozen=True)
class Variant:
    """A configuration variant: overrides of DesignerConfig, LearnerConfig and TrainConfig applied to every
    task and algorithm (variant designer overrides win over the algorithm's)."""

    label: str = "default"
    designer: Mapping[str, Any] = field(default_factory=dict)
    learner: Mapping[str, Any] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_label("variant", self.label)
        _check_overrides(f"variant {self.label!r}", DesignerConfig, self.designer, ("algorithm",))
        _check_overrides(f"variant {self.label!r}", LearnerConfig, self.learner)
        _check_overrides(f"variant {self.label!r}", TrainConfig, self.train, _RESERVED_TRAIN)
        for name in ("designer", "learner", "train"):
            object.__setattr__(self, name, dict(getattr(self, name)))


def _json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dict as it reads back from JSON (tuples become lists), so stored and fresh configs compare equal."""
    return json.loads(json.dumps(data, sort_keys=True))


def _tuples(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


@dataclass(frozen=True)
class Trial:
    """One run of the grid with fully resolved configs (``train.out_dir`` is set only when it runs)."""

    name: str
    task_label: str
    algorithm_label: str
    variant_label: str
    seed: int
    train: TrainConfig
    designer: DesignerConfig
    learner: LearnerConfig

    def configs(self) -> dict[str, Any]:
        """The three configs as JSON-ready dicts."""
        return _json_ready({"train": config_to_dict(self.train), "designer": config_to_dict(self.designer),
                            "learner": config_to_dict(self.learner)})

    @property
    def config_hash(self) -> str:
        """A short digest of the resolved configs (a changed config under the same trial name is refused)."""
        return hashlib.sha256(json.dumps(self.configs(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "task_label": self.task_label, "algorithm_label": self.algorithm_label,
                "variant_label": self.variant_label, "seed": self.seed, **self.configs(),
                "config_hash": self.config_hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        return cls(
            name=data["name"], task_label=data["task_label"], algorithm_label=data["algorithm_label"],
            variant_label=data["variant_label"], seed=int(data["seed"]),
            train=config_from_dict(TrainConfig, data["train"]),
            designer=config_from_dict(DesignerConfig, data["designer"]),
            learner=config_from_dict(LearnerConfig, data["learner"]),
        )


def _coerce(items: Any, kind: str, build: Callable[[Any], Any]) -> tuple[Any, ...]:
    if isinstance(items, (str, Mapping)) or not isinstance(items, Iterable):
        raise TypeError(f"{kind} must be a list, got {items!r}")
    out = tuple(build(x) for x in items)
    if not out:
        raise ValueError(f"{kind} must not be empty")
    labels = [x.label for x in out]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise ValueError(f"{kind} labels must be unique, repeated: {dupes}")
    return out


def _task_spec(x: Any) -> TaskSpec:
    return x if isinstance(x, TaskSpec) else TaskSpec(x) if isinstance(x, str) else TaskSpec(**x)


def _algorithm_spec(x: Any) -> AlgorithmSpec:
    return x if isinstance(x, AlgorithmSpec) else AlgorithmSpec(x) if isinstance(x, str) else AlgorithmSpec(**x)


def _variant(x: Any) -> Variant:
    return x if isinstance(x, Variant) else Variant(**x)


@dataclass(frozen=True)
class Sweep:
    """A grid of tasks x algorithms x variants x seeds sharing base TrainConfig overrides.

    Every sequence is stored as a tuple of specs; at construction (and in JSON) a task or algorithm may also be
    given by its name or as a dict of the spec's fields, a variant as a dict, and ``seeds`` as a count.

    Args:
        name: the sweep's name (used for the default output folder and Ray Tune's experiment name).
        tasks: the tasks (:class:`TaskSpec`: ``task``, ``task_kwargs``, ``label``).
        algorithms: the algorithms (:class:`AlgorithmSpec`: ``algorithm``, ``designer``, ``label``).
        variants: config variants (default: one variant ``"default"`` with no overrides).
        seeds: the seeds (a count ``n`` means ``0..n-1``).
        train: TrainConfig overrides for every trial (``episodes``, ``eval_period``, ``checkpoint_period``...).
        max_retries: how often a failing trial is retried before it is recorded as failed.
        last_k: ``result.json`` metrics are the mean of the last ``last_k`` evaluations.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    algorithms: tuple[AlgorithmSpec, ...]
    variants: tuple[Variant, ...] = (Variant(),)
    seeds: tuple[int, ...] = (0,)
    train: Mapping[str, Any] = field(default_factory=dict)
    max_retries: int = 1
    last_k: int = 5

    def __post_init__(self) -> None:
        _check_label("sweep", self.name)
        object.__setattr__(self, "tasks", _coerce(self.tasks, "tasks", _task_spec))
        object.__setattr__(self, "algorithms", _coerce(self.algorithms, "algorithms", _algorithm_spec))
        object.__setattr__(self, "variants", _coerce(self.variants, "variants", _variant))
        raw: Any = self.seeds
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw < 1:
                raise ValueError(f"seeds as a count must be >= 1, got {raw}")
            raw = range(raw)
        seeds = tuple(raw)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"seeds must be non-negative integers (or a count), got {self.seeds!r}")
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be unique, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        _check_overrides("sweep train", TrainConfig, self.train, _RESERVED_TRAIN)
        object.__setattr__(self, "train", dict(self.train))
        for name, low in (("max_retries", 0), ("last_k", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")

    # ------------------------------------------------------------------ spec files
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Sweep:
        """Build from a JSON-style dict; unknown keys raise ``ValueError``."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown sweep spec keys {unknown}; expected some of {sorted(names)}")
        return cls(**data)

    @classmethod
    def from_json(cls, path: str | Path) -> Sweep:
        """Read a JSON spec file (see the module docstring for the format)."""
        target = Path(path)
        try:
            data = json.loads(target.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{target} is not valid JSON: {err}") from err
        if not isinstance(data, dict):
            raise ValueError(f"{target} must hold a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (``Sweep.from_dict(s.to_dict()) == s``)."""
        return _json_ready({
            "name": self.name,
            "tasks": [{"task": t.task, "task_kwargs": t.task_kwargs, "label": t.label} for t in self.tasks],
            "algorithms": [{"algorithm": a.algorithm, "designer": a.designer, "label": a.label}
                           for a in self.algorithms],
            "variants": [{"label": v.label, "designer": v.designer, "learner": v.learner, "train": v.train}
                         for v in self.variants],
            "seeds": list(self.seeds),
            "train": self.train,
            "max_retries": self.max_retries,
            "last_k": self.last_k,
        })

    # ---------------------------------------------------------------------- trials
    def trials(self) -> list[Trial]:
        """Every trial of the grid with resolved configs (task defaults, then algorithm, then variant)."""
        out = []
        for task_spec in self.tasks:
            task: Task = make_task(task_spec.task, **task_spec.task_kwargs)
            for algo in self.algorithms:
                for variant in self.variants:
                    where = f"task {task_spec.label!r}, algorithm {algo.label!r}, variant {variant.label!r}"
                    try:
                        designer = replace(task.designer, **_tuples(
                            {**algo.designer, **variant.designer, "algorithm": algo.algorithm}))
                        learner = replace(task.learner, **_tuples(variant.learner))
                        base = TrainConfig(task=task_spec.task, task_kwargs=dict(task_spec.task_kwargs),
                                           **_tuples({**self.train, **variant.train}))
                    except (TypeError, ValueError) as err:
                        raise ValueError(f"{where}: {err}") from err
                    for seed in self.seeds:
                        name = f"{task_spec.label}__{algo.label}__{variant.label}__seed{seed}"
                        out.append(Trial(name, task_spec.label, algo.label, variant.label, seed,
                                         replace(base, seed=seed), designer, learner))
        return out

    def run(self, sweep_dir: str | Path, **kwargs: Any) -> SweepSummary:
        """Shorthand for :func:`run_sweep`."""
        return run_sweep(self, sweep_dir, **kwargs)


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TrialResult:
    """What ``result.json`` holds.

    Attributes:
        trial: the trial name.
        status: ``"ok"`` (trained to the budget) or ``"failed"`` (every attempt raised).
        attempts: attempts made in the run that wrote this file.
        wall_seconds: wall time of those attempts.
        episodes: training episodes done (the budget when ``"ok"``).
        last_k: how many final evaluations the metrics average.
        welfare, incentives, net: mean of the last ``last_k`` evaluations (None when failed).
        episodes_to_95: first evaluated episode with welfare >= 95% of the optimum (None: never or no optimum).
        optimum: the task's optimal welfare per episode, when known.
        resumed_from: episode the successful attempt resumed from (None: it started from scratch).
        config_hash: :attr:`Trial.config_hash` of the configs that produced this result.
        errors: one line per failed attempt (full tracebacks are in ``error.txt``).
    """

    trial: str
    status: Literal["ok", "failed"]
    attempts: int
    wall_seconds: float
    episodes: int
    last_k: int
    welfare: float | None
    incentives: float | None
    net: float | None
    episodes_to_95: int | None
    optimum: float | None
    resumed_from: int | None
    config_hash: str
    errors: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _json_ready(config_to_dict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialResult:
        return config_from_dict(cls, dict(data))


def read_result(trial_dir: str | Path) -> TrialResult | None:
    """The trial's ``result.json``, or None when it is missing or unreadable (an interrupted write)."""
    path = Path(trial_dir) / "result.json"
    try:
        return TrialResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _finished(trial: Trial, trial_dir: Path) -> bool:
    result = read_result(trial_dir)
    return result is not None and result.status == "ok" and result.config_hash == trial.config_hash


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Atomic write (a temp file, then ``os.replace``) so a killed run never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def _start(trial: Trial, trial_dir: Path) -> tuple[Trainer, int | None]:
    """A trainer for the trial: resumed from its checkpoint when there is one, else fresh (stale logs removed)."""
    ckpt = trial_dir / "checkpoint.pt"
    if ckpt.exists():
        trainer = Trainer.resume(ckpt, out_dir=str(trial_dir), progress=False)
        stored = replace(trainer.config, out_dir=None, progress=False)
        if (stored, trainer.designer_config, trainer.learner_config) != (trial.train, trial.designer, trial.learner):
            raise ValueError(f"{ckpt} was written with different configs than trial {trial.name}; "
                             "delete the trial folder to start it over")
        return trainer, trainer.progress.episodes
    (trial_dir / "checkpoint.pt.tmp").unlink(missing_ok=True)  # the trainer starts a fresh log.csv itself
    shutil.rmtree(trial_dir / "tb", ignore_errors=True)
    cfg = replace(trial.train, out_dir=str(trial_dir), progress=False)
    return Trainer(cfg, designer=trial.designer, learner=trial.learner), None


def execute_trial(
    trial: Trial,
    sweep_dir: str | Path,
    *,
    max_retries: int = 0,
    last_k: int = 5,
    callback: Callable[[Trainer], None] | None = None,
) -> TrialResult:
    """Run one trial to its budget (resuming its checkpoint), retrying on exceptions; writes ``result.json``.

    Exceptions (``Exception`` subclasses) are caught, their tracebacks appended to ``error.txt``, and the trial
    is retried up to ``max_retries`` times; a ``KeyboardInterrupt`` stops the run (the checkpoint stays).
    ``callback(trainer)`` is called after every training iteration and once more when training ends (after the
    final evaluation); Ray reports metrics through it.
    """
    trial_dir = Path(sweep_dir) / trial.name
    trial_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    t0 = time.perf_counter()
    for attempt in range(1, max_retries + 2):
        try:
            trainer, resumed_from = _start(trial, trial_dir)
            trainer.train(callback=callback)
            if callback is not None:
                callback(trainer)
            hist = trainer.progress.history[-last_k:]
            means = {k: float(np.mean([getattr(h, k) for h in hist])) for k in ("welfare", "incentives", "net")}
            bad = {k: v for k, v in means.items() if not np.isfinite(v)}
            if bad:
                raise FloatingPointError(f"non-finite final metrics {bad}")
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}".splitlines()[0])
            with (trial_dir / "error.txt").open("a") as fh:
                fh.write(f"=== {trial.name} attempt {attempt}/{max_retries + 1} "
                         f"({time.strftime('%Y-%m-%d %H:%M:%S')})\n{traceback.format_exc()}\n")
            continue
        result = TrialResult(
            trial=trial.name, status="ok", attempts=attempt, wall_seconds=time.perf_counter() - t0,
            episodes=trainer.progress.episodes, last_k=last_k, **means, episodes_to_95=trainer.episodes_to(0.95),
            optimum=trainer.task.optimum, resumed_from=resumed_from, config_hash=trial.config_hash,
            errors=tuple(errors),
        )
        break
    else:
        result = TrialResult(
            trial=trial.name, status="failed", attempts=max_retries + 1, wall_seconds=time.perf_counter() - t0,
            episodes=0, last_k=last_k, welfare=None, incentives=None, net=None, episodes_to_95=None, optimum=None,
            resumed_from=None, config_hash=trial.config_hash, errors=tuple(errors),
        )
    _write_json(trial_dir / "result.json", result.to_dict())
    return result


# --------------------------------------------------------------------------- runners
@dataclass(frozen=True)
class SweepSummary:
    """Outcome of a sweep run: every trial's result (None: not run) and which were already done before."""

    sweep_dir: Path
    results: Mapping[str, TrialResult | None]
    skipped: tuple[str, ...]

    @property
    def failed(self) -> list[str]:
        """Trials whose last run failed or that have no result (a worker died)."""
        return [n for n, r in self.results.items() if r is None or r.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def table(self) -> str:
        """A Markdown table: one row per trial with status, attempts, final welfare and wall time."""
        lines = ["| trial | status | attempts | welfare | episodes to 95% | wall s |", "|---|---|---|---|---|---|"]
        for name, r in self.results.items():
            if r is None:
                lines.append(f"| {name} | missing | 0 | | | |")
                continue
            status = "skipped (done)" if name in self.skipped else r.status
            welfare = "" if r.welfare is None else f"{r.welfare:.3f}"
            to95 = "n/a" if r.optimum is None else "never" if r.episodes_to_95 is None else str(r.episodes_to_95)
            note = f" ({r.errors[-1]})" if r.status != "ok" and r.errors else ""
            lines.append(f"| {name} | {status}{note} | {r.attempts} | {welfare} | {to95} | {r.wall_seconds:.1f} |")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"sweep_dir": str(self.sweep_dir), "skipped": list(self.skipped), "failed": self.failed,
                "results": {n: (r.to_dict() if r is not None else None) for n, r in self.results.items()}}


def _diff(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def prepare_sweep(sweep: Sweep, sweep_dir: str | Path) -> list[Trial]:
    """Write ``sweep.json`` and every ``trial.json``; refuse a trial whose stored configs differ.

    Extending a sweep (more seeds, variants, tasks) in the same folder is fine; changing the configs of a trial
    that already exists there raises ``ValueError`` naming the changed fields.
    """
    root = Path(sweep_dir)
    trials = sweep.trials()
    for trial in trials:
        path = root / trial.name / "trial.json"
        if path.exists():
            stored = json.loads(path.read_text())
            if stored.get("config_hash") != trial.config_hash:
                changes = _diff({k: stored.get(k) for k in ("train", "designer", "learner")}, trial.configs())
                raise ValueError(f"{path} holds different configs for trial {trial.name} ({'; '.join(changes[:5])})"
                                 "; use a new sweep folder or delete that trial's folder")
    _write_json(root / "sweep.json", sweep.to_dict())
    for trial in trials:
        _write_json(root / trial.name / "trial.json", trial.to_dict())
    return trials


def _run_local(trials: Sequence[Trial], root: Path, sweep: Sweep, workers: int,
               callback: Callable[[Trial, Trainer], None] | None) -> None:
    kwargs: dict[str, Any] = {"max_retries": sweep.max_retries, "last_k": sweep.last_k}
    if workers == 1:
        for trial in trials:
            cb = (lambda trainer, trial=trial: callback(trial, trainer)) if callback is not None else None
            execute_trial(trial, root, callback=cb, **kwargs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: forking a process that has initialised torch's thread pools can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(execute_trial, trial, root, **kwargs): trial for trial in trials}
        for future in as_completed(futures):
            try:
                future.result()
            except BrokenProcessPool as err:  # a worker died (e.g. killed for memory): record it, keep the rest
                _record_lost(futures[future], root, sweep, f"worker process died: {err}")


def _record_lost(trial: Trial, root: Path, sweep: Sweep, message: str) -> None:
    """A failed ``result.json`` for a trial whose process died before it could write one itself.

    Pending trials have no ``result.json`` when they start (:func:`run_sweep` removes stale ones), so an existing
    file was written by the trial itself and is kept.
    """
    if read_result(root / trial.name) is not None:
        return
    with (root / trial.name / "error.txt").open("a") as fh:
        fh.write(f"=== {trial.name} lost ({time.strftime('%Y-%m-%d %H:%M:%S')})\n{message}\n")
    result = TrialResult(trial=trial.name, status="failed", attempts=0, wall_seconds=0.0, episodes=0,
                         last_k=sweep.last_k, welfare=None, incentives=None, net=None, episodes_to_95=None,
                         optimum=None, resumed_from=None, config_hash=trial.config_hash,
                         errors=(message.splitlines()[0],))
    _write_json(root / trial.name / "result.json", result.to_dict())


def _tune_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one trial, reporting every new evaluation to Tune."""
    from ray import tune

    trial = Trial.from_dict(config["trial"])
    reported = {"n": 0}

    def report(trainer: Trainer) -> None:
        history = trainer.progress.history
        # a resumed trial reports its whole history once: each Tune run is a fresh experiment
        for h in history[reported["n"]:]:
            tune.report({"episode": h.episode, "welfare": h.welfare, "incentives": h.incentives, "net": h.net,
                         "final": False})
        reported["n"] = len(history)

    result = execute_trial(trial, config["sweep_dir"], max_retries=config["max_retries"],
                           last_k=config["last_k"], callback=report)
    final = {k: v for k, v in result.to_dict().items() if isinstance(v, (int, float, str)) and k != "trial"}
    tune.report({**final, "final": True})


def _tune_name(tune_trial: Any) -> str:
    return str(tune_trial.config["trial"]["name"])


def _run_ray(trials: Sequence[Trial], root: Path, sweep: Sweep, address: str | None, num_cpus: int | None) -> None:
    try:
        import ray
        from ray import tune
    except ImportError as err:
        raise ImportError('the Ray runner needs the "ray" extra: pip install "incentive-design[ray]"') from err
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_tune_trainable, {"cpu": _TRAINABLE_CPUS}),
            param_space={
                "trial": tune.grid_search([t.to_dict() for t in trials]),
                "sweep_dir": str(root),
                "max_retries": sweep.max_retries,
                "last_k": sweep.last_k,
            },
            tune_config=tune.TuneConfig(trial_name_creator=_tune_name, trial_dirname_creator=_tune_name),
            run_config=tune.RunConfig(
                name=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                storage_path=str(root / "_ray"),
                # retries of Python errors happen inside the trial; Tune's retries cover lost workers/nodes
                failure_config=tune.FailureConfig(max_failures=sweep.max_retries),
                verbose=0,
            ),
        )
        grid = tuner.fit()
        errors = {}
        for i in range(len(grid)):
            res = grid[i]
            if res.error is not None and res.config is not None:
                errors[res.config["trial"]["name"]] = f"Ray Tune: {res.error!r}"
        for trial in trials:
            _record_lost(trial, root, sweep, errors.get(trial.name, "Ray Tune: the trial reported no result"))
    finally:
        if started:
            ray.shutdown()


def run_sweep(
    sweep: Sweep,
    sweep_dir: str | Path,
    *,
    runner: Literal["local", "ray"] = "local",
    workers: int = 1,
    address: str | None = None,
    num_cpus: int | None = None,
    callback: Callable[[Trial, Trainer], None] | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep and write ``summary.json``.

    Args:
        sweep: the grid.
        sweep_dir: output folder (for Ray on a cluster: a path every node sees, e.g. NFS).
        runner: ``"local"`` (this machine, no Ray) or ``"ray"`` (Ray Tune, one CPU per trial).
        workers: local runner: trials run in parallel in this many spawned processes (1: in this process).
        address: Ray runner: the cluster address (``"auto"`` on a cluster node; None starts a local Ray).
        num_cpus: Ray runner without ``address``: CPUs of the local Ray instance (default: all).
        callback: local runner with ``workers == 1``: called as ``callback(trial, trainer)`` every iteration.

    Returns:
        The summary: every trial's result, the ones skipped because they were already done, and failures.
    """
    if runner not in ("local", "ray"):
        raise ValueError(f"runner must be 'local' or 'ray', got {runner!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if callback is not None and (runner != "local" or workers != 1):
        raise ValueError("callback runs in this process: it needs runner='local' and workers=1")
    root = Path(sweep_dir).resolve()
    trials = prepare_sweep(sweep, root)
    done = tuple(t.name for t in trials if _finished(t, root / t.name))
    pending = [t for t in trials if t.name not in done]
    for trial in pending:  # a failed result of an earlier run must not stand in for this run's outcome
        (root / trial.name / "result.json").unlink(missing_ok=True)
    if pending:
        if runner == "local":
            _run_local(pending, root, sweep, workers, callback)
        else:
            _run_ray(pending, root, sweep, address, num_cpus)
    summary = SweepSummary(root, {t.name: read_result(root / t.name) for t in trials}, done)
    _write_json(root / "summary.json", summary.to_dict())
    return summary
