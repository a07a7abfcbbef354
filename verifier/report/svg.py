"""Plots as inline SVG, written by hand: no scripts, no external references, deterministic output.

Every piece of text is escaped here (labels may carry case ids or provider names); coordinates are
numbers formatted by this module. The figures are drawn from `verifier.verdict.DriftFigure` and
`EffortFigure`, which the drift and effort checks put into their outcomes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from markupsafe import Markup, escape

from verifier.report.safe import visible
from verifier.verdict import DriftFigure, EffortFigure

FONT = 'font-family="system-ui, sans-serif" font-size="11"'
PALETTE = ["#0969da", "#cf222e", "#1a7f37", "#8250df", "#bf8700", "#1b7c83", "#d1242f", "#57606a"]
FLOOR = 1e-12
"""Smallest value a log axis shows; smaller ones (exact zeros included) are drawn on the bottom edge."""


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    exponent = math.log10(abs(value))
    if abs(exponent - round(exponent)) < 1e-9 and not 0 <= round(exponent) <= 3:
        return f"1e{round(exponent)}"
    return f"{value:g}"


class Plot:
    """One panel: axes with a linear or log scale on each side, in a `width` x `height` SVG."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float],
                 log_x: bool = False, log_y: bool = False, title: str = "", x_label: str = "", y_label: str = "",
                 left: int = 64, right: int = 16, top: int = 26, bottom: int = 38):
        self.width, self.height = width, height
        self.log_x, self.log_y = log_x, log_y
        self.x0, self.x1 = self._scaled(x[0], log_x), self._scaled(x[1], log_x)
        self.y0, self.y1 = self._scaled(y[0], log_y), self._scaled(y[1], log_y)
        if self.x1 <= self.x0:
            self.x1 = self.x0 + 1
        if self.y1 <= self.y0:
            self.y1 = self.y0 + 1
        self.left, self.right, self.top, self.bottom = left, width - right, top, height - bottom
        self.parts: list[str] = []
        self.title, self.x_label, self.y_label = title, x_label, y_label

    @staticmethod
    def _scaled(value: float, log: bool) -> float:
        return math.log10(max(value, FLOOR)) if log else value

    def px(self, value: float) -> float:
        v = self._scaled(value, self.log_x)
        return self.left + (v - self.x0) / (self.x1 - self.x0) * (self.right - self.left)

    def py(self, value: float) -> float:
        v = min(max(self._scaled(value, self.log_y), self.y0), self.y1)
        return self.bottom - (v - self.y0) / (self.y1 - self.y0) * (self.bottom - self.top)

    def text(self, x: float, y: float, label: str, anchor: str = "start", color: str = "#1f2328",
             extra: str = "") -> None:
        self.parts.append(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" fill="{color}"{extra}>'
                          f"{escape(visible(label))}</text>")

    def axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_names: Sequence[str] | None = None) -> None:
        p = self.parts
        p.append(f'<rect x="{self.left}" y="{self.top}" width="{self.right - self.left}" '
                 f'height="{self.bottom - self.top}" fill="#fff" stroke="#d0d7de"/>')
        for value in y_ticks:
            y = self.py(value)
            p.append(f'<line x1="{self.left}" x2="{self.right}" y1="{_n(y)}" y2="{_n(y)}" stroke="#eaeef2"/>')
            self.text(self.left - 6, y + 4, _tick(value), "end", "#57606a")
        for i, value in enumerate(x_ticks):
            x = self.px(value)
            p.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{self.bottom}" y2="{self.bottom + 4}" stroke="#57606a"/>')
            self.text(x, self.bottom + 16, x_names[i] if x_names else _tick(value), "middle", "#57606a")
        if self.title:
            self.text(self.left, 16, self.title, extra=' font-weight="600"')
        if self.x_label:
            self.text((self.left + self.right) / 2, self.height - 4, self.x_label, "middle", "#57606a")
        if self.y_label:
            cy = (self.top + self.bottom) / 2
            self.text(12, cy, self.y_label, "middle", "#57606a", f' transform="rotate(-90 12 {_n(cy)})"')

    def dots(self, points: Sequence[tuple[float, float]], color: str, size: float = 3.0, opacity: float = 0.8) -> None:
        if not points:
            return
        d = "".join(f"M{_n(self.px(x))} {_n(self.py(y))}h0" for x, y in points)
        self.parts.append(f'<path d="{d}" stroke="{color}" stroke-width="{_n(size)}" stroke-linecap="round" '
                          f'stroke-opacity="{opacity}" fill="none"/>')

    def line(self, points: Sequence[tuple[float, float]], color: str, width: float = 1.6, dash: str = "",
             step: bool = False) -> None:
        if not points:
            return
        coords = []
        for i, (x, y) in enumerate(points):
            if step and i:
                coords.append(f"L{_n(self.px(x))} {_n(self.py(points[i - 1][1]))}")
            coords.append(f"{'L' if i else 'M'}{_n(self.px(x))} {_n(self.py(y))}")
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<path d="{"".join(coords)}" stroke="{color}" stroke-width="{_n(width)}" '
                          f'fill="none"{dashed}/>')

    def vline(self, x: float, color: str, label: str = "", dash: str = "4 3") -> None:
        px = self.px(x)
        self.parts.append(f'<line x1="{_n(px)}" x2="{_n(px)}" y1="{self.top}" y2="{self.bottom}" stroke="{color}" '
                          f'stroke-dasharray="{dash}"/>')
        if label:
            right = px + 7 * len(label) + 6 > self.right
            self.text(px - 3 if right else px + 3, self.top + 11, label, "end" if right else "start", color)

    def legend(self, items: Sequence[tuple[str, str, str]], stacked: bool = False) -> None:
        """(label, color, kind: dot, line, dash, hollow) left to right, above the panel on the right; or,
        `stacked`, one per line under the title (leave `top` room: 16 px a line)."""
        x = self.right
        for row, (label, color, kind) in enumerate(reversed(items)):
            if stacked:
                x, y = self.left, 28 + 16 * (len(items) - 1 - row)
            else:
                x, y = x - (7 * len(label) + 26), 12
            self._key(x, y, color, kind)
            self.text(x + 20, y + 4, label)

    def _key(self, x: float, y: float, color: str, kind: str) -> None:
        if kind == "dot":
            self.parts.append(f'<circle cx="{_n(x + 8)}" cy="{y}" r="3.5" fill="{color}"/>')
        elif kind == "hollow":
            self.parts.append(f'<circle cx="{_n(x + 8)}" cy="{y}" r="4" fill="#fff" stroke="{color}" '
                              f'stroke-width="1.6"/>')
        else:
            dash = ' stroke-dasharray="5 3"' if kind == "dash" else ""
            self.parts.append(f'<line x1="{_n(x)}" x2="{_n(x + 16)}" y1="{y}" y2="{y}" stroke="{color}" '
                              f'stroke-width="2"{dash}/>')

    def svg(self, label: str) -> Markup:
        return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
                      f'width="{self.width}" height="{self.height}" role="img" aria-label="{escape(label)}" '
                      f'class="plot" {FONT}>' + "".join(self.parts) + "</svg>")


