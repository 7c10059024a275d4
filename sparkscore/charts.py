"""The report's charts: each one a matplotlib figure rendered to its own inline `<svg>`.

matplotlib (the `report` extra) draws offline, needs no JavaScript at view time and writes SVG
whose text stays text (`svg.fonttype: none`), so a chart's title and labels can be read, found
and tested in the page. It is imported only when a chart is drawn: `import sparkscore` and a
run without the extra stay as they were (the report then says how to get its charts).
Shares, not row counts, are drawn, so a run and its reference overlay whatever their sizes.
"""

from __future__ import annotations

import html
import importlib.util
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparkscore.distributions import Distribution

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["available", "distribution_svg", "throughput_svg"]

THIS_RUN, OTHER_SIDE = "#2b6cb0", "#dd6b20"  # this run; the reference or the whole run
SIZE = (5.6, 2.6)  # inches at 72 dpi: about 400 x 190 px


def available() -> bool:
    """Whether matplotlib is installed (pip install 'sparkscore[report]')."""
    return importlib.util.find_spec("matplotlib") is not None


def distribution_svg(
    title: str,
    ours: Distribution,
    theirs: Distribution | None = None,
    *,
    labels: tuple[str, str] = ("this run", "reference"),
) -> str:
    """One distribution as shares of its rows, `theirs` (on the same buckets) drawn over it."""
    figure, axes = _figure(title)
    if ours.kind == "numeric":
        axes.stairs(ours.shares(), ours.edges, fill=True, color=THIS_RUN, alpha=0.55)
        if theirs is not None:
            axes.stairs(theirs.shares(), theirs.edges, color=OTHER_SIDE, linewidth=1.6)
    else:
        places = range(len(ours.labels))
        width = 0.4 if theirs is not None else 0.8
        shift = width / 2 if theirs is not None else 0.0
        axes.bar([p - shift for p in places], ours.shares(), width, color=THIS_RUN)
        if theirs is not None:
            axes.bar([p + shift for p in places], theirs.shares(), width, color=OTHER_SIDE)
        axes.set_xticks(list(places), ours.labels, rotation=30 if len(places) > 6 else 0)
    axes.set_ylabel("share of rows")
    if theirs is not None:
        axes.legend(labels, fontsize=8, frameon=False)
    return _svg(figure, title)


def throughput_svg(title: str, commits: Sequence[tuple[float, int]], planned: int | None) -> str:
    """Mini-batches committed over the run: a step at each commit."""
    figure, axes = _figure(title)
    times = [0.0, *(t for t, _ in commits)]
    done = list(range(len(times)))
    axes.step(times, done, where="post", color=THIS_RUN, linewidth=1.8)
    axes.plot(times[1:], done[1:], "o", color=THIS_RUN, markersize=3)
    if planned:
        axes.axhline(planned, color=OTHER_SIDE, linestyle="--", linewidth=1)
    axes.set_xlabel("seconds since the run started")
    axes.set_ylabel("mini-batches")
    return _svg(figure, title)


def _figure(title: str) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    # Fixed margins, room for the tick labels and an axis label: a layout engine would draw
    # each figure twice, and fit it to its text, at twice the cost.
    figure = Figure(figsize=SIZE, dpi=72)
    figure.subplots_adjust(left=0.12, right=0.97, top=0.88, bottom=0.2)
    axes = figure.add_subplot()
    axes.set_title(title, fontsize=10, loc="left")
    axes.tick_params(labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _svg(figure: Figure, salt: str) -> str:
    """The figure as an `<svg>` element labelled with its title: text as text, no date, ids
    salted by the title so that several charts in one page do not share an id."""
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    label = html.escape(salt, quote=True)
    return f'<svg role="img" aria-label="{label}"' + text[text.index("<svg") + 4 :]
