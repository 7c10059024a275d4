from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from sparkscore.preflight import preflight
from sparkscore.settings import Settings

EXAMPLE = Path(__file__).resolve().parents[1] / "sparkscore" / "examples" / "diabetes"


def folder(tmp_path: Path) -> Path:
    good = pd.read_csv(EXAMPLE / "input" / "visits-2024-01.csv").head(5)
    (tmp_path / "in").mkdir()
    good.to_csv(tmp_path / "in" / "good.csv", index=False)
    good.drop(columns="bmi").to_csv(tmp_path / "in" / "missing.csv", index=False)
    good.assign(bp=["high"] * 5).to_csv(tmp_path / "in" / "wrongtype.csv", index=False)
    good.astype({"age": str}).to_parquet(tmp_path / "in" / "text.parquet")
    return tmp_path / "in"


def test_preflight_names_each_file_that_would_fail_and_why(tmp_path):
    report, ok = preflight(str(EXAMPLE / "model"), str(folder(tmp_path)), Settings(),
                           parallelism=2)
    assert not ok
    lines = report.splitlines()
    assert lines[1:3] == ["mini-batches (Spark tasks): 1",
                          "  0: " + lines[2].split(": ", 1)[1]]
    assert lines[3].startswith("signature inputs: age: double, sex: double, bmi: double")
    assert lines[4:] == [
        "files:",
        f"  good.csv ({(tmp_path / 'in' / 'good.csv').stat().st_size:,} bytes): ok",
        f"  missing.csv ({(tmp_path / 'in' / 'missing.csv').stat().st_size:,} bytes): WOULD FAIL",
        "    - missing column 'bmi' (double)",
        f"  text.parquet ({(tmp_path / 'in' / 'text.parquet').stat().st_size:,} bytes): ok",
        "    - note: column 'age' is large_string; values must convert to double one by one",
        f"  wrongtype.csv ({(tmp_path / 'in' / 'wrongtype.csv').stat().st_size:,} bytes): "
        "WOULD FAIL",
        "    - column 'bp' is string, which cannot hold double",
        "2 of 4 files would fail: missing.csv: missing column 'bmi' (double); wrongtype.csv: "
        "column 'bp' is string, which cannot hold double",
    ]


def test_preflight_command_exits_non_zero_without_starting_spark(tmp_path):
    cli = Path(sys.executable).parent / "sparkscore"
    done = subprocess.run(
        [str(cli), "plan", "--model", str(EXAMPLE / "model"), "--input", str(folder(tmp_path))],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1].startswith("2 of 4 files would fail: missing.csv")
    assert "SparkContext" not in done.stdout + done.stderr

    good = tmp_path / "good"
    good.mkdir()
    (tmp_path / "in" / "good.csv").rename(good / "good.csv")
    done = subprocess.run(
        [str(cli), "plan", "--model", str(EXAMPLE / "model"), "--input", str(good)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1] == "all 1 files satisfy the signature"
