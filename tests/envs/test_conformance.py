"""PettingZoo's conformance battery on every registered game, failing on any warning not explicitly allowed.

Every entry of ``incentive_envs.ENVS`` whose module exists is tested, so a game added to ``ENVS`` is covered
without editing this file. A game may skip a check only through :data:`OPT_OUTS`, with the reason written
there. The helpers here (:func:`no_warnings`, :data:`ENTRIES`, :func:`sample_action`, ...) are shared by the
other env test modules.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import re
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from gymnasium import spaces

with warnings.catch_warnings():
    # pettingzoo.test imports a deprecated classic module for its fixtures; not our code.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pettingzoo.test import (
        api_test,
        max_cycles_test,
        parallel_api_test,
        parallel_seed_test,
        render_test,
        seed_test,
        state_test,
    )

from incentive_envs import ENVS, EnvEntry

# (category, message regex) pairs a check may emit without failing. None are needed today; add an entry only
# with a comment saying why the warning is harmless.
ALLOWED_WARNINGS: tuple[tuple[type[Warning], str], ...] = ()

# Game name -> {check name -> reason}. A game skips a check only with a reason that holds for the game itself.
OPT_OUTS: dict[str, dict[str, str]] = {
    "escape_room": {
        "pettingzoo_max_cycles": (
            "random play opens the door and terminates ER before max_cycles, which max_cycles_test counts "
            "as a failure; test_max_cycles_non_terminating checks the same assertions on the unmodified game "
            "with a policy that never pulls the lever (so the door never opens)"
        ),
    },
}

Policy = Callable[[str, spaces.Space[Any], np.random.Generator], Any]


def _never_pull_lever(agent: str, space: spaces.Space[Any], rng: np.random.Generator) -> int:
    """ER: go to the start or the door, never the lever; with nobody at the lever the door stays shut."""
    return int(rng.integers(1, 3))


def sample_action(agent: str, space: spaces.Space[Any], rng: np.random.Generator) -> Any:
    """A uniform random action drawn from ``rng`` (space-generic, so new games need no change here)."""
    if isinstance(space, spaces.Discrete):
        return int(space.start + rng.integers(space.n))
    space.seed(int(rng.integers(2**31)))
    return space.sample()


# Game name -> a policy under which the game cannot terminate, for the max-cycles check. Default: random.
NON_TERMINATING_POLICIES: dict[str, Policy] = {"escape_room": _never_pull_lever}


def _available(entry: EnvEntry) -> bool:
    return importlib.util.find_spec(entry.module) is not None


ENTRIES: list[EnvEntry] = [e for e in ENVS if _available(e)]
ENTRY_IDS: list[str] = [e.name for e in ENTRIES]
entries = pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)


def module_of(entry: EnvEntry) -> ModuleType:
    return entry.load()


def skip_if_opted_out(entry: EnvEntry, check: str) -> None:
    reason = OPT_OUTS.get(entry.name, {}).get(check)
    if reason is not None:
        pytest.skip(f"{entry.name} opts out of {check}: {reason}")


class _LogRecorder(logging.Handler):
    """Collects WARNING+ log records: PettingZoo's EnvLogger warns through ``logging``, not ``warnings``."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _allowed(w: warnings.WarningMessage, allowed: tuple[tuple[type[Warning], str], ...]) -> bool:
    return any(issubclass(w.category, cat) and re.search(pat, str(w.message)) for cat, pat in allowed)


@contextlib.contextmanager
def no_warnings(also_allowed: tuple[tuple[type[Warning], str], ...] = ()) -> Iterator[None]:
    """Fail the test on any warning or WARNING log record raised inside the block that is not allow-listed.

    ``also_allowed`` extends :data:`ALLOWED_WARNINGS` for one check (each caller documents why).
    """
    allowed = ALLOWED_WARNINGS + tuple(also_allowed)
    recorder = _LogRecorder()
    root = logging.getLogger()
    root.addHandler(recorder)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        root.removeHandler(recorder)
    problems = [
        f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if not _allowed(w, allowed)
    ]
    problems += [f"log {r.levelname} {r.name}: {r.getMessage()}" for r in recorder.records]
    if problems:
        pytest.fail("unexpected warnings:\n" + "\n".join(problems))


