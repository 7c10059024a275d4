"""spark-submit entry point: `spark-submit jobs/score.py --model M --input I --output O [...]`."""

import sys

from sparkscore.job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
