"""The README's "Your own game" section runs as written: register, train, resume, load, SB3 transfer, CLI."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Your own game")
    return text[start:text.index("\n### ", start + 1)]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _section(), flags=re.S)


@pytest.mark.slow
def test_your_own_game_section_runs(tmp_path: Path):
    pytest.importorskip("stable_baselines3")
    module, script = _blocks("python")
    (tmp_path / "my_games.py").write_text(module)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}

    def run(argv: list[str]) -> str:
        out = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        return out.stdout

    printed = run([sys.executable, "-c", script]).splitlines()
    assert float(printed[0]) >= 0.9 * 5.0  # the volunteer's dilemma optimum
    assert "welfare" in "\n".join(printed[1:])
    for line in _blocks("bash")[0].strip().splitlines():
        argv = shlex.split(line)
        assert argv[:3] == ["python", "-m", "designer"]
        out = run([sys.executable, *argv[1:]])
    assert "| metagrad |" in out  # resume prints the table
    assert (tmp_path / "runs" / "cli" / "volunteer" / "metagrad" / "seed0" / "learning_curve.png").exists()
