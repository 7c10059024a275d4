"""The command line in real processes: its last line, its exit status, and no Spark process left
behind, whether the run is refused, a task fails, or the run is interrupted.

A run starts a JVM (10-20 s), so this module's runs start together and are awaited together.
Every process a run starts (the JVM, the Python daemon and workers) inherits a marker in its
environment, found again through /proc.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from model_zoo import chaos_model

from sparkscore.sparkerrors import failure_line as _failure_line

ROOT = Path(__file__).resolve().parents[1]
MARK = "SPARKSCORE_TEST_RUN"
EXITED_GRACE = 3.0  # seconds for a process told to exit before the command ended to be gone


def processes_of(mark: str) -> list[str]:
    """The command lines of the live processes whose environment holds the run's marker."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if f"{MARK}={mark}".encode() in environ:
                found.append(
                    Path(f"/proc/{pid}/cmdline")
                    .read_bytes()
                    .replace(b"\0", b" ")
                    .decode(errors="replace")
                )
        except OSError:  # gone meanwhile
            continue
    return found


def _default_sigint() -> None:
    """Ctrl-C and a hang-up as in a terminal, even when the tests run in the background (which
    ignores SIGINT) or under nohup (which ignores SIGHUP): the command keeps an ignored signal
    ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Run:
    """`python -m sparkscore.cli score ...` in its own process group, output to a file."""

    name: str
    out: Path
    proc: subprocess.Popen[bytes]
    log: Path
    mark: str
    returncode: int | None = None
    left: list[str] | None = None  # its processes still alive after it ended (and a grace)
    committed_at_exit: int = 0  # mini-batches committed when it ended

    @classmethod
    def start(
        cls, root: Path, name: str, args: list[str], out: Path | None = None, **env: str
    ) -> Run:
        out = out or root / name
        log = root / f"{name}.log"
        mark = uuid.uuid4().hex
        environment = {
            **os.environ,
            "PYSPARK_PYTHON": sys.executable,
            "PYSPARK_DRIVER_PYTHON": sys.executable,
            MARK: mark,
            **env,
        }
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sparkscore.cli", "score", *args, "--output", str(out)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env=environment,
                start_new_session=True,
                preexec_fn=_default_sigint,
            )
        return cls(name, out, proc, log, mark)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its JVM then ends at the end of its stdin
            self.proc.wait()

    def wait(self) -> Run:
        try:
            self.returncode = self.proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        deadline = time.monotonic() + EXITED_GRACE
        while (left := processes_of(self.mark)) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.left = left
        self.committed_at_exit = self.committed()
        self.out_at_exit = sorted(p.name for p in self.out.iterdir()) if self.out.is_dir() else []
        return self

    @property
    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def committed(self) -> int:
        """Mini-batches committed so far (an overwrite run commits beside the old output)."""
        folders = [self.out, *self.out.parent.glob(f".{self.out.name}.sparkscore-*")]
        return sum(len(list((f / "_manifest").glob("batch-*.json"))) for f in folders)


ROWS = 5
FILES = 6


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("inputs")
    small = root / "small"
    small.mkdir()
    for i in range(FILES):
        pd.DataFrame(
            {"a": [float(i * 100 + r) for r in range(ROWS)], "b": list(range(ROWS))}
        ).to_csv(small / f"part-{i:02d}.csv", index=False)
    big = root / "big"  # predictions far over 64 KiB
    big.mkdir()
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=30_000), "b": np.arange(30_000)}).to_parquet(
        big / "big.parquet"
    )
    return {
        "small": small,
        "big": big,
        "slow": chaos_model(root / "slow", sleep=1.0),
        "fast": chaos_model(root / "fast"),
    }


@pytest.fixture(scope="module")
def tiny_disk(tmp_path_factory: pytest.TempPathFactory):
    """A 64 KiB tmpfs, where writing predictions runs out of space; None where mounting is not
    allowed (not root, or a container without the capability)."""
    where = tmp_path_factory.mktemp("tiny")
    try:
        mounted = (
            subprocess.run(
                ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True
            ).returncode
            == 0
        )
    except OSError:  # no mount command
        mounted = False
    yield where if mounted else None
    if mounted:
        subprocess.run(["umount", "-l", str(where)], check=True)


@pytest.fixture(scope="module")
def runs(inputs, tiny_disk, tmp_path_factory) -> dict[str, Run]:
    """Every command run of this module: started together, interrupted when two mini-batches
    are committed, then the interrupted runs resumed."""
    root = tmp_path_factory.mktemp("runs")
    slow = [
        "--model",
        str(inputs["slow"]),
        "--input",
        str(inputs["small"]),
        "--set",
        "mini_batch_size=1",
        "--master",
        "local[1]",
    ]
    fast = ["--model", str(inputs["fast"]), "--input", str(inputs["big"]), "--master", "local[1]"]
    for name in ("taken", "replaced"):
        (root / name).mkdir()
        (root / name / "old.txt").write_text("an earlier output\n")
    # Python workers that may write files of 64 KiB at most (`ulimit -f` counts 512 or 1024
    # byte blocks, as the shell goes): writing the predictions fails with EFBIG.
    limited = root / "limited-python"
    limited.write_text(f'#!/bin/sh\nulimit -f 64\nexec "{sys.executable}" "$@"\n')
    limited.chmod(0o755)

    started = {
        "sigint": Run.start(root, "sigint", slow),
        "sigterm": Run.start(root, "sigterm", slow),
        "overwrite": Run.start(
            root, "overwrite", [*slow, "--set", "overwrite=true"], out=root / "replaced"
        ),
        "refused": Run.start(root, "refused", slow, out=root / "taken"),
        "efbig": Run.start(root, "efbig", fast, PYSPARK_PYTHON=str(limited)),
    }
    if tiny_disk is not None:
        started["enospc"] = Run.start(root, "enospc", fast, out=tiny_disk / "out")

    # A terminal sends Ctrl-C to the whole foreground process group; a supervisor sends
    # SIGTERM to the process.
    send = {
        "sigint": lambda run: os.killpg(run.proc.pid, signal.SIGINT),
        "sigterm": lambda run: run.proc.send_signal(signal.SIGTERM),
        "overwrite": lambda run: os.killpg(run.proc.pid, signal.SIGINT),
    }
    try:
        deadline = time.monotonic() + 600
        while send:
            for name in list(send):
                run = started[name]
                assert run.proc.poll() is None, f"{name} ended too soon:\n{run.text}"
                if run.committed() >= 2:
                    send.pop(name)(run)
            assert time.monotonic() < deadline, "no mini-batch was committed in time"
            time.sleep(0.05)
        done = {name: run.wait() for name, run in started.items()}
    finally:
        for run in started.values():
            run.kill()

    resumed = {
        f"{name}-resumed": Run.start(
            root,
            f"{name}-resumed",
            [*slow[:-1], "local[2]", "--set", "resume=true"],
            out=done[name].out,
        )
        for name in ("sigint", "sigterm", "overwrite")
    }
    done.update((name, run.wait()) for name, run in resumed.items())
    return done


def interrupted_line(name: str, out: Path) -> str:
    return (
        f"error: interrupted by {name}; Spark was stopped. The mini-batches already committed "
        f"to {out} are kept: run the same command again with --set resume=true to score the "
        "rest."
    )


@pytest.mark.parametrize("name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_cli_interrupt_stops_spark_and_says_how_to_resume(runs, name, status):
    run = runs[name.lower()]
    assert run.returncode == status, run.text
    assert last_line(run.text) == interrupted_line(name, run.out)
    assert "Traceback" not in run.text
    assert run.left == []


@pytest.mark.parametrize("name", ["sigint", "sigterm"])
def test_cli_resume_after_an_interrupt_scores_every_row_once(runs, inputs, name):
    interrupted, resumed = runs[name], runs[f"{name}-resumed"]
    assert resumed.returncode == 0, resumed.text
    assert last_line(resumed.text).startswith(
        f"sparkscore: succeeded: {FILES} of {FILES} files scored, {FILES * ROWS} rows scored, "
        "0 rows failed"
    )
    assert resumed.left == []
    rows = pq.read_table(resumed.out / "predictions").to_pylist()
    keys = sorted((r["file_name"], r["row"]) for r in rows)
    assert keys == [(f"part-{i:02d}.csv", r) for i in range(FILES) for r in range(ROWS)]
    assert all(
        r["prediction"] == 2 * (int(r["file_name"][5:7]) * 100 + r["row"]) + r["row"] for r in rows
    )
    # mini_batch_size=1: each mini-batch the interrupted run committed is one file skipped now.
    assert 2 <= interrupted.committed_at_exit < FILES
    summary = json.loads((resumed.out / "_summary.json").read_text())
    assert summary["files_skipped"] == interrupted.committed_at_exit


def test_cli_run_prints_sparkscore_lines_and_no_spark_info_or_warn_lines(runs):
    """Spark's own lines are off unless logging_level: debug: every line but the JVM's one
    notice is sparkscore's (its log lines, its summary line)."""
    text = runs["sigint-resumed"].text
    lines = [line for line in text.splitlines() if line.strip()]
    others = [
        line
        for line in lines
        if not re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} sparkscore ", line)
        and not line.startswith("sparkscore: ")
    ]
    assert others == ["WARNING: Using incubator modules: jdk.incubator.vector"], text


