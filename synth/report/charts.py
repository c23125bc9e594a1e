"""Charts for reports, drawn by matplotlib and inlined as SVG.

Why inline SVG: a report must open from a file, offline, years later. So each chart is
cleaned up to stand alone inside HTML. The XML prolog, DOCTYPE, namespace URLs and
metadata are removed, and `xlink:href` becomes `href`. Element ids get a per-chart prefix
so two charts on one page cannot share an id. Text stays `<text>` (svg.fonttype none), so
no font is embedded or fetched and a browser can find the words.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

_counter = itertools.count()

_RC: Any = {  # typed Any: matplotlib stubs want Literal keys
    "svg.fonttype": "none",
    "svg.hashsalt": "synth",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "text.parse_math": False,  # a reason or recipe name with "$" is text, not TeX
}
_PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"]


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("svg", force=False)  # never a GUI backend, even if pyplot is imported
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _to_svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Format": None})
    return clean_svg(buf.getvalue())


def clean_svg(svg: str) -> str:
    """Make matplotlib's standalone SVG safe to inline many times in one HTML page."""
    prefix = f"c{next(_counter)}-"
    svg = re.sub(r"<\?xml[^>]*\?>\s*", "", svg)
    svg = re.sub(r"<!DOCTYPE[^>]*>\s*", "", svg, flags=re.S)
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    svg = re.sub(r'(<svg\b[^>]*?)\swidth="[^"]*"\s+height="[^"]*"', r"\1", svg, count=1)
    return svg.replace("<svg ", '<svg role="img" class="chart" ', 1).strip()


def bars(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str = "",
    color: str = _PALETTE[1],
) -> str:
    """Horizontal bars, largest first: rejection reasons, counts per recipe."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(6.0, max(1.4, 0.32 * len(labels) + 0.9))
        ax = fig.add_subplot()
        order = sorted(range(len(labels)), key=lambda i: values[i])
        ys = range(len(order))
        ax.barh(list(ys), [values[i] for i in order], color=color)
        ax.set_yticks(list(ys), [_short(labels[i]) for i in order])
        for y, i in zip(ys, order, strict=True):
            ax.annotate(f" {values[i]:g}", (values[i], y), va="center", fontsize=8, color="#374151")
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.margins(x=0.15)
        return _to_svg(fig)


def histogram(
    series: Mapping[str, Sequence[float]], *, title: str, xlabel: str, bins: int = 30
) -> str:
    """Overlaid histograms on shared bins (kept vs rejected lengths, judge scores)."""
    import matplotlib
    import numpy as np

    with matplotlib.rc_context(_RC):
        fig = _figure(6.0, 2.6)
        ax = fig.add_subplot()
        values = [v for s in series.values() for v in s]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        for color, (name, data) in zip(_PALETTE, series.items(), strict=False):
            if data:
                ax.hist(data, bins=edges, alpha=0.55, color=color, label=f"{name} ({len(data)})")
        ax.set_title(title, loc="left")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("records")
        if len(series) > 1:
            ax.legend(frameon=False)
        return _to_svg(fig)


def trend(
    x: Sequence[str], series: Mapping[str, Sequence[float | None]], *, title: str, ylabel: str = ""
) -> str:
    """One line per metric across nights; gaps where a night has no value."""
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(6.0, 2.8)
        ax = fig.add_subplot()
        xs = list(range(len(x)))
        for color, (name, ys) in zip(itertools.cycle(_PALETTE), series.items()):
            pts = [(i, y) for i, y in zip(xs, ys, strict=False) if y is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), marker="o", color=color, label=_short(name))
        step = max(1, len(x) // 8)
        ax.set_xticks(xs[::step], [x[i] for i in xs[::step]], rotation=30, ha="right")
        ax.set_title(title, loc="left")
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
        return _to_svg(fig)


def _short(label: str, limit: int = 40) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
