"""The command line: `sparkscore score|plan ...` and `spark-submit jobs/score.py ...`.

This module holds the one argument parser; the arguments are parsed once, here, then run by
sparkscore.console. It stays light at import (no pyspark, pandas or pyarrow): `-h` and a
mistyped argument answer at once, and the job is imported only when there is one to run, in a
way that a signal meanwhile still ends the command with one line.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sparkscore.console import Command

__all__ = ["USAGE", "main", "parser", "submit"]

USAGE = (
    "usage: sparkscore score --model MODEL --input INPUT --output OUT [options]\n"
    "       sparkscore plan --model MODEL --input INPUT [--set key=value ...]\n"
    "       sparkscore report OUT\n"
    "       sparkscore show OUT"
)
COMMANDS = ("score", "plan", "report", "show")


def parser(prog: str, *, with_master: bool, plan: bool = False) -> argparse.ArgumentParser:
    """The arguments of a run. `with_master`: the console command starts its own Spark (under
    spark-submit, spark-submit has the master). `plan`: check and plan only, writing nothing."""
    p = argparse.ArgumentParser(
        prog=prog, description="Score an MLflow model over a folder of files."
    )
    p.add_argument("--model", required=True, help="MLflow model directory (holds MLmodel)")
    p.add_argument("--input", required=True, help="a folder, a file or a glob")
    if plan:
        p.set_defaults(output="-", dry_run=True)
    else:
        p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--config", help="YAML settings file (see conf/default.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting; the value is parsed as YAML",
    )
    p.add_argument("--remote", help="a Spark Connect URL (sc://host:port) instead of a master")
    if not plan:
        p.add_argument(
            "--dry-run",
            action="store_true",
            help="print the plan and check each file against the signature; score nothing",
        )
    if with_master:
        p.add_argument(
            "--master",
            help="Spark master (default local[*]; local[N] with an Azure deployment's "
            "instance_count x max_concurrency_per_instance)",
        )
        p.set_defaults(submitted=False)
    else:
        p.set_defaults(master=None, submitted=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """`sparkscore COMMAND ...`, the console command that starts its own Spark session."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print(
            "commands:\n"
            "  score   score a model over a folder of files (see sparkscore score -h)\n"
            "  plan    show the plan and check every file against the signature, scoring nothing\n"
            "  report  write OUT/report.html again from a run's output folder\n"
            "  show    print what a run's output folder says: status, counts, errors, drift"
        )
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(
            f"error: unknown command {command!r}; the commands are: {', '.join(COMMANDS)}",
            flush=True,
        )
        return 2
    if command in ("report", "show"):
        return _present(command, rest)
    return _run(
        parser(f"sparkscore {command}", with_master=True, plan=command == "plan").parse_args(rest)
    )


def submit(argv: Sequence[str]) -> int:
    """`spark-submit jobs/score.py ...`: the score command, on the master spark-submit has."""
    return _run(parser("score.py", with_master=False).parse_args(list(argv)))


def _run(args: argparse.Namespace) -> int:
    console = _import_console()
    if isinstance(console, signal.Signals):
        print(
            f"error: interrupted by {console.name} before the job started; nothing was done.",
            flush=True,
        )
        return 128 + console
    command: Command = console.Command(
        model=args.model,
        input=args.input,
        output=args.output,
        config=args.config,
        overrides=tuple(args.overrides),
        remote=args.remote,
        dry_run=args.dry_run,
        master=args.master,
        submitted=args.submitted,
    )
    status: int = console.run(command)
    return status


def _present(command: str, argv: list[str]) -> int:
    """`sparkscore report OUT` and `sparkscore show OUT`: a finished run's output folder,
    read again (no Spark)."""
    p = argparse.ArgumentParser(
        prog=f"sparkscore {command}",
        description="Write report.html again from a run's output folder."
        if command == "report"
        else "Print what a run's output folder says: status, counts, errors, drift.",
    )
    p.add_argument("output", metavar="OUT", help="the --output folder of a run")
    args = p.parse_args(argv)
    from sparkscore import report
    from sparkscore.errors import SparkscoreError
    from sparkscore.runfacts import gather

    try:
        if command == "report":
            print(f"report written to {report.rebuild(args.output).report}")
        else:
            print("\n".join(report.text_lines(gather(args.output))))
    except SparkscoreError as e:
        print(f"error: {e}", flush=True)
        return 2
    return 0


def _import_console() -> ModuleType | signal.Signals:
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
        from sparkscore import console
    except KeyboardInterrupt:
        return received[0] if received else signal.SIGINT
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return received[0] if received else console


if __name__ == "__main__":
    sys.exit(main())
