"""Plan a batch job: list the input once on the driver, reject what we cannot score, group the rest.

Listing happens before any task starts so that a folder with a stray `.txt` fails in seconds, naming
every such file at once (Azure's behaviour), instead of one task at a time after an hour of scoring.
The plan holds only names and sizes, so it pickles to the executors; each task reopens the
filesystem with `resolve`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fnmatch import fnmatchcase

import pyarrow as pa
from pyarrow.fs import FileInfo, FileSelector, FileSystem, FileType, LocalFileSystem

from sparkscore.errors import InputError, OutputError, SettingsError, UnsupportedInputError
from sparkscore.storage import URI_SCHEME, place, split_query

log = logging.getLogger("sparkscore")

# The one table that decides which files we score, and how (seed 002's list): tables give one
# output row per input row, images one output row per file.
SUPPORTED_EXTENSIONS: dict[str, str] = {
    ".csv": "csv", ".parquet": "parquet", ".pqt": "parquet",
    ".png": "image", ".jpg": "image", ".jpeg": "image", ".tiff": "image", ".bmp": "image",
    ".gif": "image",
}

_GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    """One file to score: `path` opens it on the resolved filesystem, `name` labels its rows."""

    path: str
    name: str
    size: int
    kind: str
    # A slice of a large Parquet file: the row groups it reads, and the file row its first row is.
    row_groups: tuple[int, ...] | None = None
    first_row: int = 0


@dataclass(frozen=True)
class MiniBatch:
    """The files one Spark task scores."""

    index: int
    files: tuple[InputFile, ...]

    @property
    def bytes(self) -> int:
        """Total size, to see how evenly the work is spread."""
        return sum(f.size for f in self.files)

    @property
    def names(self) -> tuple[str, ...]:
        """The files' names, for logs and error records."""
        return tuple(f.name for f in self.files)


@dataclass(frozen=True)
class Plan:
    """What a run scores; plain data so it ships to executors and can be compared on resume."""

    uri: str
    root: str
    files: tuple[InputFile, ...]
    batches: tuple[MiniBatch, ...]
    skipped: tuple[str, ...]
    # Symbolic links whose target does not exist: named in the plan and the summary, not scored.
    broken_links: tuple[str, ...] = ()

    @property
    def total_bytes(self) -> int:
        """Size of all files to score, for the run record and progress."""
        return sum(f.size for f in self.files)

    @property
    def listing_digest(self) -> str:
        """A sha256 of the (name, size) listing: a resumed run checks it sees the same input."""
        listing = sorted((f.name, f.size) for f in self.files)
        return hashlib.sha256(json.dumps(listing).encode("utf-8")).hexdigest()


def resolve(uri: str) -> tuple[FileSystem, str]:
    """Turn a location a user typed into a filesystem and a path on it.

    The single place where user strings become filesystems, so input, model and output locations
    accept the same forms: local paths (made absolute), `file://` and every URI pyarrow knows
    (`s3://`, `gs://`, `hdfs://`, `abfss://`). A glob resolves to the folder before its first
    wildcard. Raises `InputError` when the location cannot be opened; callers resolving a model or
    an output location re-raise it under their own error.

    Examples
    --------
    >>> fs, path = resolve("file:///data/in/*.csv")
    >>> type(fs).__name__, path
    ('LocalFileSystem', '/data/in')
    """
    path, query = split_query(uri)
    location, _ = _split_glob(path)
    if not URI_SCHEME.match(location):
        location = os.path.abspath(location or ".")
    try:
        fs, path = FileSystem.from_uri(location + query)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise InputError(
            path=uri,
            reason=(
                f"cannot be opened ({exc}). Check the scheme (a local path, file://, s3://, gs://, "
                "hdfs:// or abfss://) and that this pyarrow build and its credentials support it."
            ),
        ) from exc
    return fs, path


@dataclass(frozen=True)
class Listing:
    """What listing the input found: the files to score, by name, and what it left out."""

    fs: FileSystem
    root: str  # names are relative to it
    files: tuple[InputFile, ...]
    unsupported: tuple[str, ...]  # skipped because ignore_unsupported is true
    broken_links: tuple[str, ...] = ()  # symbolic links to nothing, skipped with a warning


