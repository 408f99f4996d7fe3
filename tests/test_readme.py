"""The README's tour, run as written: in a fresh shell, after the demo, with spkid not yet on the PATH."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO_ROOT


def tour_commands() -> str:
    """The first ``bash`` block under the README's "A ten-line tour" heading."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## A ten-line tour", 1)[1]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    if match is None:
        raise AssertionError("README.md: no bash block in the tour")
    return match.group(1)


def test_the_tour_runs_as_written_after_the_demo(tmp_path: Path):
    from spkid.recipes import run_demo

    run_demo(tmp_path / "demo_output")
    # What `make demo` leaves behind: the environment spkid was installed into, as ./.venv.
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    venv_bin = str(Path(sys.prefix) / "bin")
    path = os.pathsep.join(part for part in os.environ["PATH"].split(os.pathsep) if part != venv_bin)
    env = {"HOME": str(tmp_path), "PATH": path, "LANG": "C.UTF-8"}
    env.update({key: value for key, value in os.environ.items() if key.endswith("_NUM_THREADS")})
    result = subprocess.run(
        ["bash", "-e", "-c", tour_commands()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"the tour stopped:\n{result.stdout}\n{result.stderr}"
    lines = result.stdout.splitlines()
    assert any(re.match(r"\s*1\.\s+alice\b", line) for line in lines), result.stdout  # spk01 is alice
    assert any("accept alice" in line for line in lines), result.stdout
    assert lines[-2:] == ["alice", "bob"], result.stdout
    assert (tmp_path / "det.png").stat().st_size > 0


def test_tour_block_is_found():
    commands = tour_commands()
    assert commands.splitlines()[0].startswith(". .venv/bin/activate")
    assert "spkid identify" in commands
