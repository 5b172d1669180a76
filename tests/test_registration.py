"""Registration: every game builds through ``pettingzoo.make`` and ``gymnasium.make`` and passes both checkers."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import gymnasium
import pettingzoo
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from pettingzoo import AECEnv, ParallelEnv
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import incentive_envs
from incentive_envs import EnvEntry, JointActionEnv, SingleAgentEnv, make_parallel
from tests.envs.test_conformance import entries, no_warnings

_SMALL_IMAGES = (
    "the egocentric RGB view (9x9 Cleanup, 15x15 Harvest, as in the original SSD games) is smaller than the "
    "36x36 that SB3's default CnnPolicy needs, so SB3's check_env warns by design; SB3 users pick MlpPolicy "
    "or a custom features extractor. Any other warning still fails."
)
# Game name -> (category, message regex) warnings SB3's check_env may emit for that game; reason alongside.
SB3_ALLOWED_WARNINGS: dict[str, tuple[tuple[type[Warning], str], ...]] = {
    "cleanup": ((UserWarning, r"minimal resolution for an image is 36x36"),),  # _SMALL_IMAGES
    "harvest": ((UserWarning, r"minimal resolution for an image is 36x36"),),  # _SMALL_IMAGES
}
VIEWS = pytest.mark.parametrize(("suffix", "cls"), [("", JointActionEnv), ("SingleAgent", SingleAgentEnv)])
REPO = Path(__file__).resolve().parents[1]


@entries
@VIEWS
def test_gymnasium_make_builds_a_gymnasium_env(entry: EnvEntry, suffix: str, cls: type) -> None:
    """``gymnasium.make`` returns a ``gymnasium.Env`` whose unwrapped env is our view over the game."""
    with no_warnings():
        env = gymnasium.make(f"incentive_envs/{entry.gym_name}{suffix}-v0")
    assert isinstance(env, gymnasium.Env) and isinstance(env.unwrapped, cls)
    assert isinstance(env.unwrapped.parallel, ParallelEnv)


@entries
@VIEWS
def test_gymnasium_env_checker_passes_without_warnings(entry: EnvEntry, suffix: str, cls: type) -> None:
    """``gymnasium.utils.env_checker.check_env`` on the unwrapped view, with no warnings."""
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}{suffix}-v0")
    with no_warnings():
        gym_check_env(env.unwrapped)


@entries
@VIEWS
def test_sb3_env_checker_passes_without_warnings(entry: EnvEntry, suffix: str, cls: type) -> None:
    """stable-baselines3's ``check_env`` (which warns on spaces SB3 cannot learn from) emits nothing.

    Exceptions, per game, are in :data:`SB3_ALLOWED_WARNINGS` with their reason.
    """
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}{suffix}-v0")
    with no_warnings(SB3_ALLOWED_WARNINGS.get(entry.name, ())):
        sb3_check_env(env.unwrapped, warn=True)


@entries
@VIEWS
def test_passive_checker_wrapped_env_runs_an_episode_without_warnings(
    entry: EnvEntry, suffix: str, cls: type
) -> None:
    """Through ``gymnasium.make``'s wrappers (passive checker, order enforcing) 100 steps are warning-free."""
    env = gymnasium.make(f"incentive_envs/{entry.gym_name}{suffix}-v0")
    env.action_space.seed(0)
    with no_warnings():
        env.reset(seed=0)
        for _ in range(100):
            _, reward, term, trunc, _ = env.step(env.action_space.sample())
            assert isinstance(reward, float)
            if term or trunc:
                env.reset()


@entries
def test_pettingzoo_make_parallel_and_aec(entry: EnvEntry) -> None:
    """Both PettingZoo registries build the game, and ``max_cycles`` reaches the env through ``make``."""
    with no_warnings():
        par = pettingzoo.make("parallel", entry.pz_id)
        aec = pettingzoo.make("aec", entry.pz_id)
        short = pettingzoo.make("parallel", entry.pz_id, max_cycles=3)
    assert isinstance(par, ParallelEnv) and isinstance(aec, AECEnv)
    assert type(par) is type(make_parallel(entry.name))
    short.reset(seed=0)
    steps = 0
    while short.agents:
        short.step({a: 1 for a in short.agents})  # action 1 never ends ER early (nobody pulls the lever)
        steps += 1
    assert steps == 3


def test_make_parallel_accepts_short_and_full_names() -> None:
    for name in ("ipd", "ipd-v0", "incentive_envs/ipd-v0"):
        assert make_parallel(name, max_cycles=2).max_cycles == 2


def test_every_entry_has_distinct_ids() -> None:
    names = [e.name for e in incentive_envs.ENVS]
    gym_names = [e.gym_name for e in incentive_envs.ENVS]
    assert len(set(names)) == len(names) and len(set(gym_names)) == len(gym_names)


def test_reimport_and_reregistration_do_not_error() -> None:
    """Re-importing the package (e.g. ``importlib.reload``) keeps every id registered exactly once."""
    with no_warnings():
        importlib.reload(incentive_envs)
        incentive_envs._register_all()
    for entry in incentive_envs.ENVS:
        assert entry.pz_id in pettingzoo.env_registry.registration.parallel_registry
        assert f"incentive_envs/{entry.gym_name}-v0" in gymnasium.registry


def test_gymnasium_module_prefix_works_in_a_fresh_interpreter() -> None:
    """``gymnasium.make("incentive_envs:incentive_envs/EscapeRoom-v0")`` imports the package on demand."""
    code = (
        "import sys, gymnasium\n"
        "assert 'incentive_envs' not in sys.modules\n"
        "env = gymnasium.make('incentive_envs:incentive_envs/EscapeRoom-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(type(env.unwrapped).__name__, obs.shape)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "JointActionEnv (75,)"  # 5 agents x 15 (3N one-hot positions)


def test_play_env_example_runs_and_both_apis_agree() -> None:
    """``examples/play_env.py`` runs quickly and reports the same welfare through PettingZoo and Gymnasium."""
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "play_env.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    totals = [line for line in lines if line.startswith("welfare ")]
    assert len(totals) == 2, out.stdout
    assert totals[0].split()[-1] == totals[1].split()[-1], totals
    assert any("door" in line for line in lines)
