"""Running sweeps: every trial of a :class:`~designer.experiments.spec.Sweep`, locally or on Ray Tune, resumable.

Each trial is one run of the ordinary :class:`~designer.experiments.trainer.Trainer` writing its usual
``log.csv`` and ``checkpoint.pt`` under ``<sweep_dir>/<trial.name>/``, next to

- ``trial.json``: the fully resolved configs (written before anything runs, so pending trials are visible);
- ``result.json``: written when the trial ends: status ``"ok"`` or ``"failed"``, the mean of the last ``last_k``
  evaluations of welfare / incentives / designer net, episodes to 95% of the optimum, wall time, attempts and
  the errors of failed attempts;
- ``error.txt``: the full traceback of every failed attempt (appended, never deleted).

Running a sweep again resumes it: trials with an ``"ok"`` ``result.json`` are skipped, trials with a checkpoint
continue from it (bit-exactly, see :meth:`Trainer.resume`), the rest start over. A trial that raises is retried up
to ``max_retries`` times, then recorded as failed and listed in the summary. Trials are deterministic per seed:
run one by one (``stack="off"``), the local and the Ray runner write identical logs. By default both runners
train each configuration's seeds as one stacked program (:func:`execute_stacked`), which gives the same trials
within float rounding, several times faster for small networks.

A running sweep holds ``<sweep_dir>/sweep.lock`` (a second sweep in the same folder fails at once, naming the
holder), and each trial's trainer holds its trial folder's ``run.lock`` while it trains. The sweep owns its trial
folders: a trial with a checkpoint continues it, a trial without one starts over, replacing a partial log.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from designer.batched_rollout import CannotBatch
from designer.config import config_from_dict, config_to_dict
from designer.experiments.records import EvalResult, episodes_to
from designer.experiments.runfolder import RunLock
from designer.experiments.seed_stack import SeedStack
from designer.experiments.spec import Sweep, Trial, json_ready
from designer.experiments.trainer import Trainer
from designer.stacked import CannotStack

__all__ = [
    "StackMode",
    "SweepSummary",
    "TrialResult",
    "execute_stacked",
    "execute_trial",
    "ok_result",
    "prepare_sweep",
    "read_result",
    "record_lost",
    "run_sweep",
    "stack_groups",
]



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
        return json_ready(config_to_dict(self))

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
    """A trainer for the trial: resumed from its checkpoint when there is one, else fresh (the trainer removes a
    partial log.csv and TensorBoard events of an earlier attempt: the sweep owns the folder)."""
    ckpt = trial_dir / "checkpoint.pt"
    if ckpt.exists():
        trainer = Trainer.resume(ckpt, out_dir=str(trial_dir), progress=False)
        stored = replace(trainer.config, out_dir=None, progress=False)
        if (stored, trainer.designer_config, trainer.learner_config) != (trial.train, trial.designer, trial.learner):
            raise ValueError(f"{ckpt} was written with different configs than trial {trial.name}; "
                             "delete the trial folder to start it over")
        return trainer, trainer.progress.episodes
    cfg = replace(trial.train, out_dir=str(trial_dir), progress=False)
    return Trainer(cfg, designer=trial.designer, learner=trial.learner, overwrite=True), None


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
    final evaluation); Ray reports metrics through it. A principal trial (``trial.principal``) runs through
    :func:`designer.principal.trial.run_principal_trial`, from the start, without the callback.
    """
    trial_dir = Path(sweep_dir) / trial.name
    trial_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    t0 = time.perf_counter()
    for attempt in range(1, max_retries + 2):
        try:
            if trial.principal is not None:  # a black-box principal: run from the start (no checkpoint)
                from designer.principal.trial import run_principal_trial

                history, episodes, optimum = run_principal_trial(trial, trial_dir)
                result = ok_result(trial, history, episodes, optimum, last_k, attempt, t0, None, errors)
            else:
                trainer, resumed_from = _start(trial, trial_dir)
                trainer.train(callback=callback)
                if callback is not None:
                    callback(trainer)
                result = _ok_result(trial, trainer, last_k, attempt, t0, resumed_from, errors)
        except Exception as err:
            errors.append(_log_error(trial, trial_dir, f"attempt {attempt}/{max_retries + 1}", err))
            continue
        break
    else:
        result = TrialResult(
            trial=trial.name, status="failed", attempts=max_retries + 1, wall_seconds=time.perf_counter() - t0,
            episodes=0, last_k=last_k, welfare=None, incentives=None, net=None, episodes_to_95=None, optimum=None,
            resumed_from=None, config_hash=trial.config_hash, errors=tuple(errors),
        )
    _write_json(trial_dir / "result.json", result.to_dict())
    return result


