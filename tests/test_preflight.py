from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparkscore
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
    report, ok = preflight(str(EXAMPLE / "model"), str(folder(tmp_path)), Settings(), parallelism=2)
    assert not ok
    lines = report.splitlines()
    assert lines[1:3] == ["mini-batches (Spark tasks): 1", "  0: " + lines[2].split(": ", 1)[1]]
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


def test_preflight_of_many_files_names_only_those_with_something_to_say(tmp_path):
    # Past SHOWN_FILES files a landing folder's plan stays a screenful: each mini-batch by its
    # first and last file, and only the files that would fail (or have a note).
    good = pd.read_csv(EXAMPLE / "input" / "visits-2024-01.csv").head(2)
    (tmp_path / "in").mkdir()
    for i in range(60):
        frame = good.drop(columns="bmi") if i == 7 else good
        frame.to_csv(tmp_path / "in" / f"f{i:02d}.csv", index=False)
    report, ok = preflight(str(EXAMPLE / "model"), str(tmp_path / "in"), Settings(), parallelism=1)
    lines = report.splitlines()
    size = (tmp_path / "in" / "f07.csv").stat().st_size
    assert not ok
    assert lines[2].endswith(": f00.csv, ... f59.csv (60 files)")
    assert lines[4:] == [
        "files:",
        f"  f07.csv ({size:,} bytes): WOULD FAIL",
        "    - missing column 'bmi' (double)",
        "  59 other files: ok",
        "1 of 60 files would fail: f07.csv: missing column 'bmi' (double)",
    ]


