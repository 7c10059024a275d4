"""Peak resident memory of one case: the driver, the JVM and the Python workers (Linux /proc).

What the figures mean: each is the kernel's high-water mark of resident memory (`VmHWM` in
/proc/<pid>/status) over the case, in MiB.
- Before the case starts, the high-water mark of every process already alive (the driver, the JVM,
  the Python daemon and its reused workers) is reset to its current RSS by writing `5` to
  /proc/<pid>/clear_refs, so a reused worker does not carry a peak from an earlier case.
  Processes started during the case (a spark-submit's driver, JVM and workers) start fresh.
- A thread reads the high-water mark of every process in the tree every `interval` seconds and
  keeps the largest value seen per process, so a worker that exits during the case still counts,
  unless it lived and peaked within the last interval before exiting.
- RSS counts pages shared with other processes: a worker forked from the Python daemon counts the
  daemon's pages it still shares, and the in-process driver counts everything the benchmark
  process itself holds (pandas frames, the loop case's batches).
"""

from __future__ import annotations

import os
import threading

MIB = 1024 * 1024


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree(root: int) -> list[int]:
    """`root` and all its descendants that are alive now."""
    children = _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def hwm_bytes(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_hwm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def role(pid: int, cmd: str, driver_pid: int | None) -> str | None:
    """driver | jvm | daemon | worker | None (a shell or anything else in the tree)."""
    if pid == driver_pid:
        return "driver"
    argv0 = cmd.split(" ", 1)[0]
    if os.path.basename(argv0) == "java":
        return "jvm"
    if "pyspark.daemon" in cmd or "pyspark.worker" in cmd:
        return "worker"
    if "python" in os.path.basename(argv0):
        # A spark-submit's Python driver is a child of its JVM.
        return "driver"
    return None


class PeakRss:
    """`with PeakRss([root]) as peak: ...` then `peak.result()` (MiB per role).

    `roots` are the processes whose trees are followed; `add_root` adds one started during the
    case (each spark-submit run). Peaks are kept per (pid, role), so the figure for a role is
    the largest high-water mark of any one process of that role during the case.
    """

    def __init__(
        self,
        roots: list[int],
        *,
        driver_pid: int | None = None,
        interval: float = 0.25,
        reset: bool = True,
    ) -> None:
        self.roots = list(roots)
        self.driver_pid = driver_pid
        self.interval = interval
        self.reset = reset
        self.peaks: dict[tuple[int, str], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reset_ok = True

    def add_root(self, pid: int) -> None:
        with self._lock:
            self.roots.append(pid)

    def _sample(self) -> None:
        with self._lock:
            roots = list(self.roots)
        seen: set[int] = set()
        for root in roots:
            for pid in tree(root):
                if pid in seen:
                    continue
                seen.add(pid)
                r = role(pid, _cmdline(pid), self.driver_pid)
                value = hwm_bytes(pid) if r else None
                if value is not None and value > self.peaks.get((pid, r), 0):
                    self.peaks[(pid, r)] = value

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakRss:
        if self.reset:
            for root in self.roots:
                for pid in tree(root):
                    self.reset_ok &= reset_hwm(pid)
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._sample()

    def result(self) -> dict[str, float | int | None]:
        def peak(r: str) -> float | None:
            values = [b for (_, rr), b in self.peaks.items() if rr == r]
            return round(max(values) / MIB, 1) if values else None

        return {
            "driver_mib": peak("driver"),
            "jvm_mib": peak("jvm"),
            # the Python daemon counts among the workers; it is small, so the max is a worker's
            "worker_mib": peak("worker"),
            "workers": sum(1 for (_, r) in self.peaks if r == "worker"),
        }
