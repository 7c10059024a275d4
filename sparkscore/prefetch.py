"""Small files on remote storage fetched ahead of the task that reads them, a few at a time.

On object storage every file costs a round trip (tens of milliseconds on S3) before its first
byte, and a task reads its mini-batch's files one after the other: a mini-batch of small files
would cost a round trip per file, with the core idle. Here the next files' bytes are fetched on
threads, in plan order, up to PREFETCH_FILES ahead of the one being read, and the readers open
them from memory as if from the store. Only files the readers read whole anyway are fetched
(WHOLE_FILE_BYTES or less), so nothing is read that would not be, and at most PREFETCH_FILES x
WHOLE_FILE_BYTES wait in memory. A file that cannot be fetched raises, when it is opened, what
opening it would have raised; any other call goes to the store itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
from pyarrow import fs as pafs

from sparkscore.listing import InputFile

__all__ = ["PREFETCH_FILES", "WHOLE_FILE_BYTES", "prefetching"]

# A file this small is read in one request and parsed from memory (readers.py, csvfiles.py).
WHOLE_FILE_BYTES = 1 << 20
PREFETCH_FILES = 16


@contextmanager
def prefetching(fs: pafs.FileSystem, files: Sequence[InputFile]) -> Iterator[pafs.FileSystem]:
    """`fs`, or, for a remote store and more than one small file, `fs` with the files fetched
    ahead of their reading (see the module docstring)."""
    wanted = [f.path for f in files if 0 < f.size <= WHOLE_FILE_BYTES]
    if isinstance(fs, pafs.LocalFileSystem) or len(wanted) < 2:
        yield fs
        return
    handler = _Prefetching(fs, wanted)
    try:
        yield pafs.PyFileSystem(handler)
    finally:
        handler.close()


class _Prefetching(pafs.FileSystemHandler):  # type: ignore[misc]  # pyarrow has no types
    """A store whose listed files' bytes are fetched ahead, each handed out once."""

    def __init__(self, inner: pafs.FileSystem, paths: list[str]) -> None:
        self.inner = inner
        self.paths = paths
        self.position = {path: i for i, path in reversed(list(enumerate(paths)))}
        self.pool = ThreadPoolExecutor(max_workers=PREFETCH_FILES, thread_name_prefix="prefetch")
        self.pending: dict[str, Future[pa.Buffer]] = {}
        self.submitted = 0
        self._ahead(0)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pending.clear()

    def _fetch(self, path: str) -> pa.Buffer:
        with self.inner.open_input_file(path) as f:
            return f.read_buffer()

    def _ahead(self, start: int) -> None:
        """Keep the files from `start` to PREFETCH_FILES after it fetched or fetching."""
        while self.submitted < min(len(self.paths), start + PREFETCH_FILES):
            path = self.paths[self.submitted]
            if path not in self.pending:
                self.pending[path] = self.pool.submit(self._fetch, path)
            self.submitted += 1

    def _fetched(self, path: str) -> pa.NativeFile | None:
        future = self.pending.pop(path, None)
        if future is None:
            return None  # not listed, or opened before (a file read again is read from the store)
        self._ahead(self.position[path] + 1)
        return pa.BufferReader(future.result())

    def open_input_file(self, path: str) -> pa.NativeFile:
        fetched = self._fetched(path)
        return self.inner.open_input_file(path) if fetched is None else fetched

    def open_input_stream(self, path: str) -> pa.NativeFile:
        fetched = self._fetched(path)
        return self.inner.open_input_stream(path) if fetched is None else fetched

    # Everything else is the store's own.
    def get_type_name(self) -> str:
        return f"prefetching+{self.inner.type_name}"

    def normalize_path(self, path: str) -> str:
        return str(self.inner.normalize_path(path))

    def equals(self, other: Any) -> bool:
        return isinstance(other, _Prefetching) and other.inner.equals(self.inner)

    def get_file_info(self, paths: list[str]) -> list[pafs.FileInfo]:
        return list(self.inner.get_file_info(paths))

    def get_file_info_selector(self, selector: pafs.FileSelector) -> list[pafs.FileInfo]:
        return list(self.inner.get_file_info(selector))

    def create_dir(self, path: str, recursive: bool) -> None:
        self.inner.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.inner.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.inner.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        self.inner.delete_dir_contents("/", accept_root_dir=True)

    def delete_file(self, path: str) -> None:
        self.inner.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.inner.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        self.inner.copy_file(src, dest)

    def open_output_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return self.inner.open_output_stream(path, metadata=metadata)

    def open_append_stream(self, path: str, metadata: Any) -> pa.NativeFile:
        return self.inner.open_append_stream(path, metadata=metadata)
