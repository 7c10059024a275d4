"""Predict in the model's own environment: one child process per Python worker, Arrow over pipes.

The model's pins may clash with the job's own packages (an old pandas, an old scikit-learn), so
the two never share an interpreter. The child is the worker's own Python started with `-S -E`
(no site-packages, no PYTHONPATH) and given two directories: the environment's site-packages
and a directory holding only the `sparkscore` package, of which it imports the loader. It loads
the model once, then answers predict requests until its stdin closes.

Everything else stays in the job: reading, lineage, signature enforcement and error records
happen before a batch is sent, and the child returns the raw prediction, which the parent turns
back into the object `predict` returned (DataFrame, Series, ndarray, list or dict of arrays), so
the rest of the pipeline cannot tell the difference.

Wire format, both ways: `<IQ` (header length, payload length), a JSON header, then the payload:
Arrow IPC streams one after another, their lengths in the header. Arrow IPC is stable across
pyarrow versions, which is what lets the two sides run different ones.
"""

from __future__ import annotations

import base64
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from sparkscore.scratch import process_dir

__all__ = ["ModelProcess", "RemoteImpl", "decode", "encode", "receive", "send", "serve"]

RUNTIME_PREFIX = "sparkscore-runtime-"
_FRAME = struct.Struct("<IQ")
LOG_TAIL_CHARS = 2000


# ---------------------------------------------------------------------------------------------
# Values <-> Arrow tables


def encode(value: Any) -> tuple[dict[str, Any], list[pa.Table]]:
    """A prediction or an input as a JSON-able description plus Arrow tables."""
    if isinstance(value, pd.DataFrame):
        names = [_json_name(c) for c in value.columns]
        frame = value.set_axis([str(i) for i in range(value.shape[1])], axis=1)
        return {"kind": "frame", "columns": names}, [_table(frame)]
    if isinstance(value, pd.Series):
        frame = value.to_frame("0").reset_index(drop=True)
        return {"kind": "series", "name": _json_name(value.name)}, [_table(frame)]
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        column = pa.array(list(flat) if flat.dtype == object else flat)
        return (
            {"kind": "ndarray", "shape": list(value.shape), "dtype": value.dtype.str},
            [pa.table({"0": column})],
        )
    if isinstance(value, list):
        try:
            return {"kind": "list"}, [pa.table({"0": pa.array(value)})]
        except (pa.ArrowException, TypeError, ValueError):
            return encode(np.asarray(value))
    if isinstance(value, Mapping):
        keys, items, tables = [], [], []
        for key, item in value.items():
            header, parts = encode(item if not isinstance(item, list) else np.asarray(item))
            keys.append(_json_name(key))
            items.append(header)
            tables.extend(parts)
        return {"kind": "dict", "keys": keys, "items": items}, tables
    raise TypeError(
        f"a {type(value).__name__} cannot be passed between the job and the model's "
        "environment; predict must take and return a DataFrame, Series, ndarray, "
        "list or dict of arrays."
    )


def decode(header: Mapping[str, Any], tables: list[pa.Table]) -> Any:
    """The value `encode` described: the same type, columns, dtype and shape."""
    kind = header["kind"]
    if kind == "dict":
        out, at = {}, 0
        for key, item in zip(header["keys"], header["items"]):
            n = _tables_used(item)
            out[key] = decode(item, tables[at : at + n])
            at += n
        return out
    table = tables[0]
    if kind == "frame":
        frame = table.to_pandas()
        frame.columns = header["columns"]
        return frame
    if kind == "series":
        series = table.column(0).to_pandas()
        series.name = header["name"]
        return series
    if kind == "list":
        return table.column(0).to_pylist()
    values = table.column(0).to_numpy(zero_copy_only=False)
    dtype = np.dtype(header["dtype"])
    if dtype != object and values.dtype != dtype:
        values = values.astype(dtype)
    return values.reshape(header["shape"])


def _tables_used(header: Mapping[str, Any]) -> int:
    if header["kind"] == "dict":
        return sum(_tables_used(item) for item in header["items"])
    return 1


