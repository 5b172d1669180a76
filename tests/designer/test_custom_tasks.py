"""Games the library does not ship as designer tasks: registration, references, validation, checkpoints."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from designer import TrainConfig, Trainer, make_task, register_task
from designer.experiments.spec import Sweep
from designer.presets import PRESETS
from designer.registry import TASKS, task_reference
from designer.task import Task
from tests.games import broken, commons, hawk_dove, volunteer

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, cwd: Path) -> str:
    """Run ``code`` in a fresh interpreter (nothing registered yet) with the repo and ``cwd`` importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)])}
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture
def user_module(tmp_path: Path) -> Path:
    """A user's module registering the volunteer's dilemma (a plain ParallelEnv factory) as ``my_volunteer``."""
    (tmp_path / "my_games.py").write_text(
        "from designer import register_task\n"
        "from tests.games import volunteer\n"
        "register_task('my_volunteer', volunteer.parallel_env)\n"
    )
    return tmp_path


def test_registered_env_factory_becomes_generic_task_with_small_game_preset():
    """A factory returning a ParallelEnv gets the generic task, the small-game preset and the game's action names."""
    register_task("test_volunteer", volunteer.parallel_env)
    try:
        task = make_task("test_volunteer", n_players=4)
        assert type(task) is Task and task.name == "test_volunteer"
        assert task.agents == ("player_0", "player_1", "player_2", "player_3")
        assert (task.learner, task.designer) == (PRESETS["small_game"].learner, PRESETS["small_game"].designer)
        assert task.env_kwargs == {"n_players": 4} and task.action_names == ("volunteer", "ignore")
        assert task_reference("test_volunteer") == f"{__name__}:test_volunteer"
        assert task_reference("escape_room") == "escape_room"
    finally:
        TASKS.pop("test_volunteer")


def test_register_task_refuses_bad_names_and_clashes():
    with pytest.raises(ValueError, match="no ':'"):
        register_task("my:game", volunteer.parallel_env)
    with pytest.raises(ValueError, match="'escape_room' is already registered"):
        register_task("escape_room", volunteer.parallel_env)


def test_module_reference_and_file_reference(tmp_path: Path):
    """``"package.module:factory"`` and ``"path/file.py:factory"`` name a task without registering it."""
    task = make_task("tests.games.hawk_dove:parallel_env", rounds=2)
    assert task.name == "tests.games.hawk_dove:parallel_env" and task.obs_shape == (2,)
    script = tmp_path / "script_game.py"
    script.write_text("from tests.games.commons import parallel_env\n")
    task = make_task(f"{script}:parallel_env")
    assert task.state_shape == (6,) and task.action_names == ("low", "high")
    with pytest.raises(KeyError, match="neither registers a task 'nope'"):
        make_task("tests.games.hawk_dove:nope")
    with pytest.raises(ValueError, match="cannot import task module 'no_such_module'"):
        make_task("no_such_module:game")
    with pytest.raises(ValueError, match=r"does not take the task kwargs \['colour'\]"):
        make_task("tests.games.hawk_dove:parallel_env", colour="red")
    with pytest.raises(KeyError, match="register_task"):
        make_task("not_a_task")


@pytest.mark.parametrize(("env_cls", "error", "message"), [
    (broken.NoRenderMode, ValueError, r"no render_mode attribute: take a render_mode=None argument"),
    (broken.StateWithoutSpace, ValueError, r"defines state\(\) but no state_space: add self.state_space = "
                                           r"gymnasium.spaces.Box\(low, high, shape=\(24,\)"),
    (broken.HiddenRandomness, ValueError, r"second episode without a seed differed .* has no np_random"),
    (broken.Unseeded, ValueError, r"seed=123 .* played different episodes; draw every random number from "
                                  r"self.np_random"),
    (broken.DictObservations, TypeError, r"agents need Box observations, player_0 has Dict"),
    (broken.MissingAgentAtReset, ValueError, r"reset must return observations for exactly the agents"),
])
def test_validation_says_what_to_add(env_cls: type, error: type[Exception], message: str):
    """Each flaw is refused when the task is built, by a message naming the fix."""
    make = env_cls if env_cls in (broken.NoRenderMode, broken.HiddenRandomness) else functools.partial(
        env_cls, volunteer.payoff, 3, ("volunteer", "ignore"))
    with pytest.raises(error, match=message):
        Task("broken", make)