def test_cli_interrupted_overwrite_keeps_the_old_output_and_says_resume_finishes_it(runs):
    run, resumed = runs["overwrite"], runs["overwrite-resumed"]
    assert run.returncode == 130, run.text
    assert last_line(run.text) == (
        f"error: interrupted by SIGINT; Spark was stopped and {run.out} is unchanged. The "
        "mini-batches this overwrite run committed beside it are kept: run the same command "
        "again with --set resume=true to finish it (its output then replaces the old one), or "
        "without resume to start over."
    )
    assert run.out_at_exit == ["old.txt"]
    assert run.left == []

    assert resumed.returncode == 0, resumed.text
    assert (
        f"resuming the overwrite run that was interrupted in {run.out.parent}/.replaced"
        ".sparkscore-" in resumed.text
    )
    summary = json.loads((run.out / "_summary.json").read_text())
    assert summary["files_skipped"] == run.committed_at_exit >= 2
    assert summary["rows_scored"] == FILES * ROWS
    assert sorted(p.name for p in run.out.parent.iterdir() if "replaced" in p.name) == ["replaced"]


def test_cli_refusal_is_the_last_line_and_leaves_no_spark_process(runs):
    run = runs["refused"]
    assert run.returncode == 2, run.text
    assert last_line(run.text).startswith(
        f"error: {run.out}: already exists and is not empty; nothing was touched."
    )
    assert "Traceback" not in run.text
    assert run.left == []
    assert sorted(p.name for p in run.out.iterdir()) == ["old.txt"]


