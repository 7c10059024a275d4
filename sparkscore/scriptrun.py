"""One mini-batch through a scoring script: Azure's environment, local paths, run(), its result.

Scripts written for Azure ML run unchanged: before the script is imported, each Python worker
gets `AZUREML_MODEL_DIR` (a folder holding one subfolder, the model under its own folder name,
so both `os.path.join(AZUREML_MODEL_DIR, "model")` and `glob(AZUREML_MODEL_DIR + "/*/")[0]` find
it; a single model file sits in it directly, as Azure places one: `AZUREML_MODEL_DIR/model.pkl`)
and `AZUREML_BI_OUTPUT_PATH` (a folder of this worker, emptied before each mini-batch, whose
files reach the output only when their mini-batch commits: sparkscore.scriptoutput).
`run(mini_batch)` gets local paths: remote files are downloaded to a temporary folder for the
mini-batch and removed after. What `run` returns becomes rows: a pandas DataFrame keeps its
columns and types, a list is one column, `prediction`; each row records its `mini_batch`.

No Spark here: sparkscore.tasks calls `run_script` in the task, with the script the worker
imported once (sparkscore.worker).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import signal
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.errors import BatchTimeoutError, OutputError, ScriptWorkerDiedError
from sparkscore.failures import FileState
from sparkscore.isolation import RAISED, die_with_parent, how_it_ended
from sparkscore.planner import MiniBatch
from sparkscore.prefetch import prefetching
from sparkscore.scoring import FileResult
from sparkscore.scratch import process_dir

__all__ = [
    "MODEL_DIR",
    "OUTPUT_PATH",
    "ScriptResult",
    "ScriptSpec",
    "as_table",
    "azure_environment",
    "run_isolated",
    "run_script",
]

MODEL_DIR = "AZUREML_MODEL_DIR"
OUTPUT_PATH = "AZUREML_BI_OUTPUT_PATH"
_FOLDERS = "sparkscore-azureml-"


@dataclass(frozen=True)
class ScriptSpec:
    """What a task needs to run the scoring script, decided on the driver; small, picklable."""

    # the model folder's name under AZUREML_MODEL_DIR; None: a single model file, directly in it
    model_name: str | None
    environment: Mapping[str, str] = field(default_factory=dict)  # environment_variables
    reserved: tuple[str, ...] = ()  # output names sparkscore writes itself (no script file's)
    max_retries: int = 3  # Spark attempts before the last, which records a failure

    def key(self, code: str, model: str) -> str:
        """The script as a worker keeps it (imported, init() called): one per code, model
        (content and name) and environment, since a notebook's workers outlive a run, and a
        run with another model or environment must not find the last one's init()."""
        environment = json.dumps(dict(self.environment), sort_keys=True)
        return f"{code}|{model}|{self.model_name}|{environment}"


@dataclass
class ScriptResult:
    """A mini-batch run through the script: each file's outcome, the rows run returned (None:
    it failed), how many elements it returned, and the folder of files it wrote."""

    index: int
    files: list[FileResult]
    table: pa.Table | None
    items: int
    outputs: str

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for f in self.files for e in f.errors]


def azure_environment(spec: ScriptSpec, model_dir: str) -> str:
    """Set this worker's Azure variables (and `environment_variables`); return its output folder.

    `model_dir` holds the model under its own folder name, as Azure's does.
    """
    output = os.path.join(process_dir(_FOLDERS), "output")
    os.makedirs(output, exist_ok=True)
    os.environ.update(spec.environment)
    os.environ[MODEL_DIR] = model_dir
    os.environ[OUTPUT_PATH] = output
    return output


def run_script(
    fs: pafs.FileSystem,
    batch: MiniBatch,
    load: Callable[[], ModuleType],
    spec: ScriptSpec,
    *,
    final: bool,
    timed: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext,
) -> ScriptResult:
    """Call the script's run on the mini-batch's files (its init once per worker, in `load`);
    `timed` guards the run call alone (the `timeout`: Azure's, per mini-batch, not for init).

    A failure (init or run raising, run returning something unusable) is raised, so that Spark
    retries the mini-batch (`max_retries`), unless this is its `final` attempt: then every file
    of the mini-batch fails with the exception, recorded in errors/. A timeout fails them at
    once, as it does without a script. Either way the files the attempt wrote are dropped.
    """
    output = os.environ.get(OUTPUT_PATH) or ""
    stage = "init"
    try:
        module = load()
        output = os.environ[OUTPUT_PATH]
        _empty(output)
        stage = "run"
        with _local_paths(fs, batch) as paths, timed():
            returned = module.run(paths)
        table = as_table(returned, batch.index)
        _check_written(output, spec.reserved)
    except BatchTimeoutError as e:
        return _failed(batch, e, "timeout", output)
    except Exception as e:
        if not final:
            _empty(output)
            raise
        return _failed(batch, e, stage, output)
    files = [FileResult(f.name) for f in batch.files]
    return ScriptResult(batch.index, files, table, table.num_rows, output)


