"""The comparison matrix: several runs side by side, check by check, with drift figures.

Rows are checks (by family), columns are runs (provider model, base URL, date); a cell holds the
check's verdict and summary, and for drift the decision statistic against its calibrated boundary.
Rendered from result.json files alone, as self-contained HTML (and, optionally, a text table).
"""

from __future__ import annotations

from pathlib import Path

from markupsafe import Markup
from pydantic import BaseModel, ValidationError

from verifier.drift.sequential import DriftLimits, DriftSummary
from verifier.report import svg
from verifier.report.html import _environment
from verifier.result import CheckResult, RunResult
from verifier.suites import FAMILIES
from verifier.verdict import DriftFigure


class DriftCell(BaseModel):
    """A drift check's figures in one run."""

    method: str | None = None
    positions: int | None = None
    """Scored positions when the test decided."""
    median_relative: float | None = None
    """Median relative log-odds error: the decision statistic."""
    boundary: float | None = None
    """The calibrated boundary at those positions (None below the first grid point)."""
    mean_kl: float | None = None
    confident_flips: int | None = None


class Column(BaseModel):
    """One run as a column of the matrix."""

    label: str
    """Model, with faults and server quirks of the built-in provider."""
    result: RunResult


def label(result: RunResult) -> str:
    extra = [f"fault {f}" for f in result.provider.faults] + [f"quirk {v}" for v in result.provider.variants]
    return result.provider.model + (f" ({', '.join(extra)})" if extra else "")


def drift_cell(check: CheckResult) -> DriftCell | None:
    """The decision figures of a drift check (from its deciding outcome), if it computed any."""
    for o in check.outcomes:
        try:
            summary = DriftSummary.model_validate(o.observed)
        except ValidationError:
            continue
        positions = summary.decided_at_positions if summary.decided_at_positions is not None else summary.positions
        try:
            limits = DriftLimits.model_validate(o.expected)
        except ValidationError:
            limits = None
        boundary = limits.logodds_boundary.at(positions) if limits is not None and positions else None
        return DriftCell(method=summary.method, positions=positions, median_relative=summary.median_relative,
                         boundary=boundary, mean_kl=summary.mean_kl, confident_flips=summary.confident_flips)
    return None


def rows(results: list[RunResult]) -> list[tuple[str, str, list[CheckResult | None]]]:
    """(family, check id, the check in each run or None) for every check any run has."""
    order: list[tuple[str, str]] = []
    for result in results:
        for check in result.checks:
            if (check.family, check.id) not in order:
                order.append((check.family, check.id))
    rank = {f: i for i, f in enumerate(FAMILIES)}
    seen = {fc: i for i, fc in enumerate(order)}
    order = sorted(order, key=lambda fc: (rank.get(fc[0], len(rank)), seen[fc]))
    found = [{c.id: c for c in r.checks} for r in results]
    return [(family, check_id, [f.get(check_id) for f in found]) for family, check_id in order]


def _drift_figures(results: list[RunResult]) -> list[tuple[str, Markup]]:
    out = []
    for check_id in ("drift.teacher_forced", "drift.greedy_logprobs"):
        runs = []
        for result in results:
            for check in result.checks:
                if check.id == check_id:
                    runs += [(label(result), o.figure) for o in check.outcomes if isinstance(o.figure, DriftFigure)]
        if runs and (plot := svg.running_medians(runs)) is not None:
            out.append((check_id, plot))
    return out


def render_compare(results: list[RunResult]) -> str:
    table = rows(results)
    differing = {check_id for _, check_id, cells in table if len({c.verdict for c in cells if c is not None}) > 1}
    drift = {(i, check_id): drift_cell(c) for _, check_id, cells in table for i, c in enumerate(cells)
             if c is not None and c.family == "drift"}
    return _environment().get_template("compare.html.j2").render(
        columns=[Column(label=label(r), result=r) for r in results], rows=table, differing=differing, drift=drift,
        figures=_drift_figures(results))


def _verdict_text(check: CheckResult | None, cell: DriftCell | None) -> str:
    if check is None:
        return "-"
    text = check.verdict.value.upper() if check.verdict.value in ("fail", "error") else check.verdict.value
    if cell is not None and cell.median_relative is not None:
        bound = f"{cell.boundary:.4f}" if cell.boundary is not None else "n/a"
        text += f" {cell.median_relative:.4f}/{bound}@{cell.positions}"
    return text


def text_table(results: list[RunResult]) -> str:
    """The matrix as plain text: a check per line, a run per column (drift: median/boundary@positions)."""
    table = rows(results)
    cells = [[_verdict_text(c, drift_cell(c) if c is not None and c.family == "drift" else None) for c in row]
             for _, _, row in table]
    heads = [f"[{i + 1}]" for i in range(len(results))]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(heads)]
    first = max([5, *(len(check_id) for _, check_id, _ in table)])
    lines = [f"[{i + 1}] {label(r)} at {r.provider.base_url} ({r.created}, verdict {r.verdict})"
             for i, r in enumerate(results)]
    lines.append("")
    lines.append(f"{'check':{first}}  " + "  ".join(f"{h:{w}}" for h, w in zip(heads, widths)))
    for (_, check_id, _), row in zip(table, cells):
        lines.append(f"{check_id:{first}}  " + "  ".join(f"{c:{w}}" for c, w in zip(row, widths)))
    lines.append(f"{'verdict':{first}}  " + "  ".join(f"{r.verdict:{w}}" for r, w in zip(results, widths)))
    return "\n".join(line.rstrip() for line in lines) + "\n"


def write_compare(results: list[RunResult], out: Path) -> Path:
    out = Path(out)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_compare(results), encoding="utf-8")
    return out