def list_input(
    uri: str, *, recursive: bool = False, ignore_unsupported: bool = False
) -> Listing:
    """List the files to score under a folder, a single file or a glob, sorted by name.

    Names starting with '.' or '_' (`_SUCCESS`, `.part-0.crc`, `_temporary/`) are never data and
    are left out silently. On local disk each real file is listed once however many symbolic
    links lead to it (its own path wins over a link's), a link back to a folder being listed (a
    cycle) is not entered, and a link to nothing is skipped and named.
    """
    fs, base = resolve(uri)
    path, _ = split_query(uri)
    _, pattern = _split_glob(path)
    walker = _Walker(fs, recursive=recursive)
    try:
        if pattern is not None:
            root, entries = base, _glob(fs, walker, uri, base, pattern)
        else:
            info = fs.get_file_info(base)
            if info.type == FileType.NotFound:
                raise _missing(uri)
            if info.type == FileType.File:
                # A file the user named is read whatever its name: they asked for it.
                root, entries = posixpath.dirname(base), [info]
            else:
                root, entries = base, list(walker.walk(base))
        entries.extend(walker.follow_links())
    except OSError as exc:
        raise InputError(
            path=uri,
            reason=f"cannot be listed ({exc}). Check that this job's credentials can read it.",
        ) from exc

    files: list[InputFile] = []
    unsupported: list[str] = []
    has_subfolders = False
    for info in entries:
        name = _relative(root, info.path)
        if info.type == FileType.Directory:
            has_subfolders = True
            continue
        kind = SUPPORTED_EXTENSIONS.get(posixpath.splitext(name)[1].lower())
        if kind is None:
            unsupported.append(name)
        else:
            files.append(InputFile(path=info.path, name=name, size=info.size, kind=kind))
    broken = sorted(_relative(root, p) for p in walker.broken)
    for name in broken:
        log.warning("skipped %s: it is a symbolic link to a file that does not exist", name)

    unsupported.sort()
    if unsupported and not ignore_unsupported:
        raise UnsupportedInputError(
            path=uri, files=unsupported, supported=list(SUPPORTED_EXTENSIONS)
        )
    if not files:
        raise _no_data(uri, has_subfolders=has_subfolders and not recursive, skipped=unsupported,
                       broken=broken)
    files.sort(key=lambda f: f.name)
    return Listing(fs, root, tuple(files), tuple(unsupported), tuple(broken))


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
    folder, pattern = _split_glob(path)
    source, target = place(folder), place(output_uri)

    def refuse(how: str, advice: str, why: str = "") -> OutputError:
        shown = f"{input_uri} ({source.path})" if source.path not in input_uri else input_uri
        return OutputError(path=output_uri, reason=f"{how} the input {shown}{why}; nothing was "
                           f"touched, since sparkscore never writes where it reads. {advice}")

    outside = "Choose an output folder outside the input."
    if target == source:
        raise refuse("is", outside)
    if target.contains(source):
        raise refuse("contains", outside, ", so replacing it would delete the input")
    if not source.contains(target):
        return
    parts = target.path[len(source.path.rstrip("/")) + 1:].split("/")
    if any(_hidden(p) for p in parts):
        return
    if pattern is None:
        reached = recursive
        why = "recursive: true"
    else:
        segments = pattern.split("/")
        reached = all(fnmatchcase(p, g) for p, g in zip(parts, segments)) and (
            recursive or len(segments) >= len(parts))
        why = f"the glob '{pattern}'" + (" with recursive: true" if recursive else "")
    if reached:
        raise refuse("lies inside", f"Listing with {why} would read this run's output as input. "
                     f"{outside[:-1]}, or one whose name starts with '_' (never listed).")


