"""`sparkscore score ...`: the batch job as a console command that starts its own Spark session."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sparkscore.job import main as job_main
from sparkscore.job import parser

USAGE = ("usage: sparkscore score --model MODEL --input INPUT --output OUT [options]\n"
         "       sparkscore plan --model MODEL --input INPUT [--set key=value ...]")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        print("commands:\n  score   score a model over a folder of files (see sparkscore score -h)\n"
              "  plan    show the plan and check every file against the signature, scoring nothing")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command in ("score", "plan"):
        known, _ = parser(f"sparkscore {command}", with_master=True).parse_known_args(
            rest + (["--output", "-"] if command == "plan" else []))
        job_args = _without_master(rest) + (["--output", "-", "--dry-run"]
                                            if command == "plan" else [])
        return job_main(job_args, prog=f"sparkscore {command}", master=known.master)
    print(f"error: unknown command {command!r}; the commands are: score, plan", flush=True)
    return 2


def _without_master(args: list[str]) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(args):
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