def test_aec_env_is_refused_with_the_conversion_to_use():
    from incentive_envs import ipd

    with pytest.raises(TypeError, match="aec_to_parallel"):
        Task("aec", ipd.env)


def test_checkpoint_of_game_without_np_random_resumes_bit_exactly(tmp_path: Path):
    """A deterministic game with no np_random checkpoints (None RNG states) and resumes exactly."""
    task = make_task("tests.games.hawk_dove:parallel_env")
    cfg = TrainConfig(task=task.name, episodes=24, eval_period=8, eval_episodes=2, checkpoint_period=8)
    full = Trainer(cfg, task=task)
    full.train()
    first = Trainer(TrainConfig(**{**cfg.__dict__, "episodes": 8, "out_dir": str(tmp_path)}), task=task)
    first.train()
    assert first.state_dict()["rng"]["envs"] == [None]
    resumed = Trainer.resume(tmp_path / "checkpoint.pt", episodes=24)
    resumed.train()
    assert [h.welfare for h in resumed.progress.history] == [h.welfare for h in full.progress.history]


def test_resume_and_load_incentive_import_the_registering_module(user_module: Path):
    """A fresh process (nothing registered) resumes the run and loads its incentive by the stored reference."""
    _run("import my_games\n"
         "from designer import TrainConfig, Trainer\n"
         "Trainer(TrainConfig(task='my_volunteer', episodes=8, eval_period=4, eval_episodes=2, "
         "out_dir='run')).train()\n", user_module)
    out = _run("from designer import Trainer, load_incentive\n"
               "t = Trainer.resume('run/checkpoint.pt', episodes=12)\n"
               "t.train()\n"
               "incentive = load_incentive('run/checkpoint.pt')\n"
               "print(t.config.task, t.task.name, t.progress.episodes, type(incentive).__name__)\n",
               user_module)
    assert out.split() == ["my_games:my_volunteer", "my_volunteer", "12", "ModuleIncentive"]


def test_sweep_spec_records_the_module_and_workers_import_it(user_module: Path):
    """A spec naming a registered task stores ``module:name``; a fresh process builds its trials from the JSON."""
    spec = _run("import json, my_games\n"
                "from designer.experiments.spec import Sweep\n"
                "s = Sweep('custom', tasks=['my_volunteer'], algorithms=['none'], train={'episodes': 4})\n"
                "print(json.dumps(s.to_dict()))\n", user_module)
    data = json.loads(spec)
    assert data["tasks"] == [{"task": "my_games:my_volunteer", "task_kwargs": {}, "label": "my_volunteer"}]
    (user_module / "sweep.json").write_text(spec)
    out = _run("from designer.experiments.spec import Sweep\n"
               "from designer.experiments.trainer import Trainer\n"
               "trial = Sweep.from_json('sweep.json').trials()[0]\n"
               "t = Trainer(trial.train, designer=trial.designer, learner=trial.learner)\n"
               "print(trial.name, t.task.name, t.designer_config.scale)\n", user_module)
    assert out.split() == ["my_volunteer__none__default__seed0", "my_volunteer", "4.0"]


def test_sweep_accepts_a_module_reference():
    sweep = Sweep("ref", tasks=[{"task": "tests.games.commons:parallel_env", "task_kwargs": {"rounds": 3}}],
                  algorithms=["metagrad"])
    trial = sweep.trials()[0]
    assert trial.task_label == "parallel_env_rounds3" and trial.train.task == "tests.games.commons:parallel_env"


def test_test_games_optima():
    """The optima the learning test measures against (commons: one high effort a round, 5 rounds)."""
    assert commons.best_welfare() == pytest.approx(28.0)
    assert hawk_dove.parallel_env().best_welfare() == 6.0
