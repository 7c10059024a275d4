"""List the input once on the driver: which files to score, by name, and what is left out.

Listing happens before any task starts so that a folder with a stray `.txt` fails in seconds,
naming every such file at once (Azure's behaviour), instead of one task at a time after an hour
of scoring. The listing holds only names and sizes, so it pickles to the executors; each task
reopens the filesystem with `storage.resolve`. Here too: an output is kept apart from what the
listing reads.
"""

from __future__ import annotations

import errno
import logging
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from pyarrow.fs import FileInfo, FileSelector, FileSystem, FileType, LocalFileSystem

from sparkscore.errors import InputError, OutputError, UnsupportedInputError
from sparkscore.storage import place, resolve, split_glob, split_query

__all__ = ["SUPPORTED_EXTENSIONS", "InputFile", "Listing", "check_output_apart", "list_input"]

log = logging.getLogger("sparkscore")


# The one table that decides which files we score, and how (seed 002's list): tables give one
# output row per input row, images one output row per file.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pqt": "parquet",
    ".png": "image",
    ".jpg": "image",
    ".jpeg": "image",
    ".tiff": "image",
    ".bmp": "image",
    ".gif": "image",
}


@dataclass(frozen=True, slots=True)
class InputFile:
    """One file to score: `path` opens it on the resolved filesystem, `name` labels its rows."""

    path: str
    name: str
    size: int
    kind: str
    # A slice of a large Parquet file: the row groups it reads, and the file row its first row is.
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0
    # When it was last written (an object store's last-modified), in ns; 0 when the filesystem
    # does not say. With its size, what tells an incremental run the file changed.
    modified_ns: int = 0


@dataclass(frozen=True)
class Listing:
    """What listing the input found: the files to score, by name, and what it left out."""

    fs: FileSystem
    root: str  # names are relative to it
    files: tuple[InputFile, ...]
    unsupported: tuple[str, ...]  # skipped because ignore_unsupported is true
    broken_links: tuple[str, ...] = ()  # symbolic links to nothing, skipped with a warning


def list_input(
    uri: str, *, recursive: bool = False, ignore_unsupported: bool = False, any_type: bool = False
) -> Listing:
    """List the files to score under a folder, a single file or a glob, sorted by name.

    `any_type`: a scoring script reads the files itself, so every file is one to score, whole
    (its kind is `file`), whatever its extension.

    Names starting with '.' or '_' (`_SUCCESS`, `.part-0.crc`, `_temporary/`) are never data and
    are left out silently. On local disk each real file is listed once however many symbolic
    links lead to it (its own path wins over a link's), a link back to a folder being listed (a
    cycle) is not entered, and a link to nothing is skipped and named.
    """
    fs, base = resolve(uri)
    walker = _Walker(fs, recursive=recursive)
    root, entries = _entries(fs, walker, uri, base)
    files: list[InputFile] = []
    unsupported: list[str] = []
    has_subfolders = False
    prefix = root.rstrip("/") + "/"
    for entry in entries:
        path = entry.path
        name = path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)
        if entry.folder:
            has_subfolders = True
            continue
        kind = "file" if any_type else SUPPORTED_EXTENSIONS.get(_extension(name))
        if kind is None:
            unsupported.append(name)
        else:
            files.append(
                InputFile(path=path, name=name, size=entry.size, kind=kind, modified_ns=entry.mtime)
            )
    broken = sorted(_relative(root, p) for p in walker.broken)
    for name in broken:
        log.warning("skipped %s: it is a symbolic link to a file that does not exist", name)

    unsupported.sort()
    if unsupported and not ignore_unsupported:
        raise UnsupportedInputError(
            path=uri, files=unsupported, supported=list(SUPPORTED_EXTENSIONS)
        )
    if not files:
        raise _no_data(
            uri,
            has_subfolders=has_subfolders and not recursive,
            skipped=unsupported,
            broken=broken,
            any_type=any_type,
        )
    files.sort(key=lambda f: f.name)
    return Listing(fs, root, tuple(files), tuple(unsupported), tuple(broken))


def _entries(fs: FileSystem, walker: _Walker, uri: str, base: str) -> tuple[str, list[_Entry]]:
    """The folder names are relative to, and every entry under it (a glob's matches, the file
    named, or the folder's walk), links followed."""
    _, pattern = split_glob(split_query(uri)[0])
    try:
        if pattern is not None:
            root, entries = base, _glob(fs, walker, uri, base, pattern)
        else:
            info = fs.get_file_info(base)
            if info.type == FileType.NotFound:
                raise _missing(uri)
            if info.type == FileType.File:
                # A file the user named is read whatever its name: they asked for it.
                root, entries = posixpath.dirname(base), [_entry(info)]
            else:
                root, entries = base, list(walker.walk(base))
        entries.extend(walker.follow_links())
    except OSError as exc:
        raise InputError(
            path=uri,
            reason=f"cannot be listed ({exc}). Check that this job's credentials can read it.",
        ) from exc
    return root, entries