def _decades(lo: float, hi: float) -> tuple[float, float, list[float]]:
    a, b = math.floor(math.log10(max(lo, FLOOR))), math.ceil(math.log10(max(hi, FLOOR)))
    if b <= a:
        b = a + 1
    step = max(1, (b - a + 5) // 6)
    b = a + step * math.ceil((b - a) / step)
    return 10.0 ** a, 10.0 ** b, [10.0 ** e for e in range(a, b + 1, step)]


def _linear_ticks(hi: float, count: int = 5) -> list[float]:
    if hi <= 0:
        return [0.0, 1.0]
    raw = hi / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(hi / step) + 2)]


def _positions_ticks(n: int) -> list[float]:
    return _linear_ticks(max(n, 1), 8)[: -1] if n > 1 else [1]


def _separators(plot: Plot, figure: DriftFigure) -> None:
    """Thin lines between golden sequences, with their keys where there is room."""
    start, total = 0, sum(len(s.kl) for s in figure.sequences)
    room = (plot.right - plot.left) / max(total, 1)
    for i, s in enumerate(figure.sequences):
        if i:
            x = plot.px(start + 0.5)
            plot.parts.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{plot.top}" y2="{plot.bottom}" '
                              f'stroke="#d0d7de" stroke-width="0.8"/>')
        if len(s.kl) * room > 7 * len(s.key) + 8 and len(figure.sequences) <= 40:
            plot.text(plot.px(start + 0.5) + 3, plot.bottom - 5, s.key, color="#8c959f")
        start += len(s.kl)


