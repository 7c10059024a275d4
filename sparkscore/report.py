"""The report: a run's facts (sparkscore.runfacts) as one self-contained `report.html`, and as
the text lines `sparkscore show` prints.

The page holds everything it shows: its style inline, each chart its own inline `<svg>`
(sparkscore.charts), no script and nothing fetched at view time, so it opens from a laptop, an
artifact store or a mail. The job writes it at the end of every run that wrote its run record;
`sparkscore report OUT` writes it again from the output folder alone.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable, Sequence

from pyarrow import fs as pafs

from sparkscore import charts
from sparkscore.distributions import Distribution
from sparkscore.layout import OutputLayout
from sparkscore.profile import SAMPLE_BLOCK, SAMPLE_PERIOD
from sparkscore.runfacts import REPORT_FILE, ColumnFacts, RunFacts, gather, gather_at
from sparkscore.storage import resolve

__all__ = ["page", "rebuild", "text_lines", "write_report"]

log = logging.getLogger("sparkscore")

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1240px;color:#1a202c}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #e2e8f0}
.succeeded{color:#276749}.failed{color:#c53030}.unfinished{color:#b7791f}
table{border-collapse:collapse}td,th{padding:2px 10px;text-align:left;vertical-align:top}
th{background:#f7fafc}td.n{text-align:right}.note{color:#4a5568}
.charts{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0;border:1px solid #edf2f7}
.flagged{border-color:#c53030}
"""


def write_report(fs: pafs.FileSystem, layout: OutputLayout, *, output: str) -> str | None:
    """Write `report.html` beside the run record at `layout` and return where (shown as under
    `output`). A report that cannot be made is a warning, not a failed run: the scoring is done
    and committed by then."""
    try:
        facts = gather_at(fs, layout, output=output)
        with fs.open_output_stream(f"{layout.root}/{REPORT_FILE}") as f:
            f.write(page(facts).encode())
    except Exception as e:  # whatever failed, the run's own outcome stands
        log.warning("report.html was not written (%s: %s)", type(e).__name__, e)
        return None
    return facts.report


def rebuild(uri: str) -> RunFacts:
    """`sparkscore report OUT`: the report written again from the output folder."""
    facts = gather(uri)
    fs, path = resolve(facts.report)
    with fs.open_output_stream(path) as f:
        f.write(page(facts).encode())
    return facts


def page(facts: RunFacts) -> str:
    """The whole report as one HTML document."""
    title = f"sparkscore run {facts.job_id or facts.output}"
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}: <span class={facts.status}>{facts.status}</span></h1>",
        *_outcome(facts),
        *_errors(facts),
        *_throughput(facts),
        *_prediction(facts),
        *_columns(facts),
        "</body></html>",
    ]
    return "\n".join(parts)


def text_lines(facts: RunFacts) -> list[str]:
    """The same facts as `sparkscore show` prints them."""
    c = facts.counts
    lines = [
        f"run {facts.job_id or '(no run record)'}: {facts.status}",
        *([f"error: {facts.error}"] if facts.error else []),
        f"output: {facts.output}",
        f"files: {'?' if c.files_total is None else c.files_total} planned, "
        f"{c.files_succeeded} scored, {c.files_failed} failed, {c.files_skipped} skipped",
        f"rows: {c.rows_read} read, {c.rows_scored} scored, {c.rows_failed} failed",
        f"mini-batches: {len(facts.commits)} committed"
        + ("" if facts.mini_batches is None else f" of {facts.mini_batches}"),
    ]
    if facts.duration_s is not None:
        lines.append(f"duration: {facts.duration_s}s ({facts.rows_per_s} rows/s)")
    lines.append(f"errors: {_n(c.error_records, 'record')}" if facts.errors else "errors: none")
    for g in facts.errors:
        top = ", ".join(f"{name} ({n})" for name, n in g.top_files)
        more = f" and {g.files - len(g.top_files)} more" if g.files > len(g.top_files) else ""
        lines.append(
            f"  {g.stage} {g.error_type}: {_n(g.records, 'record')} in {_n(g.files, 'file')}: "
            f"{top}{more}"
        )
    lines += _drift_lines(facts)
    lines.append(f"report: {facts.report}")
    return lines


def _drift_lines(facts: RunFacts) -> list[str]:
    if facts.reference is None:
        return ["drift: no reference" + ("" if facts.profiled else "; no profile")]
    if facts.reference_note and not facts.drifts:
        return [f"drift: {facts.reference_note}"]
    flagged = ", ".join(facts.flagged) or "none"
    lines = [f"drift against {facts.reference}: flagged {flagged}"]
    for name, psi, is_flagged in facts.drifts:
        value = "n/a" if psi is None else f"{psi:.3f}"
        lines.append(f"  {name}: PSI {value}{', flagged' if is_flagged else ''}")
    return lines