class _Walker:
    """Walks folders, following symbolic links on local disk without listing a file twice.

    Real folders are walked first and link-free, so a link can never loop; links to folders are
    followed afterwards, each only when its target is not a folder already walked (a link to an
    ancestor, `loop -> .`, is a cycle and is not entered). A link to a file already listed under
    its own path is left out.
    """

    def __init__(self, fs: FileSystem, *, recursive: bool) -> None:
        self.fs, self.recursive = fs, recursive
        self.local = isinstance(fs, LocalFileSystem)
        self.walked: list[str] = []  # real paths of folders walked (with all below them)
        self.real_files: set[str] = set()
        self.linked_folders: list[FileInfo] = []
        self.linked_files: list[FileInfo] = []
        self.broken: list[str] = []

    def walk(self, directory: str) -> Iterator[FileInfo]:
        """Data files and folders under `directory`; hidden folders are never entered."""
        real = os.path.realpath(directory) if self.local else directory
        self.walked.append(real)
        infos = sorted(self.fs.get_file_info(FileSelector(directory)), key=lambda i: i.base_name)
        links: set[str] = set()
        if self.local:
            # pyarrow leaves out links to nothing; the directory's own entries say which are links.
            with os.scandir(directory) as entries:
                links = {e.name for e in entries if e.is_symlink() and not _hidden(e.name)}
            listed = {i.base_name for i in infos}
            self.broken.extend(posixpath.join(directory, n) for n in sorted(links - listed))
        for info in infos:
            if _hidden(info.base_name):
                continue
            if info.base_name in links and self._linked(info):
                continue
            if self.local and info.type == FileType.File:
                self.real_files.add(f"{real.rstrip('/')}/{info.base_name}")
            yield info
            if info.type == FileType.Directory and self.recursive:
                yield from self.walk(info.path)

    def matched(self, info: FileInfo) -> Iterator[FileInfo]:
        """A glob's match: a file as it is, a folder walked."""
        if self.local and os.path.islink(info.path) and self._linked(info, walk_folder=True):
            return
        if info.type == FileType.File:
            yield info
        elif info.type == FileType.Directory:
            yield from self.walk(info.path)

    def _linked(self, info: FileInfo, walk_folder: bool = False) -> bool:
        """Set aside a symbolic link to follow later (False: a folder listed, not entered)."""
        if info.type == FileType.Directory and (self.recursive or walk_folder):
            self.linked_folders.append(info)
        elif info.type == FileType.Directory:
            return False
        else:
            self.linked_files.append(info)
        return True

    def follow_links(self) -> Iterator[FileInfo]:
        """The linked files and folders set aside while walking, each real file once."""
        while self.linked_folders:
            info = self.linked_folders.pop(0)
            target = os.path.realpath(info.path)
            if any(target == w or target.startswith(w.rstrip("/") + "/") for w in self.walked):
                log.info("did not follow %s: it leads to %s, a folder already listed",
                         info.path, target)
                continue
            yield info
            yield from self.walk(info.path)
        for info in self.linked_files:
            target = os.path.realpath(info.path)
            if target not in self.real_files:
                self.real_files.add(target)
                yield info


def group(files: Sequence[InputFile], mini_batch_size: int) -> tuple[MiniBatch, ...]:
    """Cut files, in order, into mini-batches of `mini_batch_size` files (Azure's files per task).

    Kept apart from listing so a byte-balanced strategy can replace it without touching either.
    """
    if mini_batch_size < 1:
        raise SettingsError(key="mini_batch_size", value=mini_batch_size, reason="must be >= 1")
    return tuple(
        MiniBatch(index=i, files=tuple(files[start : start + mini_batch_size]))
        for i, start in enumerate(range(0, len(files), mini_batch_size))
    )


# `mini_batch_size: auto`: a few tasks per core so a slow one does not hold the job, none so
# small that per-task cost dominates, none so large that a retry repeats much work.
TASKS_PER_CORE = 4
MIN_TASK_BYTES = 4 << 20
MAX_TASK_BYTES = 256 << 20
# An image costs far more to decode and predict than its compressed bytes suggest (a 2 KB PNG
# becomes a tensor, and a model call), so for balancing it weighs at least this much: a folder of
# thousands of small images still spreads over every core.
MIN_IMAGE_BYTES = 64 << 10