def drift_statistic(figure: DriftFigure) -> Markup:
    """Relative log-odds error per position, its running median and the calibrated boundary (log y)."""
    relative = [(i + 1, v) for i, v in enumerate(v for s in figure.sequences for v in s.relative) if v is not None]
    median = [(i + 1, v) for i, v in enumerate(figure.running_median)]
    n = len(figure.running_median)
    bounds = list(zip(figure.boundary_positions, figure.boundary_values))
    shown = [(p, v) for p, v in bounds if p <= max(n, 1)]
    values = [v for _, v in relative + median + shown if v > 0]
    lo, hi, ticks = _decades(min(values, default=1e-9), max(values, default=1e-2))
    plot = Plot(1100, 300, (0.5, max(n, 1) + 0.5), (lo, hi), log_y=True,
                title=f"Relative log-odds error per position ({figure.method})",
                x_label="golden positions scored, in scoring order", y_label="relative log-odds error")
    plot.axes(_positions_ticks(n), ticks)
    _separators(plot, figure)
    plot.dots(relative, "#8c959f", 3.2, 0.7)
    plot.line(median, "#0969da", 2.0)
    if shown:
        steps = [*shown, (max(n, 1) + 0.5, shown[-1][1])]
        plot.line(steps, "#cf222e", 2.0, "6 4", step=True)
    if 0 < figure.decided_at_positions <= n:
        plot.vline(figure.decided_at_positions, "#57606a", f"decided at {figure.decided_at_positions}")
    plot.legend([("per position", "#8c959f", "dot"), ("running median", "#0969da", "line"),
                 ("calibrated boundary of the median", "#cf222e", "dash")])
    return plot.svg("relative log-odds error per position with running median and calibrated boundary")


def drift_kl(figure: DriftFigure) -> Markup:
    """Truncated KL and |Δℓ| per position (log y)."""
    kl = [(i + 1, v) for i, v in enumerate(v for s in figure.sequences for v in s.kl)]
    delta = [(i + 1, abs(v)) for i, v in enumerate(v for s in figure.sequences for v in s.delta) if v is not None]
    n = len(kl)
    values = [v for _, v in kl + delta if v > 0]
    lo, hi, ticks = _decades(min(values, default=1e-9), max(values, default=1.0))
    plot = Plot(1100, 240, (0.5, max(n, 1) + 0.5), (lo, hi), log_y=True,
                title="KL(golden ‖ provider) and |Δℓ| of the golden token, per position",
                x_label="golden positions scored, in scoring order", y_label="nats")
    plot.axes(_positions_ticks(n), ticks)
    _separators(plot, figure)
    plot.dots(kl, "#8250df", 3.2, 0.7)
    plot.dots(delta, "#bf8700", 2.4, 0.8)
    plot.legend([("truncated KL", "#8250df", "dot"), ("|Δℓ| golden token", "#bf8700", "dot")])
    return plot.svg("KL and golden-token log-probability error per position")


def detection_budget(figure: DriftFigure) -> Markup | None:
    """Per fault measured at calibration: scored positions to flag it (median, 99% of runs), against
    the positions this run scored."""
    if not figure.detection:
        return None
    names = list(figure.detection)
    height = 60 + 22 * len(names)
    most = max([figure.decided_at_positions, figure.pass_after_positions or 0, *figure.boundary_positions,
                *(d.positions_for_99pct_power or 0 for d in figure.detection.values())], default=16)
    hi = 10.0 ** math.ceil(math.log10(max(most, 10) * 1.5))
    longest = max(len(name) for name in names)
    plot = Plot(1100, height, (1, hi), (0, len(names)), log_x=True, left=min(24 + 7 * longest, 260),
                title="Detection budget: scored positions the sequential test needs to flag each calibrated fault",
                x_label="scored positions (log)")
    plot.axes([10.0 ** e for e in range(0, round(math.log10(hi)) + 1)], [])
    for i, name in enumerate(names):
        d = figure.detection[name]
        y = plot.top + (i + 0.5) * (plot.bottom - plot.top) / len(names)
        plot.text(plot.left - 6, y + 4, name, "end")
        if d.positions_for_99pct_power is None:
            label = "never flagged" if not d.power_all_positions else f"flagged in {d.power_all_positions:.1%} of runs"
            plot.text(plot.left + 6, y + 4, f"{label} over every golden position", color="#57606a")
            if d.median_positions_to_flag is not None:
                plot.parts.append(f'<circle cx="{_n(plot.px(d.median_positions_to_flag))}" cy="{_n(y)}" r="4" '
                                  f'fill="#fff" stroke="#0969da" stroke-width="1.6"/>')
            continue
        x99 = plot.px(d.positions_for_99pct_power)
        plot.parts.append(f'<rect x="{plot.left}" y="{_n(y - 5)}" width="{_n(max(x99 - plot.left, 1))}" height="10" '
                          f'fill="#ddf4ff" stroke="#54aeff"/>')
        if d.median_positions_to_flag is not None:
            plot.parts.append(f'<circle cx="{_n(plot.px(d.median_positions_to_flag))}" cy="{_n(y)}" r="4" '
                              f'fill="#fff" stroke="#0969da" stroke-width="1.6"/>')
        plot.text(x99 + 6, y + 4, f"{d.positions_for_99pct_power}", color="#57606a")
    if figure.decided_at_positions:
        plot.vline(figure.decided_at_positions, "#1a7f37", f"this run: {figure.decided_at_positions}")
    plot.legend([("99% of runs flag it by", "#54aeff", "line"), ("median", "#0969da", "hollow")])
    return plot.svg("positions needed to flag each calibrated fault")


