"""Score a mini-batch whose every attempt killed its Python worker, and find the file that did.

A model that crashes in native code, is killed for memory or calls `os._exit` on some input
takes its Python worker with it: Spark retries the task, it dies again, and the whole job used
to fail with it, forever, `resume` included. The driver then runs that mini-batch once more in
isolation (see sparkscore.job and sparkscore.tasks): the worker forks a child to score a group
of its files and
keeps what the child wrote when it exits cleanly; when a child dies, the group is halved and
each half scored again, down to the single files that kill a child. Those get a `predict`
error record (WorkerDiedError) and the rest of the mini-batch is scored and committed as usual.
One poison file among n costs about 2 log2(n) forks. No Spark here: a child is a fork of the
task's worker, which already holds the loaded model.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import shutil
import signal
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.errors import BatchTimeoutError, WorkerDiedError
from sparkscore.listing import InputFile
from sparkscore.loader import Model
from sparkscore.modelprocess import RemoteImpl
from sparkscore.planner import MiniBatch
from sparkscore.profile import Profile
from sparkscore.scoring import BatchResult, FileResult, ScoringSpec, Sink, failed_file, score_batch
from sparkscore.spilling import spill_buffers

__all__ = ["RAISED", "die_with_parent", "how_it_ended", "score_isolated"]

# A child that fails with a Python exception (not a crash) exits with this status after writing
# the exception to its folder.
RAISED = 70
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class _Died:
    """How a child scoring a group of files ended without its results."""

    how: str


def score_isolated(
    fs: pafs.FileSystem,
    batch: MiniBatch,
    load: Callable[[], Model],
    spec: ScoringSpec,
    sink_for: Callable[[InputFile], Sink],
) -> BatchResult:
    """Score `batch` as score_batch does, each group of files in a child process (see above).

    `load` gives the worker's model (loaded once; a model served by its environment's process is
    started again after a child died talking to it). Sinks are asked for in file order, as
    score_batch asks for them. A `timeout` alarm, which arrives in this process, stops the child
    and fails every file of the mini-batch, as it would have without isolation.
    """
    results: list[FileResult] = []
    profiles: list[Profile] = []
    sinks: list[Sink] = []
    folder = tempfile.mkdtemp(prefix="sparkscore-isolate-")

    def deliver(
        files: Sequence[InputFile],
        group: list[FileResult],
        profile: Profile | None,
        parts: list[str],
    ) -> None:
        if profile is not None:
            profiles.append(profile)
        for file, result, part in zip(files, group, parts):
            sink = sink_for(file)
            sinks.append(sink)
            with pa.OSFile(part, "rb") as source:  # read into memory: the file goes soon
                reader = pa.ipc.open_file(source)
                for i in range(reader.num_record_batches):
                    sink.add(reader.get_batch(i))
            results.append(result)

    def run(files: Sequence[InputFile]) -> None:
        model = load()
        outcome = _in_child(fs, MiniBatch(batch.index, tuple(files)), model, spec, folder)
        if not isinstance(outcome, _Died):
            deliver(files, *outcome)
            return
        _forget_process(model)
        if len(files) == 1:
            sink = sink_for(files[0])
            sinks.append(sink)
            error = WorkerDiedError(file=files[0].name, how=outcome.how)
            results.append(failed_file(fs, files[0], error, "predict"))
        else:
            half = len(files) // 2
            run(files[:half])
            run(files[half:])

    try:
        run(batch.files)
    except BatchTimeoutError as e:
        for sink in sinks:
            sink.discard()
        failed = [failed_file(fs, f, e, "timeout") for f in batch.files]
        return BatchResult(batch.index, failed, Profile() if spec.profile else None)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return BatchResult(batch.index, results, Profile.merged(profiles) if spec.profile else None)


def _forget_process(model: Model) -> None:
    """A model served by its environment's process (env_manager: virtualenv) shared that
    process's pipes with the child that died: what is left in them is unknown, so the process
    is stopped, and `load` starts a fresh one."""
    if isinstance(model.impl, RemoteImpl):
        model.impl.process.close(kill=True)


def _in_child(
    fs: pafs.FileSystem, batch: MiniBatch, model: Model, spec: ScoringSpec, folder: str
) -> tuple[list[FileResult], Profile | None, list[str]] | _Died:
    """Score `batch` in a forked child: its file results, their profile and one Arrow file of
    output per file, or how the child died."""
    where = tempfile.mkdtemp(dir=folder)
    pid = os.fork()
    if pid == 0:  # the child: score, write, and leave without running the worker's exit code
        status = 0
        try:
            die_with_parent()
            _score_and_write(fs, batch, model, spec, where)
        except BaseException as e:  # reported to the parent through the folder
            with open(os.path.join(where, "raised.txt"), "w") as f:
                f.write(traceback.format_exception_only(type(e), e)[-1].strip())
            status = RAISED
        finally:
            os._exit(status)
    try:
        _, status = os.waitpid(pid, 0)
    except BaseException:  # a timeout: the child must not outlive its mini-batch
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    result = os.path.join(where, "result.pickle")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and os.path.exists(result):
        with open(result, "rb") as f:
            files, profile = pickle.load(f)
        return files, profile, [os.path.join(where, f"part-{i}.arrow") for i in range(len(files))]
    return _Died(how_it_ended(status, os.path.join(where, "raised.txt")))


def die_with_parent() -> None:
    """A child must not outlive the worker that forked it (a task Spark killed): on Linux the
    kernel sends it SIGKILL when its parent dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _score_and_write(
    fs: pafs.FileSystem, batch: MiniBatch, model: Model, spec: ScoringSpec, where: str
) -> None:
    buffers, sink_for = spill_buffers()
    result = score_batch(fs, batch, model, spec, sink_for)
    for i, buffer in enumerate(buffers):
        with (
            pa.OSFile(os.path.join(where, f"part-{i}.arrow"), "wb") as out,
            pa.ipc.new_file(out, spec.output_schema) as writer,
        ):
            for b in buffer.batches():
                writer.write_batch(b)
        buffer.discard()
    with open(os.path.join(where, "result.pickle"), "wb") as f:
        pickle.dump((result.files, result.profile), f)


def how_it_ended(status: int, raised: str) -> str:
    """A child's end in words: the signal that killed it, its exit code, or what it raised."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        oom = ", as the kernel's out-of-memory killer does" if number == signal.SIGKILL else ""
        return f"killed by signal {number}, {name}{oom}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    if code == RAISED and os.path.exists(raised):
        with open(raised) as f:
            return f"it raised {f.read()}"
    return f"exit code {code}"
