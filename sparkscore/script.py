"""Azure ML's scoring script (the "batch driver"): found from the settings, imported and checked.

A scoring script defines `init()`, called once per Python worker, and `run(mini_batch)`, called
once per mini-batch with the local paths of its files. This module finds it (`scoring_script`,
relative to `code` when that is set, as Azure resolves it) and imports it with its `code` folder
first on `sys.path`, so the script's own modules import too. The model is the script's to load:
an MLflow model directory is read (never loaded) for the run record, and any other folder, or
a single file (a `model.pkl`, an `.onnx`), is taken as it is (`script_model`). No Spark here:
the driver and `sparkscore plan` import the script to refuse one that cannot be used before any
task starts, without calling it, and each worker imports its shipped copy the same way
(sparkscore.worker).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import uuid
from dataclasses import dataclass
from types import ModuleType

from sparkscore.errors import ModelFormatError, ScoringScriptError, SettingsError, one_line
from sparkscore.model import MLMODEL, ModelSpec, read_spec
from sparkscore.settings import Settings

__all__ = [
    "ENTRY_POINTS",
    "ScoringScript",
    "check_script",
    "check_script_settings",
    "checked_script",
    "import_script",
    "script_model",
]

log = logging.getLogger("sparkscore")

ENTRY_POINTS = ("init", "run")

# Settings that mean something only to the no-code path, with the value that leaves them unused.
_NO_CODE_ONLY = {
    "passthrough_columns": (),
    "result_type": None,
    "params": None,
    "reference": None,
    "fail_on_drift": False,
    "env_manager": "local",
}


@dataclass(frozen=True)
class ScoringScript:
    """Where the script is on the driver, and what ships with it: the `code` folder, or the
    script file alone when there is none."""

    path: str  # the .py file, absolute
    folder: str | None  # `code`, absolute; None: the script ships alone
    relative: str  # the script's path inside what ships ('/'-separated)

    @classmethod
    def of(cls, settings: Settings) -> ScoringScript | None:
        """The script the settings name (None: no script), checked to exist."""
        if settings.scoring_script is None:
            if settings.code is not None:
                raise SettingsError(
                    key="code",
                    value=settings.code,
                    reason="is shipped only with a scoring script; set scoring_script too",
                )
            return None
        folder = None if settings.code is None else os.path.abspath(settings.code)
        if folder is not None and not os.path.isdir(folder):
            raise ScoringScriptError(
                file=settings.scoring_script, reason=f"its code folder {folder} is not a folder"
            )
        path = os.path.abspath(os.path.join(folder or "", settings.scoring_script))
        if not os.path.isfile(path):
            raise ScoringScriptError(file=path, reason="there is no such file")
        if folder is None:
            return cls(path=path, folder=None, relative=os.path.basename(path))
        relative = os.path.relpath(path, folder)
        if relative.startswith(".."):
            raise ScoringScriptError(
                file=path, reason=f"it is outside its code folder {folder}, which is what ships"
            )
        return cls(path=path, folder=folder, relative=relative.replace(os.sep, "/"))


def check_script_settings(settings: Settings) -> None:
    """Refuse settings a scoring script leaves without meaning, naming each: never ignored."""
    if settings.output_format not in ("parquet", "csv"):
        raise SettingsError(
            key="output_format",
            value=settings.output_format,
            reason="must be parquet or csv with a scoring script",
        )
    for key, unused in _NO_CODE_ONLY.items():
        value = getattr(settings, key)
        if value != unused:
            raise SettingsError(
                key=key,
                value=value,
                reason="applies only without a scoring script (the script calls the model itself)",
            )


def import_script(path: str, folder: str | None, *, keep: bool) -> ModuleType:
    """Import the script, `folder` first on sys.path, and check it defines init and run.

    `keep`: a worker keeps the module (under the script's own name, as Azure imports it) and the
    folder on sys.path; a check (`keep=False`) leaves both as they were.
    """
    name = (
        os.path.splitext(os.path.basename(path))[0] if keep else f"_sparkscore_{uuid.uuid4().hex}"
    )
    saved_path, saved_module = list(sys.path), sys.modules.get(name)
    if folder is not None:
        sys.path.insert(0, folder)
    sys.path.insert(0, os.path.dirname(path))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ScoringScriptError(file=path, reason="it cannot be imported as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as e:
            raise ScoringScriptError(
                file=path, reason=f"importing it failed ({type(e).__name__}: {one_line(e)})"
            ) from e
        _check_entry_points(path, module)
        return module
    finally:
        if not keep:
            sys.path[:] = saved_path
            if saved_module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = saved_module


def _check_entry_points(path: str, module: ModuleType) -> None:
    missing = [f"{entry}()" for entry in ENTRY_POINTS if not hasattr(module, entry)]
    if missing:
        raise ScoringScriptError(file=path, reason=f"it defines no {' and no '.join(missing)}")
    for entry in ENTRY_POINTS:
        if not callable(getattr(module, entry)):
            raise ScoringScriptError(
                file=path,
                reason=f"its {entry} is a {type(getattr(module, entry)).__name__}, not a function",
            )


def check_script(script: ScoringScript) -> None:
    """Import the script on the driver and check it defines init and run, calling neither."""
    import_script(script.path, script.folder, keep=False)


def script_model(path: str) -> ModelSpec | None:
    """The model a scoring script's init() loads: an MLflow model directory, read (never
    loaded); None for any other folder or a single model file, which only the script reads."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, MLMODEL)):
        return read_spec(path)
    if os.path.isdir(path) or os.path.isfile(path):
        return None
    raise ModelFormatError(
        path=path,
        field=None,
        reason="does not exist; point --model at the model folder (or the single model file) "
        "that the scoring script's init() loads from AZUREML_MODEL_DIR.",
    )


def checked_script(settings: Settings) -> ScoringScript | None:
    """The run's scoring script (None: none), its settings and the script itself checked on the
    driver, so that one that cannot be used is refused before any task starts."""
    script = ScoringScript.of(settings)
    if script is not None:
        check_script_settings(settings)
        check_script(script)
        log.info("scoring with the script %s (init and run defined)", script.path)
    return script