def _table(frame: pd.DataFrame) -> pa.Table:
    # pandas' own metadata names dtypes of the sender's pandas version; the receiver's pandas
    # maps Arrow types itself.
    return pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)


def _json_name(name: Any) -> Any:
    return name if isinstance(name, (str, int, float, bool)) or name is None else str(name)


def _plain(value: Any) -> Any:
    """Params as plain Python, so either side's numpy can unpickle them."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Framing


def send(stream: IO[bytes], header: Mapping[str, Any], tables: Sequence[pa.Table] = ()) -> None:
    parts = []
    for table in tables:
        sink = io.BytesIO()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        parts.append(sink.getvalue())
    head = json.dumps({**header, "parts": [len(p) for p in parts]}).encode()
    stream.write(_FRAME.pack(len(head), sum(len(p) for p in parts)))
    stream.write(head)
    for part in parts:
        stream.write(part)
    stream.flush()


def receive(stream: IO[bytes]) -> tuple[dict[str, Any], list[pa.Table]] | None:
    """The next message, or None when the other side closed the pipe."""
    prefix = _read_exactly(stream, _FRAME.size)
    if prefix is None:
        return None
    head_len, payload_len = _FRAME.unpack(prefix)
    head = _read_exactly(stream, head_len)
    payload = _read_exactly(stream, payload_len) if payload_len else b""
    if head is None or payload is None:
        return None
    header = json.loads(head)
    tables, at = [], 0
    for size in header.pop("parts"):
        tables.append(pa.ipc.open_stream(pa.py_buffer(payload[at : at + size])).read_all())
        at += size
    return header, tables


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# The child: runs in the model's environment


def serve(model_path: str) -> int:
    """Load the model, say so, then answer predict requests until stdin closes."""
    # Keep the pipe to ourselves: whatever the model prints goes to stderr (the log).
    out = os.fdopen(os.dup(1), "wb")
    inp = os.fdopen(os.dup(0), "rb")
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    try:
        from sparkscore.loader import load_model

        model = load_model(model_path, trust_model=True)  # the driver warned
    except BaseException as e:  # reported to the parent, which raises it as a load error
        send(out, {"ok": False, "error": _error(e)})
        return 1
    from sparkscore.errors import python_version

    send(out, {"ok": True, "python": python_version(), "pid": os.getpid(), "packages": _versions()})
    while True:
        message = receive(inp)
        if message is None:
            return 0
        header, tables = message
        try:
            data = decode(header["data"], tables)
            params = pickle.loads(base64.b64decode(header["params"]))
            result_header, result_tables = encode(model.predict_conformed(data, params))
        except Exception as e:  # the model's own failure: the parent records it for the rows
            send(out, {"ok": False, "error": _error(e)})
            continue
        send(out, {"ok": True, "data": result_header}, result_tables)


def _error(e: BaseException) -> dict[str, Any]:
    return {
        "type": type(e).__name__,
        "message": str(e),
        "reason": str(getattr(e, "reason", "") or ""),
        "package": getattr(e, "package", None),
        "pinned": getattr(e, "pinned", None),
        "installed": getattr(e, "installed", None),
        "detail": getattr(e, "detail", None),
        "traceback": "".join(traceback.format_exception(e))[-LOG_TAIL_CHARS:],
    }


def _versions() -> dict[str, str]:
    import importlib.metadata

    names = ("scikit-learn", "pandas", "numpy", "pyarrow", "mlflow", "mlflow-skinny")
    found = {}
    for name in names:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


# The child's whole program: isolate, put the environment and sparkscore on the path, serve.
_BOOTSTRAP = (
    "import sys, site\n"
    "site_packages, runtime, model = sys.argv[1:4]\n"
    "site.addsitedir(site_packages)\n"
    "sys.path.append(runtime)\n"
    "from sparkscore.modelprocess import serve\n"
    "sys.exit(serve(model))\n"
)


# ---------------------------------------------------------------------------------------------
# The parent: a stand-in for the model object


class ModelProcess:
    """The child process holding one loaded model; one request at a time."""

    def __init__(self, model_path: str, site_packages: str) -> None:
        self.model_path, self.site_packages = model_path, site_packages
        self.log_path = os.path.join(_runtime_dir(), f"model-{os.getpid()}-{id(self)}.log")
        self._lock = threading.Lock()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [
                    sys.executable,
                    "-S",
                    "-E",
                    "-c",
                    _BOOTSTRAP,
                    site_packages,
                    _runtime_dir(),
                    model_path,
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env={k: v for k, v in os.environ.items() if not k.startswith("PYTHON")},
            )
        assert self._proc.stdin is not None and self._proc.stdout is not None  # both PIPE
        self._stdin, self._stdout = self._proc.stdin, self._proc.stdout
        ready = self._receive()
        if not ready[0]["ok"]:
            self.close()
            raise _load_error(model_path, site_packages, ready[0]["error"])
        self.info = ready[0]

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def predict(self, data: Any, params: Mapping[str, Any] | None) -> Any:
        from sparkscore.errors import PredictError

        header, tables = encode(data)
        payload = base64.b64encode(pickle.dumps(_plain(params), protocol=4)).decode()
        with self._lock:
            try:
                send(self._stdin, {"data": header, "params": payload}, tables)
                reply, result = self._receive()
            except BaseException:
                # Interrupted (a timeout) or broken mid-request: the pipe's state is unknown.
                self.close(kill=True)
                raise
        if not reply["ok"]:
            error = reply["error"]
            raise PredictError(
                file=None,
                first_row=None,
                rows=_rows(data),
                cause=f"{error['type']}: {error['message']}",
            )
        return decode(reply["data"], result)

    def _receive(self) -> tuple[dict[str, Any], list[pa.Table]]:
        from sparkscore.errors import ModelProcessError

        try:
            message = receive(self._stdout)
        except (OSError, ValueError, pa.ArrowException):
            message = None
        if message is None:
            self.close()
            raise ModelProcessError(
                path=self.model_path, returncode=self._proc.returncode, log_tail=self.log_tail()
            )
        return message

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - LOG_TAIL_CHARS))
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text.splitlines() if line.strip())[-500:]

    def close(self, *, kill: bool = False) -> None:
        """Close its stdin (it exits by itself); kill it if it does not, or if asked to."""
        if kill and self._proc.poll() is None:
            self._proc.kill()
        for stream in (self._stdin, self._stdout):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def _rows(data: Any) -> int:
    try:
        return len(data)
    except TypeError:
        return 0


def _load_error(model_path: str, site_packages: str, error: Mapping[str, Any]) -> Exception:
    from sparkscore.errors import ModelLoadError

    where = f"in the model's environment ({site_packages})"
    if error["type"] == "MissingDependencyError":
        # The advice for the job's environment (install it here) does not apply in the model's.
        have = f"{error['package']} {error['installed']}" if error["installed"] else "nothing"
        pinned = (
            f"the model pins {error['pinned']}" if error["pinned"] else "the model does not pin it"
        )
        return ModelLoadError(
            path=model_path,
            reason=f"{where} it needs the package '{error['package']}' but has {have}; {pinned} "
            f"({error['detail']}). Add it to the model's requirements (pip_requirements when "
            "saving it with mlflow).",
        )
    reason = error.get("reason") or f"{error['type']}: {error['message']}"
    return ModelLoadError(path=model_path, reason=f"{where}: {reason}")


class RemoteImpl:
    """Stands in for the loaded model in `Model.impl`: its predict function runs in the child."""

    def __init__(self, process: ModelProcess, predict_fn: str) -> None:
        self.process = process
        setattr(self, predict_fn, self._predict)

    def _predict(self, data: Any, params: Mapping[str, Any] | None = None) -> Any:
        return self.process.predict(data, params)


def _runtime_dir() -> str:
    """A folder holding only a link to this sparkscore package, for the child's sys.path: one
    per process, removed when it exits (sparkscore.scratch)."""
    folder = process_dir(RUNTIME_PREFIX)
    link = os.path.join(folder, "sparkscore")
    if not os.path.islink(link):
        os.symlink(os.path.dirname(os.path.abspath(__file__)), link)
    return folder
