"""Server-side SVG charts for the operator admin: no JavaScript, no CDN, nothing to vendor.

Each function returns a SafeString of one <svg> element. Every value that
reaches the markup is either a number we computed or text passed through
django.utils.html.escape, so tenant-supplied names cannot inject markup.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

DEFAULT_COLOR = "#1d428a"
OVER_COLOR = "#ba2121"  # Django admin's error red: a quota that is (nearly) used up


def _number(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(
    points: Sequence[tuple[str, float | None]],
    *,
    title: str,
    color: str = DEFAULT_COLOR,
    width: int = 640,
    height: int = 170,
    limit: float | None = None,
    format_value: Callable[[float], str] = lambda v: f"{v:,.0f}",
    label_every: int | None = None,
) -> SafeString:
    """A vertical bar chart: one slot per point, a <rect class="bar"> for each point whose value is not None.

    `limit` draws a dashed line (a plan quota) and scales the axis to include it.
    A None value leaves its slot empty: a day without a ledger row is unknown, not zero.
    """
    left, right, top, bottom = 64, 8, 22, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v in points if v is not None]
    peak = max([*values, limit or 0, 1])
    slot = plot_w / max(len(points), 1)
    bar_w = max(slot * 0.75, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="courtside-chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="14" font-size="12" font-weight="bold" fill="currentColor">{escape(title)}</text>',
        # y axis: zero and the peak, enough to read magnitudes without gridlines
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="currentColor">0</text>',
        f'<text x="{left - 6}" y="{top + 8}" font-size="10" text-anchor="end" fill="currentColor">'
        f"{escape(format_value(peak))}</text>",
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#999" />',
    ]
    for index, (label, value) in enumerate(points):
        if value is None:
            continue
        bar_h = plot_h * value / peak
        x = left + index * slot + (slot - bar_w) / 2
        fill = OVER_COLOR if limit is not None and value >= limit else color
        parts.append(
            f'<rect class="bar" x="{_number(x)}" y="{_number(top + plot_h - bar_h)}" width="{_number(bar_w)}" '
            f'height="{_number(bar_h)}" fill="{escape(fill)}" data-value="{_number(value)}">'
            f"<title>{escape(label)}: {escape(format_value(value))}</title></rect>"
        )
    if limit is not None:
        y = top + plot_h - plot_h * limit / peak
        parts.append(
            f'<line class="limit" x1="{left}" y1="{_number(y)}" x2="{left + plot_w}" y2="{_number(y)}" '
            f'stroke="{OVER_COLOR}" stroke-dasharray="4 3"><title>quota: {escape(format_value(limit))}</title></line>'
        )
    every = label_every or max(1, len(points) // 6)
    for index, (label, _) in enumerate(points):
        if index % every == 0 or index == len(points) - 1:
            x = left + index * slot + slot / 2
            parts.append(
                f'<text x="{_number(x)}" y="{height - 8}" font-size="10" text-anchor="middle" '
                f'fill="currentColor">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated text is escaped above


def meter(used: float, limit: float | None, *, width: int = 80, height: int = 8,
          color: str = DEFAULT_COLOR) -> SafeString:
    """A small horizontal bar of used/limit in `color`, red from 90 %; empty markup when the limit is unlimited."""
    if limit is None:
        return mark_safe("")
    share = 1.0 if limit <= 0 else min(used / limit, 1.0)
    fill = OVER_COLOR if share >= 0.9 else escape(color)
    percent = 100.0 if limit <= 0 else 100.0 * used / limit
    return mark_safe(
        f'<svg xmlns="http://www.w3.org/2000/svg" class="meter" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{_number(percent)}% of quota">'
        f'<rect width="{width}" height="{height}" fill="#e5e5e5" />'
        f'<rect class="meter-fill" width="{_number(width * share)}" height="{height}" fill="{fill}" />'
        "</svg>"
    )