def check_output_apart(input_uri: str, output_uri: str, *, recursive: bool) -> None:
    """Refuse an output that would write over the input, or be read as input by a later run.

    Whatever `overwrite` says: an output that is the input or contains it would be replaced,
    input and all; one inside it would be listed as input again when listing descends there
    (`recursive: true`, or a glob that matches into it). `--input data/ --output data/scored/`
    without recursion is fine, and so is an output inside the input whose name starts with '.'
    or '_', which listing never enters. Locations are compared after `..`, symbolic links and
    URI forms are resolved (a glob by its folder).
    """
    path, _ = split_query(input_uri)
    folder, pattern = split_glob(path)
    source, target = place(folder), place(output_uri)

    def refuse(how: str, advice: str, why: str = "") -> OutputError:
        shown = f"{input_uri} ({source.path})" if source.path not in input_uri else input_uri
        return OutputError(
            path=output_uri,
            reason=f"{how} the input {shown}{why}; nothing was "
            f"touched, since sparkscore never writes where it reads. {advice}",
        )

    outside = "Choose an output folder outside the input."
    if target == source:
        raise refuse("is", outside)
    if target.contains(source):
        raise refuse("contains", outside, ", so replacing it would delete the input")
    if not source.contains(target):
        return
    parts = target.path[len(source.path.rstrip("/")) + 1 :].split("/")
    if any(_hidden(p) for p in parts):
        return
    if pattern is None:
        reached = recursive
        why = "recursive: true"
    else:
        segments = pattern.split("/")
        reached = all(fnmatchcase(p, g) for p, g in zip(parts, segments)) and (
            recursive or len(segments) >= len(parts)
        )
        why = f"the glob '{pattern}'" + (" with recursive: true" if recursive else "")
    if reached:
        raise refuse(
            "lies inside",
            f"Listing with {why} would read this run's output as input. "
            f"{outside[:-1]}, or one whose name starts with '_' (never listed).",
        )


@dataclass(frozen=True, slots=True)
class _Entry:
    """One listed file or folder: what listing needs of it, read once (local disk: one `stat`)."""

    path: str
    base_name: str
    folder: bool
    size: int = 0
    mtime: int = 0  # ns; 0 when the filesystem does not say
    link: bool = False  # a symbolic link (local disk only)


def _entry(info: FileInfo) -> _Entry:
    """A pyarrow FileInfo as an entry (its `type` converted once)."""
    folder = info.type == FileType.Directory
    return _Entry(info.path, info.base_name, folder, info.size or 0, info.mtime_ns or 0)