def balance(
    fs: FileSystem, files: Sequence[InputFile], parallelism: int
) -> tuple[MiniBatch, ...]:
    """Mini-batches of about equal bytes: large Parquet files split at row groups, small files
    packed.

    One huge file and fifty thousand tiny ones both keep every core busy; the order of files
    (and of rows within a file) is kept, so lineage and CSV output order are unchanged. The count
    is a multiple of the task slots where there is enough to share, so the last wave of tasks
    fills every slot: 16 equal files on 2 slots make 8 tasks of 2 files, not 9 of 1 or 2.
    """
    slots = max(1, parallelism)
    total = sum(_weight(f) for f in files)
    count = min(slots * TASKS_PER_CORE, -(-total // MIN_TASK_BYTES))
    count = max(1, count, -(-total // MAX_TASK_BYTES))
    if count > slots:
        count = -(-count // slots) * slots
    target = max(1, -(-total // count))
    units: list[InputFile] = []
    for f in files:
        units.extend(_slices(fs, f, target) if f.kind == "parquet" and f.size > target else [f])
    # Each unit goes to the batch its middle byte falls in: equal shares of the bytes, in order.
    batches: dict[int, list[InputFile]] = {}
    before = 0
    for unit in units:
        weight = _weight(unit)
        at = min(count - 1, (before + weight // 2) * count // max(1, total))
        batches.setdefault(at, []).append(unit)
        before += weight
    return tuple(MiniBatch(index=i, files=tuple(batches[at]))
                 for i, at in enumerate(sorted(batches)))


def _weight(file: InputFile) -> int:
    """Bytes a file counts for when balancing mini-batches (its size; more for a small image)."""
    return max(file.size, MIN_IMAGE_BYTES) if file.kind == "image" else file.size


def _slices(fs: FileSystem, file: InputFile, target: int) -> list[InputFile]:
    """A Parquet file cut at row-group boundaries into parts of about `target` bytes."""
    import pyarrow.parquet as pq

    try:
        with fs.open_input_file(file.path) as f:
            meta = pq.ParquetFile(f).metadata
    except (pa.ArrowException, OSError):
        return [file]  # unreadable: the task that reads it records why
    rows = meta.num_rows
    if meta.num_row_groups < 2 or rows == 0:
        return [file]
    parts: list[InputFile] = []
    groups: list[int] = []
    first = start = 0
    for i in range(meta.num_row_groups):
        groups.append(i)
        start += meta.row_group(i).num_rows
        est = file.size * (start - first) // rows
        if est >= target or i == meta.num_row_groups - 1:
            parts.append(replace(file, row_groups=tuple(groups), first_row=first, size=est))
            groups, first = [], start
    return parts if len(parts) > 1 else [file]


def plan(
    uri: str,
    *,
    mini_batch_size: int | str = "auto",
    recursive: bool = False,
    ignore_unsupported: bool = False,
    parallelism: int = 1,
) -> Plan:
    """List the input and group it into mini-batches: all the driver decides before scoring.

    A number keeps Azure's meaning (files per task); `auto` balances bytes over `parallelism`.
    """
    listing = list_input(uri, recursive=recursive, ignore_unsupported=ignore_unsupported)
    files = listing.files
    batches = balance(listing.fs, files, parallelism) if mini_batch_size == "auto" else group(
        files, int(mini_batch_size))
    return Plan(uri=uri, root=listing.root, files=files, batches=batches,
                skipped=listing.unsupported, broken_links=listing.broken_links)


def _split_glob(uri: str) -> tuple[str, str | None]:
    """Split a glob into the folder before its first wildcard and the pattern after it."""
    first = min((i for i in map(uri.find, _GLOB_CHARS) if i >= 0), default=-1)
    if first < 0:
        return uri, None
    cut = uri.rfind("/", 0, first)
    head = uri[:cut] if cut > 0 else ""
    # Keep the slash when cutting there would leave a root or a bare scheme ("/", "file:///").
    prefix = head if head and not head.endswith(("/", ":")) else uri[: cut + 1]
    return prefix, uri[cut + 1 :]


def _hidden(base_name: str) -> bool:
    """Spark and Hadoop mark bookkeeping files and folders with a leading '.' or '_'."""
    return base_name.startswith((".", "_"))


def _glob(fs: FileSystem, walker: _Walker, uri: str, base: str, pattern: str) -> list[FileInfo]:
    """Entries matching `pattern` segment by segment under `base`; matched folders are read."""
    if fs.get_file_info(base).type != FileType.Directory:
        raise _missing(uri)
    folders, matched = [base], []
    segments = pattern.split("/")
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        found = [
            info
            for folder in folders
            for info in sorted(fs.get_file_info(FileSelector(folder)), key=lambda i: i.base_name)
            if not _hidden(info.base_name) and fnmatchcase(info.base_name, segment)
        ]
        if last:
            matched = found
        else:
            folders = [info.path for info in found if info.type == FileType.Directory]
    return [entry for info in matched for entry in walker.matched(info)]


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


def _no_data(uri: str, *, has_subfolders: bool, skipped: Sequence[str],
             broken: Sequence[str] = ()) -> InputError:
    """Nothing to score: say why, so the user knows whether to fix the path or the settings."""
    reason = f"there are no {_extensions()} files to score here"
    if skipped:
        reason += f" ({len(skipped)} unsupported file(s) ignored: {', '.join(skipped)})"
    if broken:
        reason += f" ({len(broken)} symbolic link(s) to nothing: {', '.join(broken)})"
    if has_subfolders:
        reason += "; it has sub-folders, which are read only with recursive: true"
    return InputError(path=uri, reason=reason + ".")
