"""What a model pins (requirements.txt, conda.yaml, python_env.yaml) and what is installed here.

Read without pip or conda: the files are small and their formats simple, and a load error or an
environment mismatch must be explained even where neither tool exists.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Mapping
from dataclasses import dataclass

import yaml

# Import names whose distribution on PyPI has another name.
_DISTRIBUTION_OF_MODULE = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "Pillow",
    "yaml": "PyYAML",
    "skimage": "scikit-image",
    "google": "protobuf",
}

_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*(==|>=|<=|~=|!=|>|<)?\s*([^\s;#]*)")


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


def read_pins(env_files: Mapping[str, str]) -> list[Pin]:
    """Every pin in the model's dependency files, keyed by the file's name."""
    pins: list[Pin] = []
    for name, path in env_files.items():
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if name.endswith(".txt"):
            pins.extend(p for p in (parse_requirement(l, name) for l in text.splitlines()) if p)
            continue
        try:
            doc = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            continue
        if not isinstance(doc, dict):
            continue
        for dep in doc.get("dependencies") or []:
            if isinstance(dep, dict):
                for sub in dep.get("pip") or []:
                    pin = parse_requirement(str(sub), name)
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