class _Walker:
    """Walks folders, following symbolic links on local disk without listing a file twice.

    Real folders are walked first and link-free, so a link can never loop; links to folders are
    followed afterwards, each only when its target is not a folder already walked (a link to an
    ancestor, `loop -> .`, is a cycle and is not entered). A link to a file already listed under
    its own path is left out.

    On local disk a folder is read with one `os.scandir` (names, types, links) and one `stat`
    per file (size, modification time): a million files cost one pass, not pyarrow's listing
    and a second pass for the links it cannot see.
    """

    def __init__(self, fs: FileSystem, *, recursive: bool) -> None:
        self.fs, self.recursive = fs, recursive
        self.local = isinstance(fs, LocalFileSystem)
        self.walked: set[str] = set()  # real paths of folders walked (with all below them)
        self.linked_folders: list[_Entry] = []
        self.linked_files: list[_Entry] = []
        self.broken: list[str] = []

    def walk(self, directory: str) -> Iterator[_Entry]:
        """Data files and folders under `directory`; hidden folders are never entered."""
        self.walked.add(os.path.realpath(directory) if self.local else directory)
        listed = self._local(directory) if self.local else self._remote(directory)
        for entry in listed:
            if entry.link and self._linked(entry):
                continue
            yield entry
            if entry.folder and self.recursive:
                yield from self.walk(entry.path)

    def _remote(self, directory: str) -> list[_Entry]:
        infos = self.fs.get_file_info(FileSelector(directory))
        return sorted(
            (_entry(i) for i in infos if not _hidden(i.base_name)), key=lambda e: e.base_name
        )

    def _local(self, directory: str) -> list[_Entry]:
        """A local folder's entries by name, hidden ones left out; links to nothing set aside."""
        prefix = directory.rstrip("/") + "/"
        entries: list[_Entry] = []
        broken: list[str] = []
        with os.scandir(directory) as found:
            for item in found:
                name = item.name
                if _hidden(name):
                    continue
                link = item.is_symlink()
                try:
                    if item.is_dir():
                        entries.append(_Entry(prefix + name, name, True, link=link))
                        continue
                    st = item.stat()
                except OSError as exc:
                    if not link or exc.errno not in (errno.ENOENT, errno.ELOOP):
                        raise
                    broken.append(name)
                    continue
                entries.append(_Entry(prefix + name, name, False, st.st_size, st.st_mtime_ns, link))
        self.broken.extend(posixpath.join(directory, n) for n in sorted(broken))
        entries.sort(key=lambda e: e.base_name)
        return entries

    def matched(self, entry: _Entry) -> Iterator[_Entry]:
        """A glob's match: a file as it is, a folder walked."""
        if self.local and os.path.islink(entry.path) and self._linked(entry, walk_folder=True):
            return
        if entry.folder:
            yield from self.walk(entry.path)
        else:
            yield entry

    def _linked(self, entry: _Entry, walk_folder: bool = False) -> bool:
        """Set aside a symbolic link to follow later (False: a folder listed, not entered)."""
        if entry.folder and (self.recursive or walk_folder):
            self.linked_folders.append(entry)
        elif entry.folder:
            return False
        else:
            self.linked_files.append(entry)
        return True

    def follow_links(self) -> Iterator[_Entry]:
        """The linked files and folders set aside while walking, each real file once."""
        while self.linked_folders:
            entry = self.linked_folders.pop(0)
            target = os.path.realpath(entry.path)
            if any(target == w or target.startswith(w.rstrip("/") + "/") for w in self.walked):
                log.info(
                    "did not follow %s: it leads to %s, a folder already listed", entry.path, target
                )
                continue
            yield entry
            yield from self.walk(entry.path)
        followed: set[str] = set()
        for entry in self.linked_files:
            target = os.path.realpath(entry.path)
            if target not in followed and not self._walked_file(target):
                followed.add(target)
                yield entry

    def _walked_file(self, target: str) -> bool:
        """Whether the real file `target` was listed under its own path by a walk."""
        folder, name = posixpath.split(target)
        return folder in self.walked and not _hidden(name) and os.path.isfile(target)


def _hidden(base_name: str) -> bool:
    """Spark and Hadoop mark bookkeeping files and folders with a leading '.' or '_'."""
    return base_name.startswith((".", "_"))


def _glob(fs: FileSystem, walker: _Walker, uri: str, base: str, pattern: str) -> list[_Entry]:
    """Entries matching `pattern` segment by segment under `base`; matched folders are read."""
    if fs.get_file_info(base).type != FileType.Directory:
        raise _missing(uri)
    folders, matched = [base], []
    segments = pattern.split("/")
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        found = [
            _entry(info)
            for folder in folders
            for info in sorted(fs.get_file_info(FileSelector(folder)), key=lambda i: i.base_name)
            if not _hidden(info.base_name) and fnmatchcase(info.base_name, segment)
        ]
        if last:
            matched = found
        else:
            folders = [entry.path for entry in found if entry.folder]
    return [entry for match in matched for entry in walker.matched(match)]


def _extension(name: str) -> str:
    """`posixpath.splitext(name)[1].lower()`, without its generic work per file."""
    base = name[name.rfind("/") + 1 :]
    dot = base.rfind(".")
    return base[dot:].lower() if dot > 0 and base[:dot].strip(".") else ""


def _relative(root: str, path: str) -> str:
    """`path` relative to `root`, '/'-separated, as it appears in output lineage."""
    prefix = root.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) else posixpath.basename(path)


def _extensions() -> str:
    """'.csv, .parquet, ... or .gif', from the one table of supported types."""
    *rest, last = SUPPORTED_EXTENSIONS
    return f"{', '.join(rest)} or {last}" if rest else last


def _missing(uri: str) -> InputError:
    """One wording for a missing folder, file or glob prefix."""
    return InputError(
        path=uri,
        reason=(
            "does not exist; check the spelling, that the folder before any wildcard exists, "
            "and that the driver can reach it with this job's credentials."
        ),
    )


def _no_data(
    uri: str,
    *,
    has_subfolders: bool,
    skipped: Sequence[str],
    broken: Sequence[str] = (),
    any_type: bool = False,
) -> InputError:
    """Nothing to score: say why, so the user knows whether to fix the path or the settings."""
    kinds = "" if any_type else f"{_extensions()} "
    reason = f"there are no {kinds}files to score here"
    if skipped:
        reason += f" ({len(skipped)} unsupported file(s) ignored: {', '.join(skipped)})"
    if broken:
        reason += f" ({len(broken)} symbolic link(s) to nothing: {', '.join(broken)})"
    if has_subfolders:
        reason += "; it has sub-folders, which are read only with recursive: true"
    return InputError(path=uri, reason=reason + ".")