def test_preflight_command_exits_non_zero_without_starting_spark(tmp_path):
    cli = Path(sys.executable).parent / "sparkscore"
    done = subprocess.run(
        [str(cli), "plan", "--model", str(EXAMPLE / "model"), "--input", str(folder(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stdout.strip().splitlines()[-1].startswith("2 of 4 files would fail: missing.csv")
    assert "SparkContext" not in done.stdout + done.stderr

    good = tmp_path / "good"
    good.mkdir()
    (tmp_path / "in" / "good.csv").rename(good / "good.csv")
    done = subprocess.run(
        [str(cli), "plan", "--model", str(EXAMPLE / "model"), "--input", str(good)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0
    assert done.stdout.strip().splitlines()[-1] == "all 1 files satisfy the signature"


def test_preflight_decodes_each_image_and_names_what_would_fail(tmp_path, zoo):
    from model_zoo import digit_images, write_pngs
    from PIL import Image

    folder = tmp_path / "images"
    write_pngs(folder, digit_images(2))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "color.png")
    (folder / "cut.png").write_bytes((folder / "digit-00.png").read_bytes()[:20])
    size = {p.name: p.stat().st_size for p in folder.iterdir()}

    report, ok = preflight(str(zoo.digit_labels), str(folder), Settings(), parallelism=2)
    assert not ok
    lines = report.splitlines()
    assert lines[3] == "signature inputs: 0: tensor uint8 [-1, 64]"
    assert lines[4:] == [
        "files:",
        f"  color.png ({size['color.png']:,} bytes): WOULD FAIL",
        "    - the image has shape [8, 8, 3] (Pillow mode RGB), which cannot be reshaped to the "
        "signature's tensor shape [-1, 64] (-1 is any size); convert the images to that shape, "
        "or save the model with a signature that takes this one",
        f"  cut.png ({size['cut.png']:,} bytes): WOULD FAIL",
        "    - the file is not a readable PNG image; it may be truncated or corrupt (Truncated "
        "File Read)",
        f"  digit-00.png ({size['digit-00.png']:,} bytes): ok",
        f"  digit-01.png ({size['digit-01.png']:,} bytes): ok",
        "2 of 4 files would fail: color.png: the image has shape [8, 8, 3] (Pillow mode RGB), "
        "which cannot be reshaped to the signature's tensor shape [-1, 64] (-1 is any size); "
        "convert the images to that shape, or save the model with a signature that takes this "
        "one; cut.png: the file is not a readable PNG image; it may be truncated or corrupt "
        "(Truncated File Read)",
    ]


def test_preflight_mixed_folder_names_the_files_the_model_cannot_take(tmp_path, zoo):
    from model_zoo import digit_images, write_pngs

    folder = tmp_path / "mixed"
    write_pngs(folder, digit_images(1))
    pd.DataFrame({"a": [0.5], "b": [1]}).to_csv(folder / "rows.csv", index=False)

    report, ok = preflight(str(zoo.lr_skops), str(folder), Settings(), parallelism=2)
    assert not ok
    assert report.splitlines()[-1] == (
        "1 of 2 files would fail: digit-00.png: this is an image file, but the model's signature "
        "takes columns (a: double, b: long), not images; image files need a model whose input "
        "is one tensor (TensorSpec) or one binary column. Leave the image files out of the "
        "input, or score them with a model that takes images"
    )

    report, ok = preflight(str(zoo.digit_labels), str(folder), Settings(), parallelism=2)
    assert not ok
    assert report.splitlines()[-1] == (
        "1 of 2 files would fail: rows.csv: has 2 columns, which cannot make the model's input "
        "tensor of shape [-1, 64]"
    )


def test_preflight_names_a_repeated_column_and_passthrough_types_that_disagree(tmp_path, zoo):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    pd.DataFrame({"id": [1, 2], "a": [0.5, 0.7], "b": [1, 2]}).to_csv(
        folder / "f1.csv", index=False
    )
    pq.write_table(pa.table({"id": [{"x": 1}], "a": [0.5], "b": [1]}), folder / "f2.parquet")
    (folder / "twice.csv").write_text("id,a,b,a\n3,0.5,1,0.7\n")

    report, ok = preflight(
        str(zoo.lr_skops), str(folder), Settings(passthrough_columns=("id",)), parallelism=2
    )
    assert not ok
    assert report.splitlines()[-3:] == [
        "    - the column 'a' appears twice in the file's header, so which one to read is "
        "ambiguous; give each column its own name",
        "1 of 3 files would fail: twice.csv: the column 'a' appears twice in the file's header, "
        "so which one to read is ambiguous; give each column its own name",
        "the job would be refused: the passthrough column 'id' has types that no one column can "
        "hold: int64 in f1.csv; struct<x: int64> in f2.parquet. Give the column one type in "
        "every file, or leave it out of passthrough_columns.",
    ]


class _MakesMarker:
    """Unpickling this runs os.mkdir(path): what a malicious pickle could do instead."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def marked_models(tmp_path: Path, zoo) -> tuple[list[Path], Path]:
    """A pickled scikit-learn model and a custom-code flavor, each making `marker` on load."""
    marker = tmp_path / "marker"
    pickled = tmp_path / "pickled"
    shutil.copytree(zoo.lr_pickle, pickled)
    (pickled / "model.pkl").write_bytes(pickle.dumps(_MakesMarker(str(marker))))
    coded = tmp_path / "coded"
    shutil.copytree(zoo.custom_flavor, coded)
    (coded / "code" / "triple_flavor.py").write_text(
        textwrap.dedent(f"""
        import os
        os.mkdir({str(marker)!r})
    """)
    )
    return [pickled, coded], marker


def test_plan_never_unpickles_the_model_or_imports_its_code(tmp_path, zoo):
    models, marker = marked_models(tmp_path, zoo)
    (tmp_path / "in").mkdir()
    pd.DataFrame({"a": [0.5], "b": [1]}).to_csv(tmp_path / "in" / "x.csv", index=False)
    cli = Path(sys.executable).parent / "sparkscore"

    for model in models:
        report, ok = preflight(str(model), str(tmp_path / "in"), Settings(), parallelism=1)
        assert ok, report
        assert not marker.exists(), model
        done = subprocess.run(
            [str(cli), "plan", "--model", str(model), "--input", str(tmp_path / "in")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.strip().splitlines()[-1] == "all 1 files satisfy the signature"
        assert not marker.exists(), model
    # The same models do run their code when loaded: the marker is a real witness.
    with pytest.raises(sparkscore.ModelLoadError):
        sparkscore.load_model(models[0])
    assert marker.is_dir()


def test_preflight_judges_decimals_and_timestamps_as_the_job_does(tmp_path):
    """A decimal converts value by value (only when the number reads back unchanged), a
    timestamp coarser than nanoseconds may reach past datetime64[ns], an aware one never fits."""
    import datetime as dt
    from decimal import Decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    model = tmp_path / "m"
    model.mkdir()
    (model / "MLmodel").write_text(
        textwrap.dedent("""
        flavors:
          python_function:
            loader_module: never_imported_by_plan
        signature:
          inputs: '[{"type": "double", "name": "amount"}, {"type": "long", "name": "count"},
                    {"type": "datetime", "name": "ts"}]'
    """)
    )
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "links").mkdir()
    (tmp_path / "in" / "gone.parquet").symlink_to(tmp_path / "nowhere.parquet")

    def write(name: str, ts: pa.DataType) -> None:
        pq.write_table(
            pa.table(
                {
                    "amount": pa.array([Decimal("12.34")], pa.decimal128(38, 20)),
                    "count": pa.array([Decimal("3")], pa.decimal128(10, 0)),
                    "ts": pa.array([dt.datetime(2024, 1, 1)], ts),
                }
            ),
            tmp_path / "in" / name,
        )

    write("a_ns.parquet", pa.timestamp("ns"))
    write("b_us.parquet", pa.timestamp("us"))
    write("c_aware.parquet", pa.timestamp("us", tz="UTC"))

    report, ok = preflight(str(model), str(tmp_path / "in"), Settings(), parallelism=1)

    assert not ok
    lines = report.splitlines()
    assert lines[1] == "symbolic links to nothing skipped: gone.parquet"
    decimal_notes = [
        "    - note: column 'amount' is decimal128(38, 20); values must convert to double one by "
        "one",
        "    - note: column 'count' is decimal128(10, 0); values must convert to long one by one",
    ]
    at = lines.index
    assert lines[at("files:") + 2 : at("files:") + 4] == decimal_notes
    assert (
        "    - note: column 'ts' is timestamp[us]; values must convert to datetime one by one"
        in lines
    )
    assert "    - column 'ts' is timestamp[us, tz=UTC], which cannot hold datetime" in lines
    assert lines[-1].startswith("1 of 3 files would fail: c_aware.parquet")


def test_plan_command_prints_no_secret_of_its_locations(tmp_path):
    secret = tmp_path / "token=hunter2"
    secret.mkdir()
    pd.read_csv(EXAMPLE / "input" / "visits-2024-01.csv").head(3).to_csv(
        secret / "a.csv", index=False
    )
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "sparkscore"),
            "plan",
            "--model",
            str(EXAMPLE / "model"),
            "--input",
            str(secret),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"input: {tmp_path}/token=*** (1 files" in done.stdout
    assert "hunter2" not in done.stdout + done.stderr
