"""What a model pins (requirements.txt, conda.yaml, python_env.yaml) and what is installed here.

Read without pip or conda: the files are small and their formats simple, and a load error or an
environment mismatch must be explained even where neither tool exists. The `-r` and `-c` lines
they hold are followed here, in one place, for the model's own environment and for the pins
compared with what is installed alike: only to files inside the model directory.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import yaml

from sparkscore.errors import ModelFormatError
from sparkscore.model import ModelSpec
from sparkscore.modelfiles import is_inside

__all__ = [
    "Mismatch",
    "Pin",
    "RequirementLine",
    "describe_pins",
    "distribution_of",
    "installed_version",
    "mismatches",
    "normalize",
    "parse_requirement",
    "pins_for",
    "read_pins",
    "requirement_lines",
]

# Import names whose distribution on PyPI has another name.
_DISTRIBUTION_OF_MODULE = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "skimage": "scikit-image",
    "google": "protobuf",
}

_REQ = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|>|<)?\s*([^\s;#]*)"
)


@dataclass(frozen=True)
class Pin:
    """One requirement line: a distribution, its operator and version, and the file it came from."""

    name: str
    op: str | None
    version: str | None
    source: str

    def __str__(self) -> str:
        spec = f"{self.op}{self.version}" if self.op and self.version else ""
        return f"{self.name}{spec} ({self.source})"


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distribution_of(module: str) -> str:
    """The pip distribution that provides a top-level module."""
    top = module.split(".")[0]
    if top in _DISTRIBUTION_OF_MODULE:
        return _DISTRIBUTION_OF_MODULE[top]
    for dist in importlib.metadata.packages_distributions().get(top, []):
        return dist
    return top


# Distributions that another one provides under the same import name.
_PROVIDED_BY = {"mlflow": ("mlflow", "mlflow-skinny")}


def installed_version(distribution: str) -> str | None:
    for name in _PROVIDED_BY.get(normalize(distribution), (distribution,)):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def parse_requirement(line: str, source: str) -> Pin | None:
    line = line.strip()
    if not line or line.startswith(("#", "-")):
        return None
    m = _REQ.match(line)
    if not m:
        return None
    return Pin(name=m.group(1), op=m.group(3), version=m.group(4) or None, source=source)


_INCLUDE = re.compile(r"(-r|--requirement|-c|--constraint)\s*=?\s*(\S+)$")


@dataclass(frozen=True)
class RequirementLine:
    """One line a model's environment files hand to pip, after following `-r` and `-c`."""

    text: str
    constraint: bool  # from a `-c` file: limits versions, installs nothing by itself
    source: str  # the file it came from, relative to the model directory


def requirement_lines(
    root: str, file: str, lines: Iterable[Any] | None = None, *, constraint: bool = False
) -> list[RequirementLine]:
    """The lines of `file` (or `lines`, read from it, such as a YAML list), includes followed.

    A `-r` or `-c` path is relative to the file that names it, as pip reads it. Every file
    followed must be inside the model directory `root`, symbolic links resolved; a file that
    includes itself, directly or through others, is refused by name (pip would loop forever).
    """
    return _expand(os.path.abspath(root), os.path.abspath(file), lines, constraint, ())


