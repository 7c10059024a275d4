"""The model's own environment built once, cached on disk, and packed for executors.

The driver installs the pins `environment.py` read once into a virtual environment cached
under the hash of what was installed, so a second run with the same pins reuses it, and, when
executors run elsewhere, packs its site-packages into an archive that Spark ships to them, so
they need no package index. Only wheels are installed: a build that compiles is neither
reproducible nor possible on a cluster without compilers, and a pin without a wheel for this
platform is better refused before any task starts. The archive holds site-packages only, never
an interpreter.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sparkscore.environment import EnvironmentSpec, check_python
from sparkscore.errors import (
    EnvironmentBuildError,
    ModelEnvironmentError,
    python_version,
)
from sparkscore.requirements import (
    parse_requirement,
)

__all__ = ["BuiltEnvironment", "culprit", "default_cache_dir", "ensure_environment", "packed"]

log = logging.getLogger("sparkscore")

ARCHIVE_PREFIX = "sparkscore-env-"


def default_cache_dir() -> str:
    """`$SPARKSCORE_ENV_CACHE`, else the user's cache directory."""
    explicit = os.environ.get("SPARKSCORE_ENV_CACHE")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sparkscore", "envs")


@dataclass(frozen=True)
class BuiltEnvironment:
    """A ready environment in the cache: its site-packages, and the archive that ships it."""

    key: str
    root: str
    tool: str
    reused: bool
    seconds: float  # time to build (or, when reused, to find) it
    build_seconds: float  # what building it took when it was built
    python: str = ""  # the Python it was built for, e.g. "3.11.7"
    packages: dict[str, str] = field(hash=False, default_factory=dict)

    @property
    def site_packages(self) -> str:
        return os.path.join(self.root, "site-packages")

    @property
    def archive(self) -> str:
        return os.path.join(self.root, self.archive_name)

    @property
    def archive_name(self) -> str:
        return f"{ARCHIVE_PREFIX}{self.key[:20]}.tar.gz"

    def record(self) -> dict[str, Any]:
        """What the run summary says about the environment."""
        return {
            "key": self.key,
            "path": self.root,
            "tool": self.tool,
            "reused": self.reused,
            "seconds": round(self.seconds, 3),
            "build_seconds": round(self.build_seconds, 3),
            "packages": dict(self.packages),
        }


def ensure_environment(
    env: EnvironmentSpec, manager: str, cache_dir: str | None = None
) -> BuiltEnvironment:
    """The model's environment from the cache, built first if it is not there.

    A lock per key makes concurrent jobs on one machine build it once; the build happens in a
    scratch directory renamed into place, so an interrupted build is never taken for a ready one.
    """
    check_python(env)
    started = time.perf_counter()
    cache = os.path.abspath(cache_dir or default_cache_dir())
    os.makedirs(cache, exist_ok=True)
    root = os.path.join(cache, env.key)
    reused = True
    with _locked(os.path.join(cache, f".{env.key}.lock")):
        if not os.path.isfile(os.path.join(root, "environment.json")):
            _build(env, _tool(manager, env), cache, root)
            reused = False
        with open(os.path.join(root, "environment.json"), encoding="utf-8") as f:
            record = json.load(f)
    return BuiltEnvironment(
        key=env.key,
        root=root,
        tool=record["tool"],
        reused=reused,
        seconds=time.perf_counter() - started,
        build_seconds=record["build_seconds"],
        python=record["python"],
        packages=record["packages"],
    )


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _Tool:
    name: str  # "uv" or "pip"
    command: tuple[str, ...]  # how to run uv, or the Python that runs venv and pip


def _tool(manager: str, env: EnvironmentSpec) -> _Tool:
    uv = _find_uv()
    if uv:
        return _Tool("uv", (uv,))
    if manager == "uv":
        raise ModelEnvironmentError(
            path=env.model_path,
            reason="env_manager is uv but the uv command is not installed; install it "
            "(pip install uv) or use env_manager: virtualenv, which falls back to pip.",
        )
    return _Tool("pip", (sys.executable,))


def _find_uv() -> str | None:
    found = shutil.which("uv")
    if found:
        return found
    with contextlib.suppress(ImportError, FileNotFoundError):
        import uv  # the PyPI package ships the binary

        return str(uv.find_uv_bin())
    beside = os.path.join(os.path.dirname(sys.executable), "uv")
    return beside if os.access(beside, os.X_OK) else None


