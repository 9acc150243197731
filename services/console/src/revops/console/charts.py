"""Charts as inline SVG, drawn on the server: no script, no CDN, readable without either.

Every chart is one ``<svg class="chart">`` with a ``<title>`` and ``<desc>`` for screen
readers, one element per datum carrying its value in ``data-value`` (what the browser
tests check), and text escaped (labels come from CRM data).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal

from markupsafe import Markup, escape

from revops.console.formats import compact

# Colour-blind-safe (Okabe-Ito), in the order series are drawn.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000")

Format = Callable[[float], str]


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``top``: 0, 250, 500, 750, 1000 for 930."""
    if not math.isfinite(top) or top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks = [0.0]
    while ticks[-1] < top:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _empty(title: str, width: int) -> Markup:
    return Markup(
        f'<svg class="chart chart-empty" role="img" viewBox="0 0 {width} 48" width="{width}" '
        f'height="48"><title>{escape(title)}</title><text x="8" y="28" class="muted">'
        "No data for this period</text></svg>"
    )


def bar_chart(
    bars: Sequence[tuple[str, float | Decimal]],
    *,
    title: str,
    value_format: Format = compact,
    width: int = 560,
) -> Markup:
    """Horizontal bars, one per (label, value), longest first as given."""
    values = [float(v) for _, v in bars]
    if not bars or max(values, default=0) <= 0:
        return _empty(title, width)
    row, top, label_w, value_w = 26, 8, 170, 64
    plot_w = width - label_w - value_w
    height = top * 2 + row * len(bars)
    scale = plot_w / max(values)
    described = ", ".join(
        f"{name} {value_format(v)}" for (name, _), v in zip(bars, values, strict=True)
    )
    parts: list[str] = [
        f'<svg class="chart chart-bar" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>'
        f"<desc>{escape(title)}: {escape(described)}</desc>"
    ]
    for i, ((name, _), value) in enumerate(zip(bars, values, strict=True)):
        y = top + i * row
        bar_w = max(value * scale, 1.0) if value > 0 else 0.0
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end" class="axis">'
            f"{escape(_truncate(name, 24))}<title>{escape(name)}</title></text>"
            f'<rect class="bar" x="{label_w}" y="{y + 4}" width="{bar_w:.1f}" height="{row - 8}" '
            f'fill="{PALETTE[0]}" data-label="{escape(name)}" data-value="{value:g}">'
            f"<title>{escape(name)}: {escape(value_format(value))}</title></rect>"
            f'<text x="{label_w + bar_w + 6:.1f}" y="{y + 17}" class="value">'
            f"{escape(value_format(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float | Decimal]],
    *,
    title: str,
    value_format: Format = compact,
    width: int = 720,
    height: int = 260,
) -> Markup:
    """One line per series over the same x labels (oldest first), with a legend."""
    if not x_labels or not series:
        return _empty(title, width)
    left, right, top, bottom = 56, 16, 12, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    highest = max((float(v) for values in series.values() for v in values), default=0.0)
    ticks = nice_ticks(highest)
    y_max = ticks[-1]
    step_x = plot_w / max(len(x_labels) - 1, 1)

    def x_at(i: int) -> float:
        return left + (i * step_x if len(x_labels) > 1 else plot_w / 2)

    def y_at(value: float) -> float:
        return top + plot_h - (value / y_max) * plot_h

    parts: list[str] = [
        f'<svg class="chart chart-line" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{escape(title)}</title>'
        f"<desc>{escape(title)}, {len(x_labels)} points: {escape(', '.join(series))}</desc>"
    ]
    for tick in ticks:
        y = y_at(tick)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{escape(value_format(tick))}</text>"
        )
    every = max(1, math.ceil(len(x_labels) / 8))  # at most ~8 labels under the axis
    last = len(x_labels) - 1
    for i, name in enumerate(x_labels):
        if i == last or (i % every == 0 and last - i >= every):  # the last never crowded
            # The end labels lean inwards, so that none is cut at the chart's edges.
            anchor = "start" if i == 0 and last else "end" if i == last and last else "middle"
            parts.append(
                f'<text x="{x_at(i):.1f}" y="{top + plot_h + 18}" text-anchor="{anchor}" '
                f'class="axis">{escape(name)}</text>'
            )
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = [(x_at(i), y_at(float(v))) for i, v in enumerate(values)]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{path}" data-series="{escape(name)}"/>'
        )
        for (x, y), value, at in zip(points, values, x_labels, strict=False):
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}" '
                f'data-series="{escape(name)}" data-value="{float(value):g}">'
                f"<title>{escape(name)}, {escape(at)}: {escape(value_format(float(value)))}"
                "</title></circle>"
            )
        legend_x = left + (n % 4) * (plot_w / 4)
        legend_y = height - 20 + (n // 4) * 14
        parts.append(
            f'<rect x="{legend_x:.1f}" y="{legend_y - 9}" width="10" height="10" '
            f'fill="{colour}"/><text x="{legend_x + 14:.1f}" y="{legend_y}" class="legend">'
            f"{escape(_truncate(name, 22))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
