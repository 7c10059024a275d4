"""`sparkscore score ...`: the batch job as a console command that starts its own Spark session."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

USAGE = ("usage: sparkscore score --model MODEL --input INPUT --output OUT [options]\n"
         "       sparkscore plan --model MODEL --input INPUT [--set key=value ...]")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print("commands:\n"
              "  score   score a model over a folder of files (see sparkscore score -h)\n"
              "  plan    show the plan and check every file against the signature, scoring nothing")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in ("score", "plan"):
        print(f"error: unknown command {command!r}; the commands are: score, plan", flush=True)
        return 2
    job = _import_job()
    if isinstance(job, signal.Signals):
        print(f"error: interrupted by {job.name} before the job started; nothing was done.",
              flush=True)
        return 128 + job
    known, _ = job.parser(f"sparkscore {command}", with_master=True).parse_known_args(
        rest + (["--output", "-"] if command == "plan" else []))
    job_args = _without_master(rest) + (["--output", "-", "--dry-run"]
                                        if command == "plan" else [])
    return job.main(job_args, prog=f"sparkscore {command}", master=known.master)


def _import_job() -> ModuleType | signal.Signals:
    """Import the job (pyspark, pandas, pyarrow: seconds); Ctrl-C, SIGTERM or SIGHUP meanwhile
    end the command with one line, as they do once the job runs: the signal is returned."""
    received: list[signal.Signals] = []

    def interrupt(signum: int, frame: Any) -> None:
        if not received:
            received.append(signal.Signals(signum))
            raise KeyboardInterrupt

    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, interrupt)
    try:
        from sparkscore import job
    except KeyboardInterrupt:
        return received[0] if received else signal.SIGINT
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0] if received else job


def _without_master(args: list[str]) -> list[str]:
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
            continue
        if a == "--master":
            skip = True
            continue
        if a.startswith("--master="):
            continue
        out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(main())