def _build(env: EnvironmentSpec, tool: _Tool, cache: str, root: str) -> None:
    started = time.perf_counter()
    scratch = os.path.join(cache, f".build-{env.key[:20]}-{uuid.uuid4().hex[:8]}")
    venv = os.path.join(scratch, "venv")
    os.makedirs(scratch)
    try:
        log.info(
            "building the model's environment with %s (%d requirements) in %s",
            tool.name,
            len(env.install_lines()),
            root,
        )
        requirements = os.path.join(scratch, "requirements.txt")
        with open(requirements, "w", encoding="utf-8") as f:
            f.write("\n".join(env.install_lines()) + "\n")
        constraints = os.path.join(scratch, "constraints.txt")
        with open(constraints, "w", encoding="utf-8") as f:
            f.write("\n".join(env.constraints) + "\n")
        for command in _commands(tool, venv, requirements, constraints):
            _run(command, env, tool)
        site = _site_packages(venv)
        installed = os.path.join(scratch, "site-packages")
        os.rename(site, installed)
        shutil.rmtree(venv)
        record = {
            "key": env.key,
            "python": python_version(),
            "model_python": env.python,
            "source": env.source,
            "requirements": list(env.requirements),
            "constraints": list(env.constraints),
            "runtime": list(env.runtime),
            "tool": tool.name,
            "packages": _distributions(installed),
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        with open(os.path.join(scratch, "environment.json"), "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        if os.path.isdir(root):  # a leftover without environment.json: never finished
            shutil.rmtree(root)
        os.rename(scratch, root)
        log.info("built the model's environment in %.1fs", record["build_seconds"])
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _commands(tool: _Tool, venv: str, requirements: str, constraints: str) -> list[list[str]]:
    python = os.path.join(venv, "bin", "python")
    install = ["--only-binary", ":all:", "-r", requirements, "-c", constraints]
    if tool.name == "uv":
        uv = tool.command[0]
        return [
            [uv, "venv", "--quiet", "--python", sys.executable, venv],
            [uv, "pip", "install", "--quiet", "--python", python, "--compile-bytecode", *install],
        ]
    return [
        [sys.executable, "-m", "venv", venv],
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
            *install,
        ],
    ]


def _run(command: list[str], env: EnvironmentSpec, tool: _Tool) -> None:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    }
    done = subprocess.run(command, capture_output=True, text=True, env=clean, check=False)
    if done.returncode != 0:
        output = f"{done.stdout}\n{done.stderr}"
        requirement, detail = culprit(env.install_lines(), output)
        raise EnvironmentBuildError(
            path=env.model_path, requirement=requirement, tool=tool.name, detail=detail
        )


def culprit(requirements: list[str], output: str) -> tuple[str | None, str]:
    """The requirement a failed install names, and the line of the tool's output that does."""
    lines = [" ".join(line.split()) for line in output.splitlines() if line.strip()]
    lines = [
        re.sub(r"^([^\w(]+|(cause|error|hint|ERROR):\s*)+", "", line).rstrip(".") for line in lines
    ]
    for line in lines:
        for requirement in requirements:
            pin = parse_requirement(requirement, "")
            if pin is None:
                continue
            name = "[-_.]".join(re.escape(part) for part in re.split(r"[-_.]+", pin.name))
            if re.search(rf"(?<![\w-]){name}(?![\w-])", line, flags=re.IGNORECASE):
                return requirement, line[:400]
    errors = [line for line in lines if re.search(r"error|because|no matching", line, re.I)]
    return None, (errors[0] if errors else (lines[-1] if lines else "no output"))[:400]


def _site_packages(venv: str) -> str:
    lib = os.path.join(venv, "lib")
    for name in sorted(os.listdir(lib)):
        candidate = os.path.join(lib, name, "site-packages")
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"no site-packages under {lib}")


def _distributions(site: str) -> dict[str, str]:
    found = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[site])}
    return dict(sorted(found.items(), key=lambda kv: kv[0].lower()))


def packed(built: BuiltEnvironment) -> str:
    """The environment's archive, made on first need: only executors elsewhere need one.

    gzip level 1 keeps most of the size saving at a fraction of the default level's time.
    """
    archive = built.archive
    with _locked(os.path.join(os.path.dirname(built.root), f".{built.key}.lock")):
        if not os.path.isfile(archive):
            started = time.perf_counter()
            partial = f"{archive}.{uuid.uuid4().hex[:8]}.partial"
            try:
                with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
                    for name in sorted(os.listdir(built.site_packages)):
                        tar.add(os.path.join(built.site_packages, name), arcname=name)
                os.rename(partial, archive)
            finally:
                if os.path.exists(partial):
                    os.remove(partial)
            log.info(
                "packed the model's environment into %s (%d bytes) in %.1fs",
                archive,
                os.path.getsize(archive),
                time.perf_counter() - started,
            )
    return archive
