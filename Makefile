# Two commands work on a fresh machine with Python 3.11 and Java 17: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-scale example clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[mlflow,test]'
	touch $(STAMP)

DEMO_MODEL := sparkscore/examples/diabetes/model
DEMO_INPUT := sparkscore/examples/diabetes/input
export PYSPARK_PYTHON := $(abspath $(PY))
export PYSPARK_DRIVER_PYTHON := $(abspath $(PY))

demo: $(STAMP)
	$(VENV)/bin/spark-submit --master 'local[*]' \
		--driver-java-options -Dlog4j2.configurationFile=sparkscore/log4j2-quiet.properties \
		jobs/score.py --model $(DEMO_MODEL) \
		--input $(DEMO_INPUT) --output out/demo --set overwrite=true \
		--set passthrough_columns=[patient_id]
	$(PY) -m sparkscore.examples.demo out/demo

test: $(STAMP)
	$(PY) -m pytest -q

# The rules are in pyproject.toml (ruff, mypy, import-linter's contracts); CI runs this first.
lint: $(STAMP)
	$(VENV)/bin/ruff check sparkscore tests bench jobs
	$(VENV)/bin/ruff format --check sparkscore tests bench jobs
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The one-size figures (bench/RESULTS.md, about 40 minutes), then how cost grows (below).
bench: $(STAMP)
	$(PY) bench/run.py $(BENCH_ARGS)
	$(MAKE) bench-scale

# How cost grows: rows (1x-16x, 4.5 GB of data made once), files on the driver (up to 1M tiny
# files, 100k on a local S3 server), the RF job's CPU by process, small files against their
# read bound, joined in bench/RESULTS-scale.md. About 30 minutes on 2 cores once the data is
# made (an hour the first time); never in `make test`.
bench-scale: $(STAMP)
	$(PY) bench/rows.py --rf-max-scale 16
	$(PY) bench/files.py --s3 100000
	$(PY) bench/cpu_split.py
	$(PY) bench/small_files.py --scale 1
	$(PY) bench/remote_files.py
	$(PY) bench/scale_results.py

# Rebuild the bundled example model and input files (needs the mlflow extra, installed above).
example: $(STAMP)
	$(PY) -m sparkscore.examples.build_diabetes

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