def _ok_result(trial: Trial, trainer: Trainer, last_k: int, attempts: int, t0: float, resumed_from: int | None,
               errors: Sequence[str]) -> TrialResult:
    """The ``"ok"`` result of a trial trained to its budget; ``FloatingPointError`` on non-finite final metrics."""
    return ok_result(trial, trainer.progress.history, trainer.progress.episodes, trainer.task.optimum, last_k,
                     attempts, t0, resumed_from, errors)


def ok_result(trial: Trial, history: Sequence[EvalResult], episodes: int, optimum: float | None, last_k: int,
              attempts: int, t0: float, resumed_from: int | None, errors: Sequence[str]) -> TrialResult:
    """The ``"ok"`` result of a trial from its evaluations (a trainer's, or a principal trial's); episodes to 95%
    by :func:`~designer.experiments.records.episodes_to`; ``FloatingPointError`` on non-finite final metrics."""
    hist = history[-last_k:]
    means = {k: float(np.mean([getattr(h, k) for h in hist])) for k in ("welfare", "incentives", "net")}
    bad = {k: v for k, v in means.items() if not np.isfinite(v)}
    if bad:
        raise FloatingPointError(f"non-finite final metrics {bad}")
    return TrialResult(
        trial=trial.name, status="ok", attempts=attempts, wall_seconds=time.perf_counter() - t0,
        episodes=episodes, last_k=last_k, **means, episodes_to_95=episodes_to(history, optimum, 0.95),
        optimum=optimum, resumed_from=resumed_from, config_hash=trial.config_hash, errors=tuple(errors),
    )


def _log_error(trial: Trial, trial_dir: Path, what: str, err: Exception) -> str:
    """Append the traceback of ``err`` to the trial's ``error.txt``; returns its one-line summary."""
    with (trial_dir / "error.txt").open("a") as fh:
        fh.write(f"=== {trial.name} {what} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n{traceback.format_exc()}\n")
    return f"{type(err).__name__}: {err}".splitlines()[0]


StackMode = Literal["auto", "on", "off"]
"""Whether trials that differ only in seed train as one stacked program (see :func:`execute_stacked`)."""


def execute_stacked(
    trials: Sequence[Trial], sweep_dir: str | Path, *, max_retries: int = 0, last_k: int = 5, stack: StackMode = "auto",
) -> list[TrialResult]:
    """Run trials that differ only in seed as one stacked program
    (:class:`~designer.experiments.seed_stack.SeedStack`: the same runs within float rounding, several times
    faster for small networks), each writing its usual files and ``result.json``.

    ``stack="auto"`` stacks only where the rollouts' networks are MLPs, ``"on"`` wherever the designer and game
    allow. Trials that cannot stack (another designer, runs at different points of training), and every trial of
    a stacked attempt that raised (its traceback goes to each trial's ``error.txt``), run one by one through
    :func:`execute_trial`, which continues their checkpoints and retries.
    """
    root = Path(sweep_dir)
    if len(trials) > 1 and stack != "off" and all(t.principal is None for t in trials):
        t0 = time.perf_counter()
        try:
            started = [_start(t, root / t.name) for t in trials]
            group = SeedStack([trainer for trainer, _ in started])
            usable = stack == "on" or group.mlp_only
        except (CannotStack, CannotBatch, ValueError):  # execute_trial records a bad checkpoint per trial
            usable = False
        if usable:
            try:
                group.train()
                results = [_ok_result(t, trainer, last_k, 1, t0, resumed, ())
                           for t, (trainer, resumed) in zip(trials, started)]
            except Exception as err:
                for t in trials:
                    _log_error(t, root / t.name, "stacked attempt", err)
            else:
                for result in results:
                    _write_json(root / result.trial / "result.json", result.to_dict())
                return results
    return [execute_trial(t, root, max_retries=max_retries, last_k=last_k) for t in trials]


