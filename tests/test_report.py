"""The report: report.html opened in a real browser (headless Chromium), `sparkscore show` and
`sparkscore report` on real runs of the example model, one with a drifted column and a bad file.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from test_drift import EXAMPLE, INPUTS, shifted_copy

import sparkscore
from sparkscore.console import summary_line
from sparkscore.errors import ErrorThresholdExceeded, NoRunError
from sparkscore.report import page, text_lines
from sparkscore.runfacts import gather

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAD_MESSAGE = (
    "bad.csv, row 2: column 'bmi' has value 'abc', which cannot be converted safely to double."
)


def score(spark, input: Path, output: Path, **settings) -> dict:
    return sparkscore.score(spark, EXAMPLE / "model", input, output, trust_model=True, **settings)


def with_bad_file(folder: Path) -> Path:
    """`folder` and bad.csv: five rows of the example, the third with a bmi that is not a
    number."""
    lines = (EXAMPLE / "input" / "visits-2024-01.csv").read_text().splitlines()[:6]
    header = lines[0].split(",")
    cells = lines[3].split(",")
    cells[header.index("bmi")] = "abc"
    lines[3] = ",".join(cells)
    (folder / "bad.csv").write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def runs(spark, tmp_path_factory) -> dict[str, Path]:
    """A reference run (profiled, as every run is by default), a run against it (age shifted,
    one bad file), and a run of one good and the bad file that failed its error_threshold,
    without a profile."""
    root = tmp_path_factory.mktemp("report")
    score(spark, EXAMPLE / "input", root / "reference")
    drifted = with_bad_file(shifted_copy(root / "in", "age", 0.05))
    score(spark, drifted, root / "drifted", reference=str(root / "reference"))
    two = root / "two"
    two.mkdir()
    shutil.copy(drifted / "bad.csv", two)
    shutil.copy(drifted / "visits-2024-01.csv", two)
    with pytest.raises(ErrorThresholdExceeded):
        score(spark, two, root / "failed", error_threshold=0, profile=False)
    return {name: root / name for name in ("reference", "drifted", "failed")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sparkscore.cli", *args], capture_output=True, text=True
    )


def test_report_show_prints_status_counts_errors_and_drift(runs):
    out = runs["drifted"]
    shown = run_cli("show", str(out))
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    job_id = gather(str(out)).job_id
    assert lines[0] == f"run {job_id}: succeeded"
    assert lines[1:5] == [
        f"output: {out}",
        "files: 5 planned, 4 scored, 1 failed, 0 skipped",
        "rows: 305 read, 300 scored, 5 failed",
        "mini-batches: 1 committed of 1",
    ]
    assert re.fullmatch(r"duration: [0-9.]+s \([0-9.]+ rows/s\)", lines[5])
    assert lines[6:] == [
        "errors: 1 record",
        "  validate SchemaEnforcementError: 1 record in 1 file: bad.csv (1)",
        f"drift against {runs['reference']}: flagged age",
        "  age: PSI 1.867, flagged",
        *(f"  {name}: PSI 0.000" for name in INPUTS[1:]),
        "  prediction: PSI 0.017",
        f"report: {out}/report.html",
    ]


def test_report_show_says_why_a_run_failed_and_that_it_has_no_profile(runs):
    facts = gather(str(runs["failed"]))
    lines = text_lines(facts)
    assert lines[:2] == [
        f"run {facts.job_id}: failed",
        "error: error_threshold exceeded: 1 of 2 files failed, error_threshold is 0. See "
        "errors/ in the output for each failure.",
    ]
    assert lines[-2:] == [
        "drift: no reference; no profile",
        f"report: {runs['failed']}/report.html",
    ]
    html = (runs["failed"] / "report.html").read_text()
    assert "No profile: this run ran with profile: false" in html
    assert html.count("<svg") == 2  # throughput and the prediction (one file: none differs)


def test_report_rebuilds_the_same_file_from_the_output_folder(runs):
    report = runs["drifted"] / "report.html"
    written = report.read_bytes()
    report.unlink()
    rebuilt = run_cli("report", str(runs["drifted"]))
    assert (rebuilt.returncode, rebuilt.stdout) == (0, f"report written to {report}\n")
    assert report.read_bytes() == written


def test_report_false_writes_no_report_and_the_summary_line_names_none(spark, tmp_path):
    out = tmp_path / "quiet"
    summary = score(spark, EXAMPLE / "input", out, report=False)
    assert not (out / "report.html").exists()
    assert (out / "_profile.json").exists()  # profiled all the same: the default
    assert summary_line(summary).endswith(f"; summary in {out}/_summary.json")
    rebuilt = run_cli("report", str(out))  # written later on demand
    assert (rebuilt.returncode, rebuilt.stdout) == (0, f"report written to {out}/report.html\n")


def test_report_of_an_unfinished_run_counts_its_committed_mini_batches(runs, tmp_path):
    out = tmp_path / "stopped"
    shutil.copytree(runs["drifted"], out)
    (out / "_summary.json").unlink()
    lines = text_lines(gather(str(out)))
    assert lines[:5] == [
        "run (no run record): unfinished",
        f"output: {out}",
        "files: ? planned, 4 scored, 1 failed, 0 skipped",
        "rows: 305 read, 300 scored, 5 failed",
        "mini-batches: 1 committed",
    ]
    assert "No _summary.json: the run did not finish" in page(gather(str(out)))


def test_report_refuses_a_folder_that_holds_no_run(tmp_path):
    with pytest.raises(NoRunError) as caught:
        gather(str(tmp_path))
    assert str(caught.value) == (
        f"{tmp_path}: no sparkscore run here (no _summary.json, _run.json or _manifest/); give "
        "the --output folder of a run (or the location of a table output)."
    )
    shown = run_cli("show", str(tmp_path))
    assert (shown.returncode, shown.stdout) == (2, f"error: {caught.value}\n")


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (CI installs it)")
def test_report_renders_every_chart_in_chromium(runs, tmp_path):
    url = (runs["drifted"] / "report.html").as_uri()
    dom = chromium("--dump-dom", url)
    assert dom.returncode == 0, dom.stderr
    svgs = re.findall(r"<svg\b.*?</svg>", dom.stdout, flags=re.S)
    # throughput, the prediction and its three farthest files, then the ten inputs
    assert len(svgs) == 1 + 1 + 3 + len(INPUTS)
    titles = [re.match(r'<svg role="img" aria-label="([^"]+)"', svg).group(1) for svg in svgs]
    texts = [re.findall(r"<text\b[^>]*>([^<]+)</text>", svg) for svg in svgs]
    assert all(title in text for title, text in zip(titles, texts))  # drawn, as text
    assert titles[:2] == ["Mini-batches committed over the run", "prediction: 256 sampled rows"]
    assert all(t.startswith("prediction in visits-2024-") for t in titles[2:5])
    assert titles[5] == "age (PSI 1.867, drifted)"  # drifted first
    assert titles[6:] == [f"{name} (PSI 0.000)" for name in INPUTS[1:]]
    shot = tmp_path / "report.png"
    taken = chromium(f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert taken.returncode == 0, taken.stderr
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, bars in two colours, their antialiased edges
    white = sum(n for n, rgb in colours if rgb == (255, 255, 255))
    assert white < 0.9 * 1280 * 2000
