"""Sweep specs: a grid of tasks x algorithms x config variants x seeds, expanded into fully resolved trials.

Spec files are JSON (see :meth:`Sweep.from_dict`); :mod:`designer.experiments.sweep` runs them::

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

A trial's configs are the task's defaults, then the algorithm's registered defaults (e.g. AMD pays per agent),
then the algorithm's and the variant's overrides. Numbers must be finite (Python's JSON parser reads ``NaN`` and
``Infinity``): a spec with one is refused where it enters, naming the field.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from designer.config import DesignerConfig, TrainConfig, config_from_dict, config_to_dict
from designer.learners import LearnerConfig
from designer.registry import algorithm_entry, algorithm_names
from designer.task import Task
from designer.tasks import import_task_module, make_task, task_names, task_reference

__all__ = ["AlgorithmSpec", "Sweep", "TaskSpec", "Trial", "Variant", "check_finite"]

# Per-trial fields the sweep sets itself; a spec may not override them through "train".
_RESERVED_TRAIN = ("task", "task_kwargs", "seed", "out_dir", "progress")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_PRINCIPAL = "principal"  # designer.principal.trial.PRINCIPAL (not imported here: it imports the trainer)


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


def check_finite(where: str, value: Any) -> None:
    """Raise ``ValueError`` naming the first NaN or infinity in ``value`` (nested dicts, lists and tuples), e.g.
    ``"variant 'v' learner.lr must be a finite number, got nan"``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            check_finite(f"{where}.{key}", item)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_finite(f"{where}[{i}]", item)


def _slug(value: Any) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", str(value)).strip("-") or "x"


@dataclass(frozen=True)
class TaskSpec:
    """A task of the grid: its name, keyword arguments and the label used in trial names.

    ``task`` is a registered name or a ``"module:attribute"`` reference (:func:`designer.tasks.make_task`). A task
    registered outside the library is stored as ``"<module>:<name>"`` (:func:`designer.registry.task_reference`),
    so the spec file, its trials and Ray workers import that module before they build the task.
    """

    task: str
    task_kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.task, str):
            raise TypeError(f"task must be a task name, got {self.task!r}")
        if ":" in self.task:
            import_task_module(self.task.rpartition(":")[0])
        elif self.task not in task_names():
            raise KeyError(f"unknown task {self.task!r}; known tasks: {sorted(task_names())} (a task of your own: "
                           "'package.module:factory', or register_task it in a module the spec names that way)")
        object.__setattr__(self, "task", task_reference(self.task))
        if not isinstance(self.task_kwargs, Mapping):
            raise TypeError(f"task_kwargs of {self.task!r} must be a dict, got {type(self.task_kwargs).__name__}")
        check_finite(f"task {self.task!r} task_kwargs", self.task_kwargs)
        object.__setattr__(self, "task_kwargs", dict(self.task_kwargs))
        if not self.label:
            suffix = "".join(f"_{k}{_slug(v)}" for k, v in sorted(self.task_kwargs.items()))
            name = self.task.rpartition(":")[2]  # a reference's factory or registered name
            base = name if _LABEL.match(name) and "__" not in name else _slug(name)
            object.__setattr__(self, "label", base + suffix)
        _check_label("task", self.label)