def stack_groups(trials: Sequence[Trial], workers: int = 1) -> list[list[Trial]]:
    """Trials grouped by everything but the seed, each group split so that there are at least ``workers``
    groups when the trials allow (a group is one stacked program, run by one worker)."""
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        key = json.dumps(json_ready({**t.configs(), "train": {**t.configs()["train"], "seed": 0}}), sort_keys=True)
        groups.setdefault(key, []).append(t)
    split = max(1, -(-workers // max(len(groups), 1)))
    return [part for g in groups.values() for part in (g[i::split] for i in range(split)) if part]


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
                changes = _diff({k: stored[k] for k in ("train", "designer", "learner", "principal") if k in stored},
                                trial.configs())
                raise ValueError(f"{path} holds different configs for trial {trial.name} ({'; '.join(changes[:5])})"
                                 "; use a new sweep folder or delete that trial's folder")
    _write_json(root / "sweep.json", sweep.to_dict())
    for trial in trials:
        _write_json(root / trial.name / "trial.json", trial.to_dict())
    return trials


def _run_local(trials: Sequence[Trial], root: Path, sweep: Sweep, workers: int,
               callback: Callable[[Trial, Trainer], None] | None, stack: StackMode) -> None:
    kwargs: dict[str, Any] = {"max_retries": sweep.max_retries, "last_k": sweep.last_k}
    if workers == 1 and callback is not None:  # the callback follows one trainer at a time: no stacking
        follow = callback
        for trial in trials:
            def each(trainer: Trainer, trial: Trial = trial) -> None:
                follow(trial, trainer)

            execute_trial(trial, root, callback=each, **kwargs)
        return
    groups = stack_groups(trials, workers) if stack != "off" else [[t] for t in trials]
    if workers == 1:
        for group in groups:
            execute_stacked(group, root, stack=stack, **kwargs)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: forking a process that has initialised torch's thread pools can deadlock
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(execute_stacked, group, root, stack=stack, **kwargs): group for group in groups}
        for future in as_completed(futures):
            try:
                future.result()
            except BrokenProcessPool as err:  # a worker died (e.g. killed for memory): record it, keep the rest
                for trial in futures[future]:
                    record_lost(trial, root, sweep, f"worker process died: {err}")


def record_lost(trial: Trial, root: Path, sweep: Sweep, message: str) -> None:
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


def run_sweep(
    sweep: Sweep,
    sweep_dir: str | Path,
    *,
    runner: Literal["local", "ray"] = "local",
    workers: int = 1,
    address: str | None = None,
    num_cpus: int | None = None,
    callback: Callable[[Trial, Trainer], None] | None = None,
    stack: StackMode = "auto",
) -> SweepSummary:
    """Run (or resume) a sweep and write ``summary.json``.

    Args:
        sweep: the grid.
        sweep_dir: output folder (for Ray on a cluster: a path every node sees, e.g. NFS).
        runner: ``"local"`` (this machine, no Ray) or ``"ray"`` (Ray Tune, one CPU per trial).
        workers: local runner: trials run in parallel in this many spawned processes (1: in this process).
        address: Ray runner: the cluster address (``"auto"`` on a cluster node; None starts a local Ray).
        num_cpus: Ray runner without ``address``: CPUs of the local Ray instance (default: all).
        callback: local runner with ``workers == 1``: called as ``callback(trial, trainer)`` every iteration
            (trials then run one by one).
        stack: trials that differ only in seed train as one stacked program (see :func:`execute_stacked`;
            ``"off"``: one by one), split into at least as many groups as there are workers (Ray: CPUs of the
            cluster) where the seeds allow. On Ray a stacked group is one Tune trial named after its first trial
            (``<name>__stack<n>``) that reports each trial's result at its end; a single trial reports every
            evaluation as it happens.

    Returns:
        The summary: every trial's result, the ones skipped because they were already done, and failures.
    """
    if stack not in ("auto", "on", "off"):
        raise ValueError(f"stack must be 'auto', 'on' or 'off', got {stack!r}")
    if runner not in ("local", "ray"):
        raise ValueError(f"runner must be 'local' or 'ray', got {runner!r}")
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    if callback is not None and (runner != "local" or workers != 1):
        raise ValueError("callback runs in this process: it needs runner='local' and workers=1")
    root = Path(sweep_dir).resolve()
    with RunLock(root, "sweep.lock"):
        return _run_locked(sweep, root, runner, workers, address, num_cpus, callback, stack)


def _run_locked(sweep: Sweep, root: Path, runner: str, workers: int, address: str | None, num_cpus: int | None,
                callback: Callable[[Trial, Trainer], None] | None, stack: StackMode) -> SweepSummary:
    """:func:`run_sweep` once it holds the sweep folder's lock."""
    trials = prepare_sweep(sweep, root)
    done = tuple(t.name for t in trials if _finished(t, root / t.name))
    pending = [t for t in trials if t.name not in done]
    for trial in pending:  # a failed result of an earlier run must not stand in for this run's outcome
        (root / trial.name / "result.json").unlink(missing_ok=True)
    if pending:
        if runner == "local":
            _run_local(pending, root, sweep, workers, callback, stack)
        else:
            from designer.experiments.ray_runner import run_ray  # imports Ray only when asked for

            run_ray(pending, root, sweep, address, num_cpus, stack)
    summary = SweepSummary(root, {t.name: read_result(root / t.name) for t in trials}, done)
    _write_json(root / "summary.json", summary.to_dict())
    return summary
