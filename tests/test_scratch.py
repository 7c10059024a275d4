"""Temporary folders: gone when their process ends, swept when a killed one left them, and never
taken from a live process. The processes are real, and so are their deaths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from model_zoo import lr_frame

from sparkscore.scratch import owned_dir, sweep

BIN = Path(sys.executable).parent
OWNER = """
import os, signal, sys
from sparkscore.scratch import owned_dir
print(owned_dir("sparkscore-ship-"), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.read()  # lives until its stdin closes, then exits normally
"""


def owner(tmp: Path, how: str) -> tuple[subprocess.Popen, Path]:
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp)},
    )
    return proc, Path(proc.stdout.readline().strip())


def test_sweep_removes_what_a_killed_run_left_and_nothing_of_a_live_one(tmp_path):
    alive, alive_dir = owner(tmp_path, "live")
    killed, killed_dir = owner(tmp_path, "kill")  # (its own sweep leaves the live one be)
    killed.wait()
    (tmp_path / "sparkscore-ship-unlocked").mkdir()  # an older version's, or one being made
    (tmp_path / "sparkscore-env-other").mkdir()
    assert killed.returncode == -9 and killed_dir.is_dir() and alive_dir.is_dir()

    assert sweep("sparkscore-ship-", str(tmp_path)) == [str(killed_dir)]

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive_dir.name, "sparkscore-ship-unlocked", "sparkscore-env-other"]
    )
    alive.stdin.close()
    assert alive.wait(timeout=30) == 0
    assert not alive_dir.exists()  # removed by its own process on the way out


def test_a_new_folder_sweeps_first_and_is_locked_from_the_start(tmp_path, monkeypatch):
    killed, killed_dir = owner(tmp_path, "kill")
    killed.wait()
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)

    mine = owned_dir("sparkscore-ship-")

    assert not killed_dir.exists()
    assert Path(mine).parent == tmp_path
    assert sweep("sparkscore-ship-", str(tmp_path)) == []
    # Another process sees it locked too.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from sparkscore.scratch import sweep; "
            "print(sweep('sparkscore-ship-', sys.argv[1]))",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "[]\n"
    assert Path(mine).is_dir()


def test_a_scoring_run_leaves_no_model_archive_behind(tmp_path, zoo):
    temp = tmp_path / "tmp"
    temp.mkdir()
    (tmp_path / "in").mkdir()
    lr_frame(5).to_csv(tmp_path / "in" / "x.csv", index=False)
    env = {**os.environ, "TMPDIR": str(temp), "PYSPARK_PYTHON": sys.executable}

    done = subprocess.run(
        [
            str(BIN / "sparkscore"),
            "score",
            "--model",
            str(zoo.lr_skops),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--master",
            "local[1]",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "5 rows scored" in done.stdout
    assert [p.name for p in temp.iterdir() if p.name.startswith("sparkscore-")] == []