def effort_lengths(figure: EffortFigure, label: str = "") -> Markup:
    """Reasoning length by effort level: the provider's per prompt (filled, joined by prompt) and the
    reference's (hollow)."""
    levels = figure.levels
    values = [v for g in figure.groups for v in [*g.provider.values(), *g.golden.values()]]
    ticks = _linear_ticks(max(values, default=1) * 1.05)
    plot = Plot(560, 300, (-0.5, len(levels) - 0.5), (0, ticks[-1]),
                title=f"Reasoning length by effort{f' ({label})' if label else ''}",
                x_label="reasoning effort requested", y_label="reasoning tokens (o200k)")
    plot.axes(range(len(levels)), ticks, levels)
    count = max(len(figure.groups), 1)
    for gi, group in enumerate(figure.groups):
        offset = (gi - (count - 1) / 2) * min(0.5 / count, 0.06)
        color = PALETTE[gi % len(PALETTE)]
        ours = [(i - 0.12 + offset, group.provider[lvl]) for i, lvl in enumerate(levels) if lvl in group.provider]
        ref = [(i + 0.12 + offset, group.golden[lvl]) for i, lvl in enumerate(levels) if lvl in group.golden]
        plot.line(ours, color, 1.0)
        plot.dots(ours, color, 6.0, 0.9)
        for x, y in ref:
            plot.parts.append(f'<circle cx="{_n(plot.px(x))}" cy="{_n(plot.py(y))}" r="3.5" fill="#fff" '
                              f'stroke="{color}" stroke-width="1.6"/>')
    plot.legend([("provider", "#57606a", "dot"), ("reference", "#57606a", "hollow")])
    return plot.svg("reasoning length by effort level, provider and reference")


def running_medians(runs: Sequence[tuple[str, DriftFigure]]) -> Markup | None:
    """Several providers' running medians on one panel, with the boundary (the comparison matrix)."""
    runs = [(label, f) for label, f in runs if f.running_median]
    if not runs:
        return None
    n = max(len(f.running_median) for _, f in runs)
    boundary = runs[0][1]
    bounds = [(p, v) for p, v in zip(boundary.boundary_positions, boundary.boundary_values) if p <= n]
    values = [v for _, f in runs for v in f.running_median if v > 0] + [v for _, v in bounds]
    lo, hi, ticks = _decades(min(values, default=1e-9), max(values, default=1e-2))
    keys = len(runs) + bool(bounds)
    plot = Plot(1100, 300 + 16 * keys, (0.5, n + 0.5), (lo, hi), log_y=True,
                title="Running median relative log-odds error, provider by provider",
                x_label="golden positions scored", y_label="running median", top=34 + 16 * keys)
    plot.axes(_positions_ticks(n), ticks)
    items = []
    for i, (label, f) in enumerate(runs):
        color = PALETTE[i % len(PALETTE)]
        plot.line([(j + 1, v) for j, v in enumerate(f.running_median)], color, 2.0)
        items.append((label[:120], color, "line"))
    if bounds:
        plot.line([*bounds, (n + 0.5, bounds[-1][1])], "#cf222e", 2.0, "6 4", step=True)
        items.append(("boundary", "#cf222e", "dash"))
    plot.legend(items, stacked=True)
    return plot.svg("running median relative log-odds error per provider")