def _outcome(facts: RunFacts) -> list[str]:
    c = facts.counts
    rows = [
        ("output", facts.output),
        (
            "files",
            f"{'?' if c.files_total is None else c.files_total} planned, "
            f"{c.files_succeeded} scored, {c.files_failed} failed, {c.files_skipped} skipped",
        ),
        ("rows", f"{c.rows_read:,} read, {c.rows_scored:,} scored, {c.rows_failed:,} failed"),
        ("started", facts.started or "unknown"),
        (
            "duration",
            "unknown"
            if facts.duration_s is None
            else f"{facts.duration_s}s ({facts.rows_per_s} rows/s)",
        ),
    ]
    out = [f"<p class=failed>{_e(facts.error)}</p>"] if facts.error else []
    if facts.status == "unfinished":
        out.append(
            "<p class=note>No _summary.json: the run did not finish; the counts are "
            "those of the mini-batches it committed.</p>"
        )
    out.append(_table(("", ""), [(k, _e(v)) for k, v in rows]))
    return out


def _errors(facts: RunFacts) -> list[str]:
    out = ["<h2>Errors by stage and type</h2>"]
    if not facts.errors:
        return [*out, "<p class=note>No error records.</p>"]
    rows = [
        (
            _e(g.stage),
            _e(g.error_type),
            str(g.records),
            str(g.files),
            _e(", ".join(f"{name} ({n})" for name, n in g.top_files)),
            _e(g.example),
        )
        for g in facts.errors
    ]
    head = ("stage", "error type", "records", "files", "top files", "first message")
    return [*out, _table(head, rows)]


def _throughput(facts: RunFacts) -> list[str]:
    out = ["<h2>Throughput</h2>"]
    if not facts.commits:
        return [*out, "<p class=note>No mini-batch was committed.</p>"]
    return [
        *out,
        _charts(
            lambda: [
                charts.throughput_svg(
                    "Mini-batches committed over the run", facts.commits, facts.mini_batches
                )
            ]
        ),
    ]


def _prediction(facts: RunFacts) -> list[str]:
    out = ["<h2>The prediction</h2>"]
    prediction = facts.prediction
    overall = prediction.overall
    if overall is None:
        return [*out, f"<p class=note>{_e(prediction.note or 'no predictions')}.</p>"]

    every = overall.rows >= (facts.counts.rows_scored or 0)
    title = f"all {overall.rows:,.0f} rows" if every else f"{overall.rows:,.0f} sampled rows"

    def figures() -> list[str]:
        drawn = [_figure(f"prediction: {title}", overall, prediction.reference)]
        for f in prediction.differing:
            drawn.append(
                _figure(
                    f"prediction in {f.file_name} ({f.rows:,} {'' if every else 'sampled '}"
                    f"rows, distance {f.distance:.2f})",
                    f.distribution,
                    overall,
                    labels=(f.file_name, "all rows"),
                )
            )
        return drawn

    notes = []
    if not every:
        notes.append(
            f"Drawn from the profile's sample: the first {SAMPLE_BLOCK} rows of every "
            f"{SAMPLE_PERIOD:,} of each file."
        )
    if prediction.reference is not None:
        notes.append("This run's rows against the reference's profiled rows.")
    if prediction.differing:
        notes.append(
            "Beside them: the files whose predictions differ most from the whole "
            "run's (total variation distance)."
        )
    note = f"<p class=note>{' '.join(notes)}</p>" if notes else ""
    return [*out, note, _charts(figures)]


def _columns(facts: RunFacts) -> list[str]:
    out = ["<h2>Input columns</h2>"]
    if not facts.profiled:
        return [
            *out,
            "<p class=note>No profile: this run ran with profile: false. Run with --set "
            "profile=true (the default), or with a reference, to see each input column's "
            "distribution here.</p>",
        ]
    if facts.reference is not None:
        flagged = ", ".join(facts.flagged) or "none"
        out.append(
            f"<p>Against the reference {_e(facts.reference)}: drifted {_e(flagged)} "
            "(drifted columns first).</p>"
        )
    if facts.reference_note:
        out.append(f"<p class=note>{_e(facts.reference_note)}</p>")
    drawn = [c for c in facts.columns if c.distribution is not None]
    return [*out, _charts(lambda: [_column_figure(c) for c in drawn])]


def _column_figure(column: ColumnFacts) -> str:
    title = column.name
    if column.psi is not None:
        title += f" (PSI {column.psi:.3f}{', drifted' if column.flagged else ''})"
    assert column.distribution is not None
    svg = _figure(title, column.distribution, column.reference)
    return svg.replace("<figure>", "<figure class=flagged>", 1) if column.flagged else svg


def _figure(
    title: str,
    ours: Distribution,
    theirs: Distribution | None = None,
    *,
    labels: tuple[str, str] = ("this run", "reference"),
) -> str:
    return f"<figure>{charts.distribution_svg(title, ours, theirs, labels=labels)}</figure>"


def _charts(figures: Callable[[], list[str]]) -> str:
    """The figures drawn, side by side; without matplotlib, how to get them."""
    if not charts.available():
        return (
            "<p class=note>Charts need matplotlib: pip install 'sparkscore[report]', then "
            "sparkscore report OUT.</p>"
        )
    return f"<div class=charts>{''.join(figures())}</div>"


def _table(head: tuple[str, ...], rows: Sequence[tuple[str, ...]]) -> str:
    header = "" if not any(head) else "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table>{header}{body}</table>"


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