def test_cli_task_over_the_file_size_limit_ends_with_the_os_error(runs):
    run = runs["efbig"]
    assert run.returncode == 1, run.text
    assert re.fullmatch(
        r"error: a Spark task failed: OutputError: .*/predictions/part-00000\.parquet: cannot be "
        r"written \(\[Errno 27\] Error writing bytes to file\. Detail: \[errno 27\] File too "
        r"large\)\. Check the space and permissions there, or choose another output\.",
        last_line(run.text),
    ), last_line(run.text)
    assert run.left == []


def test_cli_task_out_of_disk_space_ends_with_the_os_error(runs, tiny_disk):
    if tiny_disk is None:
        pytest.skip("mounting a 64 KiB tmpfs is not allowed here (needs root)")
    run = runs["enospc"]
    assert run.returncode == 1, run.text
    assert re.fullmatch(
        r"error: a Spark task failed: OutputError: .*/predictions/part-00000\.parquet: cannot be "
        r"written \(\[Errno 28\] Error writing bytes to file\. Detail: \[errno 28\] No space "
        r"left on device\)\. Check the space and permissions there, or choose another output\.",
        last_line(run.text),
    ), last_line(run.text)
    assert run.left == []


def handles(pid: int, signum: int) -> bool:
    """Whether the process has a handler for the signal (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_cli_signal_while_importing_ends_with_one_line(tmp_path, sig):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sparkscore.cli",
            "score",
            "--model",
            str(tmp_path / "model"),
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        preexec_fn=_default_sigint,
    )
    # Python handles no SIGHUP by itself (the last of the three the command handles): a handler
    # means the command is now importing the job (pyspark, pandas, pyarrow: a second or more).
    while not handles(proc.pid, signal.SIGHUP):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.002)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig
    assert output.splitlines() == [
        f"error: interrupted by {sig.name} before the job started; nothing was done."
    ]


# ---------------------------------------------------------------------------------------------
# The failure line, from real Spark failures on the shared session


def tasks() -> dict[str, object]:
    """Tasks that fail, defined in a function so that Spark ships them by value (workers cannot
    import this test module)."""

    def disk_full(_: object) -> None:
        raise OSError(28, "No space left on device", "/data/out/part-00000.parquet")

    def chained(_: object) -> None:
        try:
            raise OSError(28, "No space left on device", "/data/out/part-00000.parquet")
        except OSError as e:
            raise ValueError("the writer gave up") from e

    def bad_json(_: object) -> None:
        json.loads("")

    def crash(_: object) -> None:
        os._exit(3)

    return {f.__name__: f for f in (disk_full, chained, bad_json, crash)}


@pytest.mark.parametrize(
    "task, line",
    [
        (
            "disk_full",
            "a Spark task failed: OSError: [Errno 28] No space left on device: "
            "'/data/out/part-00000.parquet'",
        ),
        ("chained", "a Spark task failed: ValueError: the writer gave up"),
        (
            "bad_json",
            "a Spark task failed: JSONDecodeError: Expecting value: line 1 column 1 (char 0)",
        ),
        (
            "crash",
            "a Spark task failed: SparkException: Python worker exited unexpectedly "
            "(crashed). Consider setting 'spark.sql.execution.pyspark.udf.faulthandler.enabled' "
            "or'spark.python.worker.faulthandler.enabled' configuration to 'true' for the "
            "better Python traceback.",
        ),
    ],
)
def test_failure_line_names_what_the_task_raised_not_its_wrapper(spark, task, line):
    with pytest.raises(Exception) as failed:
        spark.sparkContext.parallelize([1], 1).foreach(tasks()[task])
    assert _failure_line(failed.value) == line


def test_failure_line_names_the_java_error_of_a_job_that_ran_no_task(spark, tmp_path):
    with pytest.raises(Exception) as failed:
        spark.sparkContext.textFile(str(tmp_path / "missing")).collect()
    assert _failure_line(failed.value) == (
        f"the job failed: InvalidInputException: Input path does not exist: "
        f"file:{tmp_path / 'missing'}"
    )