def max_cycles_check(mod: ModuleType, policy: Policy, max_cycles: int = 4, seed: int = 0) -> None:
    """PettingZoo's ``max_cycles_test`` assertions, with actions from ``policy`` instead of uniform sampling.

    Parallel: the episode lasts exactly ``max_cycles`` steps and every agent is truncated (not terminated) at
    the end. AEC: every agent acts ``max_cycles + 1`` times (the last time with ``None``).
    """
    rng = np.random.default_rng(seed)
    par = mod.parallel_env(max_cycles=max_cycles)
    par.reset(seed=seed)
    steps = 0
    while par.agents and steps < max_cycles + 10:
        live = list(par.agents)
        _, _, terms, truncs, _ = par.step({a: policy(a, par.action_space(a), rng) for a in live})
        steps += 1
        if par.agents:
            assert not any(terms.values()) and not any(truncs.values()), f"step {steps}: early end {terms}"
    assert steps == max_cycles, f"parallel episode lasted {steps} steps, expected {max_cycles}"
    assert all(truncs.values()) and not any(terms.values()), f"last step: terms {terms}, truncs {truncs}"

    aec = mod.env(max_cycles=max_cycles)
    aec.reset(seed=seed)
    counts = dict.fromkeys(aec.possible_agents, 0)
    for agent in aec.agent_iter():
        counts[agent] += 1
        done = aec.terminations[agent] or aec.truncations[agent]
        assert not aec.terminations[agent], f"{agent} terminated under a non-terminating policy"
        aec.step(None if done else policy(agent, aec.action_space(agent), rng))
    assert set(counts.values()) == {max_cycles + 1}, f"AEC action counts {counts}, expected {max_cycles + 1}"


@entries
def test_parallel_api(entry: EnvEntry) -> None:
    """``parallel_api_test`` passes with no warnings."""
    with no_warnings():
        parallel_api_test(module_of(entry).parallel_env(), num_cycles=200)


@entries
def test_aec_api(entry: EnvEntry) -> None:
    """``api_test`` on the checked AEC env passes with no warnings."""
    with no_warnings():
        api_test(module_of(entry).env(), num_cycles=200, verbose_progress=False)


@entries
def test_aec_seed(entry: EnvEntry) -> None:
    """``seed_test`` (AEC, multi-step) passes with no warnings."""
    with no_warnings():
        seed_test(module_of(entry).env, num_cycles=100)


@entries
def test_parallel_seed(entry: EnvEntry) -> None:
    """``parallel_seed_test`` passes with no warnings (it compares one step only; see test_determinism)."""
    with no_warnings():
        parallel_seed_test(module_of(entry).parallel_env, num_cycles=100)


@entries
def test_max_cycles_pettingzoo(entry: EnvEntry) -> None:
    """PettingZoo's own ``max_cycles_test`` (uniform random actions) passes with no warnings."""
    skip_if_opted_out(entry, "pettingzoo_max_cycles")
    with no_warnings():
        max_cycles_test(module_of(entry))


@entries
@pytest.mark.parametrize("max_cycles", [1, 4, 7])
def test_max_cycles_non_terminating(entry: EnvEntry, max_cycles: int) -> None:
    """Exactly ``max_cycles`` steps, then truncation, under a policy that cannot terminate the game."""
    policy = NON_TERMINATING_POLICIES.get(entry.name, sample_action)
    with no_warnings():
        max_cycles_check(module_of(entry), policy, max_cycles=max_cycles)


@entries
def test_render(entry: EnvEntry) -> None:
    """``render_test`` over every advertised render mode (plus ``"human"``, which it always tries)."""
    mod = module_of(entry)
    if not mod.parallel_env().metadata.get("render_modes"):
        pytest.skip(f"{entry.name} has no render modes")
    with no_warnings(), contextlib.redirect_stdout(None):
        render_test(lambda render_mode=None: mod.env(render_mode=render_mode))


@entries
def test_state(entry: EnvEntry) -> None:
    """``state_test``: ``state()`` lies in ``state_space`` through AEC and parallel play."""
    mod = module_of(entry)
    if not hasattr(mod.parallel_env(), "state_space"):
        pytest.skip(f"{entry.name} has no state_space")
    with no_warnings():
        state_test(mod.env(), mod.parallel_env(), num_cycles=20)


@entries
def test_every_module_defines_the_three_factories(entry: EnvEntry) -> None:
    """``parallel_env``, ``raw_env`` and ``env`` exist; the AEC factories return PettingZoo AEC envs."""
    from pettingzoo import AECEnv, ParallelEnv

    mod = module_of(entry)
    assert isinstance(mod.parallel_env(), ParallelEnv)
    assert isinstance(mod.raw_env(), AECEnv)
    assert isinstance(mod.env(), AECEnv)


def test_opt_outs_name_real_games() -> None:
    """A stale opt-out (for a game no longer registered) would silently hide nothing; keep the table exact."""
    assert set(OPT_OUTS) <= {e.name for e in ENVS}
    assert set(NON_TERMINATING_POLICIES) <= {e.name for e in ENVS}


def test_no_warnings_fails_on_a_warning_and_on_a_log_record() -> None:
    """The guard used by every check above really fails (a silent guard would make the battery vacuous)."""
    with pytest.raises(pytest.fail.Exception, match="UserWarning: boom"), no_warnings():
        warnings.warn("boom", UserWarning, stacklevel=1)
    with pytest.raises(pytest.fail.Exception, match=r"log WARNING pettingzoo\.x: bang"), no_warnings():
        logging.getLogger("pettingzoo.x").warning("bang")