def run_isolated(
    fs: pafs.FileSystem,
    batch: MiniBatch,
    load: Callable[[], ModuleType],
    spec: ScriptSpec,
    timed: Callable[[], contextlib.AbstractContextManager[None]],
) -> ScriptResult:
    """The last try of a mini-batch whose every attempt killed its worker: `run_script` in a
    forked child, so that the child dying fails the mini-batch's files, not the run."""
    where = tempfile.mkdtemp(prefix="sparkscore-isolate-")
    saved = os.path.join(where, "result.pickle")
    try:
        pid = os.fork()
        if pid == 0:  # the child: run, save, and leave without running the worker's exit code
            status = 0
            try:
                die_with_parent()
                result = run_script(fs, batch, load, spec, final=True, timed=timed)
                with open(saved, "wb") as f:
                    pickle.dump(result, f)
            except BaseException:
                status = RAISED
            finally:
                os._exit(status)
        try:
            _, status = os.waitpid(pid, 0)
        except BaseException:  # the task was stopped: the child must not outlive it
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0 and os.path.exists(saved):
            with open(saved, "rb") as f:
                kept: ScriptResult = pickle.load(f)
            return kept
        died = ScriptWorkerDiedError(files=batch.names, how=how_it_ended(status, ""))
        return _failed(batch, died, "run", os.environ.get(OUTPUT_PATH) or "")
    finally:
        shutil.rmtree(where, ignore_errors=True)


def as_table(returned: Any, index: int) -> pa.Table:
    """What run returned as rows: a DataFrame's own columns, or a list as one column, each row
    with its `mini_batch` (unless the DataFrame has that column itself)."""
    if isinstance(returned, pd.DataFrame):
        table = pa.Table.from_pandas(returned, preserve_index=False)
    elif isinstance(returned, (list, tuple, np.ndarray, pd.Series)):
        table = pa.table({"prediction": _column(returned)})
    else:
        raise TypeError(
            f"run returned {type(returned).__name__}; it must return a pandas DataFrame or a "
            "list (one element per result)"
        )
    if "mini_batch" not in table.column_names:
        table = table.append_column("mini_batch", pa.array(np.full(table.num_rows, index)))
    return table


def _column(values: Any) -> pa.Array:
    """A list's elements as one typed column; elements no one type holds, as their text (as
    Azure writes each element)."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        return pa.array([str(v) for v in values], pa.string())


def _failed(batch: MiniBatch, error: BaseException, stage: str, output: str) -> ScriptResult:
    """Every file of the mini-batch failed with `error`; nothing it wrote is kept."""
    _empty(output)
    files = []
    for file in batch.files:
        state = FileState(FileResult(file.name))
        state.fail(error, stage)
        files.append(state.result)
    return ScriptResult(batch.index, files, None, 0, output)


def _empty(folder: str) -> None:
    """Empty the script's output folder: what an earlier mini-batch or attempt wrote goes."""
    if folder and os.path.isdir(folder):
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def _check_written(output: str, reserved: tuple[str, ...]) -> None:
    """Refuse a file the script wrote whose name is one of the output's own entries."""
    for entry in sorted(os.listdir(output)):
        if entry in reserved or entry.startswith(("_", ".")):
            raise OutputError(
                path=os.path.join(output, entry),
                reason="is a name sparkscore's own output uses (predictions, errors, the CSV "
                "file, or a name starting with '_' or '.'); write it under another name",
            )


@contextlib.contextmanager
def _local_paths(fs: pafs.FileSystem, batch: MiniBatch) -> Iterator[list[str]]:
    """The mini-batch's files as local paths: as they are on local disk, else downloaded into
    a temporary folder (under their names in the input) that is removed afterwards, the small
    ones fetched ahead (sparkscore.prefetch)."""
    if isinstance(fs, pafs.LocalFileSystem):
        yield [os.path.abspath(f.path) for f in batch.files]
        return
    folder = tempfile.mkdtemp(prefix="sparkscore-minibatch-")
    try:
        paths = []
        with prefetching(fs, batch.files) as files_fs:
            for file in batch.files:
                target = os.path.join(folder, *file.name.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with files_fs.open_input_stream(file.path) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                paths.append(target)
        yield paths
    finally:
        shutil.rmtree(folder, ignore_errors=True)
