"""A Python whose site-packages lacks some installed packages: what a user without them sees.

Nothing about the model is faked: the child runs this interpreter with `-S` (no site-packages,
no .pth files) on a folder of links to every entry of site-packages but the hidden packages'
(their modules, .libs folders and dist-info), so both `import` and `importlib.metadata` find
them absent, as on a machine where they were never installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def site_without(packages: tuple[str, ...], where: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    folder = where / "site-without"
    folder.mkdir(parents=True)
    hidden = tuple(p.lower() for p in packages)
    for entry in site.iterdir():
        name = entry.name.lower()
        if not any(name == p or name.startswith((f"{p}-", f"{p}_", f"{p}.")) for p in hidden):
            (folder / entry.name).symlink_to(entry)
    return folder


def load_error_without(packages: tuple[str, ...], models: list[Path], where: Path) -> list[Any]:
    """For each model, the `MissingDependencyError` that `sparkscore.load_model` raises in a
    Python without `packages`, as a dict of its fields and message (None if it loaded)."""
    code = textwrap.dedent(f"""
        import json, sparkscore

        found = []
        for path in {[str(m) for m in models]!r}:
            try:
                sparkscore.load_model(path, trust_model=True)
                found.append(None)
            except sparkscore.MissingDependencyError as e:
                found.append({{"package": e.package, "pinned": e.pinned,
                    "installed": e.installed, "python": e.python_version, "message": str(e)}})
        print(json.dumps(found))
    """)
    path = os.pathsep.join([str(REPO), str(site_without(packages, where))])
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))