@dataclass(frozen=True)
class AlgorithmSpec:
    """An algorithm of the grid, with designer overrides that belong to it (e.g. AMD's ``output="agent"``).

    ``algorithm="principal"`` with ``principal={"name": "ucb", ...}`` is a black-box principal
    (:class:`designer.principal.trial.PrincipalTrialConfig`: ``name``, ``options``, ``episodes_per_step``,
    ``objective``) run on the designer env within the trial's episode budget; its label defaults to the
    principal's name, and its designer overrides set the parameters' ``output`` and ``scale``.
    """

    algorithm: str
    designer: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    principal: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.algorithm == _PRINCIPAL:
            from designer.principal.trial import PrincipalTrialConfig  # the principal package imports the trainer

            try:
                settings = PrincipalTrialConfig.from_mapping(self.principal)
            except (TypeError, ValueError) as err:
                raise ValueError(f"algorithm 'principal': {err}") from err
            object.__setattr__(self, "principal", settings.to_dict())
            object.__setattr__(self, "label", self.label or settings.name)
        elif self.principal:
            raise ValueError(f"principal settings need algorithm 'principal', got {self.algorithm!r}")
        elif self.algorithm not in algorithm_names():
            raise ValueError(f"algorithm must be one of {(*algorithm_names(), _PRINCIPAL)}, got {self.algorithm!r}")
        _check_overrides(f"algorithm {self.algorithm!r}", DesignerConfig, self.designer, ("algorithm",))
        check_finite(f"algorithm {self.algorithm!r} designer", self.designer)
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
            check_finite(f"variant {self.label!r} {name}", getattr(self, name))
            object.__setattr__(self, name, dict(getattr(self, name)))


def json_ready(data: Mapping[str, Any]) -> dict[str, Any]:
    """The dict as it reads back from JSON (tuples become lists), so stored and fresh configs compare equal."""
    return json.loads(json.dumps(data, sort_keys=True))


def _tuples(overrides: Mapping[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}


@dataclass(frozen=True)
class Trial:
    """One run of the grid with fully resolved configs (``train.out_dir`` is set only when it runs).

    ``principal`` (None for trainer trials) holds a principal trial's settings; its ``designer`` is the task's
    with algorithm ``"none"`` (the designer env sets a ``fixed`` table each round).
    """

    name: str
    task_label: str
    algorithm_label: str
    variant_label: str
    seed: int
    train: TrainConfig
    designer: DesignerConfig
    learner: LearnerConfig
    principal: Mapping[str, Any] | None = None

    def configs(self) -> dict[str, Any]:
        """The three configs as JSON-ready dicts (and a principal trial's settings)."""
        configs = {"train": config_to_dict(self.train), "designer": config_to_dict(self.designer),
                   "learner": config_to_dict(self.learner)}
        if self.principal is not None:
            configs["principal"] = dict(self.principal)
        return json_ready(configs)

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
            learner=config_from_dict(LearnerConfig, data["learner"]), principal=data.get("principal"),
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



def _seeded(train: TrainConfig, seed: int) -> TrainConfig:
    """``train`` for one seed: the seed set, and ``{seed}`` in ``agents_from`` filled in."""
    agents_from = None if train.agents_from is None else train.agents_from.replace("{seed}", str(seed))
    return replace(train, seed=seed, agents_from=agents_from)

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
            ``agents_from`` may name ``{seed}``: each trial starts from the agents of its own seed's run (a
            curriculum whose phase-1 runs are another sweep's trials).
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
        check_finite("sweep train", self.train)
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
        return json_ready({
            "name": self.name,
            "tasks": [{"task": t.task, "task_kwargs": t.task_kwargs, "label": t.label} for t in self.tasks],
            "algorithms": [{"algorithm": a.algorithm, "designer": a.designer, "label": a.label,
                            **({"principal": a.principal} if a.principal else {})} for a in self.algorithms],
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
                    principal = algo.principal if algo.algorithm == _PRINCIPAL else None
                    try:
                        defaults = {} if principal is not None else algorithm_entry(algo.algorithm).defaults
                        designer = replace(task.designer, **_tuples(
                            {**defaults, **algo.designer, **variant.designer,
                             "algorithm": "none" if principal is not None else algo.algorithm}))
                        learner = replace(task.learner, **_tuples(variant.learner))
                        base = TrainConfig(task=task_spec.task, task_kwargs=dict(task_spec.task_kwargs),
                                           **_tuples({**self.train, **variant.train}))
                    except (TypeError, ValueError) as err:
                        raise ValueError(f"{where}: {err}") from err
                    for seed in self.seeds:
                        name = f"{task_spec.label}__{algo.label}__{variant.label}__seed{seed}"
                        out.append(Trial(name, task_spec.label, algo.label, variant.label, seed,
                                         _seeded(base, seed), designer, learner, principal))
        return out
