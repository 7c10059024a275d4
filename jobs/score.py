"""spark-submit entry point: `spark-submit jobs/score.py --model M --input I --output O [...]`."""

import sys

from sparkscore.cli import submit

if __name__ == "__main__":
    sys.exit(submit(sys.argv[1:]))