def _expand(
    root: str, file: str, lines: Iterable[Any] | None, constraint: bool, chain: tuple[str, ...]
) -> list[RequirementLine]:
    name = _relative(file, root)
    real = os.path.realpath(file)
    if not is_inside(real, root):
        raise ModelFormatError(
            path=file,
            field=None,
            reason=f"is a symbolic link to {real}, outside the model "
            f"directory {root}; a model's environment files must be inside it.",
        )
    if real in chain:
        loop = " -> ".join([*(_relative(c, root) for c in chain), name])
        raise ModelFormatError(
            path=file,
            field=None,
            reason=f"includes itself ({loop}); remove the -r or -c line that closes the loop.",
        )
    if lines is None:
        lines = _text_lines(file)
    found: list[RequirementLine] = []
    for raw in lines:
        line = str(raw).split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = _INCLUDE.match(line)
        if m is None:
            found.append(RequirementLine(line, constraint, name))
            continue
        flag, ref = m.groups()
        target = os.path.normpath(os.path.join(os.path.dirname(file), ref))
        if not is_inside(target, root):
            raise ModelFormatError(
                path=file,
                field=None,
                reason=f"refers to {ref!r} ({flag}), which is outside "
                f"the model directory ({os.path.realpath(target)}); every file a model's "
                "environment files refer to must be inside the model directory.",
            )
        if not os.path.isfile(target):
            raise ModelFormatError(
                path=file,
                field=None,
                reason=f"refers to {ref!r} ({flag}), which is not a file in the model directory.",
            )
        found.extend(
            _expand(
                root, target, None, constraint or flag in ("-c", "--constraint"), (*chain, real)
            )
        )
    return found


def _text_lines(file: str) -> list[str]:
    try:
        with open(file, encoding="utf-8") as f:
            return f.read().splitlines()
    except UnicodeDecodeError:
        raise ModelFormatError(
            path=file, field=None, reason="is not UTF-8 text, so it is not a requirements file."
        ) from None


def _relative(path: str, root: str) -> str:
    return os.path.relpath(path, root).replace(os.sep, "/")


def _read_yaml(path: str) -> Any:
    """A YAML dependency file (conda.yaml, python_env.yaml); None when it is not valid YAML."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError):
        return None


def read_pins(spec: ModelSpec) -> list[Pin]:
    """Every pin in the model's dependency files (includes followed), labelled by file name."""
    pins: list[Pin] = []
    for name, path in spec.env_files().items():
        if name.endswith(".txt"):
            lines = requirement_lines(spec.path, path)
            pins.extend(p for p in (parse_requirement(r.text, r.source) for r in lines) if p)
            continue
        doc = _read_yaml(path) or {}
        if not isinstance(doc, dict):
            continue
        for dep in doc.get("dependencies") or []:
            if isinstance(dep, dict):
                for line in requirement_lines(spec.path, path, dep.get("pip") or []):
                    pin = parse_requirement(line.text, line.source)
                    if pin:
                        pins.append(pin)
            elif isinstance(dep, str) and _INCLUDE.match(dep.strip()):
                for line in requirement_lines(spec.path, path, [dep]):
                    pin = parse_requirement(line.text, line.source)
                    if pin:
                        pins.append(pin)
            elif isinstance(dep, str) and not dep.startswith("python"):
                conda = dep.replace("=", "==", 1) if "==" not in dep and "=" in dep else dep
                pin = parse_requirement(conda, name)
                if pin and name != "python_env.yaml":
                    pins.append(pin)
    return pins


def pins_for(distribution: str, pins: list[Pin]) -> list[Pin]:
    wanted = normalize(distribution)
    return [p for p in pins if normalize(p.name) == wanted]


def describe_pins(distribution: str, pins: list[Pin]) -> str | None:
    """`xgboost==1.4.2 (requirements.txt), xgboost==1.3.3 (conda.yaml)`, or None when unpinned."""
    found = pins_for(distribution, pins)
    return ", ".join(dict.fromkeys(str(p) for p in found)) or None


@dataclass(frozen=True)
class Mismatch:
    package: str
    pinned: str
    installed: str | None

    def to_dict(self) -> dict[str, str | None]:
        return {"package": self.package, "pinned": self.pinned, "installed": self.installed}


def mismatches(pins: list[Pin]) -> list[Mismatch]:
    """Exact pins (`==`) whose installed version differs or is absent, one per package."""
    seen: dict[str, Mismatch] = {}
    for pin in pins:
        if pin.op != "==" or not pin.version or normalize(pin.name) in seen:
            continue
        installed = installed_version(pin.name)
        if installed != pin.version:
            seen[normalize(pin.name)] = Mismatch(pin.name, pin.version, installed)
    return list(seen.values())
