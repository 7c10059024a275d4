"""The files of a model directory: which are its own, read safely, and their content hash.

A model directory is read whole twice over its life in a run: hashed (the job's identity for
resume) and zipped (what executors unpack). Both see exactly `model_files`: nothing from outside
the directory, and no file that is not a regular file, so a hostile model folder cannot make
sparkscore read or ship anything else.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import stat
import zipfile
from dataclasses import dataclass

from sparkscore.errors import ModelFormatError

__all__ = [
    "ModelFile",
    "check_link",
    "directory_sha256",
    "is_inside",
    "model_files",
    "model_sha256",
]


def is_inside(path: str, root: str) -> bool:
    """Whether `path`, every symlink resolved, is `root` or lies under it."""
    real_root = os.path.realpath(root)
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


@dataclass(frozen=True)
class ModelFile:
    """One file of a model directory: its name there ('/'-separated) and where its bytes are."""

    name: str
    path: str


def model_files(path: str | os.PathLike[str]) -> list[ModelFile]:
    """Every file of the model directory, in a stable order: what is hashed and shipped.

    Nothing outside the directory is ever read: a symbolic link that leads out of it, that
    leads nowhere, or that leads to a folder holding the link, is refused by name, as is
    anything that is neither a file nor a folder (a FIFO would block a read forever). A link to
    a file or folder inside is followed, so the copy that executors unpack holds what the
    link points to.
    """
    shown = os.path.abspath(os.fspath(path))
    root = os.path.realpath(shown)
    files: list[ModelFile] = []

    def walk(folder: str, prefix: str, holding: frozenset[str]) -> None:
        folders = []
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            name = prefix + entry.name
            target = entry.path
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                check_link(os.path.join(shown, name), target, root, shown, holding)
            mode = os.stat(target).st_mode
            if stat.S_ISDIR(mode):
                folders.append((target, name))
            elif stat.S_ISREG(mode):
                files.append(ModelFile(name, target))
            else:
                raise ModelFormatError(
                    path=os.path.join(shown, name),
                    field=None,
                    reason="is neither a file nor "
                    "a folder (a FIFO, socket or device); remove it from the model directory.",
                )
        for target, name in folders:
            walk(target, f"{name}/", holding | {target})

    walk(root, "", frozenset({root}))
    return files


def check_link(link: str, target: str, root: str, shown: str, holding: frozenset[str]) -> None:
    """Refuse a link that leads out of the model directory, to nothing, or to a folder holding
    it; `shown` is the directory as the user named it, for the message."""
    if os.path.commonpath([target, root]) != root:
        raise ModelFormatError(
            path=link,
            field=None,
            reason=f"is a symbolic link to {target}, outside the model "
            f"directory {shown}; sparkscore reads and ships nothing from outside a model "
            "directory. Copy what it points to into the model directory, or remove the link.",
        )
    if not os.path.exists(target):
        raise ModelFormatError(
            path=link,
            field=None,
            reason=f"is a symbolic link to {target}, which does not "
            "exist; remove the link or restore what it points to.",
        )
    if target in holding:
        raise ModelFormatError(
            path=link,
            field=None,
            reason=f"is a symbolic link to {target}, a folder that holds "
            "the link itself, so the model directory would never end; remove the link.",
        )


def directory_sha256(path: str | os.PathLike[str], *, into: zipfile.ZipFile | None = None) -> str:
    """A content hash of a model directory, stable across machines and copies.

    With `into`, each file is also written to that zip as it is read (as `ZipFile.write` would
    write it): shipping hashes and zips a model directory in one pass.
    """
    digest = hashlib.sha256()
    for file in model_files(path):
        digest.update(file.name.encode() + b"\0")
        _read(file, digest, into)
        digest.update(b"\0")
    return digest.hexdigest()


def model_sha256(path: str | os.PathLike[str], *, into: zipfile.ZipFile | None = None) -> str:
    """A model's content hash: a directory's (`directory_sha256`), or a single model file's
    own sha256, as `sha256sum` prints it (a scoring script's `model.pkl`), zipped under its
    name with `into`."""
    if os.path.isdir(path):
        return directory_sha256(path, into=into)
    digest = hashlib.sha256()
    _read(ModelFile(os.path.basename(path), os.path.realpath(path)), digest, into)
    return digest.hexdigest()


def _read(file: ModelFile, digest: hashlib._Hash, into: zipfile.ZipFile | None) -> None:
    """Feed the file's bytes to `digest` (and to its entry in `into`), one read."""
    with contextlib.ExitStack() as stack:
        source = stack.enter_context(open(file.path, "rb"))
        copy = stack.enter_context(into.open(_zip_entry(into, file), "w")) if into else None
        for chunk in iter(functools.partial(source.read, 1 << 20), b""):
            digest.update(chunk)
            if copy is not None:
                copy.write(chunk)


def _zip_entry(into: zipfile.ZipFile, file: ModelFile) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo.from_file(file.path, file.name)
    info.compress_type = into.compression
    info._compresslevel = into.compresslevel  # type: ignore[attr-defined]  # as ZipFile.write
    return info
